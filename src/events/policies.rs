//! The events policies compiled for evaluation: device indexes, regexes and templates built
//! once, scopes resolved to ids.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use regex::{Regex, RegexSet, RegexSetBuilder};

use super::model::{
    compile_regex, Device, EventPolicy, MatchIn, MatchLogic, Originator, PatternType, Severity,
};
use super::template::{Template, ValueMap};
use crate::route::address_key;

/// How an originator policy finds the device identifier.
#[derive(Debug)]
pub enum Extractor {
    /// The token after this literal and one space.
    Classic(String),
    /// The capture named `device`, else capture group 1, else the whole match of this regex.
    Advanced(Regex),
}

/// Which senders an originator policy's address stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Senders {
    /// This address.
    Address(String),
    /// `*@domain`: every address at this domain.
    Domain(String),
    /// `local@*`: this local part at any domain.
    Local(String),
    /// `*@*`: every address.
    Any,
}

impl Senders {
    /// The senders an originator address (already [`address_key`]ed) stands for.
    pub fn new(address: &str) -> Senders {
        match address.rsplit_once('@') {
            Some(("*", "*")) => Senders::Any,
            Some(("*", domain)) => Senders::Domain(domain.to_owned()),
            Some((local, "*")) => Senders::Local(local.to_owned()),
            _ => Senders::Address(address.to_owned()),
        }
    }

    /// Whether `from` is one of them.
    pub fn admit(&self, from: &Sender) -> bool {
        let parts = from
            .at
            .map(|at| (&from.address[..at], &from.address[at + 1..]));
        match self {
            Senders::Address(address) => from.address == *address,
            Senders::Domain(domain) => parts.is_some_and(|(_, d)| d == domain),
            Senders::Local(local) => parts.is_some_and(|(l, _)| l == local),
            Senders::Any => parts.is_some(),
        }
    }
}

/// A mail's sender as originator addresses are compared with it: folded and split once per
/// mail, not once per originator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The address, [`address_key`]ed.
    address: String,
    /// Where its last `@` is.
    at: Option<usize>,
}

impl Sender {
    /// The sender `address` (any case).
    pub fn new(address: &str) -> Sender {
        let address = address_key(address);
        Sender {
            at: address.rfind('@'),
            address,
        }
    }
}

/// An originator policy, ready to run.
#[derive(Debug)]
pub struct CompiledOriginator {
    /// The policy.
    pub policy: Originator,
    /// The senders its address stands for.
    pub senders: Senders,
    /// Its pattern.
    pub extractor: Extractor,
}

/// An event policy match string, ready to run.
#[derive(Debug)]
pub enum Matcher {
    /// A literal, case-sensitive substring.
    Text(String),
    /// A regex search.
    Regex(Regex),
}

impl Matcher {
    /// Compiles `pattern` as `logic` says (a regex with the size limits of every policy regex).
    pub fn new(logic: MatchLogic, pattern: &str) -> Result<Matcher, String> {
        Ok(match logic {
            MatchLogic::Text => Matcher::Text(pattern.to_owned()),
            MatchLogic::Regex => Matcher::Regex(compile_regex(pattern)?),
        })
    }

    /// Whether `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Matcher::Text(needle) => text.contains(needle.as_str()),
            Matcher::Regex(re) => re.is_match(text),
        }
    }

    /// The names of its capture groups.
    pub fn capture_names(&self) -> Vec<&str> {
        match self {
            Matcher::Text(_) => Vec::new(),
            Matcher::Regex(re) => re.capture_names().flatten().collect(),
        }
    }
}

/// Where an event policy is tried: `None` for everywhere.
#[derive(Debug, Default)]
pub struct Scope {
    /// Mail aligned through one of these originator policies (ids).
    pub originators: Option<HashSet<i64>>,
    /// Mail about one of these devices (ids).
    pub devices: Option<HashSet<i64>>,
}

impl Scope {
    /// Whether mail aligned through `originator` to `device` is in scope.
    pub fn admits(&self, originator: i64, device: i64) -> bool {
        self.originators
            .as_ref()
            .is_none_or(|o| o.contains(&originator))
            && self.devices.as_ref().is_none_or(|d| d.contains(&device))
    }
}

