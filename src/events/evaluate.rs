//! What one alert mail does: which device it is about, which events it raises or clears, and
//! what is logged. Pure: the writes are planned here and carried out by the store.

use std::borrow::Cow;
use std::fmt;

use super::model::{Alignment, Device, RegexType, Severity};
use super::policies::{CompiledOriginator, Extractor, Policies};
use crate::config::AlertMessage;
use crate::message::truncate;
use crate::route::address_key;

/// Longest device log message kept, in octets.
pub const MAX_LOG_MESSAGE: usize = 65_536;
/// Longest event message kept, in octets.
pub const MAX_EVENT_MESSAGE: usize = 8_192;
/// The system log code for mail no originator policy could match to a device (as in SL1).
pub const E701: &str = "E701";

/// The parts of a message the events pipeline reads.
#[derive(Debug, Clone, Copy)]
pub struct Alert<'a> {
    /// The From address (or, without one, the envelope sender).
    pub from: &'a str,
    /// The decoded subject.
    pub subject: &'a str,
    /// The body as text, trimmed.
    pub body: &'a str,
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
    },
    /// A `system_log` row.
    SystemLog {
        /// Its code (`E701`).
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// Raise an event, or count a repeat of the active one.
    Raise {
        /// The device.
        device_id: i64,
        /// The policy raising it.
        event_policy_id: i64,
        /// Its severity.
        severity: Severity,
        /// Its message.
        message: String,
        /// An active event last seen longer ago than this is cleared first: this is a new one.
        expire_after_s: Option<i32>,
    },
    /// Clear a policy's active event on a device.
    Clear {
        /// The device.
        device_id: i64,
        /// The policy whose event is cleared.
        event_policy_id: i64,
        /// Why (`cleared by <policy>`).
        reason: String,
    },
}

/// Why an originator policy did or did not yield a device: one line of a decision's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    /// The From address is not the policy's.
    OtherSender {
        /// The policy's address.
        policy: &'a str,
    },
    /// The pattern was not found in the subject or body.
    PatternNotFound {
        /// The policy's address.
        policy: &'a str,
        /// Where it looked.
        looked_in: RegexType,
    },
    /// The identifier names no device and the policy discards.
    NoDevice {
        /// The policy's address.
        policy: &'a str,
        /// What the pattern extracted.
        identifier: String,
    },
    /// The policy yielded this device.
    Device {
        /// The policy's address.
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

/// Everything one alert mail leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Each originator policy tried, in order, and what it found.
    pub steps: Vec<Step<'a>>,
    /// The device the mail is about, if any policy yielded one.
    pub device: Option<&'a Device>,
    /// Names of the event policies that matched.
    pub matched: Vec<&'a str>,
    /// What to write, in order.
    pub writes: Vec<Write>,
}

/// Decides what `alert` does under `policies`.
pub fn evaluate<'a>(policies: &'a Policies, alert: &Alert<'_>, settings: Settings) -> Decision<'a> {
    let mut steps = Vec::new();
    let device = policies
        .originators
        .iter()
        .find_map(|o| originator_device(policies, o, alert, settings, &mut steps));
    let Some(device) = device else {
        let message = format!(
            "Could not match device to email from {} with subject {:?}",
            alert.from, alert.subject
        );
        return Decision {
            steps,
            device: None,
            matched: Vec::new(),
            writes: vec![Write::SystemLog {
                code: E701,
                message,
            }],
        };
    };

    let text = match settings.alert_message {
        AlertMessage::Body => Cow::Borrowed(alert.body),
        AlertMessage::SubjectAndBody => Cow::Owned(format!("{}\n{}", alert.subject, alert.body)),
    };
    let mut writes = vec![Write::DeviceLog {
        device_id: device.id,
        message: truncate(&text, MAX_LOG_MESSAGE).to_owned(),
    }];
    let mut matching = policies.first_matches(&text);
    matching.retain(|p| p.second.as_ref().is_none_or(|m| m.is_match(&text)));
    for p in &matching {
        let message = expand(&p.policy.message, alert, &device.name);
        writes.push(Write::Raise {
            device_id: device.id,
            event_policy_id: p.policy.id,
            severity: p.policy.severity,
            message: truncate(&message, MAX_EVENT_MESSAGE).to_owned(),
            expire_after_s: p.policy.expire_after_s,
        });
    }
    for p in &matching {
        if let Some(cleared) = p.policy.clears_id {
            writes.push(Write::Clear {
                device_id: device.id,
                event_policy_id: cleared,
                reason: format!("cleared by {}", p.policy.name),
            });
        }
    }
    Decision {
        steps,
        device: Some(device),
        matched: matching.iter().map(|p| p.policy.name.as_str()).collect(),
        writes,
    }
}

/// The device one originator policy yields for `alert`, recording why or why not.
fn originator_device<'a>(
    policies: &'a Policies,
    o: &'a CompiledOriginator,
    alert: &Alert<'_>,
    settings: Settings,
    steps: &mut Vec<Step<'a>>,
) -> Option<&'a Device> {
    let policy = o.policy.address.as_str();
    if !sender_matches(policy, alert.from) {
        steps.push(Step::OtherSender { policy });
        return None;
    }
    let default = o
        .policy
        .default_device_id
        .and_then(|id| policies.device(id));
    let yielded = |identifier: Option<String>, device: &'a Device| Step::Device {
        policy,
        identifier,
        alignment: o.policy.alignment,
        device: &device.name,
    };
    if o.policy.alignment == Alignment::Override {
        let device = default?;
        steps.push(yielded(None, device));
        return Some(device);
    }
    let looked_in = o.policy.regex_type;
    let text = match looked_in {
        RegexType::Subject => alert.subject,
        RegexType::Body => alert.body,
    };
    let Some(identifier) = identifier(&o.extractor, text) else {
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
    Some(device)
}

/// Whether the From address is the policy's: equal, or in the domain of `*@domain`.
fn sender_matches(policy: &str, from: &str) -> bool {
    let from = address_key(from);
    match policy.strip_prefix("*@") {
        Some(domain) => from.rsplit_once('@').is_some_and(|(_, d)| d == domain),
        None => from == policy,
    }
}

/// The device identifier an originator pattern finds in `text`.
fn identifier(extractor: &Extractor, text: &str) -> Option<String> {
    let found = match extractor {
        Extractor::Classic(pattern) => {
            // The token after the literal and one space, trailing punctuation trimmed.
            let start = text.find(pattern.as_str())? + pattern.len();
            let rest = text[start..].strip_prefix(' ')?;
            let token = rest.split(char::is_whitespace).next().unwrap_or("");
            token.trim_end_matches([',', ';', ':', '.'])
        }
        Extractor::Advanced(re) => {
            let caps = re.captures(text)?;
            caps.get(1).or_else(|| caps.get(0))?.as_str().trim()
        }
    };
    (!found.is_empty()).then(|| found.to_owned())
}

/// Expands an event message template: `%M` body, `%S` subject, `%D` device, `%A` sender, `%%`.
pub fn expand(template: &str, alert: &Alert<'_>, device: &str) -> String {
    let mut out = String::with_capacity(template.len() + alert.body.len().min(1024));
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('M') => out.push_str(alert.body),
            Some('S') => out.push_str(alert.subject),
            Some('D') => out.push_str(device),
            Some('A') => out.push_str(alert.from),
            Some('%') => out.push('%'),
            // `policy apply` refuses other escapes; one written by hand stays as it is.
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
