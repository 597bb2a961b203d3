//! The checks of a policy file's values that need nothing but the file, and how each
//! problem names the entry it belongs to.

use std::collections::{HashMap, HashSet};

use super::file::{Entries, EventPolicyEntry, PolicyFile, DEFAULT_MESSAGE};
use crate::events::model::{
    compile_regex, Action, Alignment, MatchLogic, PatternType, MAX_ADVANCED_PATTERN,
};
use crate::events::template::{capture_name, Template};
use crate::route::address_key;

/// The kinds of entry, in the order problems are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Device,
    Originator,
    EventPolicy,
    User,
    Queue,
    TicketTemplate,
    TicketPolicy,
    Roundtrip,
    Expect,
}

impl Kind {
    /// Every kind, in file format order.
    pub(crate) const ALL: [Kind; 9] = [
        Kind::Device,
        Kind::Originator,
        Kind::EventPolicy,
        Kind::User,
        Kind::Queue,
        Kind::TicketTemplate,
        Kind::TicketPolicy,
        Kind::Roundtrip,
        Kind::Expect,
    ];

    /// The array's name in the file.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::Originator => "originator",
            Kind::EventPolicy => "event_policy",
            Kind::User => "user",
            Kind::Queue => "queue",
            Kind::TicketTemplate => "ticket_template",
            Kind::TicketPolicy => "ticket_policy",
            Kind::Roundtrip => "roundtrip",
            Kind::Expect => "expect",
        }
    }

    /// The keys entries of this kind are named by in problems, the first present.
    pub(crate) fn label_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Originator => &["name", "address"],
            Kind::User => &["email"],
            _ => &["name"],
        }
    }

    /// How keys of this kind are compared: ASCII case folded for device names (as alerts are
    /// matched to devices) and addresses, exactly for the other names.
    pub(super) fn fold(self, key: &str) -> String {
        match self {
            Kind::Device => key.to_ascii_lowercase(),
            Kind::Originator | Kind::User => address_key(key),
            _ => key.to_owned(),
        }
    }
}

/// How an originator is identified: by its name, or by its address when it has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum OriginatorKey {
    Name(String),
    Address(String),
}

impl OriginatorKey {
    pub(super) fn of(name: Option<&str>, address: &str) -> OriginatorKey {
        match name {
            Some(name) => OriginatorKey::Name(name.to_owned()),
            None => OriginatorKey::Address(address_key(address)),
        }
    }
}

impl std::fmt::Display for OriginatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginatorKey::Name(name) => f.write_str(name),
            OriginatorKey::Address(address) => f.write_str(address),
        }
    }
}

/// Problems found so far, each with the entry it belongs to, listed in file order at the end.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<(Option<(Kind, usize)>, String)>,
    /// Keys already reported as unusable: later problems with them would only repeat that.
    skip: HashSet<(Kind, usize, String)>,
}

impl Problems {
    /// A problem with entry `index` (0-based) of `kind`, worded `"key: what is wrong"`.
    pub(crate) fn entry(&mut self, kind: Kind, index: usize, text: impl Into<String>) {
        let text = text.into();
        let key = text.split(':').next().unwrap_or_default();
        if !self.skip.contains(&(kind, index, key.to_owned())) {
            self.list.push((Some((kind, index)), text));
        }
    }

    /// From now on, leaves out problems with `key` of this entry.
    pub(super) fn skip(&mut self, kind: Kind, index: usize, key: &str) {
        self.skip.insert((kind, index, key.to_owned()));
    }

    /// A problem with the file as a whole.
    pub(super) fn file(&mut self, text: impl Into<String>) {
        self.list.push((None, text.into()));
    }

    /// Whether no problem was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// One line per problem, each starting with its entry's label, in file order.
    pub(crate) fn finish(mut self, labels: &mut Labels) -> Vec<String> {
        self.list.sort_by_key(|(at, _)| *at);
        self.list
            .into_iter()
            .map(|(at, text)| match at {
                Some((kind, index)) => format!("{}: {text}", labels.get(kind, index)),
                None => text,
            })
            .collect()
    }
}

