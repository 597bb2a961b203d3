//! What applying a policy file changes, decided without I/O: references resolved against the
//! file and what the database holds, every row compared with the row that is there.

use std::collections::{HashMap, HashSet};

use super::check::{Kind, Labels, Problems};
use super::file::PolicyFile;
use super::summary::Summary;
use super::Model;
use crate::events::model::{Device, EventPolicy, Originator};
use crate::route::address_key;

/// What the database holds: its policies, and each originator's `position`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Existing {
    /// The three tables.
    pub model: Model,
    /// `originator_policies.position`, one per entry of `model.originators`.
    pub positions: Vec<i32>,
}

/// One write. Ids of rows this plan creates are provisional (negative) until they are inserted;
/// references to them (`default_device_id`, `clears_id`) use the provisional id too.
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
    /// Event policies `--prune` removes.
    DeleteEventPolicies(Vec<i64>),
    /// Originator policies `--prune` removes.
    DeleteOriginators(Vec<i64>),
    /// Devices `--prune` removes.
    DeleteDevices(Vec<i64>),
}

/// The writes that make the database what the file says, in the order they must be made.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub(crate) summary: Summary,
    pub(crate) ops: Vec<Op>,
}

/// Where a name may be found.
#[derive(Clone, Copy)]
struct Scope {
    database: bool,
    prune: bool,
}

impl Scope {
    /// Resolves a reference to an entry by name: the file's first, then (unless pruning) the
    /// database's. `Err` completes "`field` …".
    fn resolve(
        self,
        name: &str,
        file: &HashMap<&str, i64>,
        database: &HashMap<&str, i64>,
        what: &str,
    ) -> Result<i64, String> {
        if let Some(id) = file.get(name) {
            return Ok(*id);
        }
        match database.get(name) {
            Some(id) if !self.prune => Ok(*id),
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

fn article(what: &str) -> &'static str {
    if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
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
    let devices = plan_devices(file, db, &mut plan, &mut problems);
    let db_devices: HashMap<&str, i64> = db
        .model
        .devices
        .iter()
        .map(|d| (d.name.as_str(), d.id))
        .collect();
    plan_originators(
        file,
        db,
        scope,
        &devices,
        &db_devices,
        &mut plan,
        &mut problems,
    );
    plan_event_policies(file, db, scope, &mut plan, &mut problems);
    if prune {
        plan_prune(file, db, &mut plan);
    }
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
    scope: Scope,
    devices: &HashMap<&str, i64>,
    db_devices: &HashMap<&str, i64>,
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
            Some(name) => match scope.resolve(name, devices, db_devices, "device") {
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
            Some(name) => match scope.resolve(name, &ids, &db_ids, "event policy") {
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

/// With `--prune`: event policies, originators, then devices the file does not have.
fn plan_prune(file: &PolicyFile, db: &Existing, plan: &mut Plan) {
    let names: HashSet<&str> = file
        .event_policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let gone: Vec<i64> = db
        .model
        .event_policies
        .iter()
        .filter(|p| !names.contains(p.name.as_str()))
        .map(|p| p.id)
        .collect();
    plan.summary.event_policies.deleted = gone.len();
    if !gone.is_empty() {
        plan.ops.push(Op::DeleteEventPolicies(gone));
    }
    let addresses: HashSet<String> = file
        .originators
        .iter()
        .map(|o| address_key(&o.address))
        .collect();
    let gone: Vec<i64> = db
        .model
        .originators
        .iter()
        .filter(|o| !addresses.contains(&o.address))
        .map(|o| o.id)
        .collect();
    plan.summary.originators.deleted = gone.len();
    if !gone.is_empty() {
        plan.ops.push(Op::DeleteOriginators(gone));
    }
    let names: HashSet<&str> = file.devices.iter().map(|d| d.name.as_str()).collect();
    let gone: Vec<i64> = db
        .model
        .devices
        .iter()
        .filter(|d| !names.contains(d.name.as_str()))
        .map(|d| d.id)
        .collect();
    plan.summary.devices.deleted = gone.len();
    if !gone.is_empty() {
        plan.ops.push(Op::DeleteDevices(gone));
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
