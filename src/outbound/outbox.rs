//! The outbox: messages are composed and queued in the caller's transaction, and a worker in
//! `serve` sends due rows, retrying with back-off, never twice from several processes.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use tokio_postgres::GenericClient;

use super::smtp::{self, Settings};
use crate::config::Outbound;
use crate::stop::Stop;
use crate::{metrics, store};

/// A message for mailops to send.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    /// The sender, when not `[outbound] from_address` (a ticket policy's reply address).
    pub from: Option<String>,
    /// The recipient.
    pub to: String,
    /// The subject (CR, LF and NUL are removed).
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// Message-ID (without `<>`) of the mail this answers.
    pub in_reply_to: Option<String>,
    /// Message-IDs of the thread, oldest first.
    pub references: Vec<String>,
    /// `auto-replied` (answering a mail) or `auto-generated` (RFC 3834).
    pub auto_submitted: &'static str,
    /// What it is (`outbox.kind`: `ticket_created`, `ticket_updated`…).
    pub kind: &'static str,
    /// The ticket it is about.
    pub ticket_id: Option<i64>,
}

/// A composed message.
#[derive(Debug, Clone)]
pub struct Composed {
    /// Its Message-ID, without `<>`.
    pub message_id: String,
    /// The whole message.
    pub bytes: Vec<u8>,
}

/// Why a message could not be composed.
#[derive(Debug, thiserror::Error)]
#[error("cannot compose a message to {to:?}: {why}")]
pub struct ComposeError {
    to: String,
    why: String,
}

/// Header text from any source, made safe: no CR, LF or NUL (no header injection).
pub fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, '\r' | '\n' | '\0') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// A Message-ID under `domain` that cannot be guessed: time, a counter and per-process
/// randomness, hashed.
fn new_message_id(domain: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(nanos);
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}.{:x}@{domain}", h.finish(), nanos)
}

/// Composes `notice` as mailops sends it: From the formal name and the notice's sender (else
/// the from address), a new Message-ID under the sender's domain, In-Reply-To/References,
/// `Auto-Submitted`.
pub fn compose(o: &Outbound, notice: &Notice) -> Result<Composed, ComposeError> {
    let err = |why: String| ComposeError {
        to: notice.to.clone(),
        why,
    };
    let sender = sender(o, notice);
    let from: Mailbox = format!("{} <{}>", header_text(&o.formal_name), header_text(sender))
        .parse()
        .map_err(|e| err(format!("from: {e}")))?;
    let to: Mailbox = header_text(&notice.to)
        .parse()
        .map_err(|e| err(format!("to: {e}")))?;
    let domain = sender.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let message_id = new_message_id(domain);
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(header_text(&notice.subject))
        .message_id(Some(format!("<{message_id}>")))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            notice.auto_submitted.to_owned(),
        ));
    if let Some(id) = &notice.in_reply_to {
        builder = builder.in_reply_to(format!("<{}>", header_text(id)));
    }
    if !notice.references.is_empty() {
        let ids: Vec<String> = notice
            .references
            .iter()
            .map(|id| format!("<{}>", header_text(id)))
            .collect();
        builder = builder.references(ids.join(" "));
    }
    let message = builder
        .body(notice.body.clone())
        .map_err(|e| err(e.to_string()))?;
    Ok(Composed {
        message_id,
        bytes: message.formatted(),
    })
}

/// The address `notice` is sent from.
fn sender<'a>(o: &'a Outbound, notice: &'a Notice) -> &'a str {
    notice.from.as_deref().unwrap_or(&o.from_address)
}

/// Queues `notice` through `client` (the caller's transaction, so it is sent only if what
/// caused it commits); returns the outbox id.
pub async fn enqueue(
    client: &impl GenericClient,
    o: &Outbound,
    notice: &Notice,
) -> Result<i64, store::Error> {
    let composed = compose(o, notice).map_err(|e| store::Error::Corrupt(e.to_string()))?;
    queue(client, o, notice, &composed).await
}

/// Queues `notice`, already composed, through `client`; returns the outbox id.
pub async fn queue(
    client: &impl GenericClient,
    o: &Outbound,
    notice: &Notice,
    composed: &Composed,
) -> Result<i64, store::Error> {
    let queued = store::outbox::Queued {
        recipient: &notice.to,
        sender: sender(o, notice),
        subject: &header_text(&notice.subject),
        message_id: &composed.message_id,
        message: &composed.bytes,
        kind: notice.kind,
        ticket_id: notice.ticket_id,
    };
    store::outbox::insert(client, &queued).await
}

