//! One mail to a ticket destination, carried out in the transaction that stores it: noise is
//! recorded and dropped, a reply from someone allowed adds a note, anything else is a request
//! that opens a ticket if the sender passes the policy's access rule; each outcome but noise
//! queues its notice.

use tokio_postgres::GenericClient;

use super::mail;
use super::model::{Access, TicketPolicy};
use crate::config::Outbound;
use crate::message::Message;
use crate::outbound::outbox::{self, Notice};
use crate::route::address_key;
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
}

/// What handling needs besides the mail.
pub struct Context<'a> {
    /// The recipients and policies in force.
    pub state: &'a State,
    /// How notices are sent; without it none are queued.
    pub outbound: Option<&'a Outbound>,
}

/// Which of the policy's five notices.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Created,
    Updated,
    Failed,
    NotRegistered,
    NotInQueue,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Created => "ticket_created",
            Kind::Updated => "ticket_updated",
            Kind::Failed => "ticket_failed",
            Kind::NotRegistered => "ticket_not_registered",
            Kind::NotInQueue => "ticket_not_in_queue",
        }
    }

    fn text(self, policy: &TicketPolicy) -> &str {
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

/// Carries out `mail` through `client` (the transaction that stored it).
pub async fn handle(
    client: &impl GenericClient,
    ctx: &Context<'_>,
    mail: &Mail<'_>,
) -> Result<Outcome, store::Error> {
    let state = ctx.state;
    let Some(policy) = state.tickets.policy(mail.destination) else {
        // Accepted through the database before the reload reached memory: try again soon.
        return Err(store::Error::Stale(format!(
            "no ticket policy for {} yet",
            mail.destination
        )));
    };
    let m = mail.message;
    let own = |address: &str| {
        state.router.route(address).is_some()
            || state.tickets.is_own(address)
            || ctx
                .outbound
                .is_some_and(|o| address_key(&o.from_address) == address_key(address))
    };
    if let Some(reason) = mail::noise(mail.envelope_from, m, own) {
        tickets::ignore(client, mail.inbound_id, &reason).await?;
        return Ok(Outcome::Ignored(reason));
    }
    let sender = m.from_address.as_deref().unwrap_or(mail.envelope_from);
    if let Some(ticket) = replied_ticket(client, m).await? {
        let allowed = address_key(&ticket.requester) == address_key(sender)
            || state.tickets.is_member(ticket.queue_id, sender)
            || state.tickets.is_user(sender);
        if allowed {
            let body = mail::reply_text(&m.body);
            tickets::add_note(
                client,
                ticket.id,
                sender,
                &body,
                &m.attachments,
                mail.inbound_id,
            )
            .await?;
            remember(client, ticket.id, m).await?;
            notify(
                client,
                ctx,
                policy,
                Kind::Updated,
                Some(ticket.id),
                sender,
                m,
            )
            .await?;
            return Ok(Outcome::Noted(ticket.id));
        }
        // Quoting a ticket is not enough to write to it: this is a new request.
        tracing::info!(
            ticket = ticket.id,
            sender,
            "reply from someone not allowed to add to the ticket; taken as a new request"
        );
    }
    let template = state.tickets.template(policy.template_id);
    let refusal = match (template, policy.access) {
        (None, _) => Some((Kind::Failed, "the ticket template is missing".to_owned())),
        _ if !m.parsed => Some((Kind::Failed, "the mail could not be parsed".to_owned())),
        (_, Access::Registered) if !state.tickets.is_user(sender) => Some((
            Kind::NotRegistered,
            format!("{sender} is not a registered user"),
        )),
        (Some(t), Access::Queue) if !state.tickets.is_member(t.queue_id, sender) => Some((
            Kind::NotInQueue,
            format!("{sender} is not a member of the template's queue"),
        )),
        _ => None,
    };
    let (Some(template), None) = (template, &refusal) else {
        let (kind, reason) = refusal.unwrap_or((Kind::Failed, String::new()));
        tickets::ignore(client, mail.inbound_id, &reason).await?;
        notify(client, ctx, policy, kind, None, sender, m).await?;
        return Ok(Outcome::Refused(reason));
    };
    let subject = m.subject.as_deref().unwrap_or("");
    let new = tickets::NewTicket {
        ticket_policy_id: policy.id,
        queue_id: template.queue_id,
        severity: template.severity.as_str(),
        status: template.status.as_str(),
        description: &mail::description(&template.description, subject),
        requester: sender,
    };
    let id = tickets::create(client, &new, mail.inbound_id).await?;
    tickets::add_note(client, id, sender, &m.body, &m.attachments, mail.inbound_id).await?;
    remember(client, id, m).await?;
    notify(client, ctx, policy, Kind::Created, Some(id), sender, m).await?;
    Ok(Outcome::Created(id))
}

/// The ticket a mail answers: by its In-Reply-To, then its References (newest first), then the
/// token in its subject.
async fn replied_ticket(
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

/// Queues the `kind` notice to `to`, threaded to the mail `m` it answers, unless outbound mail
/// is not configured, `to` had its hourly share of notices, or no message can be addressed to
/// it.
async fn notify(
    client: &impl GenericClient,
    ctx: &Context<'_>,
    policy: &TicketPolicy,
    kind: Kind,
    ticket_id: Option<i64>,
    to: &str,
    m: &Message,
) -> Result<(), store::Error> {
    let Some(o) = ctx.outbound else {
        tracing::debug!(to, kind = kind.name(), "no [outbound]: notice not sent");
        return Ok(());
    };
    let recent = store::outbox::recent(client, to, "ticket_").await?;
    if recent >= o.notices_per_hour {
        tracing::warn!(
            to,
            kind = kind.name(),
            recent,
            "notice not sent: rate limit ([outbound] notices_per_hour)"
        );
        return Ok(());
    }
    let subject = m.subject.as_deref().unwrap_or("");
    let mut references = m.references.clone();
    references.extend(m.message_id.clone());
    let notice = Notice {
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
