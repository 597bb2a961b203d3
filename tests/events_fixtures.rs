//! The events fixture corpus, golden-test style: every `tests/fixtures/events/NN-name.eml` is
//! delivered over LMTP to a real `mailops serve`, in file-name order, into ONE database holding
//! the policies of `tests/fixtures/events/policies.toml` (applied with the real `mailops policy
//! apply`), and the rows it produced are checked against the `NN-name.toml` beside it. Later
//! fixtures rely on earlier ones (a repeat counts 2, a recovery clears a problem). Every mismatch
//! of every fixture is collected and reported at once, each naming its file, with the rows
//! mailops actually wrote in the expectation format.
//!
//! Expectation format (unknown keys are refused):
//! ```toml
//! # why this fixture exists, one line
//! device = "nas1.example.com"        # the device_logs row's device; omit when E701 is expected
//! system_log = "E701"                # only for the no-device case
//! device_log_contains = ["Disk 3"]   # substrings of the device_logs message
//! [[event]]                          # every event this message raised or touched, exactly
//! policy = "NAS disk degraded"
//! severity = "major"
//! message = "..."                    # exact, or message_contains = ["...", "..."]
//! count = 1                          # default 1
//! state = "active"                   # default "active"
//! [[cleared]]                        # active events of earlier fixtures this one cleared, exactly
//! policy = "UPS on battery"
//! device = "ups1.example.com"
//! ```

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use common::db::TestDb;
use common::lmtp::Client;
use common::postfix::{describe, free_port, unique_temp_dir};

/// The address every fixture is delivered to.
const NOTIFY: &str = "notify@mon.example.com";
/// The corpus must stay at least this large (issue 3).
const MIN_FIXTURES: usize = 20;
/// How long one delivery may take before the fixture is reported as hung.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
const SEVERITIES: &[&str] = &["healthy", "notice", "minor", "major", "critical"];
const STATES: &[&str] = &["active", "cleared"];

/// What one fixture must produce: the `NN-name.toml` beside the `.eml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    device: Option<String>,
    system_log: Option<String>,
    #[serde(default)]
    device_log_contains: Vec<String>,
    #[serde(default)]
    event: Vec<ExpectedEvent>,
    #[serde(default)]
    cleared: Vec<ExpectedClear>,
}

/// One `[[event]]`: an event the message raised or touched.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedEvent {
    policy: String,
    severity: String,
    message: Option<String>,
    #[serde(default)]
    message_contains: Vec<String>,
    #[serde(default = "one")]
    count: i32,
    #[serde(default = "active")]
    state: String,
}

/// One `[[cleared]]`: an event of an earlier fixture this message cleared.
#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(deny_unknown_fields)]
struct ExpectedClear {
    policy: String,
    device: String,
}

fn one() -> i32 {
    1
}

fn active() -> String {
    "active".into()
}

/// A fixture read from disk, with what the runner needs from its headers.
struct Fixture {
    /// `NN-short-name`, the file name without extension.
    name: String,
    /// The message with LF line ends (the LMTP client turns them into CRLF), dot-stuffed.
    wire: String,
    /// The From header's address, also used as MAIL FROM.
    from: String,
    /// The Message-ID header, without `<>`: how the `inbound_messages` row is found.
    message_id: String,
    /// The decoded Subject.
    subject: String,
    expected: Expected,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events")
}

