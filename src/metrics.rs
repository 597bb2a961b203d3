//! What `serve` counts, in Prometheus's terms: one registry for the process, recorded into by
//! the parts that do the work and written out by the `[metrics]` endpoint
//! ([`crate::serve`]). Recording is a few atomic operations, endpoint or not.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// One label's name and value.
type Label = [(&'static str, &'static str); 1];

/// Every metric `serve` keeps.
pub struct Metrics {
    registry: Registry,
    messages: Family<[(&'static str, &'static str); 2], Counter>,
    lmtp_replies: Family<Label, Counter>,
    data_to_reply: Histogram,
    transactions: Histogram,
    batch_sizes: Histogram,
    events_raised: Family<Label, Counter>,
    events_cleared: Family<Label, Counter>,
    tickets_opened: Counter,
    ticket_notes: Counter,
    outbox: Family<Label, Counter>,
    outbox_queued: Gauge,
    outbox_oldest: Gauge<f64, std::sync::atomic::AtomicU64>,
    roundtrips: Histogram,
    roundtrip_timeouts: Counter,
    policies: Family<Label, Gauge>,
    policies_loaded_at: Gauge<f64, std::sync::atomic::AtomicU64>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Seconds from 0.5 ms to about 8 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 15)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mailops");
        let m = Metrics {
            registry: Registry::default(),
            messages: Family::default(),
            lmtp_replies: Family::default(),
            data_to_reply: Histogram::new(latency_buckets()),
            transactions: Histogram::new(latency_buckets()),
            batch_sizes: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            events_raised: Family::default(),
            events_cleared: Family::default(),
            tickets_opened: Counter::default(),
            ticket_notes: Counter::default(),
            outbox: Family::default(),
            outbox_queued: Gauge::default(),
            outbox_oldest: Gauge::default(),
            roundtrips: Histogram::new([
                0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ]),
            roundtrip_timeouts: Counter::default(),
            policies: Family::default(),
            policies_loaded_at: Gauge::default(),
        };
        registry.register(
            "messages",
            "Recipients' copies delivered over LMTP, by route (event, ticket, probe_reply; unknown when the route could not be had) and outcome (stored, duplicate, deferred, refused)",
            m.messages.clone(),
        );
        registry.register(
            "lmtp_replies",
            "LMTP replies sent, by code class (2xx, 3xx, 4xx, 5xx)",
            m.lmtp_replies.clone(),
        );
        registry.register(
            "lmtp_data_reply_seconds",
            "Time from the end of a message's DATA to its last reply",
            m.data_to_reply.clone(),
        );
        registry.register(
            "database_transaction_seconds",
            "Time of each transaction storing delivered mail, from BEGIN to COMMIT",
            m.transactions.clone(),
        );
        registry.register(
            "group_commit_batch_size",
            "Events copies stored together in one transaction",
            m.batch_sizes.clone(),
        );
        registry.register(
            "events_raised",
            "Alerts written to an event (a new event or a repeat of the active one), by severity",
            m.events_raised.clone(),
        );
        registry.register(
            "events_cleared",
            "Active events cleared (by a recovery, a clearing policy or expiry), by the severity they had",
            m.events_cleared.clone(),
        );
        registry.register(
            "tickets_opened",
            "Tickets opened from mail",
            m.tickets_opened.clone(),
        );
        registry.register(
            "ticket_notes",
            "Notes added to tickets from replies",
            m.ticket_notes.clone(),
        );
        registry.register(
            "outbox_attempts",
            "Attempts at sending a queued notice or probe, by outcome (sent; retry: failed, tried again later; failed: given up)",
            m.outbox.clone(),
        );
        registry.register(
            "outbox_queued",
            "Notices and probes waiting in the outbox",
            m.outbox_queued.clone(),
        );
        registry.register(
            "outbox_oldest_queued_seconds",
            "Age of the oldest notice or probe waiting in the outbox (0 when none)",
            m.outbox_oldest.clone(),
        );
        registry.register(
            "roundtrip_seconds",
            "Round-trip time of probes answered in time",
            m.roundtrips.clone(),
        );
        registry.register(
            "roundtrip_timeouts",
            "Round-trip probes that timed out",
            m.roundtrip_timeouts.clone(),
        );
        registry.register(
            "policies",
            "What the policies in memory hold, by kind",
            m.policies.clone(),
        );
        registry.register(
            "policies_loaded_timestamp_seconds",
            "When the policies in memory were last loaded (Unix time)",
            m.policies_loaded_at.clone(),
        );
        registry.register(
            "build",
            "This mailops's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// A recipient's copy delivered through `route` with `outcome`.
    pub fn message(&self, route: &'static str, outcome: &'static str) {
        self.messages
            .get_or_create(&[("route", route), ("outcome", outcome)])
            .inc();
    }

    /// An LMTP reply with `code` sent.
    pub fn lmtp_reply(&self, code: u16) {
        let class = match code / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        self.lmtp_replies.get_or_create(&[("class", class)]).inc();
    }

    /// A message's replies went out `took` after the end of its DATA.
    pub fn data_replied(&self, took: Duration) {
        self.data_to_reply.observe(took.as_secs_f64());
    }

    /// A transaction storing delivered mail took `took`; `copies` were stored together in
    /// it when it was a group commit.
    pub fn transaction(&self, took: Duration, copies: Option<usize>) {
        self.transactions.observe(took.as_secs_f64());
        if let Some(copies) = copies {
            self.batch_sizes.observe(copies as f64);
        }
    }

    /// Per severity: alerts written to events (new or repeats), and active events cleared.
    pub fn events(&self, counts: impl IntoIterator<Item = (&'static str, u64, u64)>) {
        for (severity, raised, cleared) in counts {
            if raised > 0 {
                self.events_raised
                    .get_or_create(&[("severity", severity)])
                    .inc_by(raised);
            }
            if cleared > 0 {
                self.events_cleared
                    .get_or_create(&[("severity", severity)])
                    .inc_by(cleared);
            }
        }
    }

    /// A ticket opened.
    pub fn ticket_opened(&self) {
        self.tickets_opened.inc();
    }

    /// A note added to a ticket.
    pub fn ticket_note(&self) {
        self.ticket_notes.inc();
    }

    /// An attempt at sending an outbox row ended in `outcome` (sent, retry, failed).
    pub fn outbox_attempt(&self, outcome: &'static str) {
        self.outbox.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// The outbox holds `queued` rows waiting, the oldest for `oldest`.
    pub fn outbox_backlog(&self, queued: i64, oldest: Duration) {
        self.outbox_queued.set(queued);
        self.outbox_oldest.set(oldest.as_secs_f64());
    }

    /// A probe answered in time, `rtt` after it was sent.
    pub fn roundtrip(&self, rtt: Duration) {
        self.roundtrips.observe(rtt.as_secs_f64());
    }

    /// `count` probes timed out.
    pub fn roundtrip_timeouts(&self, count: u64) {
        self.roundtrip_timeouts.inc_by(count);
    }

    /// The policies were loaded, holding `counts` of each kind.
    pub fn policies_loaded(&self, counts: &[(&'static str, usize)]) {
        for (kind, count) in counts {
            self.policies
                .get_or_create(&[("kind", kind)])
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.policies_loaded_at.set(now.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_each_metric_with_its_type() {
        let m = Metrics::new();
        m.message("events", "stored");
        m.lmtp_reply(451);
        m.data_replied(Duration::from_millis(3));
        m.events([("critical", 2, 0), ("minor", 0, 1)]);
        m.policies_loaded(&[("devices", 7)]);
        let text = m.encode();
        for line in [
            "# TYPE mailops_messages_total counter",
            "mailops_messages_total{route=\"events\",outcome=\"stored\"} 1",
            "mailops_lmtp_replies_total{class=\"4xx\"} 1",
            "# TYPE mailops_lmtp_data_reply_seconds histogram",
            "mailops_lmtp_data_reply_seconds_count 1",
            "mailops_events_raised_total{severity=\"critical\"} 2",
            "mailops_events_cleared_total{severity=\"minor\"} 1",
            "mailops_policies{kind=\"devices\"} 7",
            "mailops_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }
}
