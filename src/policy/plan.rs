//! What applying a policy file changes, decided without I/O: references resolved against the
//! file and what the database holds, every row compared with the row that is there.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use super::check::{Kind, Labels, Problems};
use super::file::PolicyFile;
use super::roundtrip_plan::plan_roundtrips;
use super::summary::{Counts, Summary};
use super::ticket_plan::plan_tickets;
use super::Model;
use crate::events::model::{Device, EventPolicy, Originator};
use crate::roundtrip::model::RoundtripPolicy;
use crate::route::address_key;
use crate::tickets::model::{Queue, Template, TicketPolicy, User};

/// What the database holds: its policies, and each originator's `position`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Existing {
    /// The policy tables.
    pub model: Model,
    /// `originator_policies.position`, one per entry of `model.originators`.
    pub positions: Vec<i32>,
}

/// One write. Ids of rows this plan creates are provisional (negative) until they are inserted;
/// references to them (`default_device_id`, `clears_id`, member, queue and template ids) use
/// the provisional id too (and so does a round trip's `device_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// A new device: its pinned id when positive, else one the database assigns.
    InsertDevice(Device),
    /// New `ip` and `organization` for the device with this id.
    UpdateDevice(Device),
    /// Moves the device id sequence past the highest id, so assigned ids never hit pinned ones.
    BumpDeviceIds,
    /// A new originator policy at this position (its `id` is ignored).
    InsertOriginator(Originator, i32),
    /// Every column of the originator policy with this id, position included.
    UpdateOriginator(Originator, i32),
    /// A new event policy, without its `clears_id` (a later [`Op::SetClears`] sets it).
    InsertEventPolicy(EventPolicy),
    /// Every column but `clears_id` of the event policy with this id.
    UpdateEventPolicy(EventPolicy),
    /// The event policy a policy clears; after all inserts, as it may name a later one.
    SetClears { id: i64, clears_id: Option<i64> },
    /// A new user.
    InsertUser(User),
    /// A new `name` for the user with this id.
    UpdateUser(User),
    /// A new queue, without members (its `member_ids` are ignored).
    InsertQueue(Queue),
    /// Makes these users members of the queue.
    AddMembers { queue_id: i64, user_ids: Vec<i64> },
    /// Makes these users no longer members of the queue.
    RemoveMembers { queue_id: i64, user_ids: Vec<i64> },
    /// A new ticket template.
    InsertTemplate(Template),
    /// Every column of the ticket template with this id.
    UpdateTemplate(Template),
    /// Gives these ticket policies a placeholder destination, so that the updates after it can
    /// move a destination from one policy to another (UNIQUE is checked row by row).
    FreeDestinations(Vec<i64>),
    /// A new ticket policy.
    InsertTicketPolicy(TicketPolicy),
    /// Every column of the ticket policy with this id.
    UpdateTicketPolicy(TicketPolicy),
    /// A new round-trip policy.
    InsertRoundtrip(RoundtripPolicy),
    /// Every column of the round-trip policy with this id.
    UpdateRoundtrip(RoundtripPolicy),
    /// Rows of this table `--prune` removes, by id.
    Delete(Table, Vec<i64>),
}

/// A policy table whose rows `--prune` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `event_policies`: their events stay, other policies' `clears` to them are unset.
    EventPolicies,
    /// `originator_policies`
    Originators,
    /// `roundtrip_policies`, with their schedule and probes; deleted before `devices`, which
    /// they keep from being deleted (ON DELETE RESTRICT).
    Roundtrips,
    /// `devices`, with their events and device logs.
    Devices,
    /// `ticket_policies`: deleted before the other ticket writes, freeing their destinations.
    TicketPolicies,
    /// `ticket_templates`
    Templates,
    /// `queues`, with their members.
    Queues,
    /// `users`, with their queue memberships.
    Users,
}

impl Table {
    /// Its name in SQL.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::EventPolicies => "event_policies",
            Table::Originators => "originator_policies",
            Table::Roundtrips => "roundtrip_policies",
            Table::Devices => "devices",
            Table::TicketPolicies => "ticket_policies",
            Table::Templates => "ticket_templates",
            Table::Queues => "queues",
            Table::Users => "users",
        }
    }
}

