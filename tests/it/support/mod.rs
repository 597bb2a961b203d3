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
