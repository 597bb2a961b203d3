//! `mailops policy apply`: makes the database's policies what a file says, in one transaction.

use std::collections::HashMap;
use std::net::IpAddr;

use deadpool_postgres::Pool;
use futures_util::future::try_join_all;
use tokio_postgres::Transaction;

use super::file::DEFAULT_TIMEZONE;
use super::plan::{self, Existing, Op};
use super::{Error, PolicyFile, Summary};
use crate::config::Inbound;
use crate::events::model::Device;
use crate::expect::model::{Every, From};
use crate::store;

/// Key of the advisory lock that serialises applies ("policy" in ASCII); `migrate` uses another.
const LOCK_KEY: i64 = 0x0000_706f_6c69_6379;

/// How to apply a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Also delete the policies (round trips and expected mail included), devices, users, queues
    /// and templates the file does not have.
    pub prune: bool,
    /// Make the writes, then roll them back: checks everything, changes nothing.
    pub dry_run: bool,
}

/// Makes the database's policies (devices, originator and event policies, users, queues, ticket
/// templates and policies, round-trip and expected-mail policies) what `file` says, in one
/// transaction, writing only rows that differ.
/// Every problem (the file's own, ticket policy destinations mail cannot reach under `inbound`,
/// and references or ids that clash with the database) is returned at once, and then nothing is
/// written.
pub async fn apply(
    pool: &Pool,
    file: &PolicyFile,
    inbound: &Inbound,
    options: Options,
) -> Result<Summary, Error> {
    let problems = file.check_with_config(inbound);
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    let mut client = pool.get().await?;
    // READ COMMITTED (the default): each statement sees what committed before it started, so
    // the reads below, made once the lock is ours, see everything an earlier apply wrote.
    // REPEATABLE READ would take its snapshot at the lock statement, before the wait.
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    let existing = read(&tx).await?;
    let plan = plan::plan(file, Some(&existing), options.prune).map_err(Error::Invalid)?;
    write(&tx, &plan.ops).await?;
    if options.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(plan.summary)
}

