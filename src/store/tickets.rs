//! `tickets`, `ticket_notes`, `attachments`, `ticket_message_ids`: written in the transaction
//! that stores the mail which caused them.

use tokio_postgres::GenericClient;

use super::Error;
use crate::message::{self, Attachment};

/// A ticket as a reply needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its id.
    pub id: i64,
    /// Who opened it.
    pub requester: String,
    /// Its queue.
    pub queue_id: Option<i64>,
}

/// What a new ticket starts as.
#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    /// The ticket policy it was opened through.
    pub ticket_policy_id: i64,
    /// The template's queue.
    pub queue_id: Option<i64>,
    /// The template's severity.
    pub severity: &'a str,
    /// The template's status.
    pub status: &'a str,
    /// The template's description, expanded.
    pub description: &'a str,
    /// Who opened it.
    pub requester: &'a str,
}

/// The ticket one of `ids` (Message-IDs of a reply's thread, most relevant first) belongs to.
pub async fn by_thread(client: &impl GenericClient, ids: &[&str]) -> Result<Option<i64>, Error> {
    if ids.is_empty() {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT message_id, ticket_id FROM ticket_message_ids WHERE message_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(ids.iter().find_map(|id| {
        rows.iter()
            .find(|r| r.get::<_, &str>("message_id") == *id)
            .map(|r| r.get("ticket_id"))
    }))
}

/// The ticket with `id`, if there is one.
pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<Ticket>, Error> {
    Ok(client
        .query_opt(
            "SELECT id, requester, queue_id FROM tickets WHERE id = $1",
            &[&id],
        )
        .await?
        .map(|r| Ticket {
            id: r.get("id"),
            requester: r.get("requester"),
            queue_id: r.get("queue_id"),
        }))
}

/// Opens a ticket for the mail stored as `inbound_message_id`; returns its id.
pub async fn create(
    client: &impl GenericClient,
    t: &NewTicket<'_>,
    inbound_message_id: i64,
) -> Result<i64, Error> {
    let row = client
        .query_one(
            "INSERT INTO tickets (ticket_policy_id, queue_id, severity, status, description,
                 requester, inbound_message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &t.ticket_policy_id,
                &t.queue_id,
                &t.severity,
                &t.status,
                &message::text(t.description),
                &message::text(t.requester),
                &inbound_message_id,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Adds a note with the mail's attachments to ticket `ticket_id` and marks the ticket
/// updated; returns the note's id.
pub async fn add_note(
    client: &impl GenericClient,
    ticket_id: i64,
    author: &str,
    body: &str,
    attachments: &[Attachment],
    inbound_message_id: i64,
) -> Result<i64, Error> {
    let row = client
        .query_one(
            "WITH touched AS (UPDATE tickets SET updated_at = now() WHERE id = $1)
             INSERT INTO ticket_notes (ticket_id, author, body, inbound_message_id)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                &ticket_id,
                &message::text(author),
                &message::text(body),
                &inbound_message_id,
            ],
        )
        .await?;
    let note_id: i64 = row.get(0);
    if !attachments.is_empty() {
        let statement = client
            .prepare(
                "INSERT INTO attachments (ticket_id, ticket_note_id, filename, content_type, size,
                     content)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await?;
        for a in attachments {
            let size = i32::try_from(a.content.len()).unwrap_or(i32::MAX);
            client
                .execute(
                    &statement,
                    &[
                        &ticket_id,
                        &note_id,
                        &a.filename,
                        &a.content_type,
                        &size,
                        &a.content,
                    ],
                )
                .await?;
        }
    }
    Ok(note_id)
}

/// Records that the Message-IDs `ids` belong to ticket `ticket_id`'s thread.
pub async fn remember(
    client: &impl GenericClient,
    ticket_id: i64,
    ids: &[&str],
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO ticket_message_ids (message_id, ticket_id)
             SELECT id, $2 FROM unnest($1::text[]) AS id
             ON CONFLICT (message_id) DO NOTHING",
            &[&ids, &ticket_id],
        )
        .await?;
    Ok(())
}

/// Records the Message-ID of the notice queued as outbox row `outbox_id` in its ticket's thread.
pub async fn remember_notice(client: &impl GenericClient, outbox_id: i64) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO ticket_message_ids (message_id, ticket_id)
             SELECT message_id, ticket_id FROM outbox WHERE id = $1 AND ticket_id IS NOT NULL
             ON CONFLICT (message_id) DO NOTHING",
            &[&outbox_id],
        )
        .await?;
    Ok(())
}

/// Records why the mail stored as `inbound_message_id` made no ticket and no note.
pub async fn ignore(
    client: &impl GenericClient,
    inbound_message_id: i64,
    reason: &str,
) -> Result<(), Error> {
    client
        .execute(
            "UPDATE inbound_messages SET ignored_reason = $2 WHERE id = $1",
            &[&inbound_message_id, &reason],
        )
        .await?;
    Ok(())
}
