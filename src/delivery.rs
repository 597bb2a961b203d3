//! The LMTP backend: parse each message once, route each recipient, decide what it does, and
//! store each recipient's copy with everything it causes in one transaction, answering `250`
//! only after COMMIT.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;

use crate::auth::{self, Verification};
use crate::config::{Config, InboundAuth, Outbound};
use crate::envelope::Envelope;
use crate::events::evaluate::{self, Alert, Decision, Write};
use crate::lmtp::{Backend, Reply};
use crate::message::Message;
use crate::route::{address_key, Route};
use crate::state::{Current, State};
use crate::store::{self, inbound};
use crate::tickets::handle::{self as tickets, Outcome as TicketOutcome};
use crate::{expect, metrics, roundtrip};

mod group;

/// Messages up to this size are parsed on the session's own thread.
const PARSE_INLINE_MAX: usize = 64 * 1024;

/// Tasks storing events copies ([`group::Writers`]).
const WRITERS: usize = 2;

/// Stores delivered mail in PostgreSQL.
pub struct Delivery {
    /// Set whenever a delivery is answered `451` (see [`Delivery::deferrals`]).
    deferred: Arc<AtomicBool>,
    pool: Pool,
    current: Current,
    settings: Arc<Settings>,
    outbound: Option<Arc<Outbound>>,
    /// Store the events recipients' copies, several sessions' in one transaction.
    writers: group::Writers,
    /// [`LARGE_BUDGET`], in [`LARGE_UNIT`]s.
    large: tokio::sync::Semaphore,
}

/// Messages over [`PARSE_INLINE_MAX`] are parsed and stored only while the ones in progress
/// total at most this much. Each costs about four times its size until it is stored (the raw
/// bytes, the decoded text, the text the events policies read, the INSERT's buffer), so peak
/// memory stays near the sessions' receive buffers plus four times this, whatever the sizes.
const LARGE_BUDGET: usize = 8 << 20;
/// How [`LARGE_BUDGET`] is counted.
const LARGE_UNIT: usize = 64 * 1024;

/// What the config says about delivering.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// How alerts are matched.
    pub events: evaluate::Settings,
    /// How senders are verified.
    pub verify: auth::Settings,
    /// What verifies a sender to tickets, and what an unverified one may do.
    pub trust: InboundAuth,
}

impl From<&Config> for Settings {
    fn from(config: &Config) -> Settings {
        Settings {
            events: evaluate::Settings::from(&config.inbound),
            verify: auth::Settings::new(config),
            trust: config.inbound.auth.clone(),
        }
    }
}

/// What became of one recipient's copy.
enum Outcome {
    /// Committed as this `inbound_messages.id`; for a ticket destination, what it did.
    Stored(i64, Option<TicketOutcome>),
    /// Already stored by an earlier delivery; nothing new written.
    Duplicate,
}

/// One message as every recipient's delivery sees it: parsed, hashed, decided once.
struct Parsed {
    envelope: Arc<Envelope>,
    raw: Arc<Vec<u8>>,
    message: Arc<Message>,
    /// What was verified about its sender.
    sender: Arc<Verification>,
    /// [`inbound::message_key`]: the same for every recipient and every redelivery.
    key: Arc<str>,
    /// What the events pipeline writes for it (once, whichever recipient's copy is first).
    writes: Arc<Vec<Write>>,
    /// Held while a ticket or probe recipient's copy is stored: the recipients' copies are
    /// stored concurrently, but one message's tickets are made one after another.
    serial: tokio::sync::Mutex<()>,
    /// The recipients and policies it is delivered with.
    state: Arc<State>,
    /// The round-trip probe it answers (its token is in it): then it is no alert.
    probe: Option<i64>,
}

