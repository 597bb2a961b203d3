//! Tickets from email: ticket policies open tickets, replies add notes, notices answer.

pub mod model;
