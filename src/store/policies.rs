//! The policy tables (events: `devices`, `originator_policies`, `event_policies`; tickets:
//! `users`, `queues` and `queue_members`, `ticket_templates`, `ticket_policies`; round trip:
//! `roundtrip_policies`; expected mail: `expect_policies`): read whole, for the in-memory
//! policies.

use deadpool_postgres::Pool;
use tokio_postgres::{GenericClient, Row};

use super::{recipients, Error};
use crate::events::model::{Device, EventPolicy, Originator, Rate};
use crate::expect::model::{Every, ExpectPolicy, From};
use crate::roundtrip::model::RoundtripPolicy;
use crate::roundtrip::token::Key;
use crate::route::Router;
use crate::tickets::model::{Messages, Queue, Template, TicketPolicy, User};

/// Every policy in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Devices, by id.
    pub devices: Vec<Device>,
    /// Originator policies, in the order they are tried.
    pub originators: Vec<Originator>,
    /// Event policies, by id.
    pub event_policies: Vec<EventPolicy>,
    /// Users, by id.
    pub users: Vec<User>,
    /// Queues, by id.
    pub queues: Vec<Queue>,
    /// Ticket templates, by id.
    pub templates: Vec<Template>,
    /// Ticket policies, by id.
    pub ticket_policies: Vec<TicketPolicy>,
    /// Round-trip policies, by id.
    pub roundtrips: Vec<RoundtripPolicy>,
    /// Expected-mail policies, by id.
    pub expects: Vec<ExpectPolicy>,
}

/// A text column holding one of a closed set of names (the table's CHECK keeps it valid).
fn name<T: std::str::FromStr<Err = String>>(row: &Row, column: &str) -> Result<T, Error> {
    let text: &str = row.get(column);
    text.parse()
        .map_err(|why| Error::Corrupt(format!("{column}: {why}")))
}

/// A nullable text column holding one of a closed set of names.
fn optional_name<T: std::str::FromStr<Err = String>>(
    row: &Row,
    column: &str,
) -> Result<Option<T>, Error> {
    let text: Option<&str> = row.get(column);
    text.map(|text| {
        text.parse()
            .map_err(|why| Error::Corrupt(format!("{column}: {why}")))
    })
    .transpose()
}

/// A `jsonb` column holding a map (NULL for an empty one).
fn json<T: serde::de::DeserializeOwned + Default>(row: &Row, column: &str) -> Result<T, Error> {
    match row.get::<_, Option<serde_json::Value>>(column) {
        None => Ok(T::default()),
        Some(value) => {
            serde_json::from_value(value).map_err(|why| Error::Corrupt(format!("{column}: {why}")))
        }
    }
}

/// Reads every policy table in one snapshot.
pub async fn load(pool: &Pool) -> Result<Model, Error> {
    let mut client = pool.get().await?;
    let tx = snapshot(&mut client).await?;
    let model = read(&*tx).await?;
    tx.commit().await?;
    Ok(model)
}

/// What `serve` holds in memory, read in one snapshot.
#[derive(Debug)]
pub struct Serving {
    /// `valid_recipients`.
    pub router: Router,
    /// Every policy; no devices when those in memory are still current (see [`load_serving`]).
    pub model: Model,
    /// The key probe tokens are signed with.
    pub key: Key,
    /// How many statements have changed the devices (`devices_version`).
    pub devices_version: i64,
}

/// Reads what `serve` holds in memory, in one snapshot: `valid_recipients`, every policy, and
/// the key probe tokens are signed with. The devices are not read when `held` is the
/// `devices_version` of those in memory and no statement has changed them since.
pub async fn load_serving(pool: &Pool, held: Option<i64>) -> Result<Serving, Error> {
    let mut client = pool.get().await?;
    let tx = snapshot(&mut client).await?;
    let router = recipients::read(&*tx).await?;
    let devices_version: i64 = tx
        .query_one("SELECT version FROM devices_version", &[])
        .await?
        .get(0);
    let model = read_tables(&*tx, held != Some(devices_version)).await?;
    let key = Key::new(
        tx.query_one("SELECT key FROM roundtrip_key", &[])
            .await?
            .get(0),
    );
    tx.commit().await?;
    Ok(Serving {
        router,
        model,
        key,
        devices_version,
    })
}

