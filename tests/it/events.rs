//! The events pipeline through `mailops serve` into PostgreSQL: events, repeats, clearing,
//! expiry, E701, redeliveries, and policies changed while serve runs; `keys` has events keyed,
//! scoped and read as the mail says (issue 15).

mod keys;

use std::path::Path;
use std::time::Duration;

use crate::support;
use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::services::needs;
use tokio::sync::oneshot;

/// `mailops serve` in this process; stops when dropped.
struct Serve {
    addr: String,
    _stop: oneshot::Sender<()>,
}

async fn serve(db: &TestDb, alert_message: &str) -> Serve {
    let (addr, stop) = support::serve::in_process(
        &db.url,
        &["mon.example.com", "ops.example.org"],
        &format!("alert_message = \"{alert_message}\""),
    )
    .await;
    Serve { addr, _stop: stop }
}

/// How long serve gets to reload changed policies.
const RELOAD: Duration = Duration::from_secs(10);

const POLICIES: &str = "
INSERT INTO devices (id, name, ip) VALUES (1, 'ups1.example.com', '10.6.1.30'), (2, 'nas1.example.com', NULL);
INSERT INTO originator_policies (position, address, regex_type, pattern_type, pattern, alignment)
    VALUES (1, 'ups@example.com', 'subject', 'classic', 'UPS', 'discard');
INSERT INTO event_policies (name, severity, message, match_logic, first_match, expire_after_s)
    VALUES ('On battery', 'major', '%D: %M', 'text', 'on battery', 600);
INSERT INTO event_policies (name, severity, message, match_logic, first_match)
    VALUES ('Power restored', 'healthy', '%D: %S', 'regex', '(?i)power (is )?restored');
INSERT INTO event_policy_clears (event_policy_id, clears_id)
    SELECT r.id, b.id FROM event_policies r, event_policies b
    WHERE r.name = 'Power restored' AND b.name = 'On battery';
";

/// A fresh database holding [`POLICIES`], and serve on it.
async fn with_policies(alert_message: &str) -> (TestDb, Serve) {
    let db = TestDb::with_setup(POLICIES).await;
    let s = serve(&db, alert_message).await;
    (db, s)
}

/// The single number `sql` selects.
pub(crate) async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn alert(id: &str, subject: &str, body: &str) -> String {
    format!("From: APC <ups@example.com>\nMessage-ID: <{id}@example.com>\nSubject: {subject}\n\n{body}\n")
}

async fn send(s: &Serve, ident: Option<&str>, message: &str) -> String {
    let mut c = Client::connect(&s.addr).await;
    let (_, data) = c
        .transaction(
            ident,
            "ups@example.com",
            &["notify@mon.example.com"],
            message,
        )
        .await;
    data.into_iter().next().expect("one reply")
}

/// Runs the periodic expiry sweep once; how many events it cleared.
async fn sweep(db: &TestDb) -> u64 {
    let client = db.client().await;
    mailops::store::events::expire(&client)
        .await
        .expect("sweep")
        .0
}

