//! `config_recipients` and `valid_recipients`: the addresses mail is accepted for.

use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;

use super::Error;
use crate::route::{Route, Router};

/// Replaces `config_recipients` with `entries` (those the config file defines), in one transaction.
pub async fn sync(pool: &Pool, entries: &[(String, Route)]) -> Result<(), Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let addresses: Vec<&str> = entries.iter().map(|(a, _)| a.as_str()).collect();
    let routes: Vec<&str> = entries.iter().map(|(_, r)| r.as_str()).collect();
    tx.execute(
        "DELETE FROM config_recipients WHERE address <> ALL($1)",
        &[&addresses],
    )
    .await?;
    tx.execute(
        "INSERT INTO config_recipients (address, route)
         SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (address) DO UPDATE SET route = excluded.route
         WHERE config_recipients.route IS DISTINCT FROM excluded.route",
        &[&addresses, &routes],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Loads `valid_recipients` into a [`Router`].
pub async fn load(pool: &Pool) -> Result<Router, Error> {
    read(&**pool.get().await?).await
}

/// Reads `valid_recipients` through `client` into a [`Router`].
pub async fn read(client: &impl GenericClient) -> Result<Router, Error> {
    let rows = client
        .query("SELECT address, route FROM valid_recipients", &[])
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let address: String = row.get(0);
        let route: String = row.get(1);
        match route.parse::<Route>() {
            Ok(route) => entries.push((address, route)),
            Err(why) => tracing::warn!(%address, "valid_recipients: {why}; ignored"),
        }
    }
    Ok(Router::new(entries))
}

/// The route of one address, asked of the database (for an address the router in memory does
/// not know yet).
pub async fn lookup(pool: &Pool, address: &str) -> Result<Option<Route>, Error> {
    let client = pool.get().await?;
    let row = client
        .query_one("SELECT recipient_route($1)", &[&address])
        .await?;
    row.get::<_, Option<&str>>(0)
        .map(|route| route.parse().map_err(Error::Corrupt))
        .transpose()
}
