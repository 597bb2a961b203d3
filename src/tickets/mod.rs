//! Tickets from email: ticket policies open tickets, replies add notes, notices answer.

pub mod decide;
pub mod handle;
pub mod mail;
pub mod model;
pub mod policies;
