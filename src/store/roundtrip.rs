//! `roundtrip_probes` and `roundtrip_schedule`: probes queued, sent, answered, timed out, and
//! the events their timeouts raise and their replies clear.

use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;

use super::Error;
use crate::roundtrip::model::RoundtripPolicy;

/// Claims `policy`'s probe in `client`'s transaction if it is due (the row lock makes this
/// the one claim per interval, whichever process gets it): returns the new probe's id, or
/// `None` when another process already queued this interval's.
pub async fn claim(
    client: &impl GenericClient,
    policy: &RoundtripPolicy,
) -> Result<Option<i64>, Error> {
    client
        .execute(
            "INSERT INTO roundtrip_schedule (roundtrip_policy_id, next_probe_at) VALUES ($1, now())
             ON CONFLICT (roundtrip_policy_id) DO NOTHING",
            &[&policy.id],
        )
        .await?;
    let claimed = client
        .query_opt(
            "UPDATE roundtrip_schedule SET next_probe_at = now() + $2 * interval '1 second'
             WHERE roundtrip_policy_id = $1 AND next_probe_at <= now()
             RETURNING 1",
            &[&policy.id, &f64::from(policy.interval_s)],
        )
        .await?
        .is_some();
    if !claimed {
        return Ok(None);
    }
    let id = client
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('roundtrip_probes', 'id'))",
            &[],
        )
        .await?
        .get(0);
    Ok(Some(id))
}

/// Records probe `id` of `policy_id`, carrying `token`, queued as outbox row `outbox_id`.
pub async fn queued(
    client: &impl GenericClient,
    id: i64,
    policy_id: i64,
    token: &str,
    outbox_id: i64,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO roundtrip_probes (id, roundtrip_policy_id, token, outbox_id)
             VALUES ($1, $2, $3, $4)",
            &[&id, &policy_id, &token, &outbox_id],
        )
        .await?;
    Ok(())
}

/// How long until policy `policy_id`'s next probe is due.
pub async fn next_due(client: &impl GenericClient, policy_id: i64) -> Result<Duration, Error> {
    let wait: f64 = client
        .query_one(
            "SELECT greatest(extract(epoch FROM next_probe_at - now()), 0)::float8
             FROM roundtrip_schedule WHERE roundtrip_policy_id = $1",
            &[&policy_id],
        )
        .await?
        .get(0);
    Ok(Duration::from_secs_f64(wait))
}

/// Marks the probes that were not answered in time `timeout` and raises (or repeats) each
/// one's event on its policy's device; returns how many timed out.
pub async fn sweep(pool: &Pool) -> Result<u64, Error> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "WITH timed_out AS (
                 UPDATE roundtrip_probes r SET state = 'timeout'
                 FROM roundtrip_policies p
                 WHERE p.id = r.roundtrip_policy_id AND r.state IN ('queued', 'sent')
                   AND coalesce(r.sent_at, r.queued_at) + p.timeout_s * interval '1 second' < now()
                 RETURNING r.id, p.id AS policy_id, p.device_id, p.severity, p.name, p.timeout_s
             ), raised AS (
                 INSERT INTO events (device_id, roundtrip_policy_id, severity, message)
                 SELECT DISTINCT ON (policy_id) device_id, policy_id, severity,
                        format('Email round trip %s: no reply within %s s', name, timeout_s)
                 FROM timed_out ORDER BY policy_id, id DESC
                 ON CONFLICT (device_id, roundtrip_policy_id)
                     WHERE state = 'active' AND roundtrip_policy_id IS NOT NULL
                 DO UPDATE SET count = events.count + 1, last_seen = now(),
                     severity = excluded.severity, message = excluded.message
             )
             SELECT count(*) FROM timed_out",
            &[],
        )
        .await?;
    Ok(row.get::<_, i64>(0).unsigned_abs())
}

/// Records that the gateway accepted the probe sent as outbox row `outbox_id` at `at` (a
/// reply may already be in: its round trip is then known too).
pub(super) async fn sent(
    client: &impl GenericClient,
    outbox_id: i64,
    at: SystemTime,
) -> Result<(), Error> {
    client
        .execute(
            "UPDATE roundtrip_probes SET sent_at = $2,
                 state = CASE state WHEN 'queued' THEN 'sent' ELSE state END,
                 rtt_ms = CASE WHEN received_at IS NOT NULL
                     THEN (extract(epoch FROM received_at - $2) * 1000)::bigint END
             WHERE outbox_id = $1",
            &[&outbox_id, &at],
        )
        .await?;
    Ok(())
}

/// Records that the probe sent as outbox row `outbox_id` will never leave.
pub(super) async fn send_failed(client: &impl GenericClient, outbox_id: i64) -> Result<(), Error> {
    client
        .execute(
            "UPDATE roundtrip_probes SET state = 'send_failed'
             WHERE outbox_id = $1 AND state IN ('queued', 'sent')",
            &[&outbox_id],
        )
        .await?;
    Ok(())
}

/// Records the reply to probe `probe_id` (stored as `inbound_message_id`): its time, round
/// trip, sender and hops. In time it clears the policy's timeout event; after the timeout the
/// probe is `late`. Returns the probe's new state and its round trip, or `None` when the
/// probe is gone or was already answered.
pub async fn reply(
    client: &impl GenericClient,
    probe_id: i64,
    from: &str,
    hops: &str,
    inbound_message_id: i64,
) -> Result<Option<(String, Duration)>, Error> {
    let Some(row) = client
        .query_opt(
            "UPDATE roundtrip_probes r SET received_at = now(),
                 state = CASE WHEN r.state = 'timeout' THEN 'late' ELSE 'received' END,
                 rtt_ms = (extract(epoch FROM now() - r.sent_at) * 1000)::bigint,
                 reply_from = $2,
                 reply_unexpected = address_key($2) <> address_key(p.send_to),
                 hops = $3::text::jsonb,
                 inbound_message_id = $4
             FROM roundtrip_policies p
             WHERE r.id = $1 AND p.id = r.roundtrip_policy_id AND r.received_at IS NULL
             RETURNING r.state, p.id, r.rtt_ms",
            &[&probe_id, &from, &hops, &inbound_message_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let state: String = row.get(0);
    let policy_id: i64 = row.get(1);
    // NULL only for a probe answered before it was recorded as sent.
    let rtt_ms: Option<i64> = row.get(2);
    let rtt = Duration::from_millis(rtt_ms.and_then(|ms| u64::try_from(ms).ok()).unwrap_or(0));
    if state == "received" {
        client
            .execute(
                "UPDATE events SET state = 'cleared', cleared_at = now(),
                     cleared_reason = 'round trip succeeded (probe ' || $2 || ')'
                 WHERE roundtrip_policy_id = $1 AND state = 'active'",
                &[&policy_id, &probe_id.to_string()],
            )
            .await?;
    }
    Ok(Some((state, rtt)))
}
