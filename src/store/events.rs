//! `device_logs`, `system_log` and `events`: carrying out what the events pipeline decided.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::{Client, Row, Statement};

use super::Pending;
use crate::events::evaluate::{Close, Write};
use crate::events::model::Severity;

/// What a transaction's events writes did, by severity, counted as the statements answer:
/// read it once the transaction has committed.
#[derive(Debug, Default)]
pub struct Tally {
    raised: [AtomicU64; Severity::ALL.len()],
    cleared: [AtomicU64; Severity::ALL.len()],
}

impl Tally {
    fn add(counts: &[AtomicU64], severity: Severity, n: u64) {
        if let Some(i) = Severity::ALL.iter().position(|s| *s == severity) {
            counts[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts the events the rows (each an event's `severity` in `column`) say were cleared;
    /// returns how many rows there were.
    fn cleared(&self, rows: &[impl std::borrow::Borrow<Row>], column: usize) -> u64 {
        for row in rows {
            if let Ok(severity) = row.borrow().get::<_, &str>(column).parse() {
                Tally::add(&self.cleared, severity, 1);
            }
        }
        rows.len() as u64
    }

    /// Counts what rows of (`raised` or `cleared`, severity) say, raised ones at `severity`;
    /// returns how many rows there were.
    fn count(&self, rows: &[Row], severity: Severity) -> u64 {
        let (raised, cleared): (Vec<&Row>, Vec<&Row>) =
            rows.iter().partition(|r| r.get::<_, &str>(0) == "raised");
        Tally::add(&self.raised, severity, raised.len() as u64);
        raised.len() as u64 + self.cleared(&cleared, 1)
    }

    /// Per severity: alerts written to an event (new or a repeat), and events cleared.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        Severity::ALL.iter().enumerate().map(|(i, s)| {
            (
                s.as_str(),
                self.raised[i].load(Ordering::Relaxed),
                self.cleared[i].load(Ordering::Relaxed),
            )
        })
    }
}

/// The tokens in bucket `b` now: what it had, refilled at $4 per $5 seconds since, up to $4.
const REFILLED: &str = "least($4::integer::float8, b.tokens + extract(epoch FROM now() - b.refilled_at)::float8 * $4::integer / $5::integer)";

/// True only in the transaction of the mail that claimed alert key `$1` (see `claim`).
const OWNS_KEY: &str = "EXISTS (SELECT 1 FROM alert_keys WHERE key = $1
                                AND inbound_message_id = currval('inbound_messages_id_seq'))";

/// Whether the active event's health differs from the new severity's ($5), when a reason for
/// that ($6) is given.
const CHANGED: &str = "($6::text IS NOT NULL AND (severity = 'healthy') <> ($5::text = 'healthy'))";

/// The statements the events pipeline writes with, prepared once per connection. Each takes the
/// message's alert key as `$1` and writes only if this mail claimed it.
pub struct Statements {
    claim: Statement,
    device_log: Statement,
    system_log: Statement,
    close: Statement,
    raise: Statement,
    clear: Statement,
    report: Statement,
    take: Statement,
}