/// How problems name entries: `device "nas1"`, `originator "a@b.c" (entry 3)`,
/// `event_policy (entry 2)` when the name is missing; the entry number is added whenever the
/// name alone is ambiguous, and always for originators, whose order matters. Only the entries a
/// problem names get a label: a file of 100,000 devices usually has none.
#[derive(Debug, Default)]
pub(crate) struct Labels {
    /// Each kind's keys (name or address, when present), in order.
    keys: HashMap<Kind, Vec<Option<String>>>,
    /// How many entries of a kind share each key, folded; counted when first needed.
    counts: HashMap<Kind, HashMap<String, usize>>,
}

impl Labels {
    /// Keeps the keys (name or address, when present) of one kind's entries, given in order.
    pub(super) fn add(&mut self, kind: Kind, keys: &[Option<&str>]) {
        let keys = keys.iter().map(|k| k.map(str::to_owned)).collect();
        self.keys.insert(kind, keys);
    }

    /// Labels for a file's entries.
    pub(crate) fn of(file: &PolicyFile) -> Labels {
        fn keys<T>(entries: &[T], key: impl Fn(&T) -> &str) -> Vec<Option<&str>> {
            entries.iter().map(|e| Some(key(e))).collect()
        }
        let mut labels = Labels::default();
        labels.add(Kind::Device, &keys(&file.devices, |e| &e.name));
        labels.add(
            Kind::Originator,
            &keys(&file.originators, |e| {
                e.name.as_deref().unwrap_or(&e.address)
            }),
        );
        labels.add(Kind::EventPolicy, &keys(&file.event_policies, |e| &e.name));
        labels.add(Kind::User, &keys(&file.users, |e| &e.email));
        labels.add(Kind::Queue, &keys(&file.queues, |e| &e.name));
        labels.add(
            Kind::TicketTemplate,
            &keys(&file.ticket_templates, |e| &e.name),
        );
        labels.add(
            Kind::TicketPolicy,
            &keys(&file.ticket_policies, |e| &e.name),
        );
        labels.add(Kind::Roundtrip, &keys(&file.roundtrips, |e| &e.name));
        labels.add(Kind::Expect, &keys(&file.expects, |e| &e.name));
        labels
    }

    /// The label of entry `index` of `kind`.
    fn get(&mut self, kind: Kind, index: usize) -> String {
        let keys = self.keys.get(&kind).map_or(&[][..], Vec::as_slice);
        let key = keys.get(index).and_then(Option::as_deref);
        let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
            return format!("{} (entry {})", kind.key(), index + 1);
        };
        let counts = self.counts.entry(kind).or_insert_with(|| {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for key in keys.iter().flatten() {
                *counts.entry(kind.fold(key)).or_default() += 1;
            }
            counts
        });
        if kind == Kind::Originator || counts[&kind.fold(key)] > 1 {
            format!("{} {key:?} (entry {})", kind.key(), index + 1)
        } else {
            format!("{} {key:?}", kind.key())
        }
    }
}

/// Why each of `patterns` that does not compile does not, compiled on every core and each
/// once (policies often share a second match string): compiling is most of checking a file of
/// thousands of regex policies.
fn invalid_regexes(mut patterns: Vec<&str>) -> HashMap<&str, String> {
    patterns.sort_unstable();
    patterns.dedup();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = patterns.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = patterns
            .chunks(share)
            .map(|chunk| {
                scope.spawn(move || {
                    let failed = chunk
                        .iter()
                        .filter_map(|p| Some((*p, compile_regex(p).err()?)));
                    failed.collect::<Vec<_>>()
                })
            })
            .collect();
        let results = workers
            .into_iter()
            .map(|w| w.join().expect("compiling never panics"));
        results.flatten().collect()
    })
}

