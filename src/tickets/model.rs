//! The ticket policies as mailops holds them: users, queues, templates, ticket policies.

use crate::events::model::{names, Severity};

names!(
    /// Who may open tickets through a ticket policy.
    Access {
        /// Anyone.
        Open = "open",
        /// Known users only.
        Registered = "registered",
        /// Members of the template's queue only.
        Queue = "queue",
    }
);

names!(
    /// Where a ticket stands.
    Status {
        /// New, nobody on it yet.
        Open = "open",
        /// Someone is on it.
        Working = "working",
        /// Waiting for someone else.
        Pending = "pending",
        /// Done.
        Resolved = "resolved",
    }
);

/// A `users` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: i64,
    /// Its address, folded with [`crate::route::address_key`].
    pub email: String,
    /// Its display name.
    pub name: Option<String>,
}

/// A `queues` row with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Its id.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// The `users.id` of its members, ascending.
    pub member_ids: Vec<i64>,
}

/// A `ticket_templates` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its id.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// The queue its tickets go to.
    pub queue_id: Option<i64>,
    /// A new ticket's severity.
    pub severity: Severity,
    /// A new ticket's status.
    pub status: Status,
    /// A new ticket's description; `%` is replaced by the subject.
    pub description: String,
}

/// The five notices of a ticket policy; `%t` is the ticket id, `%W` its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Messages {
    /// A ticket was opened.
    pub created: String,
    /// A note was added.
    pub updated: String,
    /// The ticket could not be opened.
    pub failed: String,
    /// The sender is not a user (access `registered`).
    pub not_registered: String,
    /// The sender is not in the template's queue (access `queue`).
    pub not_in_queue: String,
}

/// A `ticket_policies` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPolicy {
    /// Its id.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// The address mail opens tickets at, folded with [`crate::route::address_key`].
    pub destination: String,
    /// The address notices come from.
    pub reply_address: String,
    /// What new tickets start as.
    pub template_id: i64,
    /// Who may open tickets.
    pub access: Access,
    /// The notices.
    pub messages: Messages,
}