/// The writes that make the database what the file says, in the order they must be made.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub(crate) summary: Summary,
    pub(crate) ops: Vec<Op>,
}

/// Where a name may be found.
#[derive(Clone, Copy)]
pub(super) struct Scope {
    /// Whether there is a database (else the file is resolved on its own).
    database: bool,
    /// Whether `--prune` deletes what the file lacks.
    pub(super) prune: bool,
}

impl Scope {
    /// Resolves a reference to an entry by name, given what the file and the database have
    /// under that name: the file's first, then (unless pruning) the database's. `Err`
    /// completes "`field` …".
    pub(super) fn resolve<T>(
        self,
        name: &str,
        file: Option<T>,
        database: Option<T>,
        what: &str,
    ) -> Result<T, String> {
        if let Some(found) = file {
            return Ok(found);
        }
        match database {
            Some(found) if !self.prune => Ok(found),
            Some(_) => Err(format!(
                "{name:?} is only in the database, and --prune deletes it (add the {what} to the file)"
            )),
            None if self.database => Err(format!(
                "{name:?} is not {} {what} in this file or the database",
                article(what)
            )),
            None => Err(format!("{name:?} is not {} {what} in this file", article(what))),
        }
    }
}

/// "a" or "an", for the kinds of entry named here ("a user": no `u`).
fn article(what: &str) -> &'static str {
    if what.starts_with(['a', 'e', 'i', 'o']) {
        "an"
    } else {
        "a"
    }
}

/// Device ids by name, for the entries that name a device: the file's devices (provisional ids
/// when new) and the database's.
pub(super) struct DeviceIds<'a> {
    file: HashMap<&'a str, i64>,
    database: HashMap<&'a str, i64>,
    scope: Scope,
}

impl DeviceIds<'_> {
    /// The id of the device named `name`, as [`Scope::resolve`] finds it.
    pub(super) fn resolve(&self, name: &str) -> Result<i64, String> {
        let found = (self.file.get(name), self.database.get(name));
        self.scope
            .resolve(name, found.0.copied(), found.1.copied(), "device")
    }
}

/// Decides what applying `file` (already checked) to `existing` writes; `None` plans against an
/// empty database, with problems worded for a file on its own. `prune` also deletes what the
/// file does not have, so references must then resolve within the file.
pub(crate) fn plan(
    file: &PolicyFile,
    existing: Option<&Existing>,
    prune: bool,
) -> Result<Plan, Vec<String>> {
    let empty = Existing::default();
    let db = existing.unwrap_or(&empty);
    let scope = Scope {
        database: existing.is_some(),
        prune,
    };
    let mut problems = Problems::default();
    let mut plan = Plan::default();
    let devices = DeviceIds {
        file: plan_devices(file, db, &mut plan, &mut problems),
        database: db
            .model
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.id))
            .collect(),
        scope,
    };
    plan_originators(file, db, &devices, &mut plan, &mut problems);
    plan_event_policies(file, db, scope, &mut plan, &mut problems);
    plan_roundtrips(file, db, &devices, &mut plan, &mut problems);
    if prune {
        plan_prune(file, db, &mut plan);
    }
    plan_tickets(file, db, scope, &mut plan, &mut problems);
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems.finish(&Labels::of(file)))
    }
}

