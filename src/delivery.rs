//! The LMTP backend: parse each message once, route each recipient, decide what it does, and
//! store each recipient's copy with everything it causes in one transaction, answering `250`
//! only after COMMIT.

use std::time::Instant;

use deadpool_postgres::Pool;

use crate::events::evaluate::{self, Alert, Decision, Settings, Write};
use crate::events::Current;
use crate::lmtp::{Backend, Envelope, Reply};
use crate::message::Message;
use crate::route::{Route, Router};
use crate::store::{self, inbound};

/// Stores delivered mail in PostgreSQL.
pub struct Delivery {
    pool: Pool,
    router: Router,
    events: Current,
    settings: Settings,
}

/// What became of one recipient's copy.
enum Outcome {
    /// Committed as this `inbound_messages.id`.
    Stored(i64),
    /// Already stored by an earlier delivery; nothing new written.
    Duplicate,
}

/// One message as every recipient's delivery sees it: parsed, hashed, decided once.
struct Parsed<'a> {
    envelope: &'a Envelope,
    raw: &'a [u8],
    message: Message,
    /// [`inbound::message_key`]: the same for every recipient and every redelivery.
    key: String,
}

impl Delivery {
    /// A backend storing through `pool`, accepting the addresses `router` knows, deciding events
    /// with the policies in `events`.
    pub fn new(pool: Pool, router: Router, events: Current, settings: Settings) -> Delivery {
        Delivery {
            pool,
            router,
            events,
            settings,
        }
    }

    /// Stores one recipient's copy and its writes in one transaction, in one round trip.
    async fn store(
        &self,
        row: &inbound::Inbound<'_>,
        message_key: &str,
        writes: &[Write],
    ) -> Result<Outcome, store::Error> {
        let client = self.pool.get().await?;
        let insert = inbound::prepare(&client).await?;
        let statements = store::events::Statements::prepare(&client).await?;
        let id = store::transaction(&client, async {
            let (inserted, written) = tokio::join!(
                biased;
                inbound::insert(&client, &insert, row),
                store::all_in_order(store::events::pending(
                    &client,
                    &statements,
                    message_key,
                    writes
                )),
            );
            // A redelivery aborts the transaction at the INSERT; what follows fails with it.
            let Some(id) = inserted? else {
                return Ok(None);
            };
            written?;
            Ok(Some(id))
        })
        .await?;
        Ok(id.map_or(Outcome::Duplicate, Outcome::Stored))
    }

    /// Delivers to one recipient and says how it went, in a reply and one log line.
    async fn deliver_one(
        &self,
        m: &Parsed<'_>,
        recipient: &str,
        decision: Option<&Decision<'_>>,
    ) -> Reply {
        let started = Instant::now();
        let Some(route) = self.router.route(recipient) else {
            // RCPT accepted it, so this only happens if the address went away meanwhile.
            return Reply::new(550, "5.1.1", format!("<{recipient}>: recipient unknown"));
        };
        let writes = match route {
            Route::Event => decision.map_or(&[][..], |d| &d.writes),
        };
        let key = inbound::idempotency_key(&m.key, recipient);
        let row = inbound::Inbound {
            envelope: m.envelope,
            recipient,
            route,
            message: &m.message,
            raw: m.raw,
            idempotency_key: &key,
        };
        let result = self.store(&row, &m.key, writes).await;
        let device = decision.and_then(|d| d.device).map(|d| d.name.as_str());
        let events = decision.map_or(0, |d| d.matched.len());
        let log = |outcome: &str| {
            tracing::info!(
                sender = %m.envelope.mail_from,
                recipient,
                route = %route,
                queue_id = m.envelope.queue_id.as_deref().unwrap_or(""),
                outcome,
                device = device.unwrap_or(""),
                events,
                size = m.raw.len(),
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

    async fn deliver(&self, envelope: &Envelope, raw: Vec<u8>) -> Vec<Reply> {
        let m = Parsed {
            envelope,
            raw: &raw,
            message: Message::parse(&raw),
            key: inbound::message_key(envelope, &inbound::digest(&raw)),
        };
        // Decided once for all of the message's event recipients.
        let policies = self.events.get();
        let needs_events = envelope
            .recipients
            .iter()
            .any(|r| self.router.route(r) == Some(Route::Event));
        let decision = needs_events.then(|| {
            let alert = Alert {
                from: m
                    .message
                    .from_address
                    .as_deref()
                    .unwrap_or(&envelope.mail_from),
                subject: m.message.subject.as_deref().unwrap_or(""),
                body: &m.message.body,
            };
            let decision = evaluate::evaluate(&policies, &alert, self.settings);
            for step in &decision.steps {
                tracing::debug!(%step, "originator policy");
            }
            decision
        });
        let mut replies = Vec::with_capacity(envelope.recipients.len());
        for recipient in &envelope.recipients {
            replies.push(self.deliver_one(&m, recipient, decision.as_ref()).await);
        }
        replies
    }
}
