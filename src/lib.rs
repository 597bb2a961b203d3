//! mailops turns email into operations data in PostgreSQL.
//!
//! Postfix accepts SMTP and delivers over LMTP to [`lmtp`]; each message is parsed once
//! ([`message`]), each recipient is routed ([`route`]) and stored in its own PostgreSQL
//! transaction ([`store`]) before the `250` goes back. [`config`] is the `mailops.toml`
//! tree and [`postfix`] renders Postfix's configuration from it.

pub mod config;
pub mod delivery;
pub mod events;
pub mod group;
pub mod lmtp;
pub mod message;
pub mod outbound;
pub mod policy;
pub mod postfix;
pub mod route;
pub mod serve;
pub mod store;

/// Lower-case hex of `bytes` (idempotency keys, CRAM-MD5 digests).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