/// An event policy, ready to run.
#[derive(Debug)]
pub struct CompiledEventPolicy {
    /// The policy.
    pub policy: EventPolicy,
    /// Its first match string.
    pub first: Matcher,
    /// Its second match string, when set.
    pub second: Option<Matcher>,
    /// Its message template.
    pub message: Template,
    /// Its key template, when it has one.
    pub key: Option<Template>,
    /// `severity_map`, keys lower case.
    pub severity_map: HashMap<String, Severity>,
    /// `key_map`, values lower case.
    pub key_map: ValueMap,
    /// Where it is tried.
    pub scope: Scope,
    /// Whether deciding needs its captures (its key, severity or message uses them).
    pub captures: bool,
}

/// Every events policy, compiled and indexed; built once per change, shared by all sessions.
#[derive(Debug, Default)]
pub struct Policies {
    devices: HashMap<i64, Device>,
    by_name: HashMap<String, Vec<i64>>,
    by_short_name: HashMap<String, Vec<i64>>,
    by_ip: HashMap<IpAddr, Vec<i64>>,
    /// Originator policies in the order they are tried.
    pub originators: Vec<CompiledOriginator>,
    /// Event policies, all tried.
    event_policies: Vec<CompiledEventPolicy>,
    /// The event policies grouped by the text they are tried on, each group's first match
    /// strings in one set, so one pass over that text finds the candidates.
    groups: Vec<Group>,
}

/// The event policies tried on one text.
#[derive(Debug)]
struct Group {
    /// `match_in` of its policies.
    match_in: Option<MatchIn>,
    /// Its policies, as indexes into `event_policies`, in order.
    members: Vec<usize>,
    /// Every member's first match string, member for member; `None` when the set would
    /// exceed the regex size limits.
    first_set: Option<RegexSet>,
}

/// One set of these policies' first match strings (literals escaped); `None` when too large
/// for the limits (each policy's own matcher is then tried in turn, as fast per policy).
fn first_set<'a>(policies: impl Iterator<Item = &'a CompiledEventPolicy>) -> Option<RegexSet> {
    let patterns = policies.map(|p| match &p.first {
        Matcher::Text(needle) => regex::escape(needle),
        Matcher::Regex(re) => re.as_str().to_owned(),
    });
    RegexSetBuilder::new(patterns)
        .size_limit(SET_SIZE_LIMIT)
        .dfa_size_limit(SET_SIZE_LIMIT)
        .build()
        .ok()
}

/// Size limit of the compiled first-match set (each regex in it already passed its own).
const SET_SIZE_LIMIT: usize = 32 << 20;

/// A device name as compared: ASCII case folded.
fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A device name up to its first dot, as compared with `strip_fqdn`.
fn short_key(name: &str) -> String {
    name_key(name.split('.').next().unwrap_or(name))
}

impl Policies {
    /// Compiles the policies. A policy that cannot be compiled (only possible when the database
    /// was edited by hand: `policy apply` checks them) is left out, and reported; so is a scope
    /// entry that names nothing (the policy is then tried for less, never for more).
    pub fn new(
        devices: Vec<Device>,
        originators: Vec<Originator>,
        event_policies: Vec<EventPolicy>,
    ) -> (Policies, Vec<String>) {
        let mut problems = Vec::new();
        let mut p = Policies::default();
        let mut device_ids: HashMap<String, i64> = HashMap::new();
        for device in devices {
            p.by_name
                .entry(name_key(&device.name))
                .or_default()
                .push(device.id);
            p.by_short_name
                .entry(short_key(&device.name))
                .or_default()
                .push(device.id);
            if let Some(ip) = device.ip {
                p.by_ip.entry(ip).or_default().push(device.id);
            }
            device_ids.insert(device.name.clone(), device.id);
            p.devices.insert(device.id, device);
        }
        for policy in originators {
            let extractor = match policy.pattern_type {
                PatternType::Classic => Ok(Extractor::Classic(policy.pattern.clone())),
                PatternType::Advanced => compile_regex(&policy.pattern).map(Extractor::Advanced),
            };
            match extractor {
                Ok(extractor) => p.originators.push(CompiledOriginator {
                    senders: Senders::new(&policy.address),
                    policy,
                    extractor,
                }),
                Err(e) => problems.push(format!("originator {:?}: {e}", policy.label())),
            }
        }
        for policy in event_policies {
            match compile_event_policy(policy, &p.originators, &device_ids, &mut problems) {
                Ok(compiled) => p.event_policies.push(compiled),
                Err((name, e)) => problems.push(format!("event_policy {name:?}: {e}")),
            }
        }
        for i in 0..p.event_policies.len() {
            let match_in = p.event_policies[i].policy.match_in;
            match p.groups.iter_mut().find(|g| g.match_in == match_in) {
                Some(group) => group.members.push(i),
                None => p.groups.push(Group {
                    match_in,
                    members: vec![i],
                    first_set: None,
                }),
            }
        }
        for group in &mut p.groups {
            let members = group.members.iter().map(|&i| &p.event_policies[i]);
            group.first_set = first_set(members);
        }
        (p, problems)
    }

