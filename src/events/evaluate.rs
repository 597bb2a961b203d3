//! What one alert mail does: which device it is about, which events it raises or clears, and
//! what is logged. Pure: the writes are planned here and carried out by the store.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::fmt;

use super::model::{
    Action, Alignment, EventPolicy, MatchIn, Originator, Rate, RegexType, RequireAuth, Severity,
};
use super::policies::{
    CompiledEventPolicy, CompiledOriginator, DeviceRef, Extractor, Matcher, Policies, Sender,
};
use super::template::{Captures, Values};
use crate::auth::Verification;
use crate::config::{AlertMessage, Method};
use crate::message::{header, truncate, Message};

/// Longest device log message kept, in octets.
pub const MAX_LOG_MESSAGE: usize = 65_536;
/// Longest event message kept, in octets.
pub const MAX_EVENT_MESSAGE: usize = 8_192;
/// Longest event key kept, in octets.
pub const MAX_KEY: usize = 1_024;
/// The matches of a keyed policy's first match string read in one mail, at most: each can be
/// an event, and a mail of a million matching lines must not become a million writes.
pub const MAX_MATCHES: usize = 1_000;
/// The system log code for mail no originator policy could match to a device (as in SL1).
pub const E701: &str = "E701";

/// The parts of a message the events pipeline reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alert<'a> {
    /// The From address (or, without one, the envelope sender).
    pub from: &'a str,
    /// The From header's display name.
    pub from_name: Option<&'a str>,
    /// The envelope sender (`MAIL FROM`).
    pub envelope_from: &'a str,
    /// The decoded subject.
    pub subject: &'a str,
    /// The body as text, trimmed.
    pub body: &'a str,
    /// The header fields ([`Message::headers`]).
    pub headers: &'a str,
    /// What was verified about its sender; `None`: nothing.
    pub sender: Option<&'a Verification>,
}

impl<'a> Alert<'a> {
    /// The alert `message` is, delivered with this envelope sender.
    pub fn new(message: &'a Message, envelope_from: &'a str) -> Alert<'a> {
        Alert {
            from: message.from_address.as_deref().unwrap_or(envelope_from),
            from_name: message.from_name.as_deref(),
            envelope_from,
            subject: message.subject.as_deref().unwrap_or(""),
            body: &message.body,
            headers: &message.headers,
            sender: None,
        }
    }

    /// The alert, its sender verified as `sender` says.
    pub fn verified(self, sender: &'a Verification) -> Alert<'a> {
        Alert {
            sender: Some(sender),
            ..self
        }
    }

    /// Whether its sender is verified by `required`, or came from a trusted network.
    fn verified_by(&self, required: RequireAuth) -> bool {
        required.method().is_none_or(|method| {
            self.sender
                .is_some_and(|v| v.passes(method) || v.passes(Method::Mynetworks))
        })
    }

    /// What an originator policy of `regex_type` looks in; `None` for a header it lacks.
    fn field(&self, regex_type: &RegexType) -> Option<Cow<'a, str>> {
        Some(match regex_type {
            RegexType::Subject => Cow::Borrowed(self.subject),
            RegexType::Body => Cow::Borrowed(self.body),
            RegexType::EnvelopeFrom => Cow::Borrowed(self.envelope_from),
            RegexType::From => match self.from_name {
                Some(name) => Cow::Owned(format!("{name} <{}>", self.from)),
                None => Cow::Borrowed(self.from),
            },
            RegexType::Header(name) => Cow::Owned(header(self.headers, name)?),
        })
    }
}

/// The `[inbound]` settings the pipeline follows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Compare names up to their first dot.
    pub strip_fqdn: bool,
    /// What is matched and logged.
    pub alert_message: AlertMessage,
}

impl From<&crate::config::Inbound> for Settings {
    fn from(inbound: &crate::config::Inbound) -> Settings {
        Settings {
            strip_fqdn: inbound.strip_fqdn,
            alert_message: inbound.alert_message,
        }
    }
}

