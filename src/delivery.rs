//! The LMTP backend: parse each message once, route each recipient, store each in its own
//! transaction, and answer `250` only after COMMIT.

use std::time::Instant;

use deadpool_postgres::Pool;

use crate::lmtp::{Backend, Envelope, Reply};
use crate::message::Message;
use crate::route::Router;
use crate::store::{self, inbound};

/// Stores delivered mail in PostgreSQL.
pub struct Delivery {
    pool: Pool,
    router: Router,
}

/// What became of one recipient's copy.
enum Outcome {
    /// Committed as this `inbound_messages.id`.
    Stored(i64),
    /// Already stored by an earlier delivery; nothing new written.
    Duplicate,
}

impl Delivery {
    /// A backend storing through `pool`, accepting the addresses `router` knows.
    pub fn new(pool: Pool, router: Router) -> Delivery {
        Delivery { pool, router }
    }

    /// Stores one recipient's copy in its own transaction.
    async fn store(&self, row: &inbound::Inbound<'_>) -> Result<Outcome, store::Error> {
        let client = self.pool.get().await?;
        let insert = inbound::prepare(&client).await?;
        let id = store::transaction(&client, inbound::insert(&client, &insert, row)).await?;
        Ok(id.map_or(Outcome::Duplicate, Outcome::Stored))
    }

    /// Delivers to one recipient and says how it went, in a reply and one log line.
    async fn deliver_one(
        &self,
        envelope: &Envelope,
        recipient: &str,
        message: &Message,
        raw: &[u8],
        digest: &[u8],
    ) -> Reply {
        let started = Instant::now();
        let Some(route) = self.router.route(recipient) else {
            // RCPT accepted it, so this only happens if the address went away meanwhile.
            return Reply::new(550, "5.1.1", format!("<{recipient}>: recipient unknown"));
        };
        let key = inbound::idempotency_key(envelope, digest, recipient);
        let row = inbound::Inbound {
            envelope,
            recipient,
            route,
            message,
            raw,
            idempotency_key: &key,
        };
        let result = self.store(&row).await;
        let log = |outcome: &str| {
            tracing::info!(
                sender = %envelope.mail_from,
                recipient,
                route = %route,
                queue_id = envelope.queue_id.as_deref().unwrap_or(""),
                outcome,
                size = raw.len(),
                ms = started.elapsed().as_millis() as u64,
                "delivered"
            )
        };
        match result {
            Ok(Outcome::Stored(id)) => {
                log("stored");
                Reply::new(250, "2.0.0", format!("<{recipient}> stored as {id}"))
            }
            Ok(Outcome::Duplicate) => {
                log("duplicate");
                Reply::new(250, "2.0.0", format!("<{recipient}> already stored"))
            }
            Err(e) => {
                tracing::warn!(recipient, route = %route, error = %e, "delivery deferred");
                Reply::new(451, "4.3.0", "Temporary storage failure, try again later")
            }
        }
    }
}

impl Backend for Delivery {
    fn accepts(&self, recipient: &str) -> bool {
        self.router.route(recipient).is_some()
    }

    async fn deliver(&self, envelope: &Envelope, message: Vec<u8>) -> Vec<Reply> {
        let parsed = Message::parse(&message);
        let digest = inbound::digest(&message);
        let mut replies = Vec::with_capacity(envelope.recipients.len());
        for recipient in &envelope.recipients {
            replies.push(
                self.deliver_one(envelope, recipient, &parsed, &message, &digest)
                    .await,
            );
        }
        replies
    }
}
