//! End to end: a real Postfix from the generated configuration delivers over LMTP to a real
//! `mailops serve` process, which stores into a real PostgreSQL. Mail is sent with swaks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::db::TestDb;
use crate::support::postfix::{describe, free_port, run, unique_temp_dir, PostfixInstance};
use crate::support::serve::Serve;
use crate::support::services::needs;
use mailops::config::Config;

/// A config for this test's database and LMTP listener, written where the binary can read it.
fn config(dir: &Path, db: &TestDb, listen: &str) -> (PathBuf, Config) {
    let text = support::config::text(
        &db.url,
        listen,
        "",
        &["mon.example.com"],
        &support::config::postfix_section(),
    );
    support::config::write(dir, &text)
}

/// Sends one message with swaks; returns its exit status success and its transcript.
fn swaks(postfix: &PostfixInstance, to: &str, subject: &str) -> (bool, String) {
    let out = run(Command::new("swaks")
        .args(["--server", &postfix.smtp_addr.to_string()])
        .args(["--from", "backup@example.com", "--to", to])
        .args(["--helo", "client.example.com"])
        .args(["--header", &format!("Subject: {subject}")])
        .args(["--body", "Job finished with errors.\n"])
        .args(["--timeout", "30"]));
    (out.status.success(), describe(&out))
}

async fn wait_for_rows(db: &TestDb, want: i64) -> Vec<tokio_postgres::Row> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = db
            .client()
            .await
            .query(
                "SELECT envelope_from, recipient, route, subject, from_address, queue_id, client_addr
                 FROM inbound_messages ORDER BY id",
                &[],
            )
            .await
            .expect("query");
        if rows.len() as i64 >= want || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn mail_flows_end_to_end(listen: impl FnOnce(&Path) -> String) {
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-e2e");
    let (file, config) = config(&dir, &db, &listen(&dir));
    let serve = Serve::start(&file, &config);
    let postfix = PostfixInstance::start(&config);

    // Mail for notify@ is accepted by Postfix and lands as a row, through LMTP.
    let (ok, transcript) = swaks(&postfix, "notify@mon.example.com", "Backup job failed");
    assert!(ok, "{transcript}");
    let rows = wait_for_rows(&db, 1).await;
    assert_eq!(rows.len(), 1, "Postfix log:\n{}", postfix.log());
    let row = &rows[0];
    assert_eq!(row.get::<_, &str>("envelope_from"), "backup@example.com");
    assert_eq!(row.get::<_, &str>("recipient"), "notify@mon.example.com");
    assert_eq!(row.get::<_, &str>("route"), "event");
    assert_eq!(row.get::<_, &str>("subject"), "Backup job failed");
    assert_eq!(row.get::<_, &str>("from_address"), "backup@example.com");
    assert_eq!(row.get::<_, &str>("client_addr"), "127.0.0.1");
    // XFORWARD gave mailops Postfix's queue id: the row and Postfix's log line match.
    let queue_id: &str = row.get("queue_id");
    let delivered = format!("{queue_id}: to=<notify@mon.example.com>");
    assert!(
        postfix.wait_for_log(&delivered, Duration::from_secs(10)),
        "{delivered:?} not in the Postfix log:\n{}",
        postfix.log()
    );
    assert!(
        postfix
            .log()
            .contains("status=sent (250 2.0.0 <notify@mon.example.com> stored as"),
        "{}",
        postfix.log()
    );

    // An unknown recipient is refused while the client is connected: 550, and no bounce.
    let (ok, transcript) = swaks(&postfix, "nobody@mon.example.com", "Nobody");
    assert!(!ok, "{transcript}");
    assert!(transcript.contains("550 5.1.1"), "{transcript}");
    assert!(
        postfix.wait_for_empty_queue(Duration::from_secs(10)),
        "queue not empty"
    );
    assert_eq!(
        wait_for_rows(&db, 1).await.len(),
        1,
        "nothing stored for the refused address"
    );

    // SIGTERM: mailops stops cleanly.
    let status = serve.stop();
    assert!(status.success(), "mailops serve exited with {status}");
    drop(postfix);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_flows_over_a_unix_socket() {
    needs!(Database, Postfix);
    mail_flows_end_to_end(|dir| format!("unix:{}", dir.join("lmtp.sock").display())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_flows_over_tcp() {
    needs!(Database, Postfix);
    mail_flows_end_to_end(|_| format!("127.0.0.1:{}", free_port())).await;
}