/// One row to write, or one change to make, in the message's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A `device_logs` row.
    DeviceLog {
        /// The device.
        device_id: i64,
        /// The alert text.
        message: String,
        /// Not written when the alerts of every one of these (capped) policies are over
        /// their cap ([`Write::Take`]); empty: always written.
        unless_over: Vec<i64>,
    },
    /// Takes a token from the bucket of a capped policy's alerts about a device, before the
    /// device log: none left, the alert is over the cap and the policy's flood event is raised
    /// (or counts one more); a token again, the flood event is cleared.
    Take {
        /// The device.
        device_id: i64,
        /// The capped policy.
        event_policy_id: i64,
        /// Its cap.
        rate: Rate,
        /// The flood event's severity (the policy's).
        severity: Severity,
        /// The flood event's message.
        message: String,
    },
    /// A `system_log` row.
    SystemLog {
        /// Its code (`E701`).
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// Raise an event, or count a repeat of the active one with the same device, policy and
    /// key.
    Raise {
        /// The device.
        device_id: i64,
        /// The policy raising it.
        event_policy_id: i64,
        /// Its key (empty for a policy without one).
        key: String,
        /// Its severity.
        severity: Severity,
        /// Its message.
        message: String,
        /// When the active event with the same identity is cleared first, so this is a new one.
        close: Option<Close>,
    },
    /// Clear a policy's active events on a device.
    Clear {
        /// The device.
        device_id: i64,
        /// The policy whose event is cleared.
        event_policy_id: i64,
        /// Only the event with this key; `None`: whatever its key.
        key: Option<String>,
        /// Why (`cleared by <policy>`).
        reason: String,
    },
    /// A report to an expected-mail policy ([`crate::expect`]): its state moves on, the
    /// report is recorded, and a failure raises (or repeats) the policy's event on its device,
    /// a success clears it.
    Report {
        /// The expected-mail policy.
        expect_policy_id: i64,
        /// Its device.
        device_id: i64,
        /// `success`, `failure` or `started`.
        outcome: &'static str,
        /// The next report's deadline (none for a start mail).
        due: Option<std::time::SystemTime>,
        /// The event's severity.
        severity: Severity,
        /// The event's message, for a failure.
        message: String,
    },
}

/// When a raise first clears the active event with the same device, policy and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// It was last seen longer ago than this (`expired`).
    pub expire_after_s: Option<i32>,
    /// It is healthy and was last seen longer ago than this (instead of `expire_after_s`).
    pub expire_healthy_after_s: Option<i32>,
    /// Its health differs from the raise's (a recovery of a problem, or a problem after a
    /// recovery): cleared with this reason. `None`: never for that.
    pub health_changed: Option<String>,
}

/// Why an originator policy did or did not yield a device: one line of a decision's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    /// The From address is not the policy's.
    OtherSender {
        /// The policy's name, or address.
        policy: &'a str,
    },
    /// The sender is not verified as the policy requires.
    Unverified {
        /// The policy's name, or address.
        policy: &'a str,
        /// What it requires.
        required: RequireAuth,
    },
    /// The pattern was not found in the subject or body.
    PatternNotFound {
        /// The policy's name, or address.
        policy: &'a str,
        /// Where it looked.
        looked_in: &'a RegexType,
    },
    /// The identifier names no device and the policy discards.
    NoDevice {
        /// The policy's name, or address.
        policy: &'a str,
        /// What the pattern extracted.
        identifier: String,
    },
    /// The policy yielded this device.
    Device {
        /// The policy's name, or address.
        policy: &'a str,
        /// What the pattern extracted (none with `override`).
        identifier: Option<String>,
        /// How the device was chosen.
        alignment: Alignment,
        /// The device.
        device: &'a str,
    },
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::OtherSender { policy } => {
                write!(f, "originator {policy}: the From address does not match")
            }
            Step::Unverified { policy, required } => write!(
                f,
                "originator {policy}: the sender is not verified by {required} (require_auth), \
                 nor in mynetworks"
            ),
            Step::PatternNotFound { policy, looked_in } => {
                write!(
                    f,
                    "originator {policy}: pattern not found in the {looked_in}"
                )
            }
            Step::NoDevice { policy, identifier } => write!(
                f,
                "originator {policy}: identifier {identifier:?} names no device (alignment discard)"
            ),
            Step::Device {
                policy,
                identifier,
                alignment,
                device,
            } => {
                write!(f, "originator {policy}: ")?;
                if let Some(id) = identifier {
                    write!(f, "identifier {id:?}, ")?;
                }
                write!(f, "device {device:?} (alignment {alignment})")
            }
        }
    }
}