/// A read-only transaction that sees one snapshot throughout.
async fn snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, Error> {
    Ok(client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?)
}

/// How many devices [`devices`] fetches at a time.
const DEVICES_PER_FETCH: usize = 5_000;

/// Every device, by id, fetched a few thousand at a time through a cursor (one snapshot, in a
/// transaction of any isolation level): the rows of 100,000 devices at once would take several
/// times the memory of the devices themselves.
async fn devices(client: &impl GenericClient) -> Result<Vec<Device>, Error> {
    // Sized once: growing by doubling would hold up to twice the devices' memory meanwhile.
    let count: i64 = client
        .query_one("SELECT count(*) FROM devices", &[])
        .await?
        .get(0);
    let mut devices: Vec<Device> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    client
        .batch_execute(
            "DECLARE mailops_devices NO SCROLL CURSOR FOR
                 SELECT id, name, ip, organization FROM devices ORDER BY id",
        )
        .await?;
    let fetch = format!("FETCH {DEVICES_PER_FETCH} FROM mailops_devices");
    loop {
        let rows = client.query(&fetch, &[]).await?;
        devices.extend(rows.iter().map(|r| Device {
            id: r.get("id"),
            name: r.get("name"),
            ip: r.get("ip"),
            organization: r.get("organization"),
        }));
        if rows.len() < DEVICES_PER_FETCH {
            break;
        }
    }
    client.batch_execute("CLOSE mailops_devices").await?;
    Ok(devices)
}

/// Reads every policy table through `client` (a transaction, for a consistent view).
pub async fn read(client: &impl GenericClient) -> Result<Model, Error> {
    read_tables(client, true).await
}

