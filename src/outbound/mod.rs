//! Outbound mail: the outbox every notice goes through, the worker that sends it through the
//! SMTP gateway (with XOAUTH2's tokens from [`oauth2`]), and `mailops smtp-test`.

pub mod oauth2;
pub mod outbox;
pub mod smtp;
pub mod smtp_test;