/// What became of an event policy whose first match string matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The mail is not aligned through its originators, or not about its devices.
    OutOfScope,
    /// Its second match string did not match.
    SecondNotFound,
    /// It suppresses every policy for this mail.
    Suppress,
    /// It raises these events (one per key).
    Raise(Vec<Raised>),
}

/// One event a policy raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// Its key (empty for a policy without one).
    pub key: String,
    /// Its severity.
    pub severity: Severity,
    /// How `severity_from` chose it, when the policy has it.
    pub severity_from: Option<SeverityFrom>,
    /// The named captures of the match, the originator's included.
    pub captures: Captures,
}

/// How a policy's `severity_from` decided a severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityFrom {
    /// The capture.
    pub capture: String,
    /// Its value; `None` when it took part in no match.
    pub value: Option<String>,
    /// Whether `severity_map` has the value (else the policy's `severity` was taken).
    pub mapped: bool,
}

/// An event policy whose first match string matched, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried<'a> {
    /// The policy.
    pub policy: &'a EventPolicy,
    /// What became of it.
    pub outcome: Outcome,
}

/// Everything one alert mail leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Each originator policy tried, in order, and what it found.
    pub steps: Vec<Step<'a>>,
    /// The device the mail is about, if any policy yielded one.
    pub device: Option<DeviceRef<'a>>,
    /// The originator policy that yielded it.
    pub originator: Option<&'a Originator>,
    /// The named captures of that originator's pattern.
    pub captures: Captures,
    /// Each event policy whose first match string matched, in policy order.
    pub tried: Vec<Tried<'a>>,
    /// The suppress policy that stopped every other, if one matched.
    pub suppressed_by: Option<&'a str>,
    /// What to write, in order.
    pub writes: Vec<Write>,
}

impl<'a> Decision<'a> {
    /// The device the mail is about and the name of the originator policy that aligned it
    /// (when it has one); `None` when no originator yielded a device.
    pub fn aligned(&self) -> Option<(i64, Option<&'a str>)> {
        let device = self.device?;
        Some((device.id, self.originator.and_then(|o| o.name.as_deref())))
    }
}

/// How many events `writes` raise or count.
pub fn raised(writes: &[Write]) -> usize {
    writes
        .iter()
        .filter(|w| matches!(w, Write::Raise { .. }))
        .count()
}

/// Decides what `alert` does under `policies`.
pub fn evaluate<'a>(policies: &'a Policies, alert: &Alert<'_>, settings: Settings) -> Decision<'a> {
    let mut steps = Vec::new();
    let sender = Sender::new(alert.from);
    let aligned = policies.originators.iter().find_map(|o| {
        align(policies, o, alert, &sender, settings, &mut steps)
            .map(|(device, caps)| (o, device, caps))
    });
    let Some((origin, device, captures)) = aligned else {
        let mut message = format!(
            "Could not match device to email from {} with subject {:?}",
            alert.from, alert.subject
        );
        let unverified = steps.iter().filter_map(|s| match s {
            Step::Unverified { policy, required } => Some(format!("{policy} requires {required}")),
            _ => None,
        });
        let unverified: Vec<String> = unverified.collect();
        if !unverified.is_empty() {
            let why = alert
                .sender
                .map_or("nothing verified".to_owned(), |v| v.to_string());
            message += &format!(" (sender not verified: {}; {why})", unverified.join(", "));
        }
        return Decision {
            steps,
            device: None,
            originator: None,
            captures: Captures::default(),
            tried: Vec::new(),
            suppressed_by: None,
            writes: vec![Write::SystemLog {
                code: E701,
                message,
            }],
        };
    };

    let texts = Texts::new(alert, settings.alert_message);
    let mut writes = vec![Write::DeviceLog {
        device_id: device.id,
        message: truncate(texts.get(None), MAX_LOG_MESSAGE).to_owned(),
        unless_over: Vec::new(),
    }];
    let matching = Matching {
        texts: &texts,
        alert,
        device,
        origin,
        captures: &captures,
    };
    let tried: Vec<(&CompiledEventPolicy, Outcome)> = policies
        .first_matches(|match_in| texts.get(match_in))
        .into_iter()
        .map(|p| (p, matching.outcome(p)))
        .collect();
    let suppressed_by = tried
        .iter()
        .find(|(_, outcome)| *outcome == Outcome::Suppress)
        .map(|(p, _)| p.policy.name.as_str());
    if suppressed_by.is_none() {
        let raising = tried.iter().filter_map(|(p, outcome)| match outcome {
            Outcome::Raise(raised) => Some((*p, raised)),
            _ => None,
        });
        for (p, raised) in raising.clone() {
            for r in raised {
                writes.push(matching.raise(p, r));
            }
        }
        for (p, raised) in raising.clone() {
            writes.extend(clears(p, raised, device.id));
        }
        limit(&mut writes, raising.map(|(p, _)| &p.policy), device);
    }
    Decision {
        steps,
        device: Some(device),
        originator: Some(&origin.policy),
        captures,
        tried: tried
            .into_iter()
            .map(|(p, outcome)| Tried {
                policy: &p.policy,
                outcome,
            })
            .collect(),
        suppressed_by,
        writes,
    }
}