    /// Every event policy.
    pub fn event_policies(&self) -> &[CompiledEventPolicy] {
        &self.event_policies
    }

    /// The event policies whose first match string matches the text they are tried on
    /// (`text` gives it for a `match_in`), in policy order.
    pub fn first_matches<'a, 't>(
        &'a self,
        text: impl Fn(Option<MatchIn>) -> &'t str,
    ) -> Vec<&'a CompiledEventPolicy> {
        let mut found: Vec<usize> = Vec::new();
        for group in &self.groups {
            let text = text(group.match_in);
            match &group.first_set {
                Some(set) => found.extend(set.matches(text).into_iter().map(|i| group.members[i])),
                None => found.extend(
                    group
                        .members
                        .iter()
                        .copied()
                        .filter(|&i| self.event_policies[i].first.is_match(text)),
                ),
            }
        }
        if self.groups.len() > 1 {
            found.sort_unstable();
        }
        found.into_iter().map(|i| &self.event_policies[i]).collect()
    }

    /// The device with this id.
    pub fn device(&self, id: i64) -> Option<&Device> {
        self.devices.get(&id)
    }

    /// The name of the event policy with this id.
    pub fn event_policy_name(&self, id: i64) -> Option<&str> {
        self.event_policies
            .iter()
            .find(|p| p.policy.id == id)
            .map(|p| p.policy.name.as_str())
    }

    /// How many devices there are.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// The device an identifier names: an IP address, else a name (up to the first dot with
    /// `strip_fqdn`, on both sides), else a numeric device ID. Several matches: the highest ID.
    pub fn find_device(&self, identifier: &str, strip_fqdn: bool) -> Option<&Device> {
        let highest = |ids: Option<&Vec<i64>>| ids.and_then(|ids| ids.iter().max().copied());
        let id = if let Ok(ip) = identifier.parse::<IpAddr>() {
            highest(self.by_ip.get(&ip))
        } else {
            let by_name = if strip_fqdn {
                highest(self.by_short_name.get(&short_key(identifier)))
            } else {
                highest(self.by_name.get(&name_key(identifier)))
            };
            by_name.or_else(|| {
                let digits =
                    !identifier.is_empty() && identifier.bytes().all(|b| b.is_ascii_digit());
                digits
                    .then(|| identifier.parse::<i64>().ok())
                    .flatten()
                    .filter(|id| self.devices.contains_key(id))
            })
        }?;
        self.devices.get(&id)
    }
}

/// Whether an entry of an event policy's `originators` stands for the originator with this
/// name and address (stored folded): its name, or else its address, ignoring case.
pub fn scope_names(entry: &str, name: Option<&str>, address: &str) -> bool {
    name == Some(entry) || address == address_key(entry)
}

