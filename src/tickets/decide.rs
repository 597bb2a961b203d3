//! What one mail to a ticket destination does, decided from what is known about it: the mail,
//! the policies in force, the ticket it answers and how many notices its sender had this hour.
//! Pure: [`super::handle`] gathers the facts and carries the plan out in the transaction that
//! stores the mail, so every rule here is tested without a database.

use super::mail;
use super::model::{Access, Template, TicketPolicy};
use crate::config::{InboundAuth, Method, Outbound, UnverifiedReply};
use crate::message::Message;
use crate::route::address_key;
use crate::state::State;
use crate::store::tickets::Ticket;

/// Which of the policy's five notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A ticket was opened.
    Created,
    /// A note was added.
    Updated,
    /// The mail could not become a ticket (no template, unparseable).
    Failed,
    /// The sender is not a registered user.
    NotRegistered,
    /// The sender is not in the template's queue.
    NotInQueue,
}

impl Kind {
    /// Its `outbox.kind`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Created => "ticket_created",
            Kind::Updated => "ticket_updated",
            Kind::Failed => "ticket_failed",
            Kind::NotRegistered => "ticket_not_registered",
            Kind::NotInQueue => "ticket_not_in_queue",
        }
    }

    /// Its text in `policy`.
    pub fn text(self, policy: &TicketPolicy) -> &str {
        let m = &policy.messages;
        match self {
            Kind::Created => &m.created,
            Kind::Updated => &m.updated,
            Kind::Failed => &m.failed,
            Kind::NotRegistered => &m.not_registered,
            Kind::NotInQueue => &m.not_in_queue,
        }
    }
}

/// The notice a plan answers the sender with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Queue this one.
    Send(Kind),
    /// None: outbound mail is not configured.
    NoOutbound(Kind),
    /// None: the sender had `[outbound] notices_per_hour` already.
    RateLimited(Kind),
    /// None: the sender is not verified, and may be forged (`[inbound.auth]
    /// notify_unverified` is off).
    Unverified(Kind),
}

/// What is known about a mail to a ticket destination.
pub struct Facts<'a> {
    /// MAIL FROM; empty for the null sender.
    pub envelope_from: &'a str,
    /// The parsed mail.
    pub message: &'a Message,
    /// The ticket destination it was delivered to.
    pub destination: &'a str,
    /// The ticket it answers (by its thread, else the token in its subject), if any.
    pub replied: Option<&'a Ticket>,
    /// Ticket notices its sender was sent in the last hour.
    pub recent_notices: i64,
    /// How its sender was verified (`[inbound.auth] trust`), or why it was not.
    pub verified: Result<Method, String>,
}

/// What to do with the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan<'a> {
    /// Noise (a bounce, an auto-reply, a loop): record why, send nothing.
    Ignore(String),
    /// Add the reply's new text to a ticket.
    Note {
        /// The ticket.
        ticket_id: i64,
        /// Who wrote it.
        author: &'a str,
        /// The answer.
        notice: Notice,
    },
    /// Open a ticket with the mail as its first note.
    Create {
        /// The policy it is opened through.
        policy: &'a TicketPolicy,
        /// The policy's template.
        template: &'a Template,
        /// Its description: the template's, with the subject in.
        description: String,
        /// Who asked.
        requester: &'a str,
        /// A reply to this ticket from someone not allowed to write to it, taken as a new
        /// request.
        instead_of_note: Option<i64>,
        /// The answer.
        notice: Notice,
    },
    /// Open nothing, record why, and say so.
    Refuse {
        /// Why.
        reason: String,
        /// Who is told.
        sender: &'a str,
        /// The answer.
        notice: Notice,
    },
}

