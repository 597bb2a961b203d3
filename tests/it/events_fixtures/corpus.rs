//! Reading a fixture corpus: `NN-name.eml` messages, each with the `NN-name.toml` saying what it
//! must produce, and the `policies.toml` they run under.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mailops::policy::PolicyFile;
use serde::Deserialize;

const SEVERITIES: &[&str] = &["healthy", "notice", "minor", "major", "critical"];
const STATES: &[&str] = &["active", "cleared"];

/// What one fixture must produce: the `NN-name.toml` beside the `.eml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub device: Option<String>,
    pub system_log: Option<String>,
    #[serde(default)]
    pub device_log_contains: Vec<String>,
    #[serde(default)]
    pub event: Vec<ExpectedEvent>,
    #[serde(default)]
    pub cleared: Vec<ExpectedClear>,
}

/// One `[[event]]`: an event the message raised or touched.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedEvent {
    pub policy: String,
    /// The event's key; "" for a policy without one.
    #[serde(default)]
    pub key: String,
    pub severity: String,
    pub message: Option<String>,
    #[serde(default)]
    pub message_contains: Vec<String>,
    #[serde(default = "one")]
    pub count: i32,
    #[serde(default = "active")]
    pub state: String,
}

/// One `[[cleared]]`: an event of an earlier fixture this message cleared.
#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExpectedClear {
    pub policy: String,
    pub device: String,
    /// The cleared event's key; "" for a policy without one.
    #[serde(default)]
    pub key: String,
}

pub fn one() -> i32 {
    1
}

pub fn active() -> String {
    "active".into()
}

/// A fixture read from disk, with what the runner needs from its headers.
pub struct Fixture {
    /// `NN-short-name`, the file name without extension.
    pub name: String,
    /// The message with LF line ends (the LMTP client turns them into CRLF), dot-stuffed.
    pub wire: String,
    /// The envelope sender: the `Return-Path` address, else the From header's.
    pub from: String,
    /// The From header's address (E701 messages name it).
    pub from_header: String,
    /// The Message-ID header, without `<>`: how the `inbound_messages` row is found.
    pub message_id: String,
    /// The decoded Subject.
    pub subject: String,
    pub expected: Expected,
}

/// Reads every fixture of the corpus in `dir`, in file-name order, and checks the corpus itself:
/// pairs, headers, expectation files, names that exist in its policies.toml, at least `min`
/// fixtures. Returns the problems, if any.
pub fn load(dir: &Path, min: usize) -> Result<Vec<Fixture>, Vec<String>> {
    let mut problems = Vec::new();
    let mut emls = BTreeSet::new();
    let mut tomls = BTreeSet::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| vec![format!("cannot read the corpus: {e}")])?;
    for entry in entries {
        let file = entry.expect("reading the fixture directory").file_name();
        let file = file.to_string_lossy().into_owned();
        // What the fixtures run under, and where their wording comes from.
        if file == "policies.toml" || file == "README.md" {
            continue;
        }
        match file.rsplit_once('.') {
            Some((stem, "eml")) => {
                emls.insert(stem.to_owned());
            }
            Some((stem, "toml")) => {
                tomls.insert(stem.to_owned());
            }
            _ => problems.push(format!(
                "{file}: not a fixture (NN-name.eml or NN-name.toml)"
            )),
        }
    }
    for stem in emls.difference(&tomls) {
        problems.push(format!(
            "{stem}.eml: has no {stem}.toml saying what it must produce"
        ));
    }
    for stem in tomls.difference(&emls) {
        problems.push(format!("{stem}.toml: has no {stem}.eml"));
    }
    if emls.len() < min {
        problems.push(format!(
            "only {} fixtures; the corpus keeps at least {min}",
            emls.len()
        ));
    }
    let names = match PolicyNames::read(&dir.join("policies.toml")) {
        Ok(names) => names,
        Err(mut p) => {
            problems.append(&mut p);
            return Err(problems);
        }
    };
    let mut fixtures = Vec::new();
    for stem in emls.intersection(&tomls) {
        match load_fixture(dir, stem, &names) {
            Ok(f) => fixtures.push(f),
            Err(mut p) => problems.append(&mut p),
        }
    }
    // The runner finds each fixture's rows by its Message-ID.
    let mut ids = BTreeMap::new();
    for f in &fixtures {
        if let Some(other) = ids.insert(f.message_id.as_str(), f.name.as_str()) {
            problems.push(format!(
                "{}.eml: the same Message-ID as {other}.eml; each needs its own",
                f.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(fixtures)
    } else {
        Err(problems)
    }
}

/// The device and event policy names policies.toml declares (with what it includes).
struct PolicyNames {
    devices: BTreeSet<String>,
    event_policies: BTreeSet<String>,
}

impl PolicyNames {
    fn read(path: &Path) -> Result<PolicyNames, Vec<String>> {
        let file = PolicyFile::read(path).map_err(|problems| {
            let at = path.display();
            problems
                .into_iter()
                .map(|p| format!("{at}: {p}"))
                .collect::<Vec<_>>()
        })?;
        Ok(PolicyNames {
            devices: file.devices.into_iter().map(|d| d.name).collect(),
            event_policies: file.event_policies.into_iter().map(|p| p.name).collect(),
        })
    }
}

fn load_fixture(dir: &Path, stem: &str, names: &PolicyNames) -> Result<Fixture, Vec<String>> {
    let mut problems = Vec::new();
    let eml = format!("{stem}.eml");
    let toml_name = format!("{stem}.toml");
    let well_named = stem.len() > 3
        && stem.as_bytes()[..2].iter().all(u8::is_ascii_digit)
        && stem.as_bytes()[2] == b'-';
    if !well_named {
        problems.push(format!("{eml}: fixture names are NN-short-name"));
    }

    // The message: text (8-bit content is encoded, so it is UTF-8), headers every real sender sets.
    let raw = std::fs::read(dir.join(&eml)).unwrap_or_else(|e| panic!("{eml}: {e}"));
    let text = match String::from_utf8(raw) {
        Ok(t) => t,
        Err(_) => {
            problems.push(format!(
                "{eml}: not UTF-8; encode 8-bit bodies as quoted-printable or base64"
            ));
            return Err(problems);
        }
    };
    let text = text.replace("\r\n", "\n");
    let parsed = mail_parser::MessageParser::default().parse(text.as_bytes());
    let Some(parsed) = parsed else {
        problems.push(format!("{eml}: mail-parser cannot parse it"));
        return Err(problems);
    };
    // Every sender sets these (some real ones set no To or Subject).
    for header in ["Message-ID", "Date", "From"] {
        if parsed.header(header).is_none() {
            problems.push(format!("{eml}: no {header} header"));
        }
    }
    let from_header = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    // The envelope sender real mail carries; the From address when the fixture has none.
    let from = parsed
        .return_path()
        .as_text()
        .map(|p| {
            p.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| from_header.clone());
    let message_id = parsed.message_id().unwrap_or_default().to_owned();
    let subject = parsed.subject().unwrap_or_default().to_owned();
    if from_header.is_empty() || message_id.is_empty() {
        problems.push(format!("{eml}: needs a From address and a Message-ID"));
    }

    // The expectation.
    let expected_text = std::fs::read_to_string(dir.join(&toml_name))
        .unwrap_or_else(|e| panic!("{toml_name}: {e}"));
    if !expected_text.starts_with("# ") {
        problems.push(format!(
            "{toml_name}: the first line is a comment saying why the fixture exists"
        ));
    }
    let expected: Expected = match toml::from_str(&expected_text) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("{toml_name}: {}", e.to_string().trim()));
            return Err(problems);
        }
    };
    problems.extend(
        check_expected(&expected, names)
            .into_iter()
            .map(|p| format!("{toml_name}: {p}")),
    );

    if problems.is_empty() {
        Ok(Fixture {
            name: stem.to_owned(),
            wire: dot_stuff(&text),
            from,
            from_header,
            message_id,
            subject,
            expected,
        })
    } else {
        Err(problems)
    }
}