/// Reads every policy table through `client`, the devices only `with_devices`.
async fn read_tables(client: &impl GenericClient, with_devices: bool) -> Result<Model, Error> {
    let devices = if with_devices {
        devices(client).await?
    } else {
        Vec::new()
    };
    let originators = client
        .query(
            "SELECT id, name, address, regex_type, pattern_type, pattern, alignment,
                    default_device_id, require_auth
             FROM originator_policies ORDER BY position, id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Originator {
                id: r.get("id"),
                name: r.get("name"),
                address: r.get("address"),
                regex_type: name(r, "regex_type")?,
                pattern_type: name(r, "pattern_type")?,
                pattern: r.get("pattern"),
                alignment: name(r, "alignment")?,
                default_device_id: r.get("default_device_id"),
                require_auth: name(r, "require_auth")?,
            })
        })
        .collect::<Result<_, Error>>()?;
    let event_policies = client
        .query(
            "SELECT id, name, action, severity, severity_from, severity_map, key, key_map,
                    message, match_in, match_logic, first_match, second_match,
                    array(SELECT clears_id FROM event_policy_clears c
                          WHERE c.event_policy_id = p.id ORDER BY clears_id) AS clears_ids,
                    originators, devices, expire_after_s, expire_healthy_after_s,
                    rate_count, rate_per_s
             FROM event_policies p ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(EventPolicy {
                id: r.get("id"),
                name: r.get("name"),
                action: name(r, "action")?,
                severity: optional_name(r, "severity")?,
                severity_from: r.get("severity_from"),
                severity_map: json(r, "severity_map")?,
                key: r.get("key"),
                key_map: json(r, "key_map")?,
                message: r.get("message"),
                match_in: optional_name(r, "match_in")?,
                match_logic: name(r, "match_logic")?,
                first_match: r.get("first_match"),
                second_match: r.get("second_match"),
                clears_ids: r.get("clears_ids"),
                originators: r
                    .get::<_, Option<Vec<String>>>("originators")
                    .unwrap_or_default(),
                devices: r
                    .get::<_, Option<Vec<String>>>("devices")
                    .unwrap_or_default(),
                expire_after_s: r.get("expire_after_s"),
                expire_healthy_after_s: r.get("expire_healthy_after_s"),
                rate: r
                    .get::<_, Option<i32>>("rate_count")
                    .zip(r.get::<_, Option<i32>>("rate_per_s"))
                    .map(|(count, per_s)| Rate { count, per_s }),
            })
        })
        .collect::<Result<_, Error>>()?;
    let users = client
        .query("SELECT id, email, name FROM users ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| User {
            id: r.get("id"),
            email: r.get("email"),
            name: r.get("name"),
        })
        .collect();
    let queues = client
        .query(
            "SELECT q.id, q.name,
                    array(SELECT user_id FROM queue_members m WHERE m.queue_id = q.id
                          ORDER BY user_id) AS member_ids
             FROM queues q ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| Queue {
            id: r.get("id"),
            name: r.get("name"),
            member_ids: r.get("member_ids"),
        })
        .collect();
    let templates = client
        .query(
            "SELECT id, name, queue_id, severity, status, description
             FROM ticket_templates ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Template {
                id: r.get("id"),
                name: r.get("name"),
                queue_id: r.get("queue_id"),
                severity: name(r, "severity")?,
                status: name(r, "status")?,
                description: r.get("description"),
            })
        })
        .collect::<Result<_, Error>>()?;
    let ticket_policies = client
        .query(
            "SELECT id, name, destination, reply_address, template_id, access, msg_created,
                    msg_updated, msg_failed, msg_not_registered, msg_not_in_queue
             FROM ticket_policies ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(TicketPolicy {
                id: r.get("id"),
                name: r.get("name"),
                destination: r.get("destination"),
                reply_address: r.get("reply_address"),
                template_id: r.get("template_id"),
                access: name(r, "access")?,
                messages: Messages {
                    created: r.get("msg_created"),
                    updated: r.get("msg_updated"),
                    failed: r.get("msg_failed"),
                    not_registered: r.get("msg_not_registered"),
                    not_in_queue: r.get("msg_not_in_queue"),
                },
            })
        })
        .collect::<Result<_, Error>>()?;
    let roundtrips = client
        .query(
            "SELECT id, name, device_id, send_to, from_address, interval_s, timeout_s, enabled,
                    body, severity
             FROM roundtrip_policies ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(RoundtripPolicy {
                id: r.get("id"),
                name: r.get("name"),
                device_id: r.get("device_id"),
                send_to: r.get("send_to"),
                from_address: r.get("from_address"),
                interval_s: r.get("interval_s"),
                timeout_s: r.get("timeout_s"),
                enabled: r.get("enabled"),
                body: r.get("body"),
                severity: name(r, "severity")?,
            })
        })
        .collect::<Result<_, Error>>()?;
    let expects = client
        .query(
            "SELECT id, name, device_id, sender, originator, match_in, match_logic, match,
                    every_s, cron, timezone, grace_s, severity, failure, success,
                    default_outcome, start_match
             FROM expect_policies ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(expect_policy)
        .collect::<Result<_, Error>>()?;
    Ok(Model {
        devices,
        originators,
        event_policies,
        users,
        queues,
        templates,
        ticket_policies,
        roundtrips,
        expects,
    })
}

/// An `expect_policies` row (its CHECKs hold exactly one of `sender` and `originator`, and of
/// `every_s` and `cron`).
fn expect_policy(r: &Row) -> Result<ExpectPolicy, Error> {
    let one_of =
        |a: &str, b: &str| Error::Corrupt(format!("expect_policies: not one of {a}, {b} set"));
    let from = match (r.get("sender"), r.get("originator")) {
        (Some(sender), None) => From::Sender(sender),
        (None, Some(originator)) => From::Originator(originator),
        _ => return Err(one_of("sender", "originator")),
    };
    let every = match (r.get("every_s"), r.get("cron")) {
        (Some(seconds), None) => Every::Seconds(seconds),
        (None, Some(expr)) => Every::Cron {
            expr,
            timezone: r.get("timezone"),
        },
        _ => return Err(one_of("every_s", "cron")),
    };
    Ok(ExpectPolicy {
        id: r.get("id"),
        name: r.get("name"),
        device_id: r.get("device_id"),
        from,
        match_in: name(r, "match_in")?,
        match_logic: name(r, "match_logic")?,
        matches: r.get("match"),
        every,
        grace_s: r.get("grace_s"),
        severity: name(r, "severity")?,
        failure: r.get("failure"),
        success: r.get("success"),
        default_outcome: name(r, "default_outcome")?,
        start: r.get("start_match"),
    })
}
