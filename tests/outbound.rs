//! Outbound mail against a real gateway (Postfix with Dovecot SASL, started by the harness):
//! `smtp-test`, the encryption × authentication matrix, failures, the alternate gateway, a
//! gateway that is down for a while, and two workers on one outbox.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::db::TestDb;
use common::gateway::Gateway;
use common::postfix::{free_port, unique_temp_dir};
use mailops::config::{Config, Outbound};
use mailops::outbound::outbox::{self, Notice};
use mailops::outbound::smtp::Settings;

/// A config for `db` sending through `gateway` as `[outbound]` says (`extra` lines appended).
fn config(
    dir: &Path,
    db: &TestDb,
    g: &Gateway,
    gateway: SocketAddr,
    extra: &str,
) -> (Config, std::path::PathBuf) {
    let password_file = dir.join("smtp-password");
    std::fs::write(&password_file, format!("{}\n", g.password)).expect("password file");
    let text = format!(
        r#"
[database]
url = "{}"
[lmtp]
listen = "127.0.0.1:{}"
[inbound]
authorized_domains = ["mon.example.com"]
[outbound]
from_address = "noreply@mon.example.com"
gateway = "{gateway}"
username = "{}"
password_file = "{}"
tls_ca_file = "{}"
timeout_s = 10
{extra}
"#,
        db.url,
        free_port(),
        g.username,
        password_file.display(),
        g.ca_cert.display()
    );
    let file = dir.join("mailops.toml");
    std::fs::write(&file, &text).expect("config file");
    (Config::parse(&text, None).expect("test config"), file)
}

fn outbound(c: &Config) -> &Outbound {
    c.outbound.as_ref().expect("[outbound]")
}

/// Queues `notice`; returns its outbox id.
async fn queue(db: &TestDb, o: &Outbound, notice: &Notice) -> i64 {
    let client = db.client().await;
    outbox::enqueue(&**client, o, notice).await.expect("queued")
}

fn notice(to: &str, subject: &str) -> Notice {
    Notice {
        to: to.into(),
        subject: subject.into(),
        body: "Your ticket was created.\n".into(),
        in_reply_to: Some("request-1@example.org".into()),
        references: vec!["request-1@example.org".into()],
        auto_submitted: "auto-replied",
        ..Notice::default()
    }
}

/// Makes an outbox row due now, as if its back-off had passed.
async fn retry_now(db: &TestDb, id: i64) {
    db.client()
        .await
        .execute(
            "UPDATE outbox SET next_attempt_at = now() WHERE id = $1",
            &[&id],
        )
        .await
        .expect("due now");
}

