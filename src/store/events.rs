//! `device_logs`, `system_log` and `events`: carrying out what the events pipeline decided.

use tokio_postgres::{Client, Statement};

use super::Pending;
use crate::events::evaluate::Write;

/// The statements the events pipeline writes with, prepared once per connection.
pub struct Statements {
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
            device_log: client
                .prepare_cached(
                    "INSERT INTO device_logs (device_id, message, inbound_message_id)
                     VALUES ($1, $2, currval('inbound_messages_id_seq'))",
                )
                .await?,
            system_log: client
                .prepare_cached(
                    "INSERT INTO system_log (code, message, inbound_message_id)
                     VALUES ($1, $2, currval('inbound_messages_id_seq'))",
                )
                .await?,
            expire: client
                .prepare_cached(
                    "UPDATE events SET state = 'cleared', cleared_at = now(), cleared_reason = 'expired'
                     WHERE device_id = $1 AND event_policy_id = $2 AND state = 'active'
                       AND last_seen < now() - $3::integer * interval '1 second'",
                )
                .await?,
            // One active event per (device, policy): a repeat counts, and carries the latest
            // message, severity and mail.
            raise: client
                .prepare_cached(
                    "INSERT INTO events (device_id, event_policy_id, severity, message, inbound_message_id)
                     VALUES ($1, $2, $3, $4, currval('inbound_messages_id_seq'))
                     ON CONFLICT (device_id, event_policy_id) WHERE state = 'active'
                     DO UPDATE SET count = events.count + 1, last_seen = now(),
                         severity = excluded.severity, message = excluded.message,
                         inbound_message_id = excluded.inbound_message_id",
                )
                .await?,
            clear: client
                .prepare_cached(
                    "UPDATE events SET state = 'cleared', cleared_at = now(), cleared_reason = $3
                     WHERE device_id = $1 AND event_policy_id = $2 AND state = 'active'",
                )
                .await?,
        })
    }
}

/// The statements for `writes`, in order, each sent when first polled.
pub fn pending<'a>(
    client: &'a Client,
    st: &'a Statements,
    writes: &'a [Write],
) -> Vec<Pending<'a>> {
    let mut pending: Vec<Pending<'a>> = Vec::with_capacity(writes.len() + 2);
    for write in writes {
        match write {
            Write::DeviceLog { device_id, message } => pending.push(Box::pin(async move {
                client.execute(&st.device_log, &[device_id, message]).await
            })),
            Write::SystemLog { code, message } => pending.push(Box::pin(async move {
                client.execute(&st.system_log, &[code, message]).await
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
                            .execute(&st.expire, &[device_id, event_policy_id, seconds])
                            .await
                    }));
                }
                pending.push(Box::pin(async move {
                    let severity = severity.as_str();
                    client
                        .execute(&st.raise, &[device_id, event_policy_id, &severity, message])
                        .await
                }));
            }
            Write::Clear {
                device_id,
                event_policy_id,
                reason,
            } => pending.push(Box::pin(async move {
                client
                    .execute(&st.clear, &[device_id, event_policy_id, reason])
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
