//! Outbound mail against a real gateway (Postfix with Dovecot SASL, started by the harness):
//! `smtp-test`, the encryption × authentication matrix, failures, the alternate gateway, a
//! gateway that is down for a while, two workers on one outbox, a notice in flight when serve
//! is told to stop, and XOAUTH2 with tokens from the gateway's authorization server (fetched
//! once, refreshed when refused or expired, a refused refresh token).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::db::TestDb;
use common::gateway::{Gateway, HeldPolicy};
use common::postfix::{free_port, unique_temp_dir};
use common::serve::Serve;
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
    let text = common::config::text(
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
    let (file, config) = common::config::write(dir, &text);
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

fn smtp_test(config_file: &Path, send_to: Option<&str>) -> (bool, String) {
    smtp_test_logging(config_file, send_to, "info")
}

/// `mailops smtp-test` with `MAILOPS_LOG=log`: whether it succeeded, and stdout then stderr.
fn smtp_test_logging(config_file: &Path, send_to: Option<&str>, log: &str) -> (bool, String) {
    let mut args = vec!["smtp-test"];
    if let Some(to) = send_to {
        args.extend(["--send-to", to]);
    }
    mailops(config_file, &args, log)
}

/// `mailops -c CONFIG ARGS…` with `MAILOPS_LOG=log` and the config's database and password
/// only: whether it succeeded, and stdout then stderr.
fn mailops(config_file: &Path, args: &[&str], log: &str) -> (bool, String) {
    let out = common::serve::mailops(config_file)
        .args(args)
        .env("MAILOPS_LOG", log)
        .env_remove("MAILOPS_SMTP_PASSWORD")
        .output()
        .expect("running mailops");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The last `smtp-test` result kept: (ok, report, error).
async fn saved_smtp_test(db: &TestDb) -> (bool, String, Option<String>) {
    let row = db
        .client()
        .await
        .query_one("SELECT ok, report, error FROM smtp_tests", &[])
        .await
        .expect("saved result");
    (row.get(0), row.get(1), row.get(2))
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
    let (ok, report, _) = saved_smtp_test(&db).await;
    assert!(ok && report.contains("AUTH PLAIN"), "{report}");

    // A wrong password: a clear reason, a non-zero exit, and the failure kept.
    std::fs::write(dir.join("smtp-password"), "wrong\n").expect("password");
    let (ok, text) = smtp_test(&file, None);
    assert!(!ok, "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    let (ok, _, error) = saved_smtp_test(&db).await;
    assert!(!ok);
    assert!(error.unwrap_or_default().contains("authentication failed"));

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
    let mut worker = mailops::stop::Stopper::new();
    let pool = db.pool.clone();
    worker.spawn("outbox", move |stop| outbox::work(pool, o, settings, stop));
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.stop().await;
    assert_eq!(row(&db, id).await.0, "queued");
}

/// Queues a notice with `subject` and sends it: it must go out on its first attempt.
async fn send_at_once(db: &TestDb, o: &Outbound, settings: &Settings, subject: &str) {
    let id = queue(db, o, &notice("alice@mailbox.test", subject)).await;
    assert_eq!(
        send_now(db, o, settings, id).await,
        ("sent".to_owned(), 1, None),
        "{subject}"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn xoauth2_tokens_are_reused_and_refreshed_when_refused_or_expired() {
    let g = Gateway::start();
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-outbound");
    let extra = xoauth2(&dir, &g, "starttls", &g.oauth.refresh_token());
    let (c, _) = config(&dir, &db, &g, g.submission, &extra);
    let o = outbound(&c);
    let settings = Settings::new(o).expect("settings");
    // Two notices, one token: fetched for the first, reused for the second.
    send_at_once(&db, o, &settings, "first").await;
    send_at_once(&db, o, &settings, "second").await;
    let requests = g.oauth.token_requests();
    assert_eq!(requests.len(), 1);
    let form = &requests[0];
    assert_eq!(form.get("grant_type"), Some("refresh_token"));
    assert_eq!(form.get("client_id"), Some(g.oauth.client_id.as_str()));
    assert_eq!(
        form.get("client_secret"),
        Some(g.oauth.client_secret.as_str())
    );
    assert_eq!(
        form.get("refresh_token"),
        Some(g.oauth.refresh_token().as_str())
    );
    assert_eq!(form.get("scope"), Some("SMTP.Send offline_access"));
    assert_eq!(g.oauth.introspections(), (2, 0));
    let delivered = g.wait_for_messages(2, Duration::from_secs(20));
    let authenticated = format!("(Authenticated sender: {})", g.username);
    assert!(String::from_utf8_lossy(&delivered[1]).contains(&authenticated));

    // The gateway no longer takes the cached token: AUTH is refused once, the token
    // refreshed once, and the notice goes out on the same attempt.
    g.oauth.revoke_all();
    send_at_once(&db, o, &settings, "after a revocation").await;
    assert_eq!(g.oauth.token_requests().len(), 2);
    assert_eq!(g.oauth.introspections(), (4, 1));

    // Short-lived tokens (4 s: Dovecot delays the first AUTH after a refused one by 2 s),
    // from a restart's empty cache.
    g.oauth.set_lifetime(Duration::from_secs(4));
    let settings = Settings::new(o).expect("settings");
    send_at_once(&db, o, &settings, "a short-lived token").await;
    assert_eq!(g.oauth.token_requests().len(), 3);
    // Expired: refreshed before AUTH, so the gateway never sees a dead token. This refresh
    // also rotates the refresh token, which is kept and written back to its file.
    g.oauth.set_rotation(true);
    tokio::time::sleep(Duration::from_millis(4100)).await;
    send_at_once(&db, o, &settings, "after expiry").await;
    assert_eq!(g.oauth.token_requests().len(), 4);
    assert_eq!(g.oauth.introspections(), (6, 1));
    let rotated = g.oauth.refresh_token();
    let file = std::fs::read_to_string(dir.join("refresh-token")).expect("token file");
    assert_eq!(file.trim(), rotated);
    // The old refresh token is now refused; the next refresh uses the rotated one.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    send_at_once(&db, o, &settings, "with the rotated refresh token").await;
    let requests = g.oauth.token_requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[4].get("refresh_token"), Some(rotated.as_str()));
    assert_eq!(g.oauth.introspections(), (7, 1));
    g.wait_for_messages(6, Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn xoauth2_token_endpoint_failures_are_clear_and_never_loop() {
    let g = Gateway::start();
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-outbound");

    // A refresh token the endpoint does not know: invalid_grant, the notice failed at once
    // with the endpoint's words, and nothing shown to the gateway.
    let extra = xoauth2(&dir, &g, "starttls", "tok_rt_wrong");
    let (c, _) = config(&dir, &db, &g, g.submission, &extra);
    let o = outbound(&c);
    let settings = Settings::new(o).expect("settings");
    let id = queue(&db, o, &notice("bob@mailbox.test", "never")).await;
    let (state, attempts, error) = send_now(&db, o, &settings, id).await;
    let error = error.unwrap_or_default();
    assert_eq!((state.as_str(), attempts), ("failed", 1), "{error}");
    assert_eq!(
        error,
        format!(
            "oauth2 token: token endpoint {} answered HTTP 400: invalid_grant: \
             The refresh token has expired or was revoked.",
            g.oauth.token_url()
        )
    );
    assert!(!error.contains("tok_"), "{error}");
    assert_eq!(g.oauth.token_requests().len(), 1);
    assert_eq!(g.oauth.introspections(), (0, 0));

    // The same refused refresh token is not sent again: the next notice fails the same way
    // without a request.
    let id = queue(&db, o, &notice("bob@mailbox.test", "never either")).await;
    let (state, _, again) = send_now(&db, o, &settings, id).await;
    assert_eq!(
        (state.as_str(), again.as_deref()),
        ("failed", Some(error.as_str()))
    );
    assert_eq!(g.oauth.token_requests().len(), 1);

    // A good refresh token in the file is picked up without a restart.
    let token_file = dir.join("refresh-token");
    std::fs::write(&token_file, g.oauth.refresh_token()).expect("refresh token");
    let id = queue(&db, o, &notice("bob@mailbox.test", "fixed")).await;
    assert_eq!(send_now(&db, o, &settings, id).await.0, "sent");
    assert_eq!(g.oauth.token_requests().len(), 2);

    // The endpoint is down (503): temporary, the notice stays queued for a retry.
    g.oauth.set_outage(Some(503));
    let settings = Settings::new(o).expect("settings");
    let id = queue(&db, o, &notice("carol@mailbox.test", "later")).await;
    let (state, attempts, error) = send_now(&db, o, &settings, id).await;
    let error = error.unwrap_or_default();
    assert_eq!((state.as_str(), attempts), ("queued", 1), "{error}");
    assert!(error.contains("answered HTTP 503"), "{error}");
    g.oauth.set_outage(None);
    assert_eq!(send_now(&db, o, &settings, id).await.0, "sent");

    // The endpoint cannot be reached: temporary too.
    let closed = format!("http://127.0.0.1:{}/token", free_port());
    let extra = extra.replace(&g.oauth.token_url(), &closed);
    let (c, _) = config(&dir, &db, &g, g.submission, &extra);
    let o = outbound(&c);
    let settings = Settings::new(o).expect("settings");
    let id = queue(&db, o, &notice("dave@mailbox.test", "unreachable")).await;
    let (state, _, error) = send_now(&db, o, &settings, id).await;
    let error = error.unwrap_or_default();
    assert_eq!(state, "queued", "{error}");
    assert!(
        error.starts_with(&format!(
            "oauth2 token: token endpoint {closed} unreachable: "
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_test_with_xoauth2_reports_the_token_and_never_a_secret() {
    let g = Gateway::start();
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-outbound");
    let extra = xoauth2(&dir, &g, "starttls", &g.oauth.refresh_token());
    let (_, file) = config(&dir, &db, &g, g.submission, &extra);
    // Everything every library logs, so that a secret in any of it would show.
    let (ok, text) = smtp_test_logging(&file, Some("someone@mailbox.test"), "trace");
    assert!(ok, "{text}");
    for step in [
        "STARTTLS: TLS 1.2 or newer",
        "oauth2 token: refreshed, expires in 3600 s",
        "AUTH XOAUTH2: 235 ",
        "test message to someone@mailbox.test accepted: 250",
    ] {
        assert!(text.contains(step), "{step:?} missing:\n{text}");
    }
    assert!(!text.contains("tok_"), "a secret in:\n{text}");
    g.wait_for_messages(1, Duration::from_secs(20));
    let (ok, report, _) = saved_smtp_test(&db).await;
    assert!(ok && report.contains("oauth2 token: refreshed"), "{report}");

    // A refused refresh token: the endpoint's answer, a non-zero exit, no secret.
    std::fs::write(dir.join("refresh-token"), "tok_rt_wrong\n").expect("refresh token");
    let (ok, text) = smtp_test_logging(&file, None, "trace");
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAIL  oauth2 token: token endpoint")
            && text.contains("answered HTTP 400: invalid_grant"),
        "{text}"
    );
    assert!(!text.contains("tok_"), "a secret in:\n{text}");

    // check-config neither needs nor shows the secrets; it names a missing key.
    let (ok, text) = mailops(&file, &["check-config"], "info");
    assert!(ok && !text.contains("tok_"), "{text}");
    let text = std::fs::read_to_string(&file).expect("config");
    std::fs::write(&file, text.replace("client_id = ", "# client_id = ")).expect("config");
    let (ok, text) = mailops(&file, &["check-config"], "info");
    assert!(!ok, "{text}");
    assert!(
        text.contains("outbound.oauth2.client_id: needed with outbound.auth = \"xoauth2\""),
        "{text}"
    );
}

/// SIGTERM while the gateway holds back its `250` for a notice: serve waits for the answer,
/// records the notice as sent, then exits; after a restart the notice is not sent again.
#[tokio::test(flavor = "multi_thread")]
async fn a_notice_in_flight_at_shutdown_is_sent_once() {
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
