//! mailops turns email into operations data in PostgreSQL.
//!
//! Postfix accepts SMTP and delivers over LMTP to [`lmtp`]; each message is parsed once
//! ([`message`]), each recipient is routed ([`route`]), the events pipeline decides what an
//! alert does ([`events`], with the policies of [`policy`]), and [`delivery`] stores each
//! recipient's copy with everything it causes in one PostgreSQL transaction ([`store`]) before
//! the `250` goes back. [`outbound`] sends what mailops queues through the SMTP gateway.
//! [`config`] is the `mailops.toml` tree, [`postfix`] renders Postfix's configuration from it,
//! and [`serve`] runs it all.

pub mod auth;
pub mod config;
pub mod delivery;
pub mod envelope;
pub mod events;
pub mod expect;
pub mod group;
pub mod lmtp;
pub mod message;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod postfix;
pub mod roundtrip;
pub mod route;
pub mod serve;
pub mod state;
pub mod stop;
pub mod store;
pub mod tickets;

/// Lower-case hex of `bytes` (idempotency keys, CRAM-MD5 digests).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
