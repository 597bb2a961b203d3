//! Alert-volume control through the real `serve` and PostgreSQL: a flood of identical alerts,
//! from several LMTP sessions at once, is logged up to its policy's cap; every alert still
//! counts on the event, and one flood event stands on the device.

use std::time::Instant;

use crate::events::count;
use crate::support;
use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::services::needs;

/// A UPS whose "on battery" alerts are capped at 10 a minute.
const POLICIES: &str = "
INSERT INTO devices (name) VALUES ('ups1.example.com'), ('ups2.example.com');
INSERT INTO originator_policies (position, address, regex_type, pattern_type, pattern, alignment)
    VALUES (1, 'ups@example.com', 'subject', 'advanced', '^([\\w.-]+): ', 'discard');
INSERT INTO event_policies (name, severity, message, match_logic, first_match, rate_count,
        rate_per_s)
    VALUES ('On battery', 'major', '%D: %S', 'text', 'On battery', 10, 60);
";

const ALERTS: usize = 1000;
const SESSIONS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_logged_up_to_the_cap_and_counted_in_full() {
    needs!(Database);
    let db = TestDb::with_setup(POLICIES).await;
    let (addr, stop) = support::serve::in_process(&db.url, &["mon.example.com"], "").await;
    let started = Instant::now();
    let mut sessions = Vec::new();
    for s in 0..SESSIONS {
        let addr = addr.clone();
        sessions.push(tokio::spawn(async move {
            let mut c = Client::connect(&addr).await;
            for n in (s..ALERTS).step_by(SESSIONS) {
                let message = format!(
                    "From: ups@example.com\nMessage-ID: <flood-{n}@example.com>\n\
                     Subject: ups1.example.com: On battery\n\nOn battery power.\n"
                );
                let (_, data) = c
                    .transaction(
                        Some(&format!("FLOOD{n}")),
                        "ups@example.com",
                        &["notify@mon.example.com"],
                        message,
                    )
                    .await;
                assert!(data[0].starts_with("250"), "{data:?}");
            }
        }));
    }
    for s in sessions {
        s.await.expect("a session");
    }
    let seconds = started.elapsed().as_secs_f64();
    // A token comes back every 6 s: at most the cap, plus what came back while sending.
    let cap = 10 + (seconds / 6.0).floor() as i64;
    let logged = count(&db, "SELECT count(*) FROM device_logs").await;
    assert!(
        (10..=cap).contains(&logged),
        "{logged} alerts logged in {seconds:.1} s, cap {cap}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count::bigint FROM events WHERE event_policy_id IS NOT NULL AND state = 'active'"
        )
        .await,
        ALERTS as i64,
        "every alert counts on the event"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE flood_policy_id IS NOT NULL AND state = 'active'"
        )
        .await,
        1,
        "one flood event"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count::bigint FROM events WHERE flood_policy_id IS NOT NULL"
        )
        .await,
        ALERTS as i64 - logged,
        "the flood event counts the alerts not logged"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM inbound_messages").await,
        ALERTS as i64,
        "every alert is stored"
    );

    // Another device's alerts have a bucket of their own.
    let mut c = Client::connect(&addr).await;
    let message = "From: ups@example.com\nMessage-ID: <other@example.com>\n\
                   Subject: ups2.example.com: On battery\n\nOn battery power.\n";
    let (_, data) = c
        .transaction(
            Some("OTHER"),
            "ups@example.com",
            &["notify@mon.example.com"],
            message,
        )
        .await;
    assert!(data[0].starts_with("250"), "{data:?}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM device_logs l JOIN devices d ON d.id = l.device_id
             WHERE d.name = 'ups2.example.com'"
        )
        .await,
        1
    );
    let _ = stop.send(());
}
