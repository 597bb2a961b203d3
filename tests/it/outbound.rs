//! Outbound mail against a real gateway (Postfix with Dovecot SASL, started by the harness):
//! the encryption × authentication matrix, failures, the alternate gateway, a gateway that is
//! down for a while, two workers on one outbox, a notice in flight when serve is told to stop;
//! `smtp_test` has `mailops smtp-test`, `xoauth2` the tokens from the gateway's authorization
//! server (fetched once, refreshed when refused or expired, a refused refresh token).

mod smtp_test;
mod xoauth2;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::support;
use crate::support::db::TestDb;
use crate::support::gateway::{Gateway, HeldPolicy};
use crate::support::postfix::{free_port, unique_temp_dir};
use crate::support::serve::Serve;
use crate::support::services::needs;
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
    let text = support::config::text(
        &db.url,
        &format!("127.0.0.1:{}", free_port()),
        "",
        &["mon.example.com"],
        &format!(
            r#"[outbound]
from_address = "noreply@mon.example.com"
gateway = "{gateway}"
username = "{}"
password_file = "{}"
tls_ca_file = "{}"
timeout_s = 10
{extra}"#,
            g.username,
            password_file.display(),
            g.ca_cert.display()
        ),
    );
    let (file, config) = support::config::write(dir, &text);
    (config, file)
}

/// `[outbound]` lines for XOAUTH2 with `encryption`, through `g`'s authorization server,
/// with `refresh_token` and the client secret written to files in `dir`.
fn xoauth2(dir: &Path, g: &Gateway, encryption: &str, refresh_token: &str) -> String {
    let (secret_file, token_file) = (dir.join("client-secret"), dir.join("refresh-token"));
    std::fs::write(&secret_file, format!("{}\n", g.oauth.client_secret)).expect("secret");
    std::fs::write(&token_file, format!("{refresh_token}\n")).expect("refresh token");
    format!(
        "encryption = \"{encryption}\"\nauth = \"xoauth2\"\n[outbound.oauth2]\n\
         token_url = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\n\
         refresh_token_file = \"{}\"\nscope = \"SMTP.Send offline_access\"\n",
        g.oauth.token_url(),
        g.oauth.client_id,
        secret_file.display(),
        token_file.display()
    )
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

#[tokio::test(flavor = "multi_thread")]
async fn notices_go_out_with_every_encryption_and_authentication() {
    needs!(Database, Postfix, Dovecot);
    let g = Gateway::start();
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-outbound");
    let refresh_token = g.oauth.refresh_token();
    let (smtps_xoauth2, plain_xoauth2) = (
        xoauth2(&dir, &g, "smtps", &refresh_token),
        xoauth2(&dir, &g, "none", &refresh_token),
    );
    let cases = [
        (g.smtps, smtps_xoauth2.as_str()),
        (g.plain, plain_xoauth2.as_str()),
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
    needs!(Database, Postfix, Dovecot);
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
    needs!(Database, Postfix, Dovecot);
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
    let mut worker = mailops::stop::Stopper::new();
    let pool = db.pool.clone();
    worker.spawn("outbox", move |stop| outbox::work(pool, o, settings, stop));
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.stop().await;
    assert_eq!(row(&db, id).await.0, "queued");
}

/// (state, attempts, last_error) of the outbox row `id` after one `send_one` with `settings`.
async fn send_now(
    db: &TestDb,
    o: &Outbound,
    settings: &Settings,
    id: i64,
) -> (String, i32, Option<String>) {
    retry_now(db, id).await;
    assert!(outbox::send_one(&db.pool, o, settings)
        .await
        .expect("claimed"));
    let (state, attempts, error, _) = row(db, id).await;
    (state, attempts, error)
}

/// SIGTERM while the gateway holds back its `250` for a notice: serve waits for the answer,
/// records the notice as sent, then exits; after a restart the notice is not sent again.
#[tokio::test(flavor = "multi_thread")]
async fn a_notice_in_flight_at_shutdown_is_sent_once() {
    needs!(Database, Postfix, Dovecot);
    let db = TestDb::new().await;
    let g = Gateway::start();
    let dir = unique_temp_dir("mailops-outbound-shutdown");
    let (c, file) = config(&dir, &db, &g, g.held, "encryption = \"none\"");
    let mut policy = HeldPolicy::start(g.held_policy).await;
    let id = queue(
        &db,
        outbound(&c),
        &notice("frank@mailbox.test", "held back"),
    )
    .await;

    let serve = Serve::start(&file, &c);
    policy.wait_until_held(Duration::from_secs(30)).await;
    // SIGTERM now: serve stops taking mail, but the send in progress is its unit of work.
    let stopping = tokio::task::spawn_blocking(move || serve.stop());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !stopping.is_finished(),
        "serve exited while a send was in progress"
    );
    assert_eq!(row(&db, id).await.0, "queued");
    policy.release();
    let status = stopping.await.expect("stopped");
    assert!(status.success(), "serve exited with {status}");
    assert_eq!(
        row(&db, id).await.0,
        "sent",
        "committed before serve exited"
    );
    assert_eq!(g.wait_for_messages(1, Duration::from_secs(20)).len(), 1);

    // Restarted, serve finds nothing left to send.
    let serve = Serve::start(&file, &c);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(serve.stop().success());
    assert_eq!(row(&db, id).await.0, "sent");
    assert_eq!(row(&db, id).await.1, 1, "one attempt");
    assert_eq!(g.messages().len(), 1, "the notice arrived once");
    let _ = std::fs::remove_dir_all(&dir);
}