impl Delivery {
    /// A backend storing through `pool`, routing and deciding with what `current` holds, and
    /// queuing ticket notices when `outbound` is configured. Starts its writer tasks, so it
    /// must be made within a Tokio runtime.
    pub fn new(
        pool: Pool,
        current: Current,
        settings: Settings,
        outbound: Option<Arc<Outbound>>,
    ) -> Delivery {
        Delivery {
            deferred: Arc::default(),
            writers: group::Writers::start(pool.clone(), WRITERS),
            pool,
            current,
            settings: Arc::new(settings),
            outbound,
            large: tokio::sync::Semaphore::new(LARGE_BUDGET / LARGE_UNIT),
        }
    }

    /// A flag set each time a delivery is answered `451`, for whoever tells Postfix to retry
    /// once the cause (usually the database) is gone; it clears it.
    pub fn deferrals(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.deferred)
    }

    /// `451` for `recipient`, and the flag [`Delivery::deferrals`] set.
    fn deferred(&self, recipient: &str, route: Option<Route>, e: &store::Error) -> Reply {
        self.deferred.store(true, Ordering::Relaxed);
        metrics::get().message(route.map_or("unknown", Route::as_str), "deferred");
        let route = route.map_or("", Route::as_str);
        tracing::warn!(recipient, route, error = %e, "delivery deferred");
        Reply::new(451, "4.3.0", "Temporary storage failure, try again later")
    }

    /// The route of `recipient`: from memory, else (an address added since the last reload,
    /// which Postfix may already have accepted) from the database.
    async fn route(&self, state: &State, recipient: &str) -> Result<Option<Route>, store::Error> {
        match state.router.route(recipient) {
            Some(route) => Ok(Some(route)),
            None => store::recipients::lookup(&self.pool, recipient).await,
        }
    }

    /// Stores `row` and, in the same transaction, what `then` writes once it has its id. A
    /// redelivery stores nothing: its INSERT finds the row, and the transaction is dropped.
    async fn insert_then<T>(
        &self,
        row: &inbound::Inbound,
        then: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>, i64) -> Result<T, store::Error>,
    ) -> Result<Option<(i64, T)>, store::Error> {
        let mut client = self.pool.get().await?;
        let insert = inbound::prepare(&client).await?;
        let started = Instant::now();
        let tx = client.transaction().await?;
        let Some(id) = inbound::insert(&*tx, &insert, row).await? else {
            return Ok(None);
        };
        let done = then(&tx, id).await?;
        tx.commit().await?;
        metrics::get().transaction(started.elapsed(), None);
        Ok(Some((id, done)))
    }

    /// Stores one ticket destination's copy and carries it out in one transaction.
    async fn store_ticket(
        &self,
        row: &inbound::Inbound,
        state: &State,
    ) -> Result<Outcome, store::Error> {
        let ctx = tickets::Context {
            state,
            outbound: self.outbound.as_deref(),
            auth: &self.settings.trust,
        };
        let stored = self
            .insert_then(row, async |tx, id| {
                let mail = tickets::Mail {
                    envelope_from: &row.envelope.mail_from,
                    message: &row.message,
                    destination: &row.recipient,
                    inbound_id: id,
                    sender: &row.sender,
                };
                tickets::handle(&**tx, &ctx, &mail).await
            })
            .await?;
        Ok(match stored {
            Some((id, outcome)) => Outcome::Stored(id, Some(outcome)),
            None => Outcome::Duplicate,
        })
    }

    /// Stores a probe's reply and records its round trip in one transaction.
    async fn store_probe_reply(
        &self,
        row: &inbound::Inbound,
        probe_id: i64,
    ) -> Result<Outcome, store::Error> {
        let from = row
            .message
            .from_address
            .as_deref()
            .unwrap_or(&row.envelope.mail_from);
        let hops = roundtrip::hops_json(&row.message.received);
        let stored = self
            .insert_then(row, async |tx, id| {
                store::roundtrip::reply(&**tx, probe_id, from, &hops, id).await
            })
            .await?;
        let Some((id, state)) = stored else {
            return Ok(Outcome::Duplicate);
        };
        if let Some(("received", rtt)) = state.as_ref().map(|(s, rtt)| (s.as_str(), *rtt)) {
            metrics::get().roundtrip(rtt);
        }
        tracing::info!(
            probe = probe_id,
            state = state
                .as_ref()
                .map_or("already answered or gone", |(s, _)| s),
            "round-trip reply"
        );
        Ok(Outcome::Stored(id, None))
    }

    /// Delivers to one recipient and says how it went, in a reply and one log line.
    async fn deliver_one(
        &self,
        m: &Parsed,
        recipient: &str,
        route: Result<Option<Route>, store::Error>,
        decision: Option<&Decision<'_>>,
    ) -> Reply {
        let started = Instant::now();
        let route = match route {
            Ok(Some(Route::Event)) if m.probe.is_some() => Route::ProbeReply,
            Ok(Some(route)) => route,
            // RCPT accepted it, so this only happens if the address went away meanwhile.
            Ok(None) => {
                metrics::get().message("unknown", "refused");
                return Reply::new(550, "5.1.1", format!("<{recipient}>: recipient unknown"));
            }
            Err(e) => return self.deferred(recipient, None, &e),
        };
        let row = inbound::Inbound {
            envelope: Arc::clone(&m.envelope),
            recipient: recipient.to_string(),
            route,
            message: Arc::clone(&m.message),
            sender: Arc::clone(&m.sender),
            raw: Arc::clone(&m.raw),
            idempotency_key: inbound::idempotency_key(&m.key, recipient),
        };
        let result = match route {
            Route::Event => {
                let copy = group::Copy {
                    row,
                    message_key: Arc::clone(&m.key),
                    writes: Arc::clone(&m.writes),
                };
                self.writers.store(copy).await
            }
            Route::Ticket => {
                let _serial = m.serial.lock().await;
                self.store_ticket(&row, &m.state).await.map_err(Arc::new)
            }
            Route::ProbeReply => {
                let _serial = m.serial.lock().await;
                let probe = m.probe.expect("a probe reply has a probe");
                self.store_probe_reply(&row, probe).await.map_err(Arc::new)
            }
        };
        let device = decision
            .filter(|_| route == Route::Event)
            .and_then(|d| d.device)
            .map(|d| d.name);
        // The decision's writes were moved into the message (`Parsed::writes`): counted there.
        let events = match route {
            Route::Event => evaluate::raised(&m.writes),
            _ => 0,
        };
        let log = |outcome: &str, ticket: &str| {
            tracing::info!(
                sender = %m.envelope.mail_from,
                recipient,
                route = %route,
                queue_id = m.envelope.queue_id.as_deref().unwrap_or(""),
                outcome,
                device = device.unwrap_or(""),
                events,
                ticket,
                size = m.raw.len(),
                ms = started.elapsed().as_millis() as u64,
                "delivered"
            )
        };
        match result {
            Ok(Outcome::Stored(id, ticket)) => {
                metrics::get().message(route.as_str(), "stored");
                match ticket {
                    Some(TicketOutcome::Created(_)) => metrics::get().ticket_opened(),
                    Some(TicketOutcome::Noted(_)) => metrics::get().ticket_note(),
                    _ => {}
                }
                log("stored", &ticket.map(|t| t.describe()).unwrap_or_default());
                Reply::new(250, "2.0.0", format!("<{recipient}> stored as {id}"))
            }
            Ok(Outcome::Duplicate) => {
                metrics::get().message(route.as_str(), "duplicate");
                log("duplicate", "");
                Reply::new(250, "2.0.0", format!("<{recipient}> already stored"))
            }
            Err(e) => self.deferred(recipient, Some(route), &e),
        }
    }
}

