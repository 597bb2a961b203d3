//! Outbound mail: the outbox every notice goes through, the worker that sends it through the
//! SMTP gateway, and `mailops smtp-test`.

pub mod outbox;
pub mod smtp;
pub mod smtp_test;
