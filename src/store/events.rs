//! `device_logs`, `system_log` and `events`: carrying out what the events pipeline decided.

use tokio_postgres::{Client, Statement};

use super::Pending;
use crate::events::evaluate::Write;

/// True only in the transaction of the mail that claimed alert key `$1` (see `claim`).
const OWNS_KEY: &str = "EXISTS (SELECT 1 FROM alert_keys WHERE key = $1
                                AND inbound_message_id = currval('inbound_messages_id_seq'))";

/// The statements the events pipeline writes with, prepared once per connection. Each takes the
/// message's alert key as `$1` and writes only if this mail claimed it.
pub struct Statements {
    claim: Statement,
    device_log: Statement,
    system_log: Statement,
    expire: Statement,
    raise: Statement,
    clear: Statement,
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
            device_log: client
                .prepare_cached(&format!(
                    "INSERT INTO device_logs (device_id, message, inbound_message_id)
                     SELECT $2, $3, currval('inbound_messages_id_seq') WHERE {OWNS_KEY}"
                ))
                .await?,
            system_log: client
                .prepare_cached(&format!(
                    "INSERT INTO system_log (code, message, inbound_message_id)
                     SELECT $2, $3, currval('inbound_messages_id_seq') WHERE {OWNS_KEY}"
                ))
                .await?,
            expire: client
                .prepare_cached(&format!(
                    "UPDATE events SET state = 'cleared', cleared_at = now(), cleared_reason = 'expired'
                     WHERE device_id = $2 AND event_policy_id = $3 AND state = 'active'
                       AND last_seen < now() - $4::integer * interval '1 second' AND {OWNS_KEY}"
                ))
                .await?,
            // One active event per (device, policy): a repeat counts, and carries the latest
            // message, severity and mail.
            raise: client
                .prepare_cached(&format!(
                    "INSERT INTO events (device_id, event_policy_id, severity, message, inbound_message_id)
                     SELECT $2, $3, $4, $5, currval('inbound_messages_id_seq') WHERE {OWNS_KEY}
                     ON CONFLICT (device_id, event_policy_id) WHERE state = 'active'
                     DO UPDATE SET count = events.count + 1, last_seen = now(),
                         severity = excluded.severity, message = excluded.message,
                         inbound_message_id = excluded.inbound_message_id"
                ))
                .await?,
            clear: client
                .prepare_cached(&format!(
                    "UPDATE events SET state = 'cleared', cleared_at = now(), cleared_reason = $4
                     WHERE device_id = $2 AND event_policy_id = $3 AND state = 'active' AND {OWNS_KEY}"
                ))
                .await?,
        })
    }
}

/// The statements for `writes`, in order, each sent when first polled: first the claim of the
/// message's alert key, then the writes, each guarded by it.
pub fn pending<'a>(
    client: &'a Client,
    st: &'a Statements,
    key: &'a str,
    writes: &'a [Write],
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
            Write::DeviceLog { device_id, message } => pending.push(Box::pin(async move {
                client
                    .execute(&st.device_log, &[&key, device_id, message])
                    .await
            })),
            Write::SystemLog { code, message } => pending.push(Box::pin(async move {
                client.execute(&st.system_log, &[&key, code, message]).await
            })),
            Write::Raise {
                device_id,
                event_policy_id,
                severity,
                message,
                expire_after_s,
            } => {
                if let Some(seconds) = expire_after_s {
                    pending.push(Box::pin(async move {
                        client
                            .execute(&st.expire, &[&key, device_id, event_policy_id, seconds])
                            .await
                    }));
                }
                pending.push(Box::pin(async move {
                    let severity = severity.as_str();
                    client
                        .execute(
                            &st.raise,
                            &[&key, device_id, event_policy_id, &severity, message],
                        )
                        .await
                }));
            }
            Write::Clear {
                device_id,
                event_policy_id,
                reason,
            } => pending.push(Box::pin(async move {
                client
                    .execute(&st.clear, &[&key, device_id, event_policy_id, reason])
                    .await
            })),
        }
    }
    pending
}

/// Clears every active event whose policy's `expire_after_s` has passed since it was last seen.
pub async fn expire(client: &Client) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE events e SET state = 'cleared', cleared_at = now(), cleared_reason = 'expired'
             FROM event_policies p
             WHERE e.event_policy_id = p.id AND e.state = 'active' AND p.expire_after_s IS NOT NULL
               AND e.last_seen < now() - p.expire_after_s * interval '1 second'",
            &[],
        )
        .await
}