/// The texts of one alert that event policies are tried on.
struct Texts<'a> {
    subject: &'a str,
    body: &'a str,
    /// What `[inbound] alert_message` says is matched and logged.
    setting: AlertMessage,
    /// The subject, a line break and the body, made when first needed.
    both: OnceCell<String>,
}

impl<'a> Texts<'a> {
    fn new(alert: &Alert<'a>, setting: AlertMessage) -> Texts<'a> {
        Texts {
            subject: alert.subject,
            body: alert.body,
            setting,
            both: OnceCell::new(),
        }
    }

    /// The text of `match_in`; `None`: the one `[inbound] alert_message` says.
    fn get(&self, match_in: Option<MatchIn>) -> &str {
        let match_in = match_in.unwrap_or(match self.setting {
            AlertMessage::Body => MatchIn::Body,
            AlertMessage::SubjectAndBody => MatchIn::SubjectAndBody,
        });
        match match_in {
            MatchIn::Subject => self.subject,
            MatchIn::Body => self.body,
            MatchIn::SubjectAndBody => self
                .both
                .get_or_init(|| format!("{}\n{}", self.subject, self.body)),
        }
    }
}

/// One mail, aligned to a device: what the event policies are tried against.
struct Matching<'m> {
    /// What is matched.
    texts: &'m Texts<'m>,
    alert: &'m Alert<'m>,
    device: DeviceRef<'m>,
    origin: &'m CompiledOriginator,
    /// The originator pattern's named captures.
    captures: &'m Captures,
}

