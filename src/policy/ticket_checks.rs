//! The checks of the ticket entries (users, queues, ticket templates, ticket policies) that
//! need nothing but the file, and of ticket policy destinations against the config.

use std::collections::HashSet;

use super::check::{check_mailbox, optional_text, unique_name, Kind, Problems, Seen};
use super::file::{Entries, TicketPolicyEntry, DEFAULT_DESCRIPTION};
use crate::config::Inbound;
use crate::route::{address_key, config_recipients};

/// The value checks of users, queues, ticket templates and ticket policies.
pub(crate) fn check_tickets(entries: &Entries, problems: &mut Problems) {
    let mut emails = Seen::new(Kind::User);
    for (i, u) in &entries.users {
        let mut at = |text: String| problems.entry(Kind::User, *i, text);
        match check_mailbox(&u.email) {
            Err(why) => at(format!("email: {why}")),
            Ok(()) => emails.check(&u.email, *i, "email", &mut at),
        }
        optional_text(&u.name, "name", &mut at);
    }

    let mut names = Seen::new(Kind::Queue);
    for (i, q) in &entries.queues {
        let mut at = |text: String| problems.entry(Kind::Queue, *i, text);
        unique_name(&q.name, &mut names, *i, &mut at);
        let mut members = HashSet::new();
        for member in &q.members {
            if !members.insert(address_key(member)) {
                at(format!(
                    "members: {member:?} is listed twice (addresses are compared ignoring case)"
                ));
            }
        }
    }

    let mut names = Seen::new(Kind::TicketTemplate);
    for (i, t) in &entries.ticket_templates {
        let mut at = |text: String| problems.entry(Kind::TicketTemplate, *i, text);
        unique_name(&t.name, &mut names, *i, &mut at);
        optional_text(&t.queue, "queue", &mut at);
        if t.description.is_empty() {
            at(format!(
                "description: must not be empty (leave it out for {DEFAULT_DESCRIPTION:?})"
            ));
        }
    }

    let mut names = Seen::new(Kind::TicketPolicy);
    let mut destinations = Seen::addresses(Kind::TicketPolicy);
    for (i, p) in &entries.ticket_policies {
        let mut at = |text: String| problems.entry(Kind::TicketPolicy, *i, text);
        unique_name(&p.name, &mut names, *i, &mut at);
        match check_mailbox(&p.destination) {
            Err(why) => at(format!("destination: {why}")),
            Ok(()) => destinations.check(&p.destination, *i, "destination", &mut at),
        }
        if let Err(why) = check_mailbox(&p.reply_address) {
            at(format!("reply_address: {why}"));
        }
        if p.template.is_empty() {
            at("template: must not be empty".into());
        }
        for (key, text) in p.notices() {
            if text.trim().is_empty() {
                at(format!(
                    "{key}: must not be empty (leave it out for the default notice)"
                ));
            }
        }
    }
}

/// Ticket policy destinations mail can reach: at one of the authorized domains (Postfix refuses
/// mail for any other), and not an address the config routes itself (`notify@…`), which would
/// keep its own route.
pub(crate) fn check_destinations(
    policies: &[(usize, TicketPolicyEntry)],
    inbound: &Inbound,
    problems: &mut Problems,
) {
    let taken: HashSet<String> = config_recipients(inbound)
        .into_iter()
        .map(|(address, _)| address)
        .collect();
    for (i, p) in policies {
        let Some((_, domain)) = p.destination.rsplit_once('@') else {
            continue; // not an address: reported by the file's own checks
        };
        let domain = domain.to_ascii_lowercase();
        let why = if !inbound.authorized_domains.contains(&domain) {
            format!(
                "{:?} is not at an authorized domain of the config ([inbound] authorized_domains: {}), so Postfix would refuse mail for it",
                p.destination,
                inbound.authorized_domains.join(", ")
            )
        } else if taken.contains(&address_key(&p.destination)) {
            format!(
                "{:?} is the config's events address (notify_local_part at an authorized domain)",
                p.destination
            )
        } else {
            continue;
        };
        problems.entry(Kind::TicketPolicy, *i, format!("destination: {why}"));
    }
}