/// Devices, keyed by exact name; returns each file device's id (provisional when new).
fn plan_devices<'f>(
    file: &'f PolicyFile,
    db: &Existing,
    plan: &mut Plan,
    problems: &mut Problems,
) -> HashMap<&'f str, i64> {
    let by_name: HashMap<&str, &Device> = db
        .model
        .devices
        .iter()
        .map(|d| (d.name.as_str(), d))
        .collect();
    let by_id: HashMap<i64, &Device> = db.model.devices.iter().map(|d| (d.id, d)).collect();
    let counts = &mut plan.summary.devices;
    let (mut pinned, mut updates, mut assigned) = (Vec::new(), Vec::new(), Vec::new());
    let mut ids = HashMap::new();
    let mut provisional = 0;
    for (i, d) in file.devices.iter().enumerate() {
        let want = |id| Device {
            id,
            name: d.name.clone(),
            ip: d.ip,
            organization: d.organization.clone(),
        };
        if let Some(current) = by_name.get(d.name.as_str()) {
            if let Some(id) = d.id.filter(|id| *id != current.id) {
                problems.entry(Kind::Device, i, format!(
                    "id: {id} differs from the id this device has in the database, {}; a device's id cannot change",
                    current.id
                ));
            }
            ids.insert(d.name.as_str(), current.id);
            let want = want(current.id);
            if want == **current {
                counts.unchanged += 1;
            } else {
                updates.push(Op::UpdateDevice(want));
                counts.updated += 1;
            }
            continue;
        }
        let id = match d.id {
            Some(id) => {
                if let Some(other) = by_id.get(&id) {
                    problems.entry(
                        Kind::Device,
                        i,
                        format!(
                            "id: {id} is already the id of device {:?} in the database",
                            other.name
                        ),
                    );
                }
                pinned.push(Op::InsertDevice(want(id)));
                id
            }
            None => {
                provisional -= 1;
                assigned.push(Op::InsertDevice(want(provisional)));
                provisional
            }
        };
        ids.insert(d.name.as_str(), id);
        counts.created += 1;
    }
    let inserting = !pinned.is_empty() || !assigned.is_empty();
    plan.ops.extend(pinned);
    plan.ops.extend(updates);
    if inserting {
        plan.ops.push(Op::BumpDeviceIds);
    }
    plan.ops.extend(assigned);
    ids
}

/// Originator policies, keyed by [`address_key`], positioned in file order from 1.
fn plan_originators(
    file: &PolicyFile,
    db: &Existing,
    devices: &DeviceIds,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let by_address: HashMap<&str, (&Originator, i32)> = db
        .model
        .originators
        .iter()
        .zip(db.positions.iter().copied())
        .map(|(o, position)| (o.address.as_str(), (o, position)))
        .collect();
    for (i, o) in file.originators.iter().enumerate() {
        let default_device_id = match &o.default_device {
            None => None,
            Some(name) => match devices.resolve(name) {
                Ok(id) => Some(id),
                Err(why) => {
                    problems.entry(Kind::Originator, i, format!("default_device {why}"));
                    continue;
                }
            },
        };
        let position = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let mut want = Originator {
            id: 0,
            address: address_key(&o.address),
            regex_type: o.regex_type,
            pattern_type: o.pattern_type,
            pattern: o.pattern.clone(),
            alignment: o.alignment,
            default_device_id,
        };
        let counts = &mut plan.summary.originators;
        match by_address.get(want.address.as_str()) {
            Some((current, current_position)) => {
                want.id = current.id;
                if want == **current && position == *current_position {
                    counts.unchanged += 1;
                } else {
                    plan.ops.push(Op::UpdateOriginator(want, position));
                    counts.updated += 1;
                }
            }
            None => {
                plan.ops.push(Op::InsertOriginator(want, position));
                counts.created += 1;
            }
        }
    }
}

/// Event policies, keyed by name; `clears` may name a policy defined later in the file.
fn plan_event_policies(
    file: &PolicyFile,
    db: &Existing,
    scope: Scope,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let by_name: HashMap<&str, &EventPolicy> = db
        .model
        .event_policies
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let db_ids: HashMap<&str, i64> = by_name.iter().map(|(n, p)| (*n, p.id)).collect();
    let mut provisional = 0;
    let ids: HashMap<&str, i64> = file
        .event_policies
        .iter()
        .map(|p| {
            let id = by_name.get(p.name.as_str()).map_or_else(
                || {
                    provisional -= 1;
                    provisional
                },
                |current| current.id,
            );
            (p.name.as_str(), id)
        })
        .collect();
    let mut clears = Vec::new();
    for (i, p) in file.event_policies.iter().enumerate() {
        let clears_id = match &p.clears {
            None => None,
            Some(name) => match scope.resolve(
                name,
                ids.get(name.as_str()).copied(),
                db_ids.get(name.as_str()).copied(),
                "event policy",
            ) {
                Ok(id) => Some(id),
                Err(why) => {
                    problems.entry(Kind::EventPolicy, i, format!("clears {why}"));
                    continue;
                }
            },
        };
        let id = ids[p.name.as_str()];
        let want = EventPolicy {
            id,
            name: p.name.clone(),
            severity: p.severity,
            message: p.message.clone(),
            match_logic: p.match_logic,
            first_match: p.first_match.clone(),
            second_match: p.second_match.clone(),
            clears_id,
            expire_after_s: p.expire_after_s,
        };
        let counts = &mut plan.summary.event_policies;
        let current_clears = match by_name.get(p.name.as_str()) {
            Some(current) => {
                let columns_differ = EventPolicy {
                    clears_id: current.clears_id,
                    ..want.clone()
                } != **current;
                if columns_differ {
                    plan.ops.push(Op::UpdateEventPolicy(want));
                }
                if columns_differ || clears_id != current.clears_id {
                    counts.updated += 1;
                } else {
                    counts.unchanged += 1;
                }
                current.clears_id
            }
            None => {
                plan.ops.push(Op::InsertEventPolicy(want));
                counts.created += 1;
                None
            }
        };
        if clears_id != current_clears {
            clears.push(Op::SetClears { id, clears_id });
        }
    }
    plan.ops.extend(clears);
}