impl Matching<'_> {
    /// What becomes of `p`, whose first match string matched.
    fn outcome(&self, p: &CompiledEventPolicy) -> Outcome {
        if !p.scope.admits(self.origin.policy.id, self.device.id) {
            return Outcome::OutOfScope;
        }
        let text = self.texts.get(p.policy.match_in);
        let second = match &p.second {
            None => Captures::default(),
            Some(m) => match matched(m, text, p.captures) {
                Some(caps) => caps,
                None => return Outcome::SecondNotFound,
            },
        };
        if p.policy.action == Action::Suppress {
            return Outcome::Suppress;
        }
        // Without a key, one event however often the first match string matches; with one,
        // an event per key its matches give.
        let firsts: Vec<Captures> = match &p.first {
            Matcher::Regex(re) if p.captures && p.key.is_some() => re
                .captures_iter(text)
                .take(MAX_MATCHES)
                .map(|c| named(re, &c))
                .collect(),
            Matcher::Regex(re) if p.captures => re
                .captures(text)
                .map(|c| named(re, &c))
                .into_iter()
                .collect(),
            // first_matches confirmed it already; without captures there is nothing more to read.
            _ => vec![Captures::default()],
        };
        let mut keys = HashSet::new();
        let mut raised = Vec::new();
        for first in firsts {
            let mut captures = self.captures.clone();
            for (name, value) in first.iter().chain(second.iter()) {
                captures.set(name, value);
            }
            let key = p.key.as_ref().map_or_else(String::new, |key| {
                let key = key.render(&self.values(&captures), Some(&p.key_map));
                truncate(&key, MAX_KEY).to_owned()
            });
            if p.key.is_some() && !keys.insert(key.clone()) {
                continue;
            }
            let (severity, severity_from) = severity(p, &captures);
            raised.push(Raised {
                key,
                severity,
                severity_from,
                captures,
            });
        }
        Outcome::Raise(raised)
    }

    fn values<'v>(&'v self, captures: &'v Captures) -> Values<'v> {
        Values {
            body: self.alert.body,
            subject: self.alert.subject,
            device: self.device.name,
            sender: self.alert.from,
            captures,
        }
    }

    /// The write that raises `r` for `p`.
    fn raise(&self, p: &CompiledEventPolicy, r: &Raised) -> Write {
        let policy = &p.policy;
        let message = p.message.render(&self.values(&r.captures), None);
        let health_changed = policy.severity_from.as_ref().map(|_| {
            let how = if r.severity == Severity::Healthy {
                "cleared"
            } else {
                "superseded"
            };
            format!("{how} by {}", policy.name)
        });
        let close = (policy.expire_after_s.is_some()
            || policy.expire_healthy_after_s.is_some()
            || health_changed.is_some())
        .then_some(Close {
            expire_after_s: policy.expire_after_s,
            expire_healthy_after_s: policy.expire_healthy_after_s,
            health_changed,
        });
        Write::Raise {
            device_id: self.device.id,
            event_policy_id: policy.id,
            key: r.key.clone(),
            severity: r.severity,
            message: truncate(&message, MAX_EVENT_MESSAGE).to_owned(),
            close,
        }
    }
}

/// Puts a token bucket before the device log for each capped policy among `raising` (one take
/// per policy, whatever its keys); when every raising policy is capped, the device log is
/// written only if one of them is under its cap.
fn limit<'p>(
    writes: &mut Vec<Write>,
    raising: impl Iterator<Item = &'p EventPolicy>,
    device: DeviceRef<'_>,
) {
    let mut capped = Vec::new();
    let mut all = true;
    for policy in raising {
        match policy.rate {
            Some(rate) if !capped.iter().any(|t| matches!(t, Write::Take { event_policy_id, .. } if *event_policy_id == policy.id)) => {
                capped.push(Write::Take {
                    device_id: device.id,
                    event_policy_id: policy.id,
                    rate,
                    severity: policy.severity.unwrap_or(Severity::Major),
                    message: format!(
                        "Alert flood: {} over {rate} on {}: further alerts count on its event, \
                         not in the device log",
                        policy.name, device.name
                    ),
                })
            }
            Some(_) => {}
            None => all = false,
        }
    }
    if capped.is_empty() {
        return;
    }
    if all {
        let ids = capped
            .iter()
            .filter_map(|t| match t {
                Write::Take {
                    event_policy_id, ..
                } => Some(*event_policy_id),
                _ => None,
            })
            .collect();
        if let Some(Write::DeviceLog { unless_over, .. }) = writes.first_mut() {
            *unless_over = ids;
        }
    }
    writes.splice(0..0, capped);
}

/// The clears of a policy that raised `raised`: with a key, each cleared policy's event with
/// each of those keys; without one, each cleared policy's events whatever their key.
fn clears(p: &CompiledEventPolicy, raised: &[Raised], device_id: i64) -> Vec<Write> {
    let reason = format!("cleared by {}", p.policy.name);
    let keys: Vec<Option<&str>> = match p.key {
        Some(_) => raised.iter().map(|r| Some(r.key.as_str())).collect(),
        None => vec![None],
    };
    p.policy
        .clears_ids
        .iter()
        .flat_map(|&cleared| keys.iter().map(move |key| (cleared, key)))
        .map(|(cleared, key)| Write::Clear {
            device_id,
            event_policy_id: cleared,
            key: key.map(str::to_owned),
            reason: reason.clone(),
        })
        .collect()
}

