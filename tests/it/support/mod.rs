//! The harness the integration tests share: what each test needs and whether it is here
//! (`services`), a fresh database, an LMTP client, Postfix, the SMTP gateway and its OAuth 2.0
//! authorization server, private PostgreSQL clusters, and `mailops serve` itself.

pub mod certs;
pub mod config;
pub mod db;
pub mod gateway;
pub mod lmtp;
pub mod oauth;
pub mod pgcluster;
pub mod postfix;
pub mod serve;
pub mod services;
pub mod stack;
pub mod verifier;

use std::time::{Duration, Instant};

/// Runs `done` every 100 ms until it says so, for up to `within`; fails the test, naming
/// `what`, if it never does.
pub async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