/// The policy tables and the originators' positions, as this transaction sees them.
async fn read(tx: &Transaction<'_>) -> Result<Existing, store::Error> {
    let model = store::policies::read(tx).await?;
    let positions = tx
        .query(
            "SELECT position FROM originator_policies ORDER BY position, id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Existing { model, positions })
}

/// Makes the plan's writes, in order. Each UPDATE also checks that the row still differs, so a
/// row someone else already changed to the same values is left alone. Consecutive ops that are
/// [`written_together`] make one statement, or one pipeline: a round trip per row is what made
/// large files slow to apply.
async fn write(tx: &Transaction<'_>, ops: &[Op]) -> Result<(), tokio_postgres::Error> {
    // Provisional (negative) ids of the rows inserted here, to the ids they got.
    let (mut devices, mut policies) = (HashMap::new(), HashMap::new());
    let (mut users, mut queues, mut templates) = (HashMap::new(), HashMap::new(), HashMap::new());
    let real = |map: &HashMap<i64, i64>, id: i64| {
        if id < 0 {
            *map.get(&id)
                .expect("the plan inserts a row before any write refers to it")
        } else {
            id
        }
    };
    for run in ops.chunk_by(written_together) {
        // An op no other is written together with is a run of its own.
        let op = &run[0];
        match op {
            Op::InsertDevice(d) if d.id > 0 => {
                let c = DeviceColumns::of(run);
                tx.execute(
                    "INSERT INTO devices (id, name, ip, organization)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::inet[], $4::text[])",
                    &[&c.id, &c.name, &c.ip, &c.organization],
                )
                .await?;
            }
            Op::InsertDevice(_) => {
                let c = DeviceColumns::of(run);
                // ORDER BY: ids are assigned in file order, as one insert per device did.
                let rows = tx
                    .query(
                        "INSERT INTO devices (name, ip, organization)
                         SELECT name, ip, organization
                         FROM unnest($1::text[], $2::inet[], $3::text[])
                              WITH ORDINALITY AS d (name, ip, organization, n)
                         ORDER BY n
                         RETURNING id, name",
                        &[&c.name, &c.ip, &c.organization],
                    )
                    .await?;
                // Device names are unique: a returned name finds the row's provisional id.
                let provisional: HashMap<&str, i64> = c.name.iter().copied().zip(c.id).collect();
                for row in &rows {
                    let name: &str = row.get(1);
                    let id = provisional
                        .get(name)
                        .expect("the insert returns the names it was given");
                    devices.insert(*id, row.get(0));
                }
            }
            Op::UpdateDevice(_) => {
                let c = DeviceColumns::of(run);
                tx.execute(
                    "UPDATE devices d
                     SET ip = u.ip, organization = u.organization, updated_at = now()
                     FROM unnest($1::bigint[], $2::inet[], $3::text[]) AS u (id, ip, organization)
                     WHERE d.id = u.id
                       AND (d.ip, d.organization) IS DISTINCT FROM (u.ip, u.organization)",
                    &[&c.id, &c.ip, &c.organization],
                )
                .await?;
            }
            Op::BumpDeviceIds => {
                // setval only ever moves the sequence forward here; it is not a table write.
                tx.execute(
                    "SELECT setval(seq, top)
                     FROM (SELECT pg_get_serial_sequence('devices', 'id')::regclass AS seq,
                                  (SELECT max(id) FROM devices) AS top) s
                     WHERE top > coalesce(pg_sequence_last_value(seq), 0)",
                    &[],
                )
                .await?;
            }
            Op::InsertOriginator(o, position) => {
                tx.execute(
                    "INSERT INTO originator_policies
                         (position, name, address, regex_type, pattern_type, pattern, alignment,
                          default_device_id, require_auth)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        position,
                        &o.name,
                        &o.address,
                        &o.regex_type.as_str(),
                        &o.pattern_type.as_str(),
                        &o.pattern,
                        &o.alignment.as_str(),
                        &o.default_device_id.map(|id| real(&devices, id)),
                        &o.require_auth.as_str(),
                    ],
                )
                .await?;
            }
            Op::UpdateOriginator(o, position) => {
                tx.execute(
                    "UPDATE originator_policies
                     SET position = $2, name = $3, address = $4, regex_type = $5,
                         pattern_type = $6, pattern = $7, alignment = $8, default_device_id = $9,
                         require_auth = $10
                     WHERE id = $1
                       AND (position, name, address, regex_type, pattern_type, pattern,
                            alignment, default_device_id, require_auth)
                           IS DISTINCT FROM ($2::integer, $3::text, $4::text, $5::text, $6::text,
                                             $7::text, $8::text, $9::bigint, $10::text)",
                    &[
                        &o.id,
                        position,
                        &o.name,
                        &o.address,
                        &o.regex_type.as_str(),
                        &o.pattern_type.as_str(),
                        &o.pattern,
                        &o.alignment.as_str(),
                        &o.default_device_id.map(|id| real(&devices, id)),
                        &o.require_auth.as_str(),
                    ],
                )
                .await?;
            }
            Op::InsertEventPolicy(_) | Op::UpdateEventPolicy(_) => {
                // One statement for both: a policy is known by its name. An update writes
                // only when a column differs.
                let json = |map: serde_json::Value| {
                    map.as_object()
                        .is_some_and(|m| !m.is_empty())
                        .then_some(map)
                };
                fn list(names: &[String]) -> Option<&[String]> {
                    (!names.is_empty()).then_some(names)
                }
                let upsert = tx
                    .prepare(
                        "INSERT INTO event_policies
                             (name, action, severity, severity_from, severity_map, key, key_map,
                              message, match_logic, first_match, second_match, originators,
                              devices, expire_after_s, expire_healthy_after_s, match_in,
                              rate_count, rate_per_s)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                                 $16, $17, $18)
                         ON CONFLICT (name) DO UPDATE
                         SET (action, severity, severity_from, severity_map, key, key_map, message,
                              match_logic, first_match, second_match, originators, devices,
                              expire_after_s, expire_healthy_after_s, match_in, rate_count,
                              rate_per_s)
                           = (excluded.action, excluded.severity, excluded.severity_from,
                              excluded.severity_map, excluded.key, excluded.key_map,
                              excluded.message, excluded.match_logic, excluded.first_match,
                              excluded.second_match, excluded.originators, excluded.devices,
                              excluded.expire_after_s, excluded.expire_healthy_after_s,
                              excluded.match_in, excluded.rate_count, excluded.rate_per_s)
                         WHERE (event_policies.action, event_policies.severity,
                                event_policies.severity_from, event_policies.severity_map,
                                event_policies.key, event_policies.key_map, event_policies.message,
                                event_policies.match_logic, event_policies.first_match,
                                event_policies.second_match, event_policies.originators,
                                event_policies.devices, event_policies.expire_after_s,
                                event_policies.expire_healthy_after_s, event_policies.match_in,
                                event_policies.rate_count, event_policies.rate_per_s)
                           IS DISTINCT FROM
                               (excluded.action, excluded.severity, excluded.severity_from,
                                excluded.severity_map, excluded.key, excluded.key_map,
                                excluded.message, excluded.match_logic, excluded.first_match,
                                excluded.second_match, excluded.originators, excluded.devices,
                                excluded.expire_after_s, excluded.expire_healthy_after_s,
                                excluded.match_in, excluded.rate_count, excluded.rate_per_s)
                         RETURNING id",
                    )
                    .await?;
                // Pipelined: the statements go out without waiting for each reply, and the
                // replies (and so the first error) come back in order.
                let rows = try_join_all(run.iter().map(|op| async {
                    let (Op::InsertEventPolicy(p) | Op::UpdateEventPolicy(p)) = op else {
                        unreachable!("a run of event policy writes holds only those")
                    };
                    tx.query_opt(
                        &upsert,
                        &[
                            &p.name,
                            &p.action.as_str(),
                            &p.severity.map(|s| s.as_str()),
                            &p.severity_from,
                            &json(serde_json::json!(p.severity_map)),
                            &p.key,
                            &json(serde_json::json!(p.key_map)),
                            &p.message,
                            &p.match_logic.as_str(),
                            &p.first_match,
                            &p.second_match,
                            &list(&p.originators),
                            &list(&p.devices),
                            &p.expire_after_s,
                            &p.expire_healthy_after_s,
                            &p.match_in.map(|m| m.as_str()),
                            &p.rate.map(|r| r.count),
                            &p.rate.map(|r| r.per_s),
                        ],
                    )
                    .await
                }))
                .await?;
                for (op, row) in run.iter().zip(rows) {
                    if let (Op::InsertEventPolicy(p), Some(row)) = (op, row) {
                        policies.insert(p.id, row.get(0));
                    }
                }
            }
            Op::SetClears { id, clears_ids } => {
                let id = real(&policies, *id);
                let clears: Vec<i64> = clears_ids.iter().map(|c| real(&policies, *c)).collect();
                tx.execute(
                    "DELETE FROM event_policy_clears
                     WHERE event_policy_id = $1 AND clears_id <> ALL($2)",
                    &[&id, &clears],
                )
                .await?;
                tx.execute(
                    "INSERT INTO event_policy_clears (event_policy_id, clears_id)
                     SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
                    &[&id, &clears],
                )
                .await?;
            }
            Op::Delete(table, ids) => {
                let sql = format!("DELETE FROM {} WHERE id = ANY($1)", table.name());
                tx.execute(&sql, &[ids]).await?;
            }
            Op::InsertUser(u) => {
                let row = tx
                    .query_one(
                        "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id",
                        &[&u.email, &u.name],
                    )
                    .await?;
                users.insert(u.id, row.get(0));
            }
            Op::UpdateUser(u) => {
                tx.execute(
                    "UPDATE users SET name = $2 WHERE id = $1 AND name IS DISTINCT FROM $2::text",
                    &[&u.id, &u.name],
                )
                .await?;
            }
            Op::InsertQueue(q) => {
                let row = tx
                    .query_one(
                        "INSERT INTO queues (name) VALUES ($1) RETURNING id",
                        &[&q.name],
                    )
                    .await?;
                queues.insert(q.id, row.get(0));
            }
            Op::AddMembers { queue_id, user_ids } => {
                let user_ids: Vec<i64> = user_ids.iter().map(|u| real(&users, *u)).collect();
                tx.execute(
                    "INSERT INTO queue_members (queue_id, user_id)
                     SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
                    &[&real(&queues, *queue_id), &user_ids],
                )
                .await?;
            }
            Op::RemoveMembers { queue_id, user_ids } => {
                tx.execute(
                    "DELETE FROM queue_members WHERE queue_id = $1 AND user_id = ANY($2)",
                    &[queue_id, user_ids],
                )
                .await?;
            }
            Op::InsertTemplate(t) | Op::UpdateTemplate(t) => {
                // Both by name (the key): one list of parameters serves both.
                let sql = if matches!(op, Op::InsertTemplate(_)) {
                    "INSERT INTO ticket_templates (name, queue_id, severity, status, description)
                     VALUES ($1, $2, $3, $4, $5)
                     RETURNING id"
                } else {
                    "UPDATE ticket_templates
                     SET queue_id = $2, severity = $3, status = $4, description = $5
                     WHERE name = $1
                       AND (queue_id, severity, status, description)
                           IS DISTINCT FROM ($2::bigint, $3::text, $4::text, $5::text)"
                };
                let rows = tx
                    .query(
                        sql,
                        &[
                            &t.name,
                            &t.queue_id.map(|q| real(&queues, q)),
                            &t.severity.as_str(),
                            &t.status.as_str(),
                            &t.description,
                        ],
                    )
                    .await?;
                if let Some(row) = rows.first() {
                    templates.insert(t.id, row.get(0)); // only an insert returns a row
                }
            }
            Op::FreeDestinations(ids) => {
                // RFC 2606 §2: `.invalid` names no real host; ids keep the placeholders unique.
                tx.execute(
                    "UPDATE ticket_policies SET destination = id || '@moving.invalid'
                     WHERE id = ANY($1)",
                    &[ids],
                )
                .await?;
            }
            Op::InsertTicketPolicy(p) | Op::UpdateTicketPolicy(p) => {
                // Both by name (the key): one list of parameters serves both.
                let sql = if matches!(op, Op::InsertTicketPolicy(_)) {
                    "INSERT INTO ticket_policies
                         (name, destination, reply_address, template_id, access, msg_created,
                          msg_updated, msg_failed, msg_not_registered, msg_not_in_queue)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                } else {
                    "UPDATE ticket_policies
                     SET destination = $2, reply_address = $3, template_id = $4, access = $5,
                         msg_created = $6, msg_updated = $7, msg_failed = $8,
                         msg_not_registered = $9, msg_not_in_queue = $10
                     WHERE name = $1
                       AND (destination, reply_address, template_id, access, msg_created,
                            msg_updated, msg_failed, msg_not_registered, msg_not_in_queue)
                           IS DISTINCT FROM ($2::text, $3::text, $4::bigint, $5::text, $6::text,
                                             $7::text, $8::text, $9::text, $10::text)"
                };
                let m = &p.messages;
                tx.execute(
                    sql,
                    &[
                        &p.name,
                        &p.destination,
                        &p.reply_address,
                        &real(&templates, p.template_id),
                        &p.access.as_str(),
                        &m.created,
                        &m.updated,
                        &m.failed,
                        &m.not_registered,
                        &m.not_in_queue,
                    ],
                )
                .await?;
            }
            Op::InsertRoundtrip(r) | Op::UpdateRoundtrip(r) => {
                // Both by name (the key): one list of parameters serves both.
                let sql = if matches!(op, Op::InsertRoundtrip(_)) {
                    "INSERT INTO roundtrip_policies
                         (name, device_id, send_to, from_address, interval_s, timeout_s, enabled,
                          body, severity)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                } else {
                    "UPDATE roundtrip_policies
                     SET device_id = $2, send_to = $3, from_address = $4, interval_s = $5,
                         timeout_s = $6, enabled = $7, body = $8, severity = $9
                     WHERE name = $1
                       AND (device_id, send_to, from_address, interval_s, timeout_s, enabled,
                            body, severity)
                           IS DISTINCT FROM ($2::bigint, $3::text, $4::text, $5::integer,
                                             $6::integer, $7::boolean, $8::text, $9::text)"
                };
                tx.execute(
                    sql,
                    &[
                        &r.name,
                        &real(&devices, r.device_id),
                        &r.send_to,
                        &r.from_address,
                        &r.interval_s,
                        &r.timeout_s,
                        &r.enabled,
                        &r.body,
                        &r.severity.as_str(),
                    ],
                )
                .await?;
            }
            Op::InsertExpect(e) | Op::UpdateExpect(e) => {
                // Both by name (the key): one list of parameters serves both.
                let sql = if matches!(op, Op::InsertExpect(_)) {
                    "INSERT INTO expect_policies
                         (name, device_id, sender, originator, match_in, match_logic, match,
                          every_s, cron, timezone, grace_s, severity, failure, success,
                          default_outcome, start_match)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                             $16)"
                } else {
                    "UPDATE expect_policies
                     SET device_id = $2, sender = $3, originator = $4, match_in = $5,
                         match_logic = $6, match = $7, every_s = $8, cron = $9, timezone = $10,
                         grace_s = $11, severity = $12, failure = $13, success = $14,
                         default_outcome = $15, start_match = $16
                     WHERE name = $1
                       AND (device_id, sender, originator, match_in, match_logic, match, every_s,
                            cron, timezone, grace_s, severity, failure, success, default_outcome,
                            start_match)
                           IS DISTINCT FROM ($2::bigint, $3::text, $4::text, $5::text, $6::text,
                                             $7::text, $8::integer, $9::text, $10::text,
                                             $11::integer, $12::text, $13::text[], $14::text[],
                                             $15::text, $16::text)"
                };
                let (sender, originator) = match &e.from {
                    From::Sender(address) => (Some(address), None),
                    From::Originator(name) => (None, Some(name)),
                };
                let (every_s, cron, timezone) = match &e.every {
                    Every::Seconds(s) => (Some(*s), None, DEFAULT_TIMEZONE),
                    Every::Cron { expr, timezone } => (None, Some(expr), timezone.as_str()),
                };
                tx.execute(
                    sql,
                    &[
                        &e.name,
                        &real(&devices, e.device_id),
                        &sender,
                        &originator,
                        &e.match_in.as_str(),
                        &e.match_logic.as_str(),
                        &e.matches,
                        &every_s,
                        &cron,
                        &timezone,
                        &e.grace_s,
                        &e.severity.as_str(),
                        &e.failure,
                        &e.success,
                        &e.default_outcome.as_str(),
                        &e.start,
                    ],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Whether `next` is written together with `op` just before it: device inserts with pinned ids,
/// device inserts with assigned ids, device updates, and event policy upserts.
fn written_together(op: &Op, next: &Op) -> bool {
    match (op, next) {
        (Op::InsertDevice(a), Op::InsertDevice(b)) => (a.id > 0) == (b.id > 0),
        (Op::UpdateDevice(_), Op::UpdateDevice(_)) => true,
        (
            Op::InsertEventPolicy(_) | Op::UpdateEventPolicy(_),
            Op::InsertEventPolicy(_) | Op::UpdateEventPolicy(_),
        ) => true,
        _ => false,
    }
}

/// The columns of a run of device writes, one array each, for `unnest`.
struct DeviceColumns<'a> {
    id: Vec<i64>,
    name: Vec<&'a str>,
    ip: Vec<Option<IpAddr>>,
    organization: Vec<Option<&'a str>>,
}

impl<'a> DeviceColumns<'a> {
    /// The columns of `run`, a run of [`Op::InsertDevice`] or [`Op::UpdateDevice`].
    fn of(run: &'a [Op]) -> Self {
        let devices: Vec<&Device> = run
            .iter()
            .map(|op| match op {
                Op::InsertDevice(d) | Op::UpdateDevice(d) => d,
                _ => unreachable!("a run of device writes holds only those"),
            })
            .collect();
        DeviceColumns {
            id: devices.iter().map(|d| d.id).collect(),
            name: devices.iter().map(|d| d.name.as_str()).collect(),
            ip: devices.iter().map(|d| d.ip).collect(),
            organization: devices.iter().map(|d| d.organization.as_deref()).collect(),
        }
    }
}