/// The severity of an event `p` raises with these captures, and how `severity_from` chose it.
fn severity(p: &CompiledEventPolicy, captures: &Captures) -> (Severity, Option<SeverityFrom>) {
    // `policy apply` and the table's CHECK require a severity of every raising policy.
    let fallback = p.policy.severity.unwrap_or(Severity::Major);
    let Some(capture) = &p.policy.severity_from else {
        return (fallback, None);
    };
    let value = captures.get(capture);
    let mapped = value.and_then(|v| p.severity_map.get(&v.to_lowercase()).copied());
    let how = SeverityFrom {
        capture: capture.clone(),
        value: value.map(str::to_owned),
        mapped: mapped.is_some(),
    };
    (mapped.unwrap_or(fallback), Some(how))
}

/// Whether `m` matches `text` and, when `captures`, its named captures.
fn matched(m: &Matcher, text: &str, captures: bool) -> Option<Captures> {
    match m {
        Matcher::Regex(re) if captures => re.captures(text).map(|c| named(re, &c)),
        m => m.is_match(text).then(Captures::default),
    }
}

/// The named groups of `re` that took part in `caps`.
fn named(re: &regex::Regex, caps: &regex::Captures<'_>) -> Captures {
    let mut named = Captures::default();
    named.add(re, caps);
    named
}

/// The device one originator policy yields for `alert`, and its pattern's named captures,
/// recording why or why not.
fn align<'a>(
    policies: &'a Policies,
    o: &'a CompiledOriginator,
    alert: &Alert<'_>,
    sender: &Sender,
    settings: Settings,
    steps: &mut Vec<Step<'a>>,
) -> Option<(DeviceRef<'a>, Captures)> {
    let policy = o.policy.label();
    if !o.senders.admit(sender) {
        steps.push(Step::OtherSender { policy });
        return None;
    }
    let required = o.policy.require_auth;
    if !alert.verified_by(required) {
        steps.push(Step::Unverified { policy, required });
        return None;
    }
    let default = o
        .policy
        .default_device_id
        .and_then(|id| policies.device(id));
    let yielded = |identifier: Option<String>, device: DeviceRef<'a>| Step::Device {
        policy,
        identifier,
        alignment: o.policy.alignment,
        device: device.name,
    };
    let looked_in = &o.policy.regex_type;
    let found = alert
        .field(looked_in)
        .and_then(|text| identifier(&o.extractor, &text));
    if o.policy.alignment == Alignment::Override {
        // The device is the default whatever the pattern finds; its captures still count.
        let device = default?;
        steps.push(yielded(None, device));
        return Some((device, found.map(|(_, caps)| caps).unwrap_or_default()));
    }
    let Some((identifier, captures)) = found else {
        steps.push(Step::PatternNotFound { policy, looked_in });
        return None;
    };
    let device = match policies.find_device(&identifier, settings.strip_fqdn) {
        Some(device) => device,
        None if o.policy.alignment == Alignment::DefaultIfUnmatched => default?,
        None => {
            steps.push(Step::NoDevice { policy, identifier });
            return None;
        }
    };
    steps.push(yielded(Some(identifier), device));
    Some((device, captures))
}

/// The device identifier an originator pattern finds in `text`, and its named captures.
fn identifier(extractor: &Extractor, text: &str) -> Option<(String, Captures)> {
    let (found, captures) = match extractor {
        Extractor::Classic(pattern) => {
            // The token after the literal and one space, trailing punctuation trimmed.
            let start = text.find(pattern.as_str())? + pattern.len();
            let rest = text[start..].strip_prefix(' ')?;
            let token = rest.split(char::is_whitespace).next().unwrap_or("");
            (
                token.trim_end_matches([',', ';', ':', '.']),
                Captures::default(),
            )
        }
        Extractor::Advanced(re) => {
            let caps = re.captures(text)?;
            let found = caps
                .name("device")
                .or_else(|| caps.get(1))
                .or_else(|| caps.get(0))?;
            (found.as_str().trim(), named(re, &caps))
        }
    };
    (!found.is_empty()).then(|| (found.to_owned(), captures))
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
