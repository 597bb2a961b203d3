//! `outbox`: messages mailops sends, queued in the transaction that caused them, claimed by one
//! sender at a time and marked sent or retried.

use std::time::{Duration, SystemTime};

use tokio_postgres::GenericClient;

use super::{roundtrip, Error};

/// A composed message to queue.
#[derive(Debug)]
pub struct Queued<'a> {
    /// The recipient.
    pub recipient: &'a str,
    /// The envelope sender.
    pub sender: &'a str,
    /// The subject, as a header may carry it.
    pub subject: &'a str,
    /// Its Message-ID, without `<>`.
    pub message_id: &'a str,
    /// The whole message.
    pub message: &'a [u8],
    /// What it is (`ticket_created`, `roundtrip_probe`…).
    pub kind: &'a str,
    /// The ticket it is about.
    pub ticket_id: Option<i64>,
}

/// Queues `q` through `client`; returns the outbox id.
pub async fn insert(client: &impl GenericClient, q: &Queued<'_>) -> Result<i64, Error> {
    let row = client
        .query_one(
            "INSERT INTO outbox (recipient, sender, subject, message_id, message, kind, ticket_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &q.recipient,
                &q.sender,
                &q.subject,
                &q.message_id,
                &q.message,
                &q.kind,
                &q.ticket_id,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// How many messages of `kind_prefix` (`ticket_` for all ticket notices) were queued for
/// `recipient` in the last hour.
pub async fn recent(
    client: &impl GenericClient,
    recipient: &str,
    kind_prefix: &str,
) -> Result<i64, Error> {
    let row = client
        .query_one(
            "SELECT count(*) FROM outbox
             WHERE address_key(recipient) = address_key($1)
               AND created_at > now() - interval '1 hour'
               AND kind LIKE $2 || '%'",
            &[&recipient, &kind_prefix],
        )
        .await?;
    Ok(row.get(0))
}

/// A queued message whose time has come, claimed by the transaction that read it.
#[derive(Debug)]
pub struct Due {
    /// Its outbox id.
    pub id: i64,
    /// The recipient.
    pub recipient: String,
    /// The envelope sender.
    pub sender: String,
    /// The whole message.
    pub message: Vec<u8>,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// How many rows wait to be sent, and how long the oldest of them has waited.
pub async fn backlog(pool: &deadpool_postgres::Pool) -> Result<(i64, Duration), Error> {
    let row = pool
        .get()
        .await?
        .query_one(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
             FROM outbox WHERE state = 'queued'",
            &[],
        )
        .await?;
    let oldest: f64 = row.get(1);
    Ok((row.get(0), Duration::from_secs_f64(oldest.max(0.0))))
}

/// Claims the next due message in `client`'s transaction (rows another transaction holds are
/// skipped, so no two senders take the same one); `None` when nothing is due.
pub async fn claim(client: &impl GenericClient) -> Result<Option<Due>, Error> {
    let row = client
        .query_opt(
            "SELECT id, recipient, sender, message, attempts FROM outbox
             WHERE state = 'queued' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id LIMIT 1
             FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?;
    Ok(row.map(|row| Due {
        id: row.get("id"),
        recipient: row.get("recipient"),
        sender: row.get("sender"),
        message: row.get("message"),
        attempts: row.get("attempts"),
    }))
}

/// Records that the gateway took message `id` at `at` through `via`, on its attempt
/// `attempts` (and times the round-trip probe it carried, if any).
pub async fn sent(
    client: &impl GenericClient,
    id: i64,
    via: &str,
    attempts: i32,
    at: SystemTime,
) -> Result<(), Error> {
    client
        .execute(
            "UPDATE outbox SET state = 'sent', sent_at = $4, sent_via = $2,
                 attempts = $3, last_error = NULL
             WHERE id = $1",
            &[&id, &via, &attempts, &at],
        )
        .await?;
    roundtrip::sent(client, id, at).await
}

/// Records that attempt `attempts` at message `id` failed with `error`: tried again after
/// `retry`, or never again when `failed` (and a probe it carried will not leave).
pub async fn not_sent(
    client: &impl GenericClient,
    id: i64,
    attempts: i32,
    error: &str,
    failed: bool,
    retry: Duration,
) -> Result<(), Error> {
    let retry_s = i32::try_from(retry.as_secs()).unwrap_or(i32::MAX);
    client
        .execute(
            "UPDATE outbox SET state = CASE WHEN $4 THEN 'failed' ELSE 'queued' END,
                 attempts = $2, last_error = $3,
                 next_attempt_at = clock_timestamp() + $5::integer * interval '1 second'
             WHERE id = $1",
            &[&id, &attempts, &error, &failed, &retry_s],
        )
        .await?;
    if failed {
        roundtrip::send_failed(client, id).await?;
    }
    Ok(())
}