/// (policy, state, count, message) of every event, oldest first.
async fn events(db: &TestDb) -> Vec<(String, String, i32, String)> {
    db.client()
        .await
        .query(
            "SELECT p.name, e.state, e.count, e.message FROM events e
             JOIN event_policies p ON p.id = e.event_policy_id ORDER BY e.id",
            &[],
        )
        .await
        .expect("events")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn ev(policy: &str, state: &str, count: i32, message: &str) -> (String, String, i32, String) {
    (policy.into(), state.into(), count, message.into())
}

#[tokio::test]
async fn alerts_raise_count_and_clear_events_in_one_transaction_each() {
    needs!(Database);
    let (db, s) = with_policies("body").await;

    let r = send(
        &s,
        None,
        &alert("a1", "UPS ups1.example.com", "Running on battery"),
    )
    .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    send(
        &s,
        None,
        &alert("a2", "UPS ups1.example.com", "Still on battery"),
    )
    .await;
    assert_eq!(
        events(&db).await,
        [ev(
            "On battery",
            "active",
            2,
            "ups1.example.com: Still on battery"
        )]
    );

    // The recovery raises its own (healthy) event and clears the outage.
    send(
        &s,
        None,
        &alert(
            "a3",
            "UPS ups1.example.com: Power restored",
            "Utility power is restored",
        ),
    )
    .await;
    assert_eq!(
        events(&db).await,
        [
            ev(
                "On battery",
                "cleared",
                2,
                "ups1.example.com: Still on battery"
            ),
            ev(
                "Power restored",
                "active",
                1,
                "ups1.example.com: UPS ups1.example.com: Power restored"
            ),
        ]
    );
    let reason: String = db
        .client()
        .await
        .query_one(
            "SELECT cleared_reason FROM events WHERE state = 'cleared'",
            &[],
        )
        .await
        .expect("cleared")
        .get(0);
    assert_eq!(reason, "cleared by Power restored");

    // A new outage after the clear is a new event.
    send(
        &s,
        None,
        &alert("a4", "UPS ups1.example.com", "on battery again"),
    )
    .await;
    assert_eq!(events(&db).await.len(), 3);

    // Each mail is logged on the device, linked to its stored message.
    let logs = count(
        &db,
        "SELECT count(*) FROM device_logs l JOIN inbound_messages m ON m.id = l.inbound_message_id
         WHERE l.device_id = 1",
    )
    .await;
    assert_eq!(logs, 4);
}

#[tokio::test]
async fn a_redelivery_raises_nothing_twice() {
    needs!(Database);
    let (db, s) = with_policies("body").await;
    let message = alert("r1", "UPS ups1.example.com", "on battery");
    assert!(send(&s, Some("4ZQa1"), &message)
        .await
        .contains("stored as"));
    assert!(send(&s, Some("4ZQa1"), &message)
        .await
        .contains("already stored"));
    assert_eq!(
        events(&db).await,
        [ev(
            "On battery",
            "active",
            1,
            "ups1.example.com: on battery"
        )]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM device_logs").await, 1);
}

#[tokio::test]
async fn no_device_is_e701_in_the_system_log() {
    needs!(Database);
    let (db, s) = with_policies("body").await;
    send(&s, None, &alert("e1", "UPS ups9.example.com", "on battery")).await;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT l.code, l.message, m.message_id FROM system_log l
             JOIN inbound_messages m ON m.id = l.inbound_message_id",
            &[],
        )
        .await
        .expect("system log");
    assert_eq!(row.get::<_, &str>(0), "E701");
    assert_eq!(
        row.get::<_, &str>(1),
        "Could not match device to email from ups@example.com with subject \"UPS ups9.example.com\""
    );
    assert_eq!(row.get::<_, &str>(2), "e1@example.com");
    assert!(events(&db).await.is_empty());
}

#[tokio::test]
async fn an_event_not_seen_for_its_expiry_is_cleared_and_a_repeat_starts_anew() {
    needs!(Database);
    let (db, s) = with_policies("body").await;
    send(&s, None, &alert("x1", "UPS ups1.example.com", "on battery")).await;
    // Eleven minutes pass (expire_after_s = 600).
    db.client()
        .await
        .batch_execute("UPDATE events SET last_seen = last_seen - interval '11 minutes'")
        .await
        .expect("age");
    send(&s, None, &alert("x2", "UPS ups1.example.com", "on battery")).await;
    assert_eq!(
        events(&db).await,
        [
            ev("On battery", "cleared", 1, "ups1.example.com: on battery"),
            ev("On battery", "active", 1, "ups1.example.com: on battery"),
        ]
    );
    // The periodic sweep clears what nobody repeats.
    db.client()
        .await
        .batch_execute("UPDATE events SET last_seen = last_seen - interval '11 minutes' WHERE state = 'active'")
        .await
        .expect("age");
    assert_eq!(sweep(&db).await, 1);
    let reasons: Vec<String> = db
        .client()
        .await
        .query("SELECT cleared_reason FROM events ORDER BY id", &[])
        .await
        .expect("reasons")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons, ["expired", "expired"]);
}