/// Decides what the mail described by `facts` does under `state`; `outbound` is how notices
/// are sent (none without it), `auth` what an unverified sender may do: only a verified one
/// writes to a ticket, passes an access rule as a user or queue member, or is sent a notice.
/// `None` when the destination has no ticket policy in `state`: it was accepted through the
/// database before the policies reached memory, and must be tried again.
pub fn decide<'a>(
    state: &'a State,
    outbound: Option<&Outbound>,
    auth: &InboundAuth,
    facts: &Facts<'a>,
) -> Option<(&'a TicketPolicy, Plan<'a>)> {
    let policy = state.tickets.policy(facts.destination)?;
    let m = facts.message;
    let own = |address: &str| {
        state.router.route(address).is_some()
            || state.tickets.is_own(address)
            || outbound.is_some_and(|o| address_key(&o.from_address) == address_key(address))
    };
    if let Some(reason) = mail::noise(facts.envelope_from, m, own) {
        return Some((policy, Plan::Ignore(reason)));
    }
    let sender = m.from_address.as_deref().unwrap_or(facts.envelope_from);
    let unverified = facts.verified.as_ref().err();
    let notice = |kind| match outbound {
        None => Notice::NoOutbound(kind),
        Some(_) if unverified.is_some() && !auth.notify_unverified => Notice::Unverified(kind),
        Some(o) if facts.recent_notices >= o.notices_per_hour => Notice::RateLimited(kind),
        Some(_) => Notice::Send(kind),
    };
    let refuse = |kind, reason: String| Plan::Refuse {
        reason,
        sender,
        notice: notice(kind),
    };
    let mut instead_of_note = None;
    if let Some(ticket) = facts.replied {
        let allowed = address_key(&ticket.requester) == address_key(sender)
            || state.tickets.is_member(ticket.queue_id, sender)
            || state.tickets.is_user(sender);
        match unverified {
            None if allowed => {
                let plan = Plan::Note {
                    ticket_id: ticket.id,
                    author: sender,
                    notice: notice(Kind::Updated),
                };
                return Some((policy, plan));
            }
            Some(why) if allowed && auth.unverified_reply == UnverifiedReply::Store => {
                let reason = format!(
                    "reply to ticket {} from {sender}, who is not verified ({why})",
                    ticket.id
                );
                return Some((policy, refuse(Kind::Failed, reason)));
            }
            // Quoting a ticket is not enough to write to it: this is a new request.
            _ => instead_of_note = Some(ticket.id),
        }
    }
    let not_verified = |why: &str| format!("{sender} is not verified ({why})");
    let Some(template) = state.tickets.template(policy.template_id) else {
        let reason = "the ticket template is missing".to_owned();
        return Some((policy, refuse(Kind::Failed, reason)));
    };
    let create = || Plan::Create {
        policy,
        template,
        description: mail::description(&template.description, m.subject.as_deref().unwrap_or("")),
        requester: sender,
        instead_of_note,
        notice: notice(Kind::Created),
    };
    let plan = match policy.access {
        _ if !m.parsed => refuse(Kind::Failed, "the mail could not be parsed".to_owned()),
        Access::Registered if !state.tickets.is_user(sender) => refuse(
            Kind::NotRegistered,
            format!("{sender} is not a registered user"),
        ),
        Access::Queue if !state.tickets.is_member(template.queue_id, sender) => refuse(
            Kind::NotInQueue,
            format!("{sender} is not a member of the template's queue"),
        ),
        Access::Registered => match unverified {
            Some(why) => refuse(Kind::NotRegistered, not_verified(why)),
            None => create(),
        },
        Access::Queue => match unverified {
            Some(why) => refuse(Kind::NotInQueue, not_verified(why)),
            None => create(),
        },
        Access::Open => create(),
    };
    Some((policy, plan))
}

/// What `mailops policy test --to DESTINATION` shows of a ticket mail: the policy, the ticket
/// it answers, the decision and its notice.
pub fn report(policy: &TicketPolicy, facts: &Facts<'_>, plan: &Plan<'_>) -> String {
    let replied = facts.replied;
    let mut out = format!(
        "ticket policy: {} ({}, access {})\n",
        policy.name,
        policy.destination,
        policy.access.as_str()
    );
    out += &match &facts.verified {
        Ok(method) => format!("sender: verified by {}\n", method.as_str()),
        Err(why) => format!("sender: not verified ({why})\n"),
    };
    out += &match replied {
        Some(t) => format!("answers: ticket {} (requester {})\n", t.id, t.requester),
        None => "answers: no ticket\n".to_owned(),
    };
    let notice = match plan {
        Plan::Ignore(reason) => {
            out += &format!("decision: ignore ({reason}); no notice\n");
            return out;
        }
        Plan::Note {
            ticket_id,
            author,
            notice,
        } => {
            out += &format!("decision: add a note by {author} to ticket {ticket_id}\n");
            notice
        }
        Plan::Create {
            description,
            requester,
            instead_of_note,
            notice,
            ..
        } => {
            if let Some(id) = instead_of_note {
                out += &format!(
                    "  {requester} may not write to ticket {id}: taken as a new request\n"
                );
            }
            out += &format!("decision: open a ticket {description:?} for {requester}\n");
            notice
        }
        Plan::Refuse { reason, notice, .. } => {
            out += &format!("decision: refuse ({reason})\n");
            notice
        }
    };
    out += &match notice {
        Notice::Send(kind) => format!("notice: {}\n", kind.name()),
        Notice::NoOutbound(kind) => format!("notice: none ({} without [outbound])\n", kind.name()),
        Notice::RateLimited(kind) => format!(
            "notice: none ({}: the sender had [outbound] notices_per_hour)\n",
            kind.name()
        ),
        Notice::Unverified(kind) => format!(
            "notice: none ({}: the sender is not verified, and [inbound.auth] \
             notify_unverified is off)\n",
            kind.name()
        ),
    };
    out
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
