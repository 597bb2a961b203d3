//! The integration tests, one crate: the real binary, a real PostgreSQL, real Postfix instances
//! and a real SMTP gateway, driven from `support`. A test that needs a service starts with
//! `needs!(…)` (`support::services`): a plain `cargo test` skips it, with a line saying so,
//! where the service is missing, and `scripts/test` runs every one of them.
//!
//! `cargo test --test it policy::` runs one module's tests; `MAILOPS_KEEP_TEST_DIRS=1` keeps the
//! temporary directories (Postfix, gateway, cluster) of every test, not only failing ones.

mod support;

mod database;
mod e2e;
mod events;
mod events_fixtures;
mod expect;
mod faults;
mod flood;
mod gateway_harness;
mod hostile;
mod metrics;
mod outbound;
mod policy;
mod postfix_config;
mod retention;
mod roundtrip;
mod security;
mod sender_trust;
mod store;
mod tickets;