/// The pause before attempt `attempts + 1`: 30 s doubling, at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    Duration::from_secs(30 << doublings).min(Duration::from_secs(3600))
}

/// How often the outbox worker counts what waits in the outbox.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);

/// Sends due outbox rows until told to stop. A send in progress is finished (the gateway's
/// answer recorded and committed) before it stops, so a notice is never sent twice.
pub async fn work(pool: Pool, o: Arc<Outbound>, settings: Arc<Settings>, mut stop: Stop) {
    let mut counted: Option<std::time::Instant> = None;
    while !stop.stopping() {
        // What waits, for the metrics: at most every few seconds, busy or not.
        if counted.is_none_or(|at| at.elapsed() >= BACKLOG_INTERVAL) {
            counted = Some(std::time::Instant::now());
            match store::outbox::backlog(&pool).await {
                Ok((queued, oldest)) => metrics::get().outbox_backlog(queued, oldest),
                Err(e) => tracing::warn!(error = %e, "outbox backlog"),
            }
        }
        let pause = if o.block_outgoing {
            Duration::from_secs(5)
        } else {
            match send_one(&pool, &o, &settings).await {
                Ok(true) => continue,
                Ok(false) => Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox");
                    Duration::from_secs(5)
                }
            }
        };
        if !stop.sleep(pause).await {
            break;
        }
    }
}

/// Claims one due row (rows another process holds are skipped), sends it and records the
/// outcome in the same transaction; false when nothing was due.
pub async fn send_one(
    pool: &Pool,
    o: &Outbound,
    settings: &Settings,
) -> Result<bool, store::Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(due) = store::outbox::claim(&*tx).await? else {
        return Ok(false);
    };
    let id = due.id;
    let to = if o.address_override.is_empty() {
        &due.recipient
    } else {
        &o.address_override
    };
    let attempts = due.attempts + 1;
    let sent = smtp::send(settings, &due.sender, to, &due.message).await;
    // When the gateway took it, not when the transaction began.
    let sent_at = SystemTime::now();
    match &sent {
        Ok(via) => {
            store::outbox::sent(&*tx, id, via, attempts, sent_at).await?;
            tracing::info!(outbox_id = id, to, attempts, via = %via, "sent");
        }
        Err(failure) => {
            let failed = failure.is_permanent() || attempts >= o.max_attempts;
            let error = failure.to_string();
            store::outbox::not_sent(&*tx, id, attempts, &error, failed, backoff(attempts)).await?;
            tracing::warn!(outbox_id = id, to, attempts, failed, %failure, "not sent");
        }
    }
    tx.commit().await?;
    metrics::get().outbox_attempt(match &sent {
        Ok(_) => "sent",
        Err(failure) if failure.is_permanent() || attempts >= o.max_attempts => "failed",
        Err(_) => "retry",
    });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound() -> Outbound {
        let text = "[database]\nurl = \"postgres://x/y\"\n[lmtp]\nlisten = \"127.0.0.1:1\"\n\
                    [inbound]\nauthorized_domains = [\"mon.example.com\"]\n\
                    [outbound]\nfrom_address = \"noreply@mon.example.com\"\ngateway = \"smtp.example.com\"\n";
        crate::config::Config::parse(text, None)
            .expect("config")
            .outbound
            .expect("outbound")
    }

    #[test]
    fn composed_notices_carry_threading_and_auto_submitted() {
        let notice = Notice {
            to: "alice@example.com".into(),
            subject: "Ticket 7 created\r\nBcc: victim@example.com".into(),
            body: "Hello\n".into(),
            in_reply_to: Some("orig@example.com".into()),
            references: vec!["first@example.com".into(), "orig@example.com".into()],
            auto_submitted: "auto-replied",
            ..Notice::default()
        };
        let c = compose(&outbound(), &notice).expect("composed");
        let text = String::from_utf8(c.bytes).expect("utf-8");
        assert!(
            c.message_id.ends_with("@mon.example.com"),
            "{}",
            c.message_id
        );
        assert!(
            text.contains(&format!("Message-ID: <{}>\r\n", c.message_id)),
            "{text}"
        );
        assert!(
            text.contains("From: mailops <noreply@mon.example.com>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("In-Reply-To: <orig@example.com>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("References: <first@example.com> <orig@example.com>\r\n"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied\r\n"), "{text}");
        // The CRLF in the subject did not start a header of its own.
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert_ne!(
            compose(&outbound(), &notice).expect("again").message_id,
            c.message_id
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let secs: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }
}
