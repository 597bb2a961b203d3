//! XOAUTH2 with tokens from the gateway's authorization server: fetched once and reused,
//! refreshed when the gateway refuses one or it expires, and token endpoint failures that are
//! reported clearly and never retried in a loop.

use std::time::Duration;

use super::{config, notice, outbound, queue, send_now, xoauth2};
use crate::support::db::TestDb;
use crate::support::gateway::Gateway;
use crate::support::postfix::{free_port, unique_temp_dir};
use crate::support::services::needs;
use mailops::config::Outbound;
use mailops::outbound::smtp::Settings;

/// Queues a notice with `subject` and sends it: it must go out on its first attempt.
async fn send_at_once(db: &TestDb, o: &Outbound, settings: &Settings, subject: &str) {
    let id = queue(db, o, &notice("alice@mailbox.test", subject)).await;
    assert_eq!(
        send_now(db, o, settings, id).await,
        ("sent".to_owned(), 1, None),
        "{subject}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xoauth2_tokens_are_reused_and_refreshed_when_refused_or_expired() {
    needs!(Database, Postfix, Dovecot);
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
    needs!(Database, Postfix, Dovecot);
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
