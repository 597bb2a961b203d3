//! One mail to a ticket destination, carried out in the transaction that stores it, as
//! [`super::decide`] plans it: noise is recorded and dropped, a reply from someone allowed adds a
//! note, anything else is a request that opens a ticket if the sender passes the policy's
//! access rule; each outcome but noise queues its notice.

use tokio_postgres::GenericClient;

use super::decide::{decide, Facts, Notice, Plan};
use super::mail;
use super::model::TicketPolicy;
use crate::auth::Verification;
use crate::config::{InboundAuth, Outbound};
use crate::message::Message;
use crate::outbound::outbox;
use crate::state::State;
use crate::store::{self, tickets};

/// What a ticket mail did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Opened this ticket.
    Created(i64),
    /// Added a note to this ticket.
    Noted(i64),
    /// Opened nothing, and said why in a notice.
    Refused(String),
    /// Noise: nothing done, nothing sent.
    Ignored(String),
}

impl Outcome {
    /// For the delivery log line.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Created(id) => format!("ticket {id} created"),
            Outcome::Noted(id) => format!("note added to ticket {id}"),
            Outcome::Refused(why) => format!("refused: {why}"),
            Outcome::Ignored(why) => format!("ignored: {why}"),
        }
    }
}

/// One recipient's copy of a mail to a ticket destination, already stored.
pub struct Mail<'a> {
    /// MAIL FROM; empty for the null sender.
    pub envelope_from: &'a str,
    /// The parsed mail, with its attachments.
    pub message: &'a Message,
    /// The ticket destination it was delivered to.
    pub destination: &'a str,
    /// Its `inbound_messages.id`.
    pub inbound_id: i64,
    /// What was verified about its sender.
    pub sender: &'a Verification,
}

/// What handling needs besides the mail.
pub struct Context<'a> {
    /// The recipients and policies in force.
    pub state: &'a State,
    /// How notices are sent; without it none are queued.
    pub outbound: Option<&'a Outbound>,
    /// What verifies a sender, and what an unverified one may do.
    pub auth: &'a InboundAuth,
}

/// Carries out `mail` through `client` (the transaction that stored it): gathers what the
/// database knows of it, decides ([`decide`]), and writes the plan.
pub async fn handle(
    client: &impl GenericClient,
    ctx: &Context<'_>,
    mail: &Mail<'_>,
) -> Result<Outcome, store::Error> {
    let m = mail.message;
    let replied = replied_ticket(client, m).await?;
    let sender = m.from_address.as_deref().unwrap_or(mail.envelope_from);
    let recent_notices = match ctx.outbound {
        Some(_) => store::outbox::recent(client, sender, "ticket_").await?,
        None => 0,
    };
    let facts = Facts {
        envelope_from: mail.envelope_from,
        message: m,
        destination: mail.destination,
        replied: replied.as_ref(),
        recent_notices,
        verified: mail.sender.verified_by(&ctx.auth.trust),
    };
    let Some((policy, plan)) = decide(ctx.state, ctx.outbound, ctx.auth, &facts) else {
        // Accepted through the database before the reload reached memory: try again soon.
        return Err(store::Error::Stale(format!(
            "no ticket policy for {} yet",
            mail.destination
        )));
    };
    let id = mail.inbound_id;
    match plan {
        Plan::Ignore(reason) => {
            tickets::ignore(client, id, &reason).await?;
            Ok(Outcome::Ignored(reason))
        }
        Plan::Note {
            ticket_id,
            author,
            notice,
        } => {
            let body = mail::reply_text(&m.body);
            tickets::add_note(client, ticket_id, author, &body, &m.attachments, id).await?;
            remember(client, ticket_id, m).await?;
            notify(client, ctx, policy, notice, Some(ticket_id), author, m).await?;
            Ok(Outcome::Noted(ticket_id))
        }
        Plan::Refuse {
            reason,
            sender,
            notice,
        } => {
            tickets::ignore(client, id, &reason).await?;
            notify(client, ctx, policy, notice, None, sender, m).await?;
            Ok(Outcome::Refused(reason))
        }
        Plan::Create {
            policy,
            template,
            description,
            requester,
            instead_of_note,
            notice,
        } => {
            if let Some(ticket) = instead_of_note {
                tracing::info!(
                    ticket,
                    sender = requester,
                    "reply from someone not allowed to add to the ticket, or not verified; taken as a new request"
                );
            }
            let new = tickets::NewTicket {
                ticket_policy_id: policy.id,
                queue_id: template.queue_id,
                severity: template.severity.as_str(),
                status: template.status.as_str(),
                description: &description,
                requester,
            };
            let ticket_id = tickets::create(client, &new, id).await?;
            tickets::add_note(client, ticket_id, requester, &m.body, &m.attachments, id).await?;
            remember(client, ticket_id, m).await?;
            notify(client, ctx, policy, notice, Some(ticket_id), requester, m).await?;
            Ok(Outcome::Created(ticket_id))
        }
    }
}