#[tokio::test]
async fn policies_changed_while_serving_apply_to_the_next_mail() {
    needs!(Database);
    let (db, s) = with_policies("subject_and_body").await;
    send(
        &s,
        None,
        &alert("p1", "UPS nas1.example.com overheating", "temperature 61C"),
    )
    .await;
    assert!(events(&db).await.is_empty());

    db.client()
        .await
        .batch_execute(
            "INSERT INTO event_policies (name, severity, message, match_logic, first_match, second_match)
             VALUES ('Overheating', 'critical', '%S', 'regex', 'overheat', 'temperature \\d+C')",
        )
        .await
        .expect("new policy");
    // serve reloads on NOTIFY; wait until the next mail raises the new event.
    let mut n = 0;
    support::wait_until("the new policy to be used", RELOAD, async || {
        n += 1;
        let id = format!("p2-{n}");
        let overheating = alert(&id, "UPS nas1.example.com overheating", "temperature 62C");
        send(&s, None, &overheating).await;
        !events(&db).await.is_empty()
    })
    .await;
    assert_eq!(
        events(&db).await,
        [ev(
            "Overheating",
            "active",
            1,
            "UPS nas1.example.com overheating"
        )]
    );

    // That reload kept the devices it had (only event_policies changed); a device added now is
    // read again and found.
    db.client()
        .await
        .batch_execute("INSERT INTO devices (id, name) VALUES (1000, 'nas2.example.com')")
        .await
        .expect("new device");
    support::wait_until("the new device to be found", RELOAD, async || {
        n += 1;
        let id = format!("p3-{n}");
        let overheating = alert(&id, "UPS nas2.example.com overheating", "temperature 70C");
        send(&s, None, &overheating).await;
        events(&db).await.len() == 2
    })
    .await;
    let on: Vec<String> = db
        .client()
        .await
        .query(
            "SELECT d.name FROM events e JOIN devices d ON d.id = e.device_id ORDER BY e.id",
            &[],
        )
        .await
        .expect("devices")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(on, ["nas1.example.com", "nas2.example.com"]);
}

/// `mailops policy test MESSAGE --policies POLICIES` with no database to reach (the file alone
/// must do); asserts it succeeds and that its output holds each of `lines`.
pub(crate) fn assert_policy_test(message: &Path, policies: &Path, lines: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailops"))
        .args(["-c", "mailops.example.toml", "policy", "test"])
        .arg(message)
        .arg("--policies")
        .arg(policies)
        .env("MAILOPS_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .expect("running mailops policy test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in lines {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
}

#[test]
fn policy_test_shows_the_decision_from_a_file_without_a_database() {
    assert_policy_test(
        Path::new("tests/fixtures/events/01-veeam-daily-failed-html.eml"),
        Path::new("tests/fixtures/events/policies.toml"),
        &[
            "originator veeam@example.com: device \"vbr01.example.com\" (alignment override)",
            "device: vbr01.example.com (id 4243)",
            "event policies matched:\n  Veeam job failed\n",
            "events: Veeam job failed major on vbr01.example.com (or count a repeat of the active one): \
             \"vbr01.example.com: [Failed] Daily-VMs (3 machines) 1 failed\"",
        ],
    );
}

#[tokio::test]
async fn an_alert_to_two_notify_addresses_or_redelivered_in_parts_counts_once() {
    needs!(Database);
    let (db, s) = with_policies("body").await;
    let both = ["notify@mon.example.com", "notify@ops.example.org"];
    let mut c = Client::connect(&s.addr).await;
    let first = alert("m1", "UPS ups1.example.com", "on battery");
    let (_, data) = c.transaction(None, "ups@example.com", &both, &first).await;
    assert!(data.iter().all(|r| r.contains("stored as")), "{data:?}");
    assert_eq!(
        events(&db).await,
        [ev(
            "On battery",
            "active",
            1,
            "ups1.example.com: on battery"
        )]
    );

    // Postfix delivers one recipient of a queue file now and the other on a later try.
    let second = alert("m2", "UPS ups1.example.com", "on battery still");
    for rcpt in both {
        let (_, data) = c
            .transaction(Some("4ZPart1"), "ups@example.com", &[rcpt], &second)
            .await;
        assert!(data[0].contains("stored as"), "{data:?}");
    }
    assert_eq!(
        events(&db).await,
        [ev(
            "On battery",
            "active",
            2,
            "ups1.example.com: on battery still"
        )]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM device_logs").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM inbound_messages").await, 4);
}