/// (state, attempts, last_error, sent_via) of an outbox row.
async fn row(db: &TestDb, id: i64) -> (String, i32, Option<String>, Option<String>) {
    let r = db
        .client()
        .await
        .query_one(
            "SELECT state, attempts, last_error, sent_via FROM outbox WHERE id = $1",
            &[&id],
        )
        .await
        .expect("outbox row");
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

fn smtp_test(config_file: &Path, send_to: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailops"));
    cmd.arg("-c").arg(config_file).arg("smtp-test");
    if let Some(to) = send_to {
        cmd.args(["--send-to", to]);
    }
    let out = cmd
        .env_remove("DATABASE_URL")
        .env_remove("MAILOPS_DATABASE_URL")
        .env_remove("MAILOPS_SMTP_PASSWORD")
        .output()
        .expect("running smtp-test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_test_reports_each_step_and_keeps_the_result() {
    let g = Gateway::start();
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-outbound");
    let (_, file) = config(
        &dir,
        &db,
        &g,
        g.submission,
        "encryption = \"starttls\"\nauth = \"plain\"",
    );
    let (ok, text) = smtp_test(&file, Some("someone@mailbox.test"));
    assert!(ok, "{text}");
    for step in [
        "connected to 127.0.0.1:",
        "STARTTLS: TLS 1.2 or newer",
        "AUTH PLAIN: ",
        "test message to someone@mailbox.test accepted: 250",
    ] {
        assert!(text.contains(step), "{step:?} missing:\n{text}");
    }
    let delivered = g.wait_for_messages(1, Duration::from_secs(20));
    let message = String::from_utf8_lossy(&delivered[0]);
    assert!(
        message.contains("Subject: mailops SMTP test through 127.0.0.1:"),
        "{message}"
    );
    assert!(
        message.contains("Auto-Submitted: auto-generated"),
        "{message}"
    );
    let saved = db
        .client()
        .await
        .query_one("SELECT ok, report FROM smtp_tests", &[])
        .await
        .expect("saved result");
    assert!(saved.get::<_, bool>(0));
    assert!(saved.get::<_, &str>(1).contains("AUTH PLAIN"));

    // A wrong password: a clear reason, a non-zero exit, and the failure kept.
    std::fs::write(dir.join("smtp-password"), "wrong\n").expect("password");
    let (ok, text) = smtp_test(&file, None);
    assert!(!ok, "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    let saved = db
        .client()
        .await
        .query_one("SELECT ok, error FROM smtp_tests", &[])
        .await
        .expect("saved result");
    assert!(!saved.get::<_, bool>(0));
    assert!(saved
        .get::<_, Option<&str>>(1)
        .unwrap_or("")
        .contains("authentication failed"));

    // TLS refused: SMTPS against a port that speaks plain SMTP.
    let (_, file) = config(&dir, &db, &g, g.open, "encryption = \"smtps\"");
    let (ok, text) = smtp_test(&file, None);
    assert!(!ok, "{text}");
    assert!(
        text.contains("TLS failed") || text.contains("cannot connect"),
        "{text}"
    );

    // Unreachable.
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let (_, file) = config(&dir, &db, &g, closed, "encryption = \"none\"");
    let (ok, text) = smtp_test(&file, None);
    assert!(!ok, "{text}");
    assert!(text.contains("cannot connect"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn notices_go_out_with_every_encryption_and_authentication() {
    let g = Gateway::start();
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-outbound");
    let cases = [
        (g.submission, "encryption = \"starttls\"\nauth = \"plain\""),
        (g.submission, "encryption = \"starttls\"\nauth = \"login\""),
        (g.smtps, "encryption = \"smtps\"\nauth = \"login\""),
        (g.smtps, "encryption = \"smtps\"\nauth = \"plain\""),
        (g.plain, "encryption = \"none\"\nauth = \"plain\""),
        (g.plain, "encryption = \"none\"\nauth = \"cram-md5\""),
        (
            g.submission,
            "encryption = \"starttls\"\nauth = \"cram-md5\"",
        ),
        (g.open, "encryption = \"none\"\nauth = \"none\""),
    ];
    for (i, (gateway, extra)) in cases.iter().enumerate() {
        let (c, _) = config(&dir, &db, &g, *gateway, extra);
        let o = outbound(&c);
        let settings = Settings::new(o).expect("settings");
        let subject = format!("Ticket {i} created");
        let id = queue(&db, o, &notice("alice@mailbox.test", &subject)).await;
        assert!(outbox::send_one(&db.pool, o, &settings)
            .await
            .expect("claimed"));
        let (state, attempts, error, via) = row(&db, id).await;
        assert_eq!(
            (state.as_str(), attempts, error),
            ("sent", 1, None),
            "{extra}"
        );
        assert!(via.unwrap_or_default().contains(" 250 "), "{extra}");
        let delivered = g.wait_for_messages(i + 1, Duration::from_secs(20));
        let text = String::from_utf8_lossy(&delivered[i]).into_owned();
        for header in [
            format!("Subject: {subject}"),
            "Auto-Submitted: auto-replied".into(),
            "In-Reply-To: <request-1@example.org>".into(),
            "From: mailops <noreply@mon.example.com>".into(),
        ] {
            assert!(
                text.contains(&header),
                "{extra}: {header:?} missing:\n{text}"
            );
        }
    }
    let sent: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM outbox WHERE state = 'sent' AND sent_at IS NOT NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(sent, cases.len() as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_retry_use_the_alternate_and_end_in_failed() {
    let mut g = Gateway::start();
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-outbound");

    // The primary cannot be reached: the alternate takes it.
    let closed = format!("127.0.0.1:{}", free_port());
    let alt = format!("gateway_alt = \"{}\"\nencryption = \"none\"", g.open);
    let (c, _) = config(&dir, &db, &g, closed.parse().expect("addr"), &alt);
    let o = outbound(&c);
    let settings = Settings::new(o).expect("settings");
    let id = queue(&db, o, &notice("bob@mailbox.test", "via alt")).await;
    assert!(outbox::send_one(&db.pool, o, &settings)
        .await
        .expect("claimed"));
    let (state, _, _, via) = row(&db, id).await;
    assert_eq!(state, "sent");
    assert!(via.unwrap_or_default().starts_with(&g.open.to_string()));

    // The gateway is down for a while: the notice waits, then goes out once.
    let (c, _) = config(&dir, &db, &g, g.open, "encryption = \"none\"");
    let o = outbound(&c);
    let settings = Settings::new(o).expect("settings");
    g.stop_smtp();
    let id = queue(&db, o, &notice("carol@mailbox.test", "later")).await;
    assert!(outbox::send_one(&db.pool, o, &settings)
        .await
        .expect("claimed"));
    let (state, attempts, error, _) = row(&db, id).await;
    assert_eq!((state.as_str(), attempts), ("queued", 1));
    assert!(error.unwrap_or_default().starts_with("cannot connect"));
    // Not due yet (back-off): nothing is claimed.
    assert!(!outbox::send_one(&db.pool, o, &settings)
        .await
        .expect("nothing due"));
    g.start_smtp();
    retry_now(&db, id).await;
    assert!(outbox::send_one(&db.pool, o, &settings)
        .await
        .expect("claimed"));
    assert_eq!(row(&db, id).await.0, "sent");
    let delivered = g.wait_for_messages(2, Duration::from_secs(20));
    let later = delivered
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains("Subject: later"))
        .count();
    assert_eq!(later, 1);

    // A refused password, attempt after attempt, ends in `failed` with the last error.
    let (c, _) = config(
        &dir,
        &db,
        &g,
        g.submission,
        "encryption = \"starttls\"\nauth = \"plain\"\nmax_attempts = 2",
    );
    std::fs::write(dir.join("smtp-password"), "wrong\n").expect("password");
    let o = outbound(&c);
    let settings = Settings::new(o).expect("settings");
    let id = queue(&db, o, &notice("dave@mailbox.test", "never")).await;
    for _ in 0..2 {
        retry_now(&db, id).await;
        assert!(outbox::send_one(&db.pool, o, &settings)
            .await
            .expect("claimed"));
    }
    let (state, attempts, error, _) = row(&db, id).await;
    assert_eq!((state.as_str(), attempts), ("failed", 2));
    assert!(error
        .unwrap_or_default()
        .starts_with("authentication failed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_never_send_a_row_twice_and_the_switches_hold() {
    let g = Gateway::start();
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-outbound");
    let (c, _) = config(
        &dir,
        &db,
        &g,
        g.open,
        "encryption = \"none\"\naddress_override = \"override@mailbox.test\"",
    );
    let o = outbound(&c).clone();
    let settings = std::sync::Arc::new(Settings::new(&o).expect("settings"));
    for i in 0..20 {
        queue(
            &db,
            &o,
            &notice(&format!("user{i}@mailbox.test"), &format!("n{i}")),
        )
        .await;
    }
    let other = mailops::store::pool(&db.url, 2).expect("pool");
    let drain = |pool: deadpool_postgres::Pool| {
        let (o, settings) = (o.clone(), settings.clone());
        async move {
            let mut sent = 0;
            while outbox::send_one(&pool, &o, &settings).await.expect("send") {
                sent += 1;
            }
            sent
        }
    };
    let (a, b) = tokio::join!(drain(db.pool.clone()), drain(other));
    assert_eq!(a + b, 20);
    let delivered = g.wait_for_messages(20, Duration::from_secs(30));
    assert_eq!(delivered.len(), 20, "each row exactly once");
    // address_override: all of it went to the override address (the To header is kept).
    let log = g.log();
    assert!(log.contains("to=<override@mailbox.test>"), "{log}");
    assert!(!log.contains("to=<user3@mailbox.test>"), "{log}");

    // block_outgoing: the worker keeps everything queued.
    let (c, _) = config(
        &dir,
        &db,
        &g,
        g.open,
        "encryption = \"none\"\nblock_outgoing = true",
    );
    let o = std::sync::Arc::new(outbound(&c).clone());
    let id = queue(&db, &o, &notice("eve@mailbox.test", "blocked")).await;
    let worker = tokio::spawn(outbox::work(db.pool.clone(), o, settings));
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.abort();
    assert_eq!(row(&db, id).await.0, "queued");
}
