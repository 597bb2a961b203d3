//! Ageing out what mailops keeps: raw messages after `raw_days`, message rows and device logs
//! after `rows_days`. Raw messages and device logs are partitioned by month (migration 0009): a
//! month goes once all of it is older than the limit, detached without blocking the writers
//! and then dropped. Message rows are deleted in small batches, each its own transaction.

use std::time::Duration;

use super::Error;
use deadpool_postgres::{Client, Pool};

/// Months of partitions made ahead of the current one.
const MONTHS_AHEAD: i32 = 2;

/// Message rows deleted per transaction: short enough never to hold up delivery.
const BATCH: i64 = 1_000;

/// What one run removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Monthly partitions of raw messages dropped (`inbound_raw_y2026m01`, …).
    pub raw_months: Vec<String>,
    /// Monthly partitions of device logs dropped.
    pub log_months: Vec<String>,
    /// Message rows deleted.
    pub rows: u64,
}

/// Arbitrary key of the advisory lock one run holds, so that several `serve` processes on one
/// database never age out (or make partitions) at the same time.
const LOCK_KEY: i64 = 0x006d_6169_6c72_6574; // "mailret"

/// Makes the monthly partitions from this month to [`MONTHS_AHEAD`] months on.
pub async fn partitions(client: &Client) -> Result<(), Error> {
    client
        .execute("SELECT mailops_partitions(now(), $1)", &[&MONTHS_AHEAD])
        .await?;
    Ok(())
}

/// Makes the partitions ahead, then removes raw messages older than `raw`, and message rows
/// and device logs older than `rows` (`None`: kept for ever). Does nothing while another
/// process is at it.
pub async fn run(
    pool: &Pool,
    raw: Option<Duration>,
    rows: Option<Duration>,
) -> Result<Removed, Error> {
    let client = pool.get().await?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await?
        .get(0);
    if !locked {
        return Ok(Removed::default());
    }
    let removed = age_out(&client, raw, rows).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    removed
}

async fn age_out(
    client: &Client,
    raw: Option<Duration>,
    rows: Option<Duration>,
) -> Result<Removed, Error> {
    partitions(client).await?;
    let mut removed = Removed::default();
    if let Some(age) = raw {
        removed.raw_months = drop_months(client, "inbound_raw", age).await?;
    }
    if let Some(age) = rows {
        removed.log_months = drop_months(client, "device_logs", age).await?;
        removed.rows = delete_rows(client, age).await?;
    }
    Ok(removed)
}

/// Drops the monthly partitions of `parent` whose whole month is older than `age`: each is
/// first detached CONCURRENTLY (writers to the other months never wait), then dropped. A
/// detach left half done by an earlier run is finished first.
async fn drop_months(client: &Client, parent: &str, age: Duration) -> Result<Vec<String>, Error> {
    let months = client
        .query(
            "SELECT c.relname, i.inhdetachpending
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::text::regclass
               AND c.relname ~ '_y[0-9]{4}m[0-9]{2}$'
               AND to_date(right(c.relname, 8), '\"y\"YYYY\"m\"MM') + interval '1 month'
                   <= now() - $2 * interval '1 second'
             ORDER BY c.relname",
            &[&parent, &age.as_secs_f64()],
        )
        .await?;
    let mut dropped = Vec::with_capacity(months.len());
    for month in months {
        let name: String = month.get(0);
        let pending: bool = month.get(1);
        // Names come from the catalog and match the pattern above: no quoting can be needed,
        // but they are quoted all the same. Not in a transaction: CONCURRENTLY cannot be.
        let how = if pending { "FINALIZE" } else { "CONCURRENTLY" };
        client
            .batch_execute(&format!(
                "ALTER TABLE \"{parent}\" DETACH PARTITION \"{name}\" {how}"
            ))
            .await?;
        client
            .batch_execute(&format!("DROP TABLE \"{name}\""))
            .await?;
        dropped.push(name);
    }
    Ok(dropped)
}

/// Deletes the message rows older than `age`, [`BATCH`] at a time. The alert path's plain
/// references to them (events, the system log, alert keys) are cleared first, in one statement
/// each; the tickets' and probes' foreign keys clear themselves.
async fn delete_rows(client: &Client, age: Duration) -> Result<u64, Error> {
    // Ids grow with received_at: every row below the first one kept is older.
    let first_kept: i64 = client
        .query_one(
            "SELECT coalesce(
                 (SELECT min(id) FROM inbound_messages
                  WHERE received_at >= now() - $1 * interval '1 second'),
                 (SELECT max(id) + 1 FROM inbound_messages),
                 0)",
            &[&age.as_secs_f64()],
        )
        .await?
        .get(0);
    client
        .batch_execute(&format!(
            "UPDATE events SET inbound_message_id = NULL WHERE inbound_message_id < {first_kept};
             UPDATE system_log SET inbound_message_id = NULL WHERE inbound_message_id < {first_kept};
             UPDATE expect_reports SET inbound_message_id = NULL
                 WHERE inbound_message_id < {first_kept};
             DELETE FROM alert_keys WHERE inbound_message_id < {first_kept};"
        ))
        .await?;
    let delete = client
        .prepare(
            "DELETE FROM inbound_messages WHERE id IN (
                 SELECT id FROM inbound_messages WHERE id < $1 ORDER BY id LIMIT $2)",
        )
        .await?;
    let mut deleted = 0;
    loop {
        let n = client.execute(&delete, &[&first_kept, &BATCH]).await?;
        deleted += n;
        if n < BATCH as u64 {
            return Ok(deleted);
        }
    }
}