/// An event policy compiled: its matchers, templates and maps, its scope resolved against the
/// originators and devices (entries naming nothing are reported in `problems`).
fn compile_event_policy(
    policy: EventPolicy,
    originators: &[CompiledOriginator],
    devices: &HashMap<String, i64>,
    problems: &mut Vec<String>,
) -> Result<CompiledEventPolicy, (String, String)> {
    let fail = |e: String| (policy.name.clone(), e);
    let first = Matcher::new(policy.match_logic, &policy.first_match).map_err(fail)?;
    let second = policy
        .second_match
        .as_deref()
        .map(|m| Matcher::new(policy.match_logic, m))
        .transpose()
        .map_err(fail)?;
    let message = Template::parse(&policy.message).map_err(|e| fail(format!("message: {e}")))?;
    let key = policy
        .key
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|e| fail(format!("key: {e}")))?;
    let mut scope = Scope::default();
    if !policy.originators.is_empty() {
        let mut ids = HashSet::new();
        for entry in &policy.originators {
            let found: Vec<i64> = originators
                .iter()
                .filter(|o| scope_names(entry, o.policy.name.as_deref(), &o.policy.address))
                .map(|o| o.policy.id)
                .collect();
            if found.is_empty() {
                problems.push(format!(
                    "event_policy {:?}: originators: {entry:?} names no originator policy; the policy is not tried for it",
                    policy.name
                ));
            }
            ids.extend(found);
        }
        scope.originators = Some(ids);
    }
    if !policy.devices.is_empty() {
        let mut ids = HashSet::new();
        for entry in &policy.devices {
            match devices.get(entry) {
                Some(id) => {
                    ids.insert(*id);
                }
                None => problems.push(format!(
                    "event_policy {:?}: devices: {entry:?} is no device; the policy is not tried for it",
                    policy.name
                )),
            }
        }
        scope.devices = Some(ids);
    }
    let captures = message.uses_captures()
        || policy.severity_from.is_some()
        || key.as_ref().is_some_and(Template::uses_captures);
    Ok(CompiledEventPolicy {
        severity_map: policy
            .severity_map
            .iter()
            .map(|(value, severity)| (value.to_lowercase(), *severity))
            .collect(),
        key_map: policy
            .key_map
            .iter()
            .map(|(capture, values)| {
                let values = values
                    .iter()
                    .map(|(from, to)| (from.to_lowercase(), to.clone()))
                    .collect();
                (capture.clone(), values)
            })
            .collect(),
        first,
        second,
        message,
        key,
        scope,
        captures,
        policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: i64, name: &str, ip: Option<&str>) -> Device {
        Device {
            id,
            name: name.into(),
            ip: ip.map(|i| i.parse().expect("ip")),
            organization: None,
        }
    }

    fn policies() -> Policies {
        let (p, problems) = Policies::new(
            vec![
                device(1, "nas1.example.com", Some("10.6.1.20")),
                device(7, "NAS1.lab.example.com", None),
                device(3, "ups1", Some("10.6.1.30")),
                device(42, "1234", None),
                device(1234, "by-id", None),
            ],
            vec![],
            vec![],
        );
        assert!(problems.is_empty());
        p
    }

    #[test]
    fn devices_by_ip_name_and_id() {
        let p = policies();
        let found = |ident: &str, strip: bool| p.find_device(ident, strip).map(|d| d.id);
        for (ident, strip, want) in [
            ("10.6.1.20", false, Some(1)),
            ("10.6.1.99", false, None),
            ("nas1.example.com", false, Some(1)),
            ("NAS1.EXAMPLE.COM", false, Some(1)),
            ("nas1", false, None),
            // strip_fqdn: both sides up to the first dot; two devices are "nas1": highest ID.
            ("nas1", true, Some(7)),
            ("nas1.other.net", true, Some(7)),
            ("ups1.example.com", true, Some(3)),
            ("ups1.example.com", false, None),
            // An IP address is never shortened.
            ("10.6.1.30", true, Some(3)),
            // A name wins over a device ID; digits name an ID otherwise.
            ("1234", false, Some(42)),
            ("42", false, Some(42)),
            ("1234 ", false, None),
            ("99", false, None),
            ("", false, None),
        ] {
            assert_eq!(found(ident, strip), want, "{ident:?} strip_fqdn={strip}");
        }
    }

    #[test]
    fn policies_that_do_not_compile_are_left_out_and_reported() {
        let bad = EventPolicy {
            id: 1,
            name: "bad".into(),
            severity: Some(Severity::Major),
            message: "%M".into(),
            match_logic: MatchLogic::Regex,
            first_match: "(".into(),
            ..EventPolicy::default()
        };
        let (p, problems) = Policies::new(vec![], vec![], vec![bad]);
        assert!(p.event_policies.is_empty());
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("event_policy \"bad\": "),
            "{problems:?}"
        );
    }

    #[test]
    fn matchers() {
        let text = Matcher::new(MatchLogic::Text, "Failed").expect("text");
        assert!(text.is_match("Job Failed"));
        assert!(!text.is_match("job failed"));
        let re = Matcher::new(MatchLogic::Regex, r"(?i)disk \d+ (degraded|failed)").expect("re");
        assert!(re.is_match("DISK 3 Degraded"));
        assert!(!re.is_match("disk three degraded"));
    }
}
