//! Test harness shared by the integration tests: a fresh database, an LMTP client, Postfix, the
//! SMTP gateway and its OAuth 2.0 authorization server.
// Each test crate uses a different part of the harness.
#![allow(dead_code)]

pub mod certs;
pub mod config;
pub mod db;
pub mod gateway;
pub mod lmtp;
pub mod oauth;
pub mod pgcluster;
pub mod postfix;
pub mod serve;
pub mod stack;
