//! The events policies compiled for evaluation: device indexes, regexes and templates built
//! once, scopes resolved to ids.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use regex::Regex;

use super::model::{
    compile_regex, parse_regex, Device, EventPolicy, MatchIn, MatchLogic, Originator, PatternType,
    Severity,
};
use super::prefilter::Prefilter;
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
    Regex(LazyRegex),
}

/// A policy regex, compiled when first used: of thousands of policies most never see a text
/// holding their literal (see the prefilter), and compiling one (its automata take tens of
/// kilobytes) costs far more than parsing it. `policy apply` compiled it already; one that
/// parses but will not compile (a regex too large, written into the database by hand) never
/// matches, with a warning when first used.
#[derive(Debug)]
pub struct LazyRegex {
    /// The pattern.
    pattern: String,
    /// The regex, once compiled.
    compiled: OnceLock<Regex>,
}

impl LazyRegex {
    /// `pattern`, once parsed (its syntax checked as the regex's own parser would).
    pub fn new(pattern: &str) -> Result<LazyRegex, String> {
        parse_regex(pattern)?;
        Ok(LazyRegex {
            pattern: pattern.to_owned(),
            compiled: OnceLock::new(),
        })
    }

    /// `pattern`, compiled now.
    pub fn compiled(pattern: &str) -> Result<LazyRegex, String> {
        Ok(LazyRegex {
            compiled: OnceLock::from(compile_regex(pattern)?),
            pattern: pattern.to_owned(),
        })
    }

    /// The pattern.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl std::ops::Deref for LazyRegex {
    type Target = Regex;

    fn deref(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            compile_regex(&self.pattern).unwrap_or_else(|why| {
                tracing::warn!(pattern = %self.pattern, %why, "policy regex never matches");
                Regex::new(r"[^\s\S]").expect("the empty class compiles")
            })
        })
    }
}

impl Matcher {
    /// `pattern` as `logic` says; a regex parsed now, compiled (with the size limits of every
    /// policy regex) when first used.
    pub fn new(logic: MatchLogic, pattern: &str) -> Result<Matcher, String> {
        Matcher::made(logic, pattern, LazyRegex::new)
    }

    /// As [`Matcher::new`], a regex compiled now: one that will not compile is an error here.
    pub fn compiled(logic: MatchLogic, pattern: &str) -> Result<Matcher, String> {
        Matcher::made(logic, pattern, LazyRegex::compiled)
    }

    /// `pattern` as `logic` says, a regex made by `regex`.
    fn made(
        logic: MatchLogic,
        pattern: &str,
        regex: fn(&str) -> Result<LazyRegex, String>,
    ) -> Result<Matcher, String> {
        Ok(match logic {
            MatchLogic::Text => Matcher::Text(pattern.to_owned()),
            MatchLogic::Regex => Matcher::Regex(regex(pattern)?),
        })
    }

    /// Whether `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Matcher::Text(needle) => text.contains(needle.as_str()),
            Matcher::Regex(re) => re.is_match(text),
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
    devices: Arc<Devices>,
    /// Originator policies in the order they are tried.
    pub originators: Vec<CompiledOriginator>,
    /// Event policies, all tried.
    event_policies: Vec<CompiledEventPolicy>,
    /// The event policies grouped by the text they are tried on, each group's first match
    /// strings in one prefilter, so one pass over that text finds the candidates.
    groups: Vec<Group>,
}

/// The event policies tried on one text.
#[derive(Debug)]
struct Group {
    /// `match_in` of its policies.
    match_in: Option<MatchIn>,
    /// Its policies, as indexes into `event_policies`, in order.
    members: Vec<usize>,
    /// Finds the members whose first match strings may match.
    prefilter: Prefilter,
}

/// A device as mail is aligned to it: its id and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRef<'a> {
    /// `devices.id`.
    pub id: i64,
    /// Its name.
    pub name: &'a str,
}

