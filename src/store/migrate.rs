//! Applies the migrations under `sql/` in order, once, even from several processes at once.

use deadpool_postgres::Pool;

use super::Error;

/// The migrations this binary ships, in order: (version, file name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_inbound.sql",
        include_str!("../../sql/0001_inbound.sql"),
    ),
    (
        2,
        "0002_events.sql",
        include_str!("../../sql/0002_events.sql"),
    ),
    (
        3,
        "0003_outbox.sql",
        include_str!("../../sql/0003_outbox.sql"),
    ),
    (
        4,
        "0004_tickets.sql",
        include_str!("../../sql/0004_tickets.sql"),
    ),
    (
        5,
        "0005_roundtrip.sql",
        include_str!("../../sql/0005_roundtrip.sql"),
    ),
    (
        6,
        "0006_hot_events.sql",
        include_str!("../../sql/0006_hot_events.sql"),
    ),
    (
        7,
        "0007_recipient_route.sql",
        include_str!("../../sql/0007_recipient_route.sql"),
    ),
    (
        8,
        "0008_event_keys.sql",
        include_str!("../../sql/0008_event_keys.sql"),
    ),
    (
        9,
        "0009_retention.sql",
        include_str!("../../sql/0009_retention.sql"),
    ),
    (
        10,
        "0010_sender_trust.sql",
        include_str!("../../sql/0010_sender_trust.sql"),
    ),
    (
        11,
        "0011_expected_mail.sql",
        include_str!("../../sql/0011_expected_mail.sql"),
    ),
    (
        12,
        "0012_alert_rates.sql",
        include_str!("../../sql/0012_alert_rates.sql"),
    ),
    (
        13,
        "0013_devices_version.sql",
        include_str!("../../sql/0013_devices_version.sql"),
    ),
];

/// Arbitrary key of the advisory lock that serialises concurrent `migrate` runs.
const LOCK_KEY: i64 = 0x006d_6169_6c6f_7073; // "mailops" in ASCII

/// Applies every migration not yet recorded; returns the versions it applied.
pub async fn run(pool: &Pool) -> Result<Vec<i32>, Error> {
    let mut client = pool.get().await?;
    // A session lock: a second `migrate` waits here and then finds nothing left to do.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply_pending(&mut client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    result
}

async fn apply_pending(client: &mut deadpool_postgres::Client) -> Result<Vec<i32>, Error> {
    // Under the lock, so checking first is safe (and spares the NOTICE "already exists").
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (
                     version    integer PRIMARY KEY,
                     name       text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await?;
    }
    let current = current_version(client).await?;
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "migration applied");
        applied.push(version);
    }
    Ok(applied)
}

async fn current_version(client: &tokio_postgres::Client) -> Result<i32, Error> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Fails unless every migration this binary ships has been applied.
pub async fn check(pool: &Pool) -> Result<(), Error> {
    let client = pool.get().await?;
    let have = match current_version(&client).await {
        Ok(v) => v,
        // No schema_migrations table: nothing was ever applied.
        Err(Error::Db(e))
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) =>
        {
            0
        }
        Err(e) => return Err(e),
    };
    let want = MIGRATIONS.last().map_or(0, |m| m.0);
    if have < want {
        return Err(Error::SchemaBehind { have, want });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn every_file_under_sql_is_shipped_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("sql/ exists")
            .map(|e| {
                e.expect("readable")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let shipped: Vec<&str> = MIGRATIONS.iter().map(|m| m.1).collect();
        assert_eq!(files, shipped);
        for (i, (version, name, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, i + 1);
            assert!(name.starts_with(&format!("{version:04}_")));
        }
    }
}