impl Statements {
    /// Prepares them (cached per connection after the first time).
    pub async fn prepare(
        client: &deadpool_postgres::Client,
    ) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            claim: client
                .prepare_cached(
                    "INSERT INTO alert_keys (key, inbound_message_id)
                     VALUES ($1, currval('inbound_messages_id_seq'))
                     ON CONFLICT (key) DO NOTHING",
                )
                .await?,
            // Not when every capped policy in $4 found no token ([`Write::Take`], before it).
            device_log: client
                .prepare_cached(&format!(
                    "INSERT INTO device_logs (device_id, message, inbound_message_id)
                     SELECT $2, $3, currval('inbound_messages_id_seq') WHERE {OWNS_KEY}
                       AND (cardinality($4::bigint[]) = 0
                            OR EXISTS (SELECT 1 FROM alert_buckets
                                       WHERE device_id = $2 AND event_policy_id = ANY($4)
                                         AND NOT over))"
                ))
                .await?,
            system_log: client
                .prepare_cached(&format!(
                    "INSERT INTO system_log (code, message, inbound_message_id)
                     SELECT $2, $3, currval('inbound_messages_id_seq') WHERE {OWNS_KEY}"
                ))
                .await?,
            // Before a raise: the active event with the same identity is cleared when it expired
            // (healthy ones after their own time, when set) or, with a reason ($6), when its
            // health differs from the new severity's ($5): a recovery, or a problem after one.
            close: client
                .prepare_cached(&format!(
                    "UPDATE events SET state = 'cleared', cleared_at = now(),
                         cleared_reason = CASE WHEN {CHANGED} THEN $6 ELSE 'expired' END
                     WHERE device_id = $2 AND event_policy_id = $3 AND key = $4 AND state = 'active'
                       AND ({CHANGED}
                            OR last_seen < now() - (CASE WHEN severity = 'healthy'
                                                         THEN coalesce($8::integer, $7::integer)
                                                         ELSE $7::integer END) * interval '1 second')
                       AND {OWNS_KEY}
                     RETURNING severity"
                ))
                .await?,
            // One active event per (device, policy, key): a repeat counts, and carries the
            // latest message, severity and mail.
            raise: client
                .prepare_cached(&format!(
                    "INSERT INTO events (device_id, event_policy_id, key, severity, message, inbound_message_id)
                     SELECT $2, $3, $4, $5, $6, currval('inbound_messages_id_seq') WHERE {OWNS_KEY}
                     ON CONFLICT (device_id, event_policy_id, key) WHERE state = 'active'
                     DO UPDATE SET count = events.count + 1, last_seen = now(),
                         severity = excluded.severity, message = excluded.message,
                         inbound_message_id = excluded.inbound_message_id"
                ))
                .await?,
            // The active events of a policy on a device: with that key ($5), or whatever it is.
            clear: client
                .prepare_cached(&format!(
                    "UPDATE events SET state = 'cleared', cleared_at = now(), cleared_reason = $4
                     WHERE device_id = $2 AND event_policy_id = $3 AND state = 'active'
                       AND ($5::text IS NULL OR key = $5) AND {OWNS_KEY}
                     RETURNING severity"
                ))
                .await?,
            // A token from the bucket of policy $3's alerts about device $2 ($4 per $5 seconds):
            // refilled for the time since, taken if there is a whole one, else the alert is
            // over: the flood event is raised or counts one more. Full again (a whole period
            // under the cap), the flood event is cleared. Returns the flood event's severity when it was raised
            // (`raised`) or cleared (`cleared`).
            take: client
                .prepare_cached(&format!(
                    "WITH owns AS (SELECT 1 WHERE {OWNS_KEY}),
                     bucket AS (
                         INSERT INTO alert_buckets AS b (device_id, event_policy_id, tokens,
                             refilled_at)
                         SELECT $2, $3, $4::integer - 1, now() FROM owns
                         ON CONFLICT (device_id, event_policy_id) DO UPDATE SET
                             tokens = CASE WHEN {REFILLED} >= 1 THEN {REFILLED} - 1
                                           ELSE {REFILLED} END,
                             over = {REFILLED} < 1,
                             refilled_at = now()
                         RETURNING over, tokens
                     ),
                     flood AS (
                         INSERT INTO events (device_id, flood_policy_id, severity, message,
                             inbound_message_id)
                         SELECT $2, $3, $6, $7, currval('inbound_messages_id_seq')
                         FROM bucket WHERE over
                         ON CONFLICT (device_id, flood_policy_id)
                             WHERE state = 'active' AND flood_policy_id IS NOT NULL
                         DO UPDATE SET count = events.count + 1, last_seen = now(),
                             inbound_message_id = excluded.inbound_message_id
                         RETURNING severity, count
                     ),
                     ebb AS (
                         UPDATE events SET state = 'cleared', cleared_at = now(),
                             cleared_reason = 'the alert rate fell under the cap'
                         WHERE device_id = $2 AND flood_policy_id = $3 AND state = 'active'
                           AND EXISTS (SELECT 1 FROM bucket
                                       WHERE NOT over AND tokens >= $4::integer - 1)
                         RETURNING severity
                     )
                     SELECT 'raised', severity FROM flood WHERE count = 1
                     UNION ALL SELECT 'cleared', severity FROM ebb"
                ))
                .await?,
            // A report to an expected-mail policy ($2, on device $5): its state moves on (a
            // start mail only notes when the job started), the report is recorded with the
            // job's duration from its start mail, and a failure raises (or repeats) the
            // policy's event, a success clears it. Returns the events raised or cleared, each
            // as (`raised` or `cleared`, severity).
            report: client
                .prepare_cached(&format!(
                    "WITH owns AS (SELECT 1 WHERE {OWNS_KEY}),
                     before AS (SELECT started_at FROM expect_state WHERE expect_policy_id = $2),
                     state AS (
                         INSERT INTO expect_state AS s (expect_policy_id, due_at, last_seen_at,
                             last_outcome, started_at)
                         SELECT $2, coalesce($4, now()),
                                CASE WHEN $3 <> 'started' THEN now() END,
                                CASE WHEN $3 <> 'started' THEN $3 END,
                                CASE WHEN $3 = 'started' THEN now() END
                         FROM owns
                         ON CONFLICT (expect_policy_id) DO UPDATE SET
                             due_at = coalesce($4, s.due_at),
                             last_seen_at = coalesce(excluded.last_seen_at, s.last_seen_at),
                             last_outcome = coalesce(excluded.last_outcome, s.last_outcome),
                             consecutive_misses = CASE WHEN $3 = 'started'
                                 THEN s.consecutive_misses ELSE 0 END,
                             started_at = excluded.started_at
                         RETURNING 1
                     ),
                     report AS (
                         INSERT INTO expect_reports (expect_policy_id, outcome, duration_ms,
                             inbound_message_id)
                         SELECT $2, $3,
                                CASE WHEN $3 <> 'started' THEN
                                    (extract(epoch FROM now() - b.started_at) * 1000)::bigint END,
                                currval('inbound_messages_id_seq')
                         FROM owns LEFT JOIN before b ON true
                         RETURNING 1
                     ),
                     raised AS (
                         INSERT INTO events (device_id, expect_policy_id, severity, message,
                             inbound_message_id)
                         SELECT $5, $2, $6, $7, currval('inbound_messages_id_seq')
                         FROM owns WHERE $3 = 'failure'
                         ON CONFLICT (device_id, expect_policy_id)
                             WHERE state = 'active' AND expect_policy_id IS NOT NULL
                         DO UPDATE SET count = events.count + 1, last_seen = now(),
                             severity = excluded.severity, message = excluded.message,
                             inbound_message_id = excluded.inbound_message_id
                         RETURNING severity
                     ),
                     cleared AS (
                         UPDATE events SET state = 'cleared', cleared_at = now(),
                             cleared_reason = 'a successful report'
                         WHERE device_id = $5 AND expect_policy_id = $2 AND state = 'active'
                           AND $3 = 'success' AND EXISTS (SELECT 1 FROM owns)
                         RETURNING severity
                     )
                     SELECT 'raised', severity FROM raised
                     UNION ALL SELECT 'cleared', severity FROM cleared"
                ))
                .await?,
        })
    }
}

