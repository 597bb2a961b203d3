//! `devices`, `originator_policies`, `event_policies`: read whole, for the in-memory policies.

use deadpool_postgres::Pool;
use tokio_postgres::{GenericClient, Row};

use super::Error;
use crate::events::model::{Device, EventPolicy, Originator};

/// Every events policy in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Devices, by id.
    pub devices: Vec<Device>,
    /// Originator policies, in the order they are tried.
    pub originators: Vec<Originator>,
    /// Event policies, by id.
    pub event_policies: Vec<EventPolicy>,
}

/// A text column holding one of a closed set of names (the table's CHECK keeps it valid).
fn name<T: std::str::FromStr<Err = String>>(row: &Row, column: &str) -> Result<T, Error> {
    let text: &str = row.get(column);
    text.parse()
        .map_err(|why| Error::Corrupt(format!("{column}: {why}")))
}

/// Reads all three tables in one snapshot.
pub async fn load(pool: &Pool) -> Result<Model, Error> {
    let mut client = pool.get().await?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let model = read(&*tx).await?;
    tx.commit().await?;
    Ok(model)
}

/// Reads all three tables through `client` (a transaction, for a consistent view).
pub async fn read(client: &impl GenericClient) -> Result<Model, Error> {
    let devices = client
        .query(
            "SELECT id, name, ip, organization FROM devices ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| Device {
            id: r.get("id"),
            name: r.get("name"),
            ip: r.get("ip"),
            organization: r.get("organization"),
        })
        .collect();
    let originators = client
        .query(
            "SELECT id, address, regex_type, pattern_type, pattern, alignment, default_device_id
             FROM originator_policies ORDER BY position, id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Originator {
                id: r.get("id"),
                address: r.get("address"),
                regex_type: name(r, "regex_type")?,
                pattern_type: name(r, "pattern_type")?,
                pattern: r.get("pattern"),
                alignment: name(r, "alignment")?,
                default_device_id: r.get("default_device_id"),
            })
        })
        .collect::<Result<_, Error>>()?;
    let event_policies = client
        .query(
            "SELECT id, name, severity, message, match_logic, first_match, second_match,
                    clears_event_policy_id, expire_after_s
             FROM event_policies ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(EventPolicy {
                id: r.get("id"),
                name: r.get("name"),
                severity: name(r, "severity")?,
                message: r.get("message"),
                match_logic: name(r, "match_logic")?,
                first_match: r.get("first_match"),
                second_match: r.get("second_match"),
                clears_id: r.get("clears_event_policy_id"),
                expire_after_s: r.get("expire_after_s"),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Model {
        devices,
        originators,
        event_policies,
    })
}
