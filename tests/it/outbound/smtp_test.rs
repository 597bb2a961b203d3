//! `mailops smtp-test`: each step reported, the result kept in the database, and with XOAUTH2
//! the token fetched and never a secret shown.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{config, xoauth2};
use crate::support;
use crate::support::db::TestDb;
use crate::support::gateway::Gateway;
use crate::support::postfix::{free_port, unique_temp_dir};
use crate::support::services::needs;

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
    let out = support::serve::mailops(config_file)
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
    needs!(Database, Postfix, Dovecot);
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
async fn smtp_test_with_xoauth2_reports_the_token_and_never_a_secret() {
    needs!(Database, Postfix, Dovecot);
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
        text.contains("outbound.oauth2.client_id (line ")
            && text.contains("): needed with outbound.auth = \"xoauth2\""),
        "{text}"
    );
}