/// Reads every fixture, in file-name order, and checks the corpus itself: pairs, headers,
/// expectation files, names that exist in policies.toml. Returns the problems, if any.
fn load_corpus() -> Result<Vec<Fixture>, Vec<String>> {
    let dir = corpus_dir();
    let mut problems = Vec::new();
    let mut emls = BTreeSet::new();
    let mut tomls = BTreeSet::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let file = entry.expect("reading the fixture directory").file_name();
        let file = file.to_string_lossy().into_owned();
        if file == "policies.toml" {
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
    if emls.len() < MIN_FIXTURES {
        problems.push(format!(
            "only {} fixtures; the corpus keeps at least {MIN_FIXTURES}",
            emls.len()
        ));
    }
    let names = PolicyNames::read(&dir.join("policies.toml"));
    let mut fixtures = Vec::new();
    for stem in emls.intersection(&tomls) {
        match load_fixture(&dir, stem, &names) {
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

/// The device and event policy names policies.toml declares.
struct PolicyNames {
    devices: BTreeSet<String>,
    event_policies: BTreeSet<String>,
}

impl PolicyNames {
    fn read(path: &Path) -> PolicyNames {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let names = |key: &str| -> BTreeSet<String> {
            table
                .get(key)
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|entry| entry.get("name")?.as_str().map(str::to_owned))
                .collect()
        };
        PolicyNames {
            devices: names("device"),
            event_policies: names("event_policy"),
        }
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
    for header in ["Message-ID", "Date", "From", "To", "Subject"] {
        if parsed.header(header).is_none() {
            problems.push(format!("{eml}: no {header} header"));
        }
    }
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    let message_id = parsed.message_id().unwrap_or_default().to_owned();
    let subject = parsed.subject().unwrap_or_default().to_owned();
    if from.is_empty() || message_id.is_empty() {
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
            message_id,
            subject,
            expected,
        })
    } else {
        Err(problems)
    }
}

/// What is wrong with an expectation by itself (names that policies.toml does not declare, a
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
        if !seen.insert(&ev.policy) {
            problems.push(format!(
                "[[event]] {:?} twice: one message touches one event per policy",
                ev.policy
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

#[test]
fn corpus_is_complete_and_well_formed() {
    if let Err(problems) = load_corpus() {
        panic!(
            "the events fixture corpus has {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
}

/// The config the corpus runs under, for `policy apply` and `serve`.
fn config_text(db: &TestDb, port: u16) -> String {
    common::config::text(
        &db.url,
        &format!("127.0.0.1:{port}"),
        "",
        &["mon.example.com"],
        "alert_message = \"body\"\nstrip_fqdn = false",
    )
}

/// `mailops policy apply` with the real binary, the database only from the config file.
fn apply_policies(config_file: &Path) {
    let policies = corpus_dir().join("policies.toml");
    let out = common::serve::mailops(config_file)
        .args(["policy", "apply"])
        .arg(&policies)
        .output()
        .expect("running mailops policy apply");
    assert!(
        out.status.success(),
        "mailops policy apply {}: {}",
        policies.display(),
        describe(&out)
    );
}

/// One event row, as the runner compares it.
#[derive(Debug)]
struct EventRow {
    id: i64,
    device: String,
    policy: Option<String>,
    severity: String,
    message: String,
    count: i32,
    state: String,
}

/// What one message produced in the database.
#[derive(Debug, Default)]
struct Actual {
    route: String,
    device_logs: Vec<(String, String)>,
    system_log: Vec<(String, String)>,
    events: Vec<EventRow>,
    cleared: Vec<ExpectedClear>,
}

/// Active events before a delivery: id → (policy, device).
async fn active_events(db: &TestDb) -> BTreeMap<i64, ExpectedClear> {
    db.client()
        .await
        .query(
            "SELECT e.id, d.name AS device, coalesce(p.name, '') AS policy
             FROM events e JOIN devices d ON d.id = e.device_id
             LEFT JOIN event_policies p ON p.id = e.event_policy_id
             WHERE e.state = 'active'",
            &[],
        )
        .await
        .expect("querying active events")
        .iter()
        .map(|r| {
            (
                r.get("id"),
                ExpectedClear {
                    policy: r.get("policy"),
                    device: r.get("device"),
                },
            )
        })
        .collect()
}

/// The rows of the message `message_id`, and the events of `before` that are no longer active.
async fn actual_rows(
    db: &TestDb,
    message_id: &str,
    before: &BTreeMap<i64, ExpectedClear>,
) -> Result<Actual, String> {
    let client = db.client().await;
    let inbound = client
        .query(
            "SELECT id, route FROM inbound_messages WHERE message_id = $1",
            &[&message_id],
        )
        .await
        .map_err(|e| format!("querying inbound_messages: {e}"))?;
    let [row] = inbound.as_slice() else {
        return Err(format!(
            "{} inbound_messages rows with message_id {message_id:?}, expected 1",
            inbound.len()
        ));
    };
    let id: i64 = row.get("id");
    let mut actual = Actual {
        route: row.get("route"),
        ..Actual::default()
    };
    let query = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[&id])
                .await
                .map_err(|e| format!("{sql}: {e}"))
        }
    };
    actual.device_logs = query(
        "SELECT d.name, l.message FROM device_logs l JOIN devices d ON d.id = l.device_id
         WHERE l.inbound_message_id = $1 ORDER BY l.id",
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    actual.system_log =
        query("SELECT code, message FROM system_log WHERE inbound_message_id = $1 ORDER BY id")
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let was_active: Vec<i64> = before.keys().copied().collect();
    let now_cleared: BTreeSet<i64> = client
        .query(
            "SELECT id FROM events WHERE id = ANY($1) AND state <> 'active'",
            &[&was_active],
        )
        .await
        .map_err(|e| format!("querying cleared events: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    actual.cleared = now_cleared.iter().map(|id| before[id].clone()).collect();
    actual.cleared.sort();
    // A cleared event may or may not carry the clearing message's id; either way it is checked
    // as [[cleared]], not as [[event]].
    actual.events = query(
        "SELECT e.id, d.name AS device, p.name AS policy, e.severity, e.message, e.count, e.state
         FROM events e JOIN devices d ON d.id = e.device_id
         LEFT JOIN event_policies p ON p.id = e.event_policy_id
         WHERE e.inbound_message_id = $1 ORDER BY e.id",
    )
    .await?
    .iter()
    .map(|r| EventRow {
        id: r.get("id"),
        device: r.get("device"),
        policy: r.get("policy"),
        severity: r.get("severity"),
        message: r.get("message"),
        count: r.get("count"),
        state: r.get("state"),
    })
    .filter(|e| !now_cleared.contains(&e.id))
    .collect();
    Ok(actual)
}

/// Every way `actual` differs from what `fixture` expects.
fn compare(fixture: &Fixture, actual: &Actual) -> Vec<String> {
    let e = &fixture.expected;
    let mut problems = Vec::new();
    if actual.route != "event" {
        problems.push(format!("route {:?}, expected \"event\"", actual.route));
    }
    match &e.device {
        Some(device) => {
            match actual.device_logs.as_slice() {
                [(name, message)] => {
                    if name != device {
                        problems.push(format!("device log on {name:?}, expected {device:?}"));
                    }
                    for needle in &e.device_log_contains {
                        if !message.contains(needle.as_str()) {
                            problems.push(format!(
                                "device log message lacks {needle:?}; it is {message:?}"
                            ));
                        }
                    }
                }
                rows => problems.push(format!(
                    "{} device_logs rows, expected 1 on {device:?}",
                    rows.len()
                )),
            }
            if !actual.system_log.is_empty() {
                problems.push(format!(
                    "system_log rows {:?}, expected none",
                    actual.system_log
                ));
            }
        }
        None => {
            match actual.system_log.as_slice() {
                [(code, message)] => {
                    if code != "E701" {
                        problems.push(format!("system_log code {code:?}, expected \"E701\""));
                    }
                    if !message.starts_with("Could not match device to email") {
                        problems.push(format!(
                            "system_log message {message:?} does not start with \
                             \"Could not match device to email\""
                        ));
                    }
                    for (what, needle) in [("sender", &fixture.from), ("subject", &fixture.subject)]
                    {
                        if !message.contains(needle.as_str()) {
                            problems.push(format!(
                                "system_log message {message:?} lacks the {what} {needle:?}"
                            ));
                        }
                    }
                }
                rows => problems.push(format!("system_log rows {rows:?}, expected one E701 row")),
            }
            if !actual.device_logs.is_empty() {
                problems.push(format!(
                    "device_logs rows {:?}, expected none",
                    actual.device_logs
                ));
            }
        }
    }

    let mut unmatched: Vec<&EventRow> = actual.events.iter().collect();
    for want in &e.event {
        let Some(pos) = unmatched
            .iter()
            .position(|row| row.policy.as_deref() == Some(want.policy.as_str()))
        else {
            problems.push(format!("no event of policy {:?}", want.policy));
            continue;
        };
        let row = unmatched.remove(pos);
        let mut differs = |what: &str, got: String, wanted: String| {
            if got != wanted {
                problems.push(format!(
                    "event {:?}: {what} {got}, expected {wanted}",
                    want.policy
                ));
            }
        };
        if let Some(device) = &e.device {
            differs("device", format!("{:?}", row.device), format!("{device:?}"));
        }
        differs(
            "severity",
            format!("{:?}", row.severity),
            format!("{:?}", want.severity),
        );
        differs("count", row.count.to_string(), want.count.to_string());
        differs(
            "state",
            format!("{:?}", row.state),
            format!("{:?}", want.state),
        );
        if let Some(message) = &want.message {
            differs(
                "message",
                format!("{:?}", row.message),
                format!("{message:?}"),
            );
        }
        for needle in &want.message_contains {
            if !row.message.contains(needle.as_str()) {
                problems.push(format!(
                    "event {:?}: message {:?} lacks {needle:?}",
                    want.policy, row.message
                ));
            }
        }
    }
    for row in unmatched {
        problems.push(format!(
            "unexpected event of policy {:?} on {:?}: {:?}",
            row.policy, row.device, row.message
        ));
    }

    let mut wanted_clears = e.cleared.clone();
    wanted_clears.sort();
    if actual.cleared != wanted_clears {
        let list = |clears: &[ExpectedClear]| -> String {
            let all: Vec<String> = clears
                .iter()
                .map(|c| format!("{:?} on {:?}", c.policy, c.device))
                .collect();
            format!("[{}]", all.join(", "))
        };
        problems.push(format!(
            "cleared {}, expected {}",
            list(&actual.cleared),
            list(&wanted_clears)
        ));
    }
    problems
}

/// `actual` in the expectation format, to compare with (or paste over) the `.toml`.
fn render(actual: &Actual) -> String {
    let mut out = String::new();
    for (device, message) in &actual.device_logs {
        let _ = writeln!(out, "device = {device:?}    # log: {message:?}");
    }
    for (code, message) in &actual.system_log {
        let _ = writeln!(out, "system_log = {code:?}    # {message:?}");
    }
    for ev in &actual.events {
        let _ = writeln!(
            out,
            "[[event]]\npolicy = {:?}\nseverity = {:?}\nmessage = {:?}\ncount = {}\nstate = {:?}",
            ev.policy.as_deref().unwrap_or("<policy deleted>"),
            ev.severity,
            ev.message,
            ev.count,
            ev.state
        );
    }
    for c in &actual.cleared {
        let _ = writeln!(
            out,
            "[[cleared]]\npolicy = {:?}\ndevice = {:?}",
            c.policy, c.device
        );
    }
    out
}

/// Delivers `wire` over one LMTP connection; the RCPT and DATA replies.
async fn deliver(addr: String, from: String, wire: String) -> (Vec<String>, Vec<String>) {
    let mut client = Client::connect(&addr).await;
    let replies = client.transaction(None, &from, &[NOTIFY], &wire).await;
    let _ = client.command("QUIT").await;
    replies
}

/// Delivers one fixture and checks its rows; the problems found.
async fn run_fixture(db: &TestDb, addr: &str, fixture: &Fixture) -> Vec<String> {
    let before = active_events(db).await;
    let delivery = tokio::spawn(deliver(
        addr.to_owned(),
        fixture.from.clone(),
        fixture.wire.clone(),
    ));
    let (rcpt, data) = match tokio::time::timeout(DELIVERY_TIMEOUT, delivery).await {
        Err(_) => return vec![format!("no reply within {DELIVERY_TIMEOUT:?}")],
        Ok(Err(panicked)) => return vec![format!("the LMTP exchange failed: {panicked}")],
        Ok(Ok(replies)) => replies,
    };
    let accepted = rcpt.iter().all(|r| r.starts_with("250"))
        && data.len() == 1
        && data.iter().all(|r| r.starts_with("250"));
    if !accepted {
        return vec![format!(
            "not accepted: RCPT replies {rcpt:?}, DATA replies {data:?}"
        )];
    }
    match actual_rows(db, &fixture.message_id, &before).await {
        Err(problem) => vec![problem],
        Ok(actual) => {
            let mut problems = compare(fixture, &actual);
            if !problems.is_empty() {
                problems.push(format!("what mailops wrote:\n{}", render(&actual)));
            }
            problems
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_produces_its_rows() {
    let fixtures = load_corpus().unwrap_or_else(|problems| {
        panic!(
            "the events fixture corpus is not well formed (see corpus_is_complete_and_well_formed):\n  {}",
            problems.join("\n  ")
        )
    });
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-events-fixtures");
    let port = free_port();
    let text = config_text(&db, port);
    let config_file = dir.join("mailops.toml");
    std::fs::write(&config_file, &text).expect("writing the config");
    apply_policies(&config_file);

    let config = mailops::config::Config::parse(&text, None)
        .unwrap_or_else(|problems| panic!("the corpus config:\n  {}", problems.join("\n  ")));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mailops::serve::run(config, async {
        let _ = stopped.await;
    }));
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        if server.is_finished() {
            panic!("mailops serve ended before listening: {:?}", server.await);
        }
        assert!(
            Instant::now() < deadline,
            "mailops serve is not listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut report = Vec::new();
    for fixture in &fixtures {
        let problems = run_fixture(&db, &addr, fixture).await;
        if !problems.is_empty() {
            let mut entry = format!("{0}.eml (expected: {0}.toml):", fixture.name);
            for problem in problems {
                let _ = write!(
                    entry,
                    "\n  - {}",
                    problem.trim_end().replace('\n', "\n      ")
                );
            }
            report.push(entry);
        }
    }

    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => {}
        other => report.push(format!("mailops serve did not stop cleanly: {other:?}")),
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        report.is_empty(),
        "the events fixture corpus ({} fixtures under {}) found {} problem(s):\n\n{}",
        fixtures.len(),
        corpus_dir().display(),
        report.len(),
        report.join("\n\n")
    );
}