/// The value checks of devices, originators and event policies.
pub(crate) fn check(entries: &Entries, problems: &mut Problems) {
    let mut names = Seen::new(Kind::Device);
    let mut ids: HashMap<i64, usize> = HashMap::new();
    for (i, d) in &entries.devices {
        let mut at = |text: String| problems.entry(Kind::Device, *i, text);
        unique_name(&d.name, &mut names, *i, &mut at);
        if let Some(id) = d.id {
            if id < 1 {
                at(format!("id: {id} is not a positive integer"));
            } else if let Some(first) = ids.insert(id, *i) {
                ids.insert(id, first);
                at(format!(
                    "id: {id} is also the id of device entry {}",
                    first + 1
                ));
            }
        }
        optional_text(&d.organization, "organization", &mut at);
    }

    let mut addresses = Seen::new(Kind::Originator);
    let mut originator_names = Seen::names(Kind::Originator);
    for (i, o) in &entries.originators {
        let mut at = |text: String| problems.entry(Kind::Originator, *i, text);
        if let Some(name) = &o.name {
            unique_name(name, &mut originator_names, *i, &mut at);
        }
        match check_address(&o.address) {
            Err(why) => at(format!("address: {why}")),
            // Named originators may share an address; an unnamed one is known by it.
            Ok(()) if o.name.is_none() => addresses.check(&o.address, *i, "address", &mut at),
            Ok(()) => {}
        }
        if o.pattern.is_empty() {
            at("pattern: must not be empty".into());
        } else if o.pattern_type == PatternType::Advanced {
            let length = o.pattern.chars().count();
            if length > MAX_ADVANCED_PATTERN {
                at(format!("pattern: an advanced pattern is at most {MAX_ADVANCED_PATTERN} characters, this one has {length}"));
            } else if let Err(why) = compile_regex(&o.pattern) {
                at(format!("pattern: invalid regex: {}", indent(&why)));
            }
        }
        optional_text(&o.default_device, "default_device", &mut at);
        if o.default_device.is_none() && o.alignment != Alignment::Discard {
            at(format!(
                "default_device: required when alignment is {:?}",
                o.alignment.as_str()
            ));
        }
    }

    let mut names = Seen::new(Kind::EventPolicy);
    let regexes = entries
        .event_policies
        .iter()
        .filter(|(_, p)| p.match_logic == MatchLogic::Regex)
        .flat_map(|(_, p)| std::iter::once(&p.first_match).chain(&p.second_match));
    let invalid = invalid_regexes(regexes.map(String::as_str).collect());
    for (i, p) in &entries.event_policies {
        let mut at = |text: String| problems.entry(Kind::EventPolicy, *i, text);
        unique_name(&p.name, &mut names, *i, &mut at);
        if p.message.is_empty() {
            at(format!(
                "message: must not be empty (leave it out for {DEFAULT_MESSAGE:?})"
            ));
        } else if let Err(why) = Template::parse(&p.message) {
            at(format!("message: {why}"));
        }
        check_event_keys(p, &mut at);
        for (field, value) in [
            ("first_match", Some(&p.first_match)),
            ("second_match", p.second_match.as_ref()),
        ] {
            match value {
                Some(v) if v.is_empty() => at(format!("{field}: must not be empty")),
                Some(v) if p.match_logic == MatchLogic::Regex => {
                    if let Some(why) = invalid.get(v.as_str()) {
                        at(format!("{field}: invalid regex: {}", indent(why)));
                    }
                }
                _ => {}
            }
        }
        names_list(&p.clears, "clears", &mut at);
        if p.clears.contains(&p.name) {
            at("clears: an event policy cannot clear itself".into());
        }
        names_list(&p.originators, "originators", &mut at);
        names_list(&p.devices, "devices", &mut at);
        for (field, seconds) in [
            ("expire_after_s", p.expire_after_s),
            ("expire_healthy_after_s", p.expire_healthy_after_s),
        ] {
            if let Some(s) = seconds {
                positive_seconds(s, field, &mut at);
            }
        }
    }
}

