//! `expect_state` and `expect_reports`: where each expected-mail policy stands, and its misses.
//! Reports arrive with the mail ([`super::events`]); misses are recorded here, by whichever
//! `serve` process moves a deadline on first.

use std::time::SystemTime;

use tokio_postgres::GenericClient;

use super::Error;

/// Starts tracking policy `id`, its first report due at `due`; nothing when it is tracked.
pub async fn track(client: &impl GenericClient, id: i64, due: SystemTime) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO expect_state (expect_policy_id, due_at) VALUES ($1, $2)
             ON CONFLICT (expect_policy_id) DO NOTHING",
            &[&id, &due],
        )
        .await?;
    Ok(())
}

/// The tracked policies whose report is overdue, with their deadline.
pub async fn overdue(client: &impl GenericClient) -> Result<Vec<(i64, SystemTime)>, Error> {
    let rows = client
        .query(
            "SELECT expect_policy_id, due_at FROM expect_state WHERE due_at <= now()",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A miss: what the policy's event says.
pub struct Miss<'a> {
    /// The policy.
    pub id: i64,
    /// Its device.
    pub device_id: i64,
    /// The deadline that passed.
    pub due: SystemTime,
    /// The next one.
    pub next: SystemTime,
    /// Periods that passed without a report (more than one after serve was down).
    pub periods: i32,
    /// The event's severity.
    pub severity: &'a str,
    /// The event's message; `%n` is replaced by the misses in a row.
    pub message: &'a str,
}

/// Records `miss` unless another process did (the deadline moved on): the state moves to the
/// next deadline, the miss is recorded, and the policy's event is raised or repeated. Returns
/// whether it was recorded here, and whether an event was raised (not a repeat).
pub async fn missed(client: &impl GenericClient, miss: &Miss<'_>) -> Result<Option<bool>, Error> {
    let row = client
        .query_opt(
            "WITH moved AS (
                 UPDATE expect_state SET due_at = $3, last_outcome = 'missed',
                     consecutive_misses = consecutive_misses + $4, started_at = NULL
                 WHERE expect_policy_id = $1 AND due_at = $2
                 RETURNING consecutive_misses
             ), report AS (
                 INSERT INTO expect_reports (expect_policy_id, at, outcome)
                 SELECT $1, $2, 'missed' FROM moved
             )
             INSERT INTO events (device_id, expect_policy_id, severity, message)
             SELECT $5, $1, $6, replace($7, '%n', consecutive_misses::text) FROM moved
             ON CONFLICT (device_id, expect_policy_id)
                 WHERE state = 'active' AND expect_policy_id IS NOT NULL
             DO UPDATE SET count = events.count + 1, last_seen = now(),
                 severity = excluded.severity, message = excluded.message
             RETURNING count = 1",
            &[
                &miss.id,
                &miss.due,
                &miss.next,
                &miss.periods,
                &miss.device_id,
                &miss.severity,
                &miss.message,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