/// The ticket a mail answers: by its In-Reply-To, then its References (newest first), then the
/// token in its subject.
pub async fn replied_ticket(
    client: &impl GenericClient,
    m: &Message,
) -> Result<Option<tickets::Ticket>, store::Error> {
    let thread: Vec<&str> = m
        .in_reply_to
        .iter()
        .chain(m.references.iter().rev())
        .map(String::as_str)
        .collect();
    let id = match tickets::by_thread(client, &thread).await? {
        Some(id) => Some(id),
        None => m.subject.as_deref().and_then(mail::subject_ticket),
    };
    match id {
        Some(id) => tickets::get(client, id).await,
        None => Ok(None),
    }
}

/// Puts the mail's own Message-ID in the ticket's thread, so replies to it find the ticket.
async fn remember(
    client: &impl GenericClient,
    ticket_id: i64,
    m: &Message,
) -> Result<(), store::Error> {
    match &m.message_id {
        Some(id) => tickets::remember(client, ticket_id, &[id.as_str()]).await,
        None => Ok(()),
    }
}

/// Queues the notice the plan decided on to `to`, threaded to the mail `m` it answers, unless
/// the plan held it back or no message can be addressed to `to`.
async fn notify(
    client: &impl GenericClient,
    ctx: &Context<'_>,
    policy: &TicketPolicy,
    notice: Notice,
    ticket_id: Option<i64>,
    to: &str,
    m: &Message,
) -> Result<(), store::Error> {
    let (kind, o) = match (notice, ctx.outbound) {
        (Notice::Send(kind), Some(o)) => (kind, o),
        (Notice::RateLimited(kind), _) => {
            tracing::warn!(
                to,
                kind = kind.name(),
                "notice not sent: rate limit ([outbound] notices_per_hour)"
            );
            return Ok(());
        }
        (Notice::Unverified(kind), _) => {
            tracing::info!(
                to,
                kind = kind.name(),
                "notice not sent: the sender is not verified ([inbound.auth] notify_unverified)"
            );
            return Ok(());
        }
        (Notice::Send(kind) | Notice::NoOutbound(kind), _) => {
            tracing::debug!(to, kind = kind.name(), "no [outbound]: notice not sent");
            return Ok(());
        }
    };
    let subject = m.subject.as_deref().unwrap_or("");
    let mut references = m.references.clone();
    references.extend(m.message_id.clone());
    let notice = outbox::Notice {
        from: Some(policy.reply_address.clone()),
        to: to.to_owned(),
        subject: match ticket_id {
            Some(id) => mail::notice_subject(id, subject),
            None => format!("Re: {}", mail::clean_subject(subject)),
        },
        body: mail::expand(kind.text(policy), ticket_id, o.ticket_url.as_deref()),
        in_reply_to: m.message_id.clone(),
        references,
        auto_submitted: "auto-replied",
        kind: kind.name(),
        ticket_id,
    };
    let composed = match outbox::compose(o, &notice) {
        Ok(composed) => composed,
        Err(e) => {
            tracing::warn!(error = %e, "notice not sent");
            return Ok(());
        }
    };
    let outbox_id = outbox::queue(client, o, &notice, &composed).await?;
    if ticket_id.is_some() {
        tickets::remember_notice(client, outbox_id).await?;
    }
    Ok(())
}
