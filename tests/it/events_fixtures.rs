//! The events fixture corpora, golden-test style. A corpus is a directory of `NN-name.eml`
//! messages, each with an `NN-name.toml` saying what it must produce, and a `policies.toml`
//! they run under: `tests/fixtures/events` (SL1's model: originator and event policies of every
//! kind), and one per shipped policy pack under `tests/fixtures/packs/<pack>` (its
//! `policies.toml` includes `pack:<pack>` and declares the devices). For each corpus, its
//! `policies.toml` is applied with the real `mailops policy apply` into a fresh database, and
//! every message is delivered over LMTP to a real `mailops serve`, in file-name order, into that
//! one database; the rows it produced are checked against its `.toml`. Later fixtures rely on
//! earlier ones (a repeat counts 2, a recovery clears a problem). Every mismatch of every
//! fixture is collected and reported at once, each naming its file, with the rows mailops
//! actually wrote in the expectation format.
//!
//! Expectation format (unknown keys are refused):
//! ```toml
//! # why this fixture exists, one line
//! device = "nas1.example.com"        # the device_logs row's device; omit when E701 is expected
//! system_log = "E701"                # only for the no-device case
//! device_log_contains = ["Disk 3"]   # substrings of the device_logs message
//! [[event]]                          # every event this message raised or touched, exactly
//! policy = "NAS disk degraded"
//! key = "Storage Pool 1"             # default "" (a policy without a key)
//! severity = "major"
//! message = "..."                    # exact, or message_contains = ["...", "..."]
//! count = 1                          # default 1
//! state = "active"                   # default "active"
//! [[cleared]]                        # active events of earlier fixtures this one cleared, exactly
//! policy = "UPS on battery"
//! device = "ups1.example.com"
//! key = ""                           # default ""
//! ```

mod corpus;
mod rows;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::postfix::{describe, free_port, unique_temp_dir};
use crate::support::services::needs;
use corpus::Fixture;

/// The address every fixture is delivered to.
const NOTIFY: &str = "notify@mon.example.com";
/// The events corpus must stay at least this large (issue 3).
const MIN_FIXTURES: usize = 20;
/// Each pack's corpus has at least a problem, another key's problem and a recovery (issue 15).
const MIN_PACK_FIXTURES: usize = 3;
/// How long one delivery may take before the fixture is reported as hung.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every corpus: (directory, fewest fixtures it keeps); the events corpus first, then each
/// shipped pack's.
fn corpora() -> Vec<(PathBuf, usize)> {
    let mut all = vec![(fixtures_dir().join("events"), MIN_FIXTURES)];
    for pack in mailops::policy::packs::names() {
        all.push((fixtures_dir().join("packs").join(pack), MIN_PACK_FIXTURES));
    }
    all
}

