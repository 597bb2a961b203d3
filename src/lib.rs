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
pub mod policy;
pub mod postfix;
pub mod route;
pub mod serve;
pub mod store;