/// What is wrong with an expectation by itself (names that its policies.toml does not declare, a
/// device and an E701 at once, ...).
fn check_expected(e: &Expected, names: &PolicyNames) -> Vec<String> {
    let mut problems = Vec::new();
    match (&e.device, &e.system_log) {
        (Some(_), Some(_)) => problems.push("device and system_log exclude each other".into()),
        (None, None) => problems.push("needs device, or system_log = \"E701\"".into()),
        (None, Some(code)) if code != "E701" => {
            problems.push(format!("system_log {code:?}: only \"E701\" is expected"))
        }
        (None, Some(_)) => {
            if !e.device_log_contains.is_empty() || !e.event.is_empty() || !e.cleared.is_empty() {
                problems.push(
                    "an E701 message has no device: no device_log_contains, [[event]] or [[cleared]]"
                        .into(),
                );
            }
        }
        (Some(device), None) => {
            if !names.devices.contains(device) {
                problems.push(format!("device {device:?} is not in policies.toml"));
            }
        }
    }
    for ev in &e.event {
        if !names.event_policies.contains(&ev.policy) {
            problems.push(format!(
                "[[event]] policy {:?} is not in policies.toml",
                ev.policy
            ));
        }
        if !SEVERITIES.contains(&ev.severity.as_str()) {
            problems.push(format!("[[event]] severity {:?}", ev.severity));
        }
        if !STATES.contains(&ev.state.as_str()) {
            problems.push(format!("[[event]] state {:?}", ev.state));
        }
        if ev.message.is_some() != ev.message_contains.is_empty() {
            problems.push(format!(
                "[[event]] {:?}: give message or message_contains, not both or neither",
                ev.policy
            ));
        }
        if ev.count < 1 {
            problems.push(format!("[[event]] {:?}: count is at least 1", ev.policy));
        }
    }
    let mut seen = BTreeSet::new();
    for ev in &e.event {
        if !seen.insert((&ev.policy, &ev.key)) {
            problems.push(format!(
                "[[event]] {:?} key {:?} twice: one message touches one event per policy and key",
                ev.policy, ev.key
            ));
        }
    }
    for c in &e.cleared {
        if !names.event_policies.contains(&c.policy) {
            problems.push(format!(
                "[[cleared]] policy {:?} is not in policies.toml",
                c.policy
            ));
        }
        if !names.devices.contains(&c.device) {
            problems.push(format!(
                "[[cleared]] device {:?} is not in policies.toml",
                c.device
            ));
        }
    }
    problems
}

/// RFC 5321 §4.5.2: a line starting with "." gets another, or DATA would end there.
fn dot_stuff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
