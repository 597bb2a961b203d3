//! Retention through the real `serve`: alerts stored, then back-dated (their months'
//! partitions made as an old database would have them), and a serve started with
//! `[retention]` ages them out at start: raw messages past `raw_days` go with their month, rows
//! and device logs past `rows_days` too, and what refers to them is cleared, not broken.

use std::time::{Duration, Instant};

use crate::support;
use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::services::needs;
use tokio::sync::oneshot;

const POLICIES: &str = "
INSERT INTO devices (name) VALUES ('ups1.example.com');
INSERT INTO originator_policies (position, address, regex_type, pattern_type, pattern, alignment)
    VALUES (1, 'ups@example.com', 'subject', 'advanced', '^([\\w.-]+): ', 'discard');
INSERT INTO event_policies (name, severity, message, match_logic, first_match)
    VALUES ('On battery', 'major', '%D: %S', 'text', 'On battery');
";

/// `mailops serve` in this process with `retention` in its config, until `stop` is sent.
async fn serve(db: &TestDb, retention: &str) -> (String, oneshot::Sender<()>) {
    support::serve::in_process(&db.url, &["mon.example.com"], retention).await
}

async fn alert(addr: &str, n: u32) {
    let message = format!(
        "From: ups@example.com\nMessage-ID: <ups-{n}@example.com>\n\
         Subject: ups1.example.com: On battery ({n})\n\nOn battery power.\n"
    );
    let mut c = Client::connect(addr).await;
    let (_, data) = c
        .transaction(
            Some(&format!("RET{n}")),
            "ups@example.com",
            &["notify@mon.example.com"],
            message,
        )
        .await;
    assert!(data[0].starts_with("250"), "{data:?}");
}

/// The numbers `sql` selects, as text (NULL as "-").
async fn rows(db: &TestDb, sql: &str) -> Vec<String> {
    db.client()
        .await
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("-").to_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_ages_out_raw_messages_rows_and_device_logs() {
    needs!(Database);
    let db = TestDb::with_setup(POLICIES).await;
    let (addr, stop) = serve(&db, "").await;
    for n in 1..=3 {
        alert(&addr, n).await;
    }
    drop(stop);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Message 1 is 400 days old, message 2 is 70 days old, message 3 is new. The event, a
    // repeat of all three, is made to name message 1, as an event last seen long ago would.
    db.client()
        .await
        .batch_execute(
            "SELECT mailops_partitions(now() - interval '400 days', 2);
             UPDATE inbound_messages SET received_at = now() - interval '400 days' WHERE queue_id = 'RET1';
             UPDATE inbound_messages SET received_at = now() - interval '70 days' WHERE queue_id = 'RET2';
             UPDATE inbound_raw r SET received_at = m.received_at
                 FROM inbound_messages m WHERE m.id = r.inbound_message_id;
             UPDATE device_logs d SET logged_at = m.received_at
                 FROM inbound_messages m WHERE m.id = d.inbound_message_id;
             UPDATE events SET inbound_message_id =
                 (SELECT id FROM inbound_messages WHERE queue_id = 'RET1');",
        )
        .await
        .expect("back-dating");
    let old_raw_month = rows(
        &db,
        "SELECT r.tableoid::regclass FROM inbound_raw r JOIN inbound_messages m
             ON m.id = r.inbound_message_id WHERE queue_id = 'RET2'",
    )
    .await;

    // A serve with [retention] ages them out as it starts.
    let (addr, _stop) = serve(&db, "[retention]\nraw_days = 30\nrows_days = 365\n").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while rows(&db, "SELECT count(*) FROM inbound_messages").await != ["2"] {
        assert!(Instant::now() < deadline, "message 1 was never aged out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each message: its row, its raw bytes, its device log, its alert key.
    let kept = "SELECT m.queue_id, (r.raw IS NOT NULL), count(DISTINCT d.id), count(DISTINCT k.key)
                FROM inbound_messages m
                LEFT JOIN inbound_raw r ON r.inbound_message_id = m.id
                LEFT JOIN device_logs d ON d.inbound_message_id = m.id
                LEFT JOIN alert_keys k ON k.inbound_message_id = m.id
                GROUP BY 1, 2 ORDER BY 1";
    assert_eq!(
        rows(&db, kept).await,
        ["RET2 f 1 1", "RET3 t 1 1"],
        "message 2 keeps its row and device log, not its raw bytes; message 3 keeps all"
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM device_logs").await, ["2"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM alert_keys").await, ["2"]);
    // The event stays, no longer naming the message that is gone.
    assert_eq!(
        rows(&db, "SELECT count, inbound_message_id FROM events").await,
        ["3 -"]
    );
    // Message 2's month of raw messages is gone whole, not emptied.
    let partition = old_raw_month[0].clone();
    assert_eq!(
        rows(
            &db,
            &format!("SELECT count(*) FROM pg_class WHERE relname = '{partition}'")
        )
        .await,
        ["0"]
    );

    // Mail is still taken after it, into this month's partition.
    alert(&addr, 4).await;
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM inbound_raw r JOIN inbound_messages m
                 ON m.id = r.inbound_message_id WHERE queue_id = 'RET4'"
        )
        .await,
        ["1"]
    );
}