#[test]
fn corpus_is_complete_and_well_formed() {
    let mut problems = Vec::new();
    for (dir, min) in corpora() {
        if let Err(found) = corpus::load(&dir, min) {
            let at = dir.display();
            problems.extend(found.into_iter().map(|p| format!("{at}: {p}")));
        }
    }
    // A corpus directory for a pack that is not shipped would never run.
    if let Ok(entries) = std::fs::read_dir(fixtures_dir().join("packs")) {
        let shipped = mailops::policy::packs::names();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !shipped.contains(&name.as_str()) {
                problems.push(format!("tests/fixtures/packs/{name}: no pack of that name"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the events fixture corpora have {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The config a corpus runs under, for `policy apply` and `serve`.
fn config_text(db: &TestDb, port: u16) -> String {
    support::config::text(
        &db.url,
        &format!("127.0.0.1:{port}"),
        "",
        &["mon.example.com"],
        "alert_message = \"body\"\nstrip_fqdn = false",
    )
}

/// `mailops policy apply` of `policies` with the real binary, the database only from the config
/// file.
fn apply_policies(config_file: &Path, policies: &Path) {
    let out = support::serve::mailops(config_file)
        .args(["policy", "apply"])
        .arg(policies)
        .output()
        .expect("running mailops policy apply");
    assert!(
        out.status.success(),
        "mailops policy apply {}: {}",
        policies.display(),
        describe(&out)
    );
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
    let before = rows::active_events(db).await;
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
    match rows::actual_rows(db, &fixture.message_id, &before).await {
        Err(problem) => vec![problem],
        Ok(actual) => {
            let mut problems = rows::compare(fixture, &actual);
            if !problems.is_empty() {
                problems.push(format!("what mailops wrote:\n{}", rows::render(&actual)));
            }
            problems
        }
    }
}

/// Runs the corpus in `dir` in a fresh database; one entry per fixture with problems.
async fn run_corpus(dir: &Path, min: usize) -> Vec<String> {
    let fixtures = corpus::load(dir, min).unwrap_or_else(|problems| {
        panic!(
            "the corpus {} is not well formed (see corpus_is_complete_and_well_formed):\n  {}",
            dir.display(),
            problems.join("\n  ")
        )
    });
    let db = TestDb::new().await;
    let temp = unique_temp_dir("mailops-events-fixtures");
    let port = free_port();
    let text = config_text(&db, port);
    let config_file = temp.join("mailops.toml");
    std::fs::write(&config_file, &text).expect("writing the config");
    apply_policies(&config_file, &dir.join("policies.toml"));

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
            let mut entry = format!(
                "{0}/{1}.eml (expected: {1}.toml):",
                dir.display(),
                fixture.name
            );
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
    let _ = std::fs::remove_dir_all(&temp);
    report
}

fn assert_clean(what: &str, report: Vec<String>) {
    assert!(
        report.is_empty(),
        "{what} found {} problem(s):\n\n{}",
        report.len(),
        report.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_produces_its_rows() {
    needs!(Database);
    let report = run_corpus(&fixtures_dir().join("events"), MIN_FIXTURES).await;
    assert_clean("the events fixture corpus", report);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_pack_fixture_produces_its_rows() {
    needs!(Database);
    let mut report = Vec::new();
    for (dir, min) in corpora().into_iter().skip(1) {
        report.extend(run_corpus(&dir, min).await);
    }
    assert_clean("the policy packs' fixture corpora", report);
}

/// Every pack at once, with every pack corpus's devices: each fixture still aligns through its
/// own pack's originators to its device, so packs can be combined in one policy file.
#[test]
fn packs_together_leave_each_product_to_its_own_pack() {
    use mailops::events::evaluate::{evaluate, Alert, Settings};
    use mailops::policy::{packs, PolicyFile};

    let names = packs::names();
    let mut text = format!(
        "include = [{}]\n",
        names
            .iter()
            .map(|n| format!("\"pack:{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut seen = std::collections::BTreeSet::new();
    for name in &names {
        let own = PolicyFile::read(
            &fixtures_dir()
                .join("packs")
                .join(name)
                .join("policies.toml"),
        )
        .unwrap_or_else(|p| panic!("{name}: {p:?}"));
        for device in own
            .devices
            .into_iter()
            .filter(|d| seen.insert(d.name.clone()))
        {
            text.push_str(
                &PolicyFile {
                    devices: vec![device],
                    ..PolicyFile::default()
                }
                .to_toml(),
            );
        }
    }
    let model = PolicyFile::parse(&text)
        .and_then(|f| f.to_model())
        .unwrap_or_else(|p| panic!("every pack together: {p:?}"));
    let (policies, problems) = mailops::events::policies::Policies::new(
        model.devices,
        model.originators,
        model.event_policies,
    );
    assert!(problems.is_empty(), "{problems:?}");

    let mut wrong = Vec::new();
    for name in names {
        let own: Vec<String> = PolicyFile::parse(packs::text(name).expect("a pack"))
            .expect("a valid pack")
            .originators
            .into_iter()
            .filter_map(|o| o.name)
            .collect();
        let dir = fixtures_dir().join("packs").join(name);
        for fixture in corpus::load(&dir, MIN_PACK_FIXTURES).expect("a well-formed corpus") {
            let Some(device) = &fixture.expected.device else {
                continue;
            };
            let raw = std::fs::read(dir.join(format!("{}.eml", fixture.name))).expect("eml");
            let message = mailops::message::Message::parse(&raw);
            let decision = evaluate(
                &policies,
                &Alert::new(&message, &fixture.from),
                Settings::default(),
            );
            let by = decision.originator.and_then(|o| o.name.clone());
            let got = decision.device.map(|d| d.name);
            if got != Some(device.as_str()) || !by.as_ref().is_some_and(|b| own.contains(b)) {
                wrong.push(format!(
                    "{name}/{}: device {got:?} through originator {by:?}, expected {device:?} through one of {own:?}",
                    fixture.name
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
