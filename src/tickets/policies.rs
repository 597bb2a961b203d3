//! The ticket policies held in memory: looked up by destination, with the users and queue
//! members the access rules and reply checks need.

use std::collections::{HashMap, HashSet};

use super::model::{Queue, Template, TicketPolicy, User};
use crate::route::address_key;

/// Every ticket policy and what it refers to; built once per change, shared by all sessions.
#[derive(Debug, Default)]
pub struct Policies {
    by_destination: HashMap<String, TicketPolicy>,
    templates: HashMap<i64, Template>,
    users: HashSet<String>,
    members: HashMap<i64, HashSet<String>>,
    reply_addresses: HashSet<String>,
}

impl Policies {
    /// Indexes the rows read from the database.
    pub fn new(
        users: Vec<User>,
        queues: Vec<Queue>,
        templates: Vec<Template>,
        ticket_policies: Vec<TicketPolicy>,
    ) -> Policies {
        let emails: HashMap<i64, String> = users
            .into_iter()
            .map(|u| (u.id, address_key(&u.email)))
            .collect();
        Policies {
            members: queues
                .into_iter()
                .map(|q| {
                    let members = q
                        .member_ids
                        .iter()
                        .filter_map(|id| emails.get(id).cloned())
                        .collect();
                    (q.id, members)
                })
                .collect(),
            users: emails.into_values().collect(),
            templates: templates.into_iter().map(|t| (t.id, t)).collect(),
            reply_addresses: ticket_policies
                .iter()
                .map(|p| address_key(&p.reply_address))
                .collect(),
            by_destination: ticket_policies
                .into_iter()
                .map(|p| (address_key(&p.destination), p))
                .collect(),
        }
    }

    /// The policy whose destination is `address`.
    pub fn policy(&self, address: &str) -> Option<&TicketPolicy> {
        self.by_destination.get(&address_key(address))
    }

    /// A template by id.
    pub fn template(&self, id: i64) -> Option<&Template> {
        self.templates.get(&id)
    }

    /// Whether `address` is a user.
    pub fn is_user(&self, address: &str) -> bool {
        self.users.contains(&address_key(address))
    }

    /// Whether `address` is a member of queue `queue_id`.
    pub fn is_member(&self, queue_id: Option<i64>, address: &str) -> bool {
        queue_id
            .and_then(|id| self.members.get(&id))
            .is_some_and(|m| m.contains(&address_key(address)))
    }

    /// Whether notices are sent from `address` (a destination or a reply address): mail from
    /// it is mailops talking to itself.
    pub fn is_own(&self, address: &str) -> bool {
        let key = address_key(address);
        self.reply_addresses.contains(&key) || self.by_destination.contains_key(&key)
    }

    /// How many ticket policies there are.
    pub fn len(&self) -> usize {
        self.by_destination.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_destination.is_empty()
    }
}
