//! Email round-trip monitoring end to end: `serve` mails probes out through a real gateway;
//! the test plays the remote mailbox's forwarding rule, sending each probe it chooses to
//! answer back to `notify@` through mailops's own Postfix; timings, timeouts, late replies and
//! the timeout event land in PostgreSQL.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::db::TestDb;
use crate::support::postfix::unique_temp_dir;
use crate::support::serve::Serve;
use crate::support::services::needs;
use crate::support::stack::{config, mail, Stack};
use mail_parser::MessageParser;

const WAIT: Duration = Duration::from_secs(30);

/// A device and a round-trip policy: a probe every `interval_s`, `timeout_s` to come back.
fn setup(interval_s: u32, timeout_s: u32) -> String {
    format!(
        "INSERT INTO devices (name) VALUES ('exchange-online');
         INSERT INTO roundtrip_policies (name, device_id, send_to, from_address, interval_s,
                 timeout_s, body, severity)
             SELECT 'Exchange Online loop', id, 'rt-probe@customer.example',
                    'rt-probe@mon.example.com', {interval_s}, {timeout_s},
                    'mailops round-trip probe - forward to notify@mon.example.com', 'major'
             FROM devices;"
    )
}

/// (id, state) of every probe, oldest first.
async fn probes(db: &TestDb) -> Vec<(i64, String)> {
    db.client()
        .await
        .query("SELECT id, state FROM roundtrip_probes ORDER BY id", &[])
        .await
        .expect("probes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Waits until `check` holds of the probes.
async fn wait_for_probes(db: &TestDb, what: &str, check: impl Fn(&[(i64, String)]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = probes(db).await;
        if check(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: probes are {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The probe `id` as the gateway's mailbox holds it: its raw text.
fn delivered_probe(stack: &Stack, id: i64) -> String {
    let marker = format!("mailops-rt-{id}-");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(raw) = stack
            .gateway
            .messages()
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .find(|m| m.contains(&marker))
        {
            return raw;
        }
        assert!(
            Instant::now() < deadline,
            "probe {id} never reached the mailbox"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Forwards probe `id` back to notify@ from `from`, the way a mailbox rule does: "Fwd:", the
/// original quoted in the body.
fn forward(stack: &Stack, id: i64, from: &str) {
    let raw = delivered_probe(stack, id);
    let original = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("the probe parses");
    let subject = original.subject().unwrap_or_default();
    let body = original.body_text(0).unwrap_or_default();
    let quoted: String = body.lines().map(|l| format!("> {l}\n")).collect();
    let reply = mail(
        from,
        "notify@mon.example.com",
        &format!("Fwd: {subject}"),
        &format!("fwd{id}@customer.example"),
        &[],
        &format!("---------- Forwarded message ---------\n{quoted}"),
    );
    stack.send(from, "notify@mon.example.com", &reply);
}

/// (state, count, severity) of the device's round-trip events.
async fn events(db: &TestDb) -> Vec<(String, i32, String)> {
    db.client()
        .await
        .query(
            "SELECT state, count, severity FROM events WHERE roundtrip_policy_id IS NOT NULL
             ORDER BY id",
            &[],
        )
        .await
        .expect("events")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn state_of(probes: &[(i64, String)], id: i64) -> Option<&str> {
    probes
        .iter()
        .find(|(p, _)| *p == id)
        .map(|(_, s)| s.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_go_out_come_back_time_out_and_clear() {
    needs!(Database, Postfix, Dovecot);
    let stack = Stack::start(&setup(4, 3), "").await;
    let db = &stack.db;

    // The first probe goes out at once; forwarded back, it is timed.
    wait_for_probes(db, "first probe sent", |p| {
        state_of(p, p.first().map_or(0, |f| f.0)) == Some("sent")
    })
    .await;
    let first = probes(db).await[0].0;
    forward(&stack, first, "rt-probe@customer.example");
    wait_for_probes(db, "first probe answered", |p| {
        state_of(p, first) == Some("received")
    })
    .await;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT r.rtt_ms, r.reply_from, r.reply_unexpected, jsonb_array_length(r.hops),
                    r.sent_at <= r.received_at, r.token = substring(o.subject from 'mailops-rt-.*$')
             FROM roundtrip_probes r JOIN outbox o ON o.id = r.outbox_id WHERE r.id = $1",
            &[&first],
        )
        .await
        .expect("the probe");
    let rtt: i64 = row.get(0);
    assert!((0..WAIT.as_millis() as i64).contains(&rtt), "rtt {rtt}");
    assert_eq!(row.get::<_, &str>(1), "rt-probe@customer.example");
    assert!(!row.get::<_, bool>(2));
    assert!(row.get::<_, i32>(3) >= 1, "the reply's Received: hops");
    assert!(row.get::<_, bool>(4));
    assert!(row.get::<_, bool>(5), "the token is in the probe's subject");
    // The reply is stored as one, and never went to the events pipeline.
    let routes: Vec<String> = db
        .client()
        .await
        .query("SELECT route FROM inbound_messages", &[])
        .await
        .expect("inbound")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(routes, ["probe_reply"]);
    assert_eq!(
        db.client()
            .await
            .query_one("SELECT count(*) FROM system_log", &[])
            .await
            .expect("system_log")
            .get::<_, i64>(0),
        0
    );

    // The next probe is not answered: after its timeout, a major event on the device.
    let second = first + 1;
    wait_for_probes(db, "second probe timed out", |p| {
        state_of(p, second) == Some("timeout")
    })
    .await;
    let active = events(db).await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(
        (active[0].0.as_str(), active[0].2.as_str()),
        ("active", "major")
    );

    // Its reply, after the timeout, is late: recorded, and the event stays.
    forward(&stack, second, "rt-probe@customer.example");
    wait_for_probes(db, "second probe late", |p| {
        state_of(p, second) == Some("late")
    })
    .await;
    assert_eq!(events(db).await[0].0, "active");

    // A later probe answered in time (from another address: flagged) clears the event.
    let answered = loop {
        let now = probes(db).await;
        if let Some((id, _)) = now.iter().rev().find(|(id, s)| *id > second && s == "sent") {
            break *id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    forward(&stack, answered, "someone@elsewhere.example");
    wait_for_probes(db, "later probe answered", |p| {
        state_of(p, answered) == Some("received")
    })
    .await;
    let cleared = events(db).await;
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert_eq!(cleared[0].0, "cleared");
    let flagged: bool = db
        .client()
        .await
        .query_one(
            "SELECT reply_unexpected FROM roundtrip_probes WHERE id = $1",
            &[&answered],
        )
        .await
        .expect("probe")
        .get(0);
    assert!(flagged);

    // The stats view sums it up.
    let stats = db
        .client()
        .await
        .query_one(
            "SELECT last_rtt_ms IS NOT NULL, p50_1h_ms IS NOT NULL, p95_24h_ms IS NOT NULL,
                    success_ratio_24h > 0 AND success_ratio_24h < 1, last_success_at IS NOT NULL
             FROM roundtrip_stats WHERE name = 'Exchange Online loop'",
            &[],
        )
        .await
        .expect("stats");
    for i in 0..5 {
        assert!(stats.get::<_, bool>(i), "roundtrip_stats column {i}");
    }
}

/// `serve` with `block_outgoing`: probes are queued, nothing is sent.
fn blocked_serve(dir: &Path, db: &TestDb) -> Serve {
    let (file, config) = config(dir, db, "127.0.0.1:1", "block_outgoing = true");
    Serve::start(&file, &config)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_serve_processes_queue_one_probe_per_interval() {
    needs!(Database);
    let db = TestDb::with_setup(&setup(2, 600)).await;
    let dirs = [
        unique_temp_dir("mailops-rt-a"),
        unique_temp_dir("mailops-rt-b"),
    ];
    let serves: Vec<Serve> = dirs.iter().map(|d| blocked_serve(d, &db)).collect();
    tokio::time::sleep(Duration::from_millis(7_000)).await;
    drop(serves);
    let queued: Vec<f64> = db
        .client()
        .await
        .query(
            "SELECT extract(epoch FROM queued_at)::float8 FROM roundtrip_probes ORDER BY id",
            &[],
        )
        .await
        .expect("probes")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // 7 s at one probe per 2 s: 4 (3 or 5 at the edges), never two per interval.
    assert!((3..=5).contains(&queued.len()), "{queued:?}");
    for pair in queued.windows(2) {
        assert!(
            pair[1] - pair[0] > 1.9,
            "two probes in one interval: {queued:?}"
        );
    }
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