/// With `--prune`: event policies, originators, round-trip policies, then devices the file does
/// not have.
fn plan_prune(file: &PolicyFile, db: &Existing, plan: &mut Plan) {
    let (m, s) = (&db.model, &mut plan.summary);
    let policies: HashSet<&str> = file
        .event_policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let addresses: HashSet<String> = file
        .originators
        .iter()
        .map(|o| address_key(&o.address))
        .collect();
    let roundtrips: HashSet<&str> = file.roundtrips.iter().map(|r| r.name.as_str()).collect();
    let devices: HashSet<&str> = file.devices.iter().map(|d| d.name.as_str()).collect();
    let deletes = [
        delete(
            &m.event_policies,
            |p| p.id,
            |p| policies.contains(p.name.as_str()),
            &mut s.event_policies,
            Table::EventPolicies,
        ),
        delete(
            &m.originators,
            |o| o.id,
            |o| addresses.contains(&o.address),
            &mut s.originators,
            Table::Originators,
        ),
        delete(
            &m.roundtrips,
            |r| r.id,
            |r| roundtrips.contains(r.name.as_str()),
            &mut s.roundtrips,
            Table::Roundtrips,
        ),
        delete(
            &m.devices,
            |d| d.id,
            |d| devices.contains(d.name.as_str()),
            &mut s.devices,
            Table::Devices,
        ),
    ];
    plan.ops.extend(deletes.into_iter().flatten());
}

/// `rows` by a key of theirs.
pub(super) fn by<'a, T, K: Eq + Hash>(
    rows: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> HashMap<K, &'a T> {
    rows.iter().map(|r| (key(r), r)).collect()
}

/// A provisional id for a row this plan inserts: -1, -2, …
pub(super) fn provisional(counter: &mut i64) -> i64 {
    *counter -= 1;
    *counter
}

/// The delete that removes the `rows` of `table` not `kept` (none when all are), counted in
/// `counts`.
pub(super) fn delete<T>(
    rows: &[T],
    id: impl Fn(&T) -> i64,
    kept: impl Fn(&T) -> bool,
    counts: &mut Counts,
    table: Table,
) -> Option<Op> {
    let gone: Vec<i64> = rows.iter().filter(|r| !kept(r)).map(id).collect();
    counts.deleted = gone.len();
    (!gone.is_empty()).then_some(Op::Delete(table, gone))
}

/// What a row the file declares needs: nothing when the database has it as `want`, else an
/// update or an insert (`want` has the row's id, or a provisional one when new); counted.
pub(super) fn write_row<T: PartialEq>(
    want: T,
    current: Option<&T>,
    counts: &mut Counts,
    insert: fn(T) -> Op,
    update: fn(T) -> Op,
    ops: &mut Vec<Op>,
) {
    match current {
        Some(current) if *current == want => counts.unchanged += 1,
        Some(_) => {
            ops.push(update(want));
            counts.updated += 1;
        }
        None => {
            ops.push(insert(want));
            counts.created += 1;
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