/// The statements for `writes`, in order, each sent when first polled: first the claim of the
/// message's alert key, then the writes, each guarded by it. What they did is counted in
/// `tally`.
pub fn pending<'a>(
    client: &'a Client,
    st: &'a Statements,
    key: &'a str,
    writes: &'a [Write],
    tally: &'a Tally,
) -> Vec<Pending<'a>> {
    let mut pending: Vec<Pending<'a>> = Vec::with_capacity(writes.len() + 2);
    if writes.is_empty() {
        return pending;
    }
    pending.push(Box::pin(
        async move { client.execute(&st.claim, &[&key]).await },
    ));
    for write in writes {
        match write {
            Write::DeviceLog {
                device_id,
                message,
                unless_over,
            } => pending.push(Box::pin(async move {
                client
                    .execute(&st.device_log, &[&key, device_id, message, unless_over])
                    .await
            })),
            Write::Take {
                device_id,
                event_policy_id,
                rate,
                severity,
                message,
            } => pending.push(Box::pin(async move {
                let rows = client
                    .query(
                        &st.take,
                        &[
                            &key,
                            device_id,
                            event_policy_id,
                            &rate.count,
                            &rate.per_s,
                            &severity.as_str(),
                            message,
                        ],
                    )
                    .await?;
                Ok(tally.count(&rows, *severity))
            })),
            Write::SystemLog { code, message } => pending.push(Box::pin(async move {
                client.execute(&st.system_log, &[&key, code, message]).await
            })),
            Write::Raise {
                device_id,
                event_policy_id,
                key: event_key,
                severity,
                message,
                close,
            } => {
                if let Some(Close {
                    expire_after_s,
                    expire_healthy_after_s,
                    health_changed,
                }) = close
                {
                    pending.push(Box::pin(async move {
                        client
                            .query(
                                &st.close,
                                &[
                                    &key,
                                    device_id,
                                    event_policy_id,
                                    event_key,
                                    &severity.as_str(),
                                    health_changed,
                                    expire_after_s,
                                    expire_healthy_after_s,
                                ],
                            )
                            .await
                            .map(|rows| tally.cleared(&rows, 0))
                    }));
                }
                pending.push(Box::pin(async move {
                    let written = client
                        .execute(
                            &st.raise,
                            &[
                                &key,
                                device_id,
                                event_policy_id,
                                event_key,
                                &severity.as_str(),
                                message,
                            ],
                        )
                        .await?;
                    Tally::add(&tally.raised, *severity, written);
                    Ok(written)
                }));
            }
            Write::Clear {
                device_id,
                event_policy_id,
                key: event_key,
                reason,
            } => pending.push(Box::pin(async move {
                client
                    .query(
                        &st.clear,
                        &[&key, device_id, event_policy_id, reason, event_key],
                    )
                    .await
                    .map(|rows| tally.cleared(&rows, 0))
            })),
            Write::Report {
                expect_policy_id,
                device_id,
                outcome,
                due,
                severity,
                message,
            } => pending.push(Box::pin(async move {
                let rows = client
                    .query(
                        &st.report,
                        &[
                            &key,
                            expect_policy_id,
                            outcome,
                            due,
                            device_id,
                            &severity.as_str(),
                            message,
                        ],
                    )
                    .await?;
                Ok(tally.count(&rows, *severity))
            })),
        }
    }
    pending
}