/// The devices, by id, and indexed by name, by name up to the first dot and by IP address:
/// what alignment needs of them, packed (the names one after another; the indexes a hash and
/// a position, not copies), so that 100,000 devices take about 8 MB. Shared by the policies of
/// successive reloads while the devices do not change.
#[derive(Debug, Default)]
pub struct Devices {
    /// Every device's id, ascending.
    ids: Vec<i64>,
    /// Every device's name, in the same order, one after another.
    names: String,
    /// Where each device's name ends in `names`.
    ends: Vec<u32>,
    /// (hash of the name, ASCII case folded; position), sorted.
    by_name: Vec<(u64, u32)>,
    /// (hash of the name up to its first dot, ASCII case folded; position), sorted.
    by_short_name: Vec<(u64, u32)>,
    /// (IP address, position), sorted.
    by_ip: Vec<(IpAddr, u32)>,
}

/// A name up to its first dot, as compared with `strip_fqdn`.
fn short_name(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The 64-bit FNV-1a hash of `name`, ASCII case folded. The indexes confirm every hit with the
/// name itself, so a collision costs a comparison, never a wrong device.
fn folded_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Devices {
    /// Indexes `devices`.
    pub fn new(mut devices: Vec<Device>) -> Devices {
        devices.sort_unstable_by_key(|d| d.id);
        let position = |i: usize| u32::try_from(i).expect("fewer than 2^32 devices");
        let n = devices.len();
        let mut d = Devices {
            ids: Vec::with_capacity(n),
            names: String::with_capacity(devices.iter().map(|d| d.name.len()).sum()),
            ends: Vec::with_capacity(n),
            by_name: Vec::with_capacity(n),
            by_short_name: Vec::with_capacity(n),
            by_ip: Vec::with_capacity(devices.iter().filter(|d| d.ip.is_some()).count()),
        };
        for (i, device) in devices.into_iter().enumerate() {
            d.by_name.push((folded_hash(&device.name), position(i)));
            d.by_short_name
                .push((folded_hash(short_name(&device.name)), position(i)));
            if let Some(ip) = device.ip {
                d.by_ip.push((ip, position(i)));
            }
            d.ids.push(device.id);
            d.names.push_str(&device.name);
            d.ends.push(position(d.names.len()));
        }
        d.by_name.sort_unstable();
        d.by_short_name.sort_unstable();
        d.by_ip.sort_unstable();
        d
    }

    /// How many there are.
    fn len(&self) -> usize {
        self.ids.len()
    }

    /// The device at `position`.
    fn at_position(&self, position: usize) -> DeviceRef<'_> {
        let start = position
            .checked_sub(1)
            .map_or(0, |before| self.ends[before] as usize);
        DeviceRef {
            id: self.ids[position],
            name: &self.names[start..self.ends[position] as usize],
        }
    }

    /// The device with this id.
    fn get(&self, id: i64) -> Option<DeviceRef<'_>> {
        let i = self.ids.binary_search(&id).ok()?;
        Some(self.at_position(i))
    }

    /// The devices an index holds under `key`.
    fn under<'a, K: Ord + Copy + 'a>(
        &'a self,
        index: &'a [(K, u32)],
        key: K,
    ) -> impl Iterator<Item = DeviceRef<'a>> + 'a {
        let start = index.partition_point(|&(k, _)| k < key);
        let hits = index[start..].iter().take_while(move |&&(k, _)| k == key);
        hits.map(|&(_, i)| self.at_position(i as usize))
    }

    /// The devices named `name`, ignoring ASCII case (up to the first dot on both sides with
    /// `strip_fqdn`).
    fn named<'a: 'k, 'k>(
        &'a self,
        name: &'k str,
        strip_fqdn: bool,
    ) -> impl Iterator<Item = DeviceRef<'a>> + 'k {
        let (index, fold): (_, fn(&str) -> &str) = if strip_fqdn {
            (&self.by_short_name, short_name)
        } else {
            (&self.by_name, |n| n)
        };
        let key = fold(name);
        self.under(index, folded_hash(key))
            .filter(move |d| fold(d.name).eq_ignore_ascii_case(key))
    }

    /// The devices with this address.
    fn with_ip(&self, ip: IpAddr) -> impl Iterator<Item = DeviceRef<'_>> {
        self.under(&self.by_ip, ip)
    }
}