/// The keys of an event policy that say what it raises: a severity unless it suppresses (and
/// nothing about raising when it does), `severity_from` and `severity_map` together, a key and
/// maps that can be used.
fn check_event_keys(p: &EventPolicyEntry, at: &mut impl FnMut(String)) {
    if p.action == Action::Suppress {
        let unused = [
            ("severity", p.severity.is_some()),
            ("severity_from", p.severity_from.is_some()),
            ("severity_map", !p.severity_map.is_empty()),
            ("key", p.key.is_some()),
            ("key_map", !p.key_map.is_empty()),
            ("clears", !p.clears.is_empty()),
            ("expire_after_s", p.expire_after_s.is_some()),
            ("expire_healthy_after_s", p.expire_healthy_after_s.is_some()),
        ];
        for (field, _) in unused.iter().filter(|(_, set)| *set) {
            at(format!(
                "{field}: a suppress policy raises nothing (leave the key out)"
            ));
        }
        return;
    }
    if p.severity.is_none() {
        at("severity: missing (required unless action is \"suppress\")".into());
    }
    match (&p.severity_from, p.severity_map.is_empty()) {
        (Some(capture), empty) => {
            if !capture_name(capture) {
                at(format!(
                    "severity_from: {capture:?} cannot name a capture (a named group (?P<name>…))"
                ));
            }
            if empty {
                at("severity_map: required with severity_from (captured value = severity)".into());
            }
        }
        (None, false) => at("severity_map: needs severity_from (the capture it maps)".into()),
        (None, true) => {}
    }
    unique_ignoring_case(p.severity_map.keys(), "severity_map", at);
    if let Some(key) = &p.key {
        if key.is_empty() {
            at("key: must not be empty (leave the key out for one event per device)".into());
        } else if let Err(why) = Template::parse(key) {
            at(format!("key: {why}"));
        }
    } else if !p.key_map.is_empty() {
        at("key_map: needs key (the template whose captures it maps)".into());
    }
    for (capture, values) in &p.key_map {
        if !capture_name(capture) {
            at(format!(
                "key_map: {capture:?} cannot name a capture (a named group (?P<name>…))"
            ));
        }
        unique_ignoring_case(values.keys(), &format!("key_map.{capture}"), at);
    }
}

/// Map keys that are not empty and not the same ignoring case.
fn unique_ignoring_case<'k>(
    keys: impl Iterator<Item = &'k String>,
    field: &str,
    at: &mut impl FnMut(String),
) {
    let mut seen = HashSet::new();
    for key in keys {
        if key.is_empty() {
            at(format!("{field}: a value must not be empty"));
        } else if !seen.insert(key.to_lowercase()) {
            at(format!(
                "{field}: {key:?} is there twice (values are compared ignoring case)"
            ));
        }
    }
}

/// A list of names: none empty, none twice.
fn names_list(names: &[String], field: &str, at: &mut impl FnMut(String)) {
    let mut seen = HashSet::new();
    for name in names {
        if name.trim().is_empty() {
            at(format!("{field}: a name must not be empty"));
        } else if !seen.insert(name) {
            at(format!("{field}: {name:?} is listed twice"));
        }
    }
}

/// Values of one key already seen in one array, to report duplicates.
pub(super) struct Seen {
    kind: Kind,
    /// Whether the values are addresses (else they are the kind's keys).
    addresses: bool,
    /// Whether the values are compared exactly (names, else as the kind's keys).
    exact: bool,
    first: HashMap<String, usize>,
}

impl Seen {
    /// For the keys entries of `kind` are identified by.
    pub(super) fn new(kind: Kind) -> Seen {
        Seen {
            kind,
            addresses: matches!(kind, Kind::Originator | Kind::User),
            exact: false,
            first: HashMap::new(),
        }
    }

    /// For another key of `kind` that holds addresses and must be unique.
    pub(super) fn addresses(kind: Kind) -> Seen {
        Seen {
            addresses: true,
            ..Seen::new(kind)
        }
    }

    /// For the names of entries of `kind` that are known by a name when they have one.
    pub(super) fn names(kind: Kind) -> Seen {
        Seen {
            addresses: false,
            exact: true,
            ..Seen::new(kind)
        }
    }

