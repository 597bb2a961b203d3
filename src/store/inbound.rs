//! `inbound_messages`: one row per accepted (message, recipient).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, Statement};

use crate::auth::Verification;
use crate::envelope::Envelope;
use crate::message::{self, Message};
use crate::route::{address_key, Route};

/// One recipient's copy of a message, as stored. It owns what it holds (the message's parts
/// shared by all its recipients), so a writer task can store it for the session.
pub struct Inbound {
    /// The LMTP envelope.
    pub envelope: Arc<Envelope>,
    /// The recipient this row is for, as given at RCPT.
    pub recipient: String,
    /// Its pipeline.
    pub route: Route,
    /// The parsed message.
    pub message: Arc<Message>,
    /// What was verified about its sender.
    pub sender: Arc<Verification>,
    /// The raw message.
    pub raw: Arc<Vec<u8>>,
    /// Its [`idempotency_key`].
    pub idempotency_key: String,
}

/// What recognises one message however often and to however many recipients it is delivered:
/// Postfix's queue id (from XFORWARD) with the content, else the sender with the content. A
/// queue id alone would do behind a Postfix with `enable_long_queue_ids`; with short ids,
/// reused after the message left the queue, a later message must not pass for it.
pub fn message_key(envelope: &Envelope, raw_digest: &[u8]) -> String {
    let mut h = Sha256::new();
    match &envelope.queue_id {
        Some(queue_id) => {
            h.update(b"queue\0");
            h.update(queue_id.as_bytes());
        }
        None => {
            h.update(b"content\0");
            h.update(envelope.mail_from.as_bytes());
        }
    }
    h.update(b"\0");
    h.update(raw_digest);
    crate::hex(&h.finalize())
}

/// What recognises a redelivery of one message to one recipient.
pub fn idempotency_key(message_key: &str, recipient: &str) -> String {
    let mut h = Sha256::new();
    h.update(message_key.as_bytes());
    h.update(b"\0");
    h.update(address_key(recipient).as_bytes());
    crate::hex(&h.finalize())
}

/// The SHA-256 of a raw message, computed once per delivery.
pub fn digest(raw: &[u8]) -> [u8; 32] {
    Sha256::digest(raw).into()
}

/// The INSERT of the row and its raw bytes (`inbound_raw`), prepared once per connection.
pub async fn prepare(
    client: &deadpool_postgres::Client,
) -> Result<Statement, tokio_postgres::Error> {
    client
        .prepare_cached(
            "WITH m AS (
                 INSERT INTO inbound_messages (envelope_from, recipient, route, message_id,
                     subject, from_address, size, parsed, queue_id, client_addr, idempotency_key,
                     auth_spf, auth_dkim, auth_dmarc, auth_domain, client_trusted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                 RETURNING id, received_at)
             INSERT INTO inbound_raw (inbound_message_id, received_at, raw)
                 SELECT id, received_at, $8 FROM m
             RETURNING inbound_message_id",
        )
        .await
}

/// Inserts the row; returns its id, or `None` for a redelivery (its idempotency key is already
/// stored: the unique violation aborts the transaction, so nothing else it holds is written).
/// Sends the statement when first polled (see [`super::transaction`]). Statements that depend
/// on the row refer to it as `currval('inbound_messages_id_seq')`.
pub async fn insert(
    client: &impl GenericClient,
    statement: &Statement,
    row: &Inbound,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let env = &row.envelope;
    let size = i32::try_from(row.raw.len()).unwrap_or(i32::MAX);
    let queue_id = env.queue_id.as_deref().map(message::text);
    let client_addr = env.client_addr.as_deref().map(message::text);
    let sender = &row.sender;
    let result = |r: Option<&(String, Option<String>)>| r.map(|(result, _)| message::text(result));
    let inserted = client
        .query_one(
            statement,
            &[
                &message::text(&env.mail_from),
                &message::text(&row.recipient),
                &row.route.as_str(),
                &row.message.message_id,
                &row.message.subject,
                &row.message.from_address,
                &size,
                &row.raw.as_slice(),
                &row.message.parsed,
                &queue_id,
                &client_addr,
                &row.idempotency_key,
                &result(sender.spf.as_ref()),
                &sender.dkim.as_deref().map(message::text),
                &result(sender.dmarc.as_ref()),
                &sender.verified_domain().map(message::text),
                &sender.trusted_network,
            ],
        )
        .await;
    match inserted {
        Ok(row) => Ok(Some(row.get(0))),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_queue_id_or_sender_and_content() {
        let mut env = Envelope {
            mail_from: "a@example.com".into(),
            ..Envelope::default()
        };
        let d1 = digest(b"one");
        let d2 = digest(b"two");
        let by_content = message_key(&env, &d1);
        assert_ne!(by_content, message_key(&env, &d2));
        let key = idempotency_key(&by_content, "notify@x.example");
        assert_eq!(key, idempotency_key(&by_content, "NOTIFY@x.example"));
        assert_ne!(key, idempotency_key(&by_content, "other@x.example"));

        env.queue_id = Some("4ZKfQd3Xp9z1xyz".into());
        let by_queue = message_key(&env, &d1);
        // A reused queue id with other content is another message.
        assert_ne!(by_queue, message_key(&env, &d2));
        assert_ne!(by_queue, by_content);
        env.mail_from = "b@example.com".into();
        assert_eq!(by_queue, message_key(&env, &d1));
        assert_eq!(idempotency_key(&by_queue, "notify@x.example").len(), 64);
    }
}