impl Policies {
    /// Compiles the policies. A policy that cannot be compiled (a regex or template that does
    /// not parse; only possible when the database was edited by hand: `policy apply` checks
    /// them) is left out, and reported; so is a scope entry that names nothing (the policy is
    /// then tried for less, never for more). Event policy regexes are compiled when first tried.
    pub fn new(
        devices: Vec<Device>,
        originators: Vec<Originator>,
        event_policies: Vec<EventPolicy>,
    ) -> (Policies, Vec<String>) {
        Policies::with_devices(Arc::new(Devices::new(devices)), originators, event_policies)
    }

    /// As [`Policies::new`], with devices already indexed.
    pub fn with_devices(
        devices: Arc<Devices>,
        originators: Vec<Originator>,
        event_policies: Vec<EventPolicy>,
    ) -> (Policies, Vec<String>) {
        let mut problems = Vec::new();
        let mut p = Policies {
            devices,
            event_policies: Vec::with_capacity(event_policies.len()),
            ..Policies::default()
        };
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
            match compile_event_policy(policy, &p.originators, &p.devices, &mut problems) {
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
                    prefilter: Prefilter::default(),
                }),
            }
        }
        for group in &mut p.groups {
            let members = group.members.iter().map(|&i| &p.event_policies[i].first);
            group.prefilter = Prefilter::new(members);
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
        let (mut found, mut candidates) = (Vec::new(), Vec::new());
        for group in &self.groups {
            let text = text(group.match_in);
            group.prefilter.candidates(text, &mut candidates);
            found.extend(
                candidates
                    .iter()
                    .map(|&c| group.members[c as usize])
                    .filter(|&i| self.event_policies[i].first.is_match(text)),
            );
        }
        if self.groups.len() > 1 {
            found.sort_unstable();
        }
        found.into_iter().map(|i| &self.event_policies[i]).collect()
    }

    /// The device with this id.
    pub fn device(&self, id: i64) -> Option<DeviceRef<'_>> {
        self.devices.get(id)
    }

    /// The devices, indexed.
    pub fn devices(&self) -> &Arc<Devices> {
        &self.devices
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
    pub fn find_device(&self, identifier: &str, strip_fqdn: bool) -> Option<DeviceRef<'_>> {
        if let Ok(ip) = identifier.parse::<IpAddr>() {
            return self.devices.with_ip(ip).max_by_key(|d| d.id);
        }
        let named = self.devices.named(identifier, strip_fqdn);
        named.max_by_key(|d| d.id).or_else(|| {
            let digits = !identifier.is_empty() && identifier.bytes().all(|b| b.is_ascii_digit());
            digits
                .then(|| identifier.parse::<i64>().ok())
                .flatten()
                .and_then(|id| self.devices.get(id))
        })
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
    devices: &Devices,
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
            // Names are unique as written; the index folds case, the scope does not.
            match devices.named(entry, false).find(|d| d.name == entry) {
                Some(device) => {
                    ids.insert(device.id);
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
        // By id, each with its own name out of the packed ones.
        let named = |id| p.device(id).map(|d| d.name);
        assert_eq!(named(1), Some("nas1.example.com"));
        assert_eq!(named(7), Some("NAS1.lab.example.com"));
        assert_eq!(named(1234), Some("by-id"));
        assert_eq!(named(2), None);
        assert_eq!(p.device_count(), 5);
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
        // Parsed when made, compiled when used: one too large to compile never matches.
        assert!(Matcher::new(MatchLogic::Regex, "(").is_err());
        let huge = Matcher::new(MatchLogic::Regex, r"\w{1000}{1000}|x").expect("parses");
        assert!(!huge.is_match("x"));
    }
}