/// The reply, and the log line, when a recipient's copy could not be stored.
impl Backend for Delivery {
    async fn accepts(&self, recipient: &str) -> bool {
        // A database error accepts: the delivery then answers 451 and Postfix retries, where
        // refusing would bounce the mail.
        !matches!(self.route(&self.current.get(), recipient).await, Ok(None))
    }

    async fn deliver(&self, envelope: &Envelope, raw: Vec<u8>) -> Vec<Reply> {
        let state = self.current.get();
        let mut routes = Vec::with_capacity(envelope.recipients.len());
        for recipient in &envelope.recipients {
            routes.push(self.route(&state, recipient).await);
        }
        let has = |route: Route| {
            routes
                .iter()
                .any(|r| matches!(r, Ok(Some(x)) if *x == route))
        };
        let with_attachments = has(Route::Ticket);
        let inline = raw.len() <= PARSE_INLINE_MAX;
        let units = raw
            .len()
            .div_ceil(LARGE_UNIT)
            .min(LARGE_BUDGET / LARGE_UNIT) as u32;
        let parse = move || {
            let message = if with_attachments {
                Message::parse_with_attachments(&raw)
            } else {
                Message::parse(&raw)
            };
            let digest = inbound::digest(&raw);
            (raw, message, digest)
        };
        // Parsing and hashing 25 MB takes a while: not on the threads serving the sessions. A
        // small message takes microseconds, less than handing it to another thread would.
        // Held until the message is stored; a message larger than the budget takes all of it.
        let _large = match inline {
            true => None,
            false => self.large.acquire_many(units).await.ok(),
        };
        let (raw, message, digest) = if inline {
            parse()
        } else {
            match tokio::task::spawn_blocking(parse).await {
                Ok(parsed) => parsed,
                Err(e) => {
                    // Parsing catches the parser's panics; this is the runtime going away.
                    tracing::error!(error = %e, "parsing a message failed");
                    let reply =
                        Reply::new(451, "4.3.0", "Local error in processing, try again later");
                    return vec![reply; envelope.recipients.len()];
                }
            }
        };
        let probe = has(Route::Event)
            .then(|| state.key.as_ref()?.find_in(&message, &raw))
            .flatten();
        let sender = Verification::of(&message, envelope, &self.settings.verify);
        // Decided once for all of the message's event recipients.
        let mut decision = (has(Route::Event) && probe.is_none()).then(|| {
            let alert = Alert::new(&message, &envelope.mail_from).verified(&sender);
            let mut decision = evaluate::evaluate(&state.events, &alert, self.settings.events);
            for step in &decision.steps {
                tracing::debug!(%step, "originator policy");
            }
            let aligned = decision.aligned();
            let now = jiff::Timestamp::now();
            let reports = expect::evaluate::reports(&state.expects, &alert, aligned);
            decision
                .writes
                .extend(reports.iter().map(|r| r.write(now, alert.subject)));
            decision
        });
        let writes = decision
            .as_mut()
            .map(|d| std::mem::take(&mut d.writes))
            .unwrap_or_default();
        let m = Parsed {
            envelope: Arc::new(envelope.clone()),
            raw: Arc::new(raw),
            message: Arc::new(message),
            sender: Arc::new(sender),
            key: inbound::message_key(envelope, &digest).into(),
            writes: Arc::new(writes),
            serial: tokio::sync::Mutex::new(()),
            state: Arc::clone(&state),
            probe,
        };
        // All at once, so the events recipients' copies can share a transaction; a recipient
        // the envelope repeats afterwards, so it finds the first one's copy stored.
        let mut seen = HashSet::new();
        let (first, repeats): (Vec<_>, Vec<_>) = envelope
            .recipients
            .iter()
            .zip(routes)
            .enumerate()
            .partition(|(_, (recipient, _))| seen.insert(address_key(recipient)));
        let deliveries = first
            .into_iter()
            .map(|(i, (recipient, route))| {
                let reply = self.deliver_one(&m, recipient, route, decision.as_ref());
                Box::pin(async move { (i, reply.await) })
            })
            .collect();
        let mut replies = store::in_order(deliveries).await;
        for (i, (recipient, route)) in repeats {
            let reply = self.deliver_one(&m, recipient, route, decision.as_ref());
            replies.push((i, reply.await));
        }
        replies.sort_by_key(|(i, _)| *i);
        replies.into_iter().map(|(_, reply)| reply).collect()
    }

    fn session(&self, started: bool) {
        self.writers.session(started);
    }
}