    pub(super) fn check(
        &mut self,
        key: &str,
        index: usize,
        field: &str,
        at: &mut impl FnMut(String),
    ) {
        let folded = if self.addresses {
            address_key(key)
        } else if self.exact {
            key.to_owned()
        } else {
            self.kind.fold(key)
        };
        match self.first.get(&folded) {
            Some(first) => {
                let how = match self.kind {
                    _ if self.addresses => " (addresses are compared ignoring case)",
                    Kind::Device => " (device names are compared ignoring case)",
                    _ => "",
                };
                at(format!(
                    "{field}: duplicate of {} entry {}{how}",
                    self.kind.key(),
                    first + 1
                ));
            }
            None => {
                self.first.insert(folded, index);
            }
        }
    }
}

/// An entry's `name`: as [`key_text`], and not one an earlier entry has.
pub(super) fn unique_name(name: &str, seen: &mut Seen, index: usize, at: &mut impl FnMut(String)) {
    match key_text(name) {
        Err(why) => at(format!("name: {why}")),
        Ok(()) => seen.check(name, index, "name", at),
    }
}

/// A name: not empty, no white space at either end (alerts could never name it).
fn key_text(text: &str) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        Err("must not be empty")
    } else if text.trim() != text {
        Err("must not start or end with white space")
    } else {
        Ok(())
    }
}

/// An optional text that, when given, is not empty.
pub(super) fn optional_text(value: &Option<String>, field: &str, at: &mut impl FnMut(String)) {
    if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
        at(format!(
            "{field}: must not be empty (leave the key out instead)"
        ));
    }
}

/// A number of seconds that is at least 1.
pub(super) fn positive_seconds(seconds: i32, field: &str, at: &mut impl FnMut(String)) {
    if seconds < 1 {
        at(format!(
            "{field}: {seconds} is not a positive number of seconds"
        ));
    }
}

/// Indents the continuation lines of a multi-line message (regex errors draw a caret).
pub(super) fn indent(message: &str) -> String {
    message.trim_end().replace('\n', "\n      ")
}

/// An email address (`local@domain`, RFC 5322 dot-atoms, UTF-8 allowed as in RFC 6531), or a
/// pattern: `*@domain` for every sender at that domain, `local@*` for that local part at any
/// domain, `*@*` for every sender.
pub(super) fn check_address(address: &str) -> Result<(), String> {
    if address_syntax(address, true) {
        Ok(())
    } else {
        Err(format!(
            "{address:?} is not an email address, *@domain, local@* or *@*"
        ))
    }
}

/// An email address (`local@domain`), as [`check_address`] but without `*@domain`.
pub(super) fn check_mailbox(address: &str) -> Result<(), String> {
    if address_syntax(address, false) {
        Ok(())
    } else {
        Err(format!("{address:?} is not an email address"))
    }
}

/// Whether `address` is `local@domain`, or (when `wildcard`) `*@domain`, `local@*` or `*@*`.
fn address_syntax(address: &str, wildcard: bool) -> bool {
    const SPECIALS: &[char] = &[
        '!', '#', '$', '%', '&', '\'', '*', '+', '-', '/', '=', '?', '^', '_', '`', '{', '|', '}',
        '~',
    ];
    let atom = |a: &str, extra: &[char]| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || !c.is_ascii() || extra.contains(&c))
    };
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    // `*` is an atom character too: alone it is the wildcard, not a mailbox.
    let local_ok = if local == "*" {
        wildcard
    } else {
        local.split('.').all(|a| atom(a, SPECIALS))
    };
    // With any domain, a `*` in the local part would read as a glob, which it is not.
    let any_domain = wildcard && domain == "*";
    if any_domain && local != "*" && local.contains('*') {
        return false;
    }
    let domain_ok = any_domain
        || domain
            .split('.')
            .all(|l| atom(l, &['-', '_']) && !l.starts_with('-') && !l.ends_with('-'));
    local_ok && domain_ok
}