/// Clears every active event whose policy's `expire_after_s` (for a healthy one,
/// `expire_healthy_after_s` when set) has passed since it was last seen; counts them in the
/// tally it returns, with how many.
pub async fn expire(client: &Client) -> Result<(u64, Tally), tokio_postgres::Error> {
    let tally = Tally::default();
    let rows = client
        .query(
            "UPDATE events e SET state = 'cleared', cleared_at = now(), cleared_reason = 'expired'
             FROM event_policies p
             WHERE e.event_policy_id = p.id AND e.state = 'active'
               AND (p.expire_after_s IS NOT NULL OR p.expire_healthy_after_s IS NOT NULL)
               AND e.last_seen < now() - (CASE WHEN e.severity = 'healthy'
                                               THEN coalesce(p.expire_healthy_after_s, p.expire_after_s)
                                               ELSE p.expire_after_s END) * interval '1 second'
             RETURNING e.severity",
            &[],
        )
        .await?;
    // Floods whose alerts fell under the cap: the bucket is full again.
    let floods = client
        .query(
            "UPDATE events e SET state = 'cleared', cleared_at = now(),
                 cleared_reason = 'the alert rate fell under the cap'
             FROM alert_buckets b, event_policies p
             WHERE e.flood_policy_id = p.id AND e.state = 'active'
               AND b.device_id = e.device_id AND b.event_policy_id = p.id
               AND least(p.rate_count::float8, b.tokens + extract(epoch FROM now()
                   - b.refilled_at) * p.rate_count / p.rate_per_s) >= p.rate_count
             RETURNING e.severity",
            &[],
        )
        .await?;
    let n = tally.cleared(&rows, 0) + tally.cleared(&floods, 0);
    Ok((n, tally))
}
