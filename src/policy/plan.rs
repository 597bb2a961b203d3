//! What applying a policy file changes, decided without I/O: references resolved against the
//! file and what the database holds, every row compared with the row that is there.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use super::check::{Kind, Labels, OriginatorKey, Problems};
use super::expect_plan::plan_expects;
use super::file::{EventPolicyEntry, PolicyFile};
use super::roundtrip_plan::plan_roundtrips;
use super::summary::{Counts, Summary};
use super::ticket_plan::plan_tickets;
use super::Model;
use crate::events::model::{
    compile_regex, Device, EventPolicy, MatchLogic, Originator, PatternType,
};
use crate::events::policies::scope_names;
use crate::events::template::Template as MessageTemplate;
use crate::expect::model::ExpectPolicy;
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
/// references to them (`default_device_id`, `clears_ids`, member, queue and template ids) use
/// the provisional id too (and so do a round trip's and an expected-mail policy's `device_id`).
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
    /// A new event policy, without its `clears_ids` (a later [`Op::SetClears`] sets them).
    InsertEventPolicy(EventPolicy),
    /// Every column of the event policy with this id (its `clears_ids` are not columns).
    UpdateEventPolicy(EventPolicy),
    /// The event policies a policy clears; after all inserts, as it may name later ones.
    SetClears { id: i64, clears_ids: Vec<i64> },
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
    /// A new expected-mail policy.
    InsertExpect(ExpectPolicy),
    /// Every column of the expected-mail policy with this id.
    UpdateExpect(ExpectPolicy),
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
    /// `expect_policies`, with their state and reports (their events stay); deleted before
    /// `devices`, which they keep from being deleted (ON DELETE RESTRICT).
    Expects,
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
            Table::Expects => "expect_policies",
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
    pub(super) scope: Scope,
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
    plan_event_policies(file, db, &devices, &mut plan, &mut problems);
    plan_roundtrips(file, db, &devices, &mut plan, &mut problems);
    plan_expects(file, db, &devices, &mut plan, &mut problems);
    if prune {
        plan_prune(file, db, &mut plan);
    }
    plan_tickets(file, db, scope, &mut plan, &mut problems);
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems.finish(&mut Labels::of(file)))
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

/// Originator policies, keyed by name or else by [`address_key`], positioned in file order
/// from 1. A named entry whose name the database lacks takes over the unnamed originator with
/// its address, when the file keeps no unnamed one there: naming an originator keeps its row.
fn plan_originators(
    file: &PolicyFile,
    db: &Existing,
    devices: &DeviceIds,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let mut by_key: HashMap<OriginatorKey, (&Originator, i32)> = db
        .model
        .originators
        .iter()
        .zip(db.positions.iter().copied())
        .map(|(o, position)| {
            (
                OriginatorKey::of(o.name.as_deref(), &o.address),
                (o, position),
            )
        })
        .collect();
    let unnamed_in_file: HashSet<String> = file
        .originators
        .iter()
        .filter(|o| o.name.is_none())
        .map(|o| address_key(&o.address))
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
            name: o.name.clone(),
            address: address_key(&o.address),
            regex_type: o.regex_type.clone(),
            pattern_type: o.pattern_type,
            pattern: o.pattern.clone(),
            alignment: o.alignment,
            default_device_id,
            require_auth: o.require_auth,
        };
        let key = OriginatorKey::of(o.name.as_deref(), &want.address);
        let mut current = by_key.remove(&key);
        if current.is_none() && o.name.is_some() && !unnamed_in_file.contains(&want.address) {
            current = by_key.remove(&OriginatorKey::Address(want.address.clone()));
        }
        let counts = &mut plan.summary.originators;
        match current {
            Some((current, current_position)) => {
                want.id = current.id;
                if want == *current && position == current_position {
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

/// Event policies, keyed by name; `clears` may name policies defined later in the file; the
/// originators and devices of a scope must exist (they are stored by name), and every capture
/// a policy uses must be a named group of its match strings or of an originator pattern its
/// mail can be aligned through.
fn plan_event_policies(
    file: &PolicyFile,
    db: &Existing,
    devices: &DeviceIds,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let scope = devices.scope;
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
    let originators = Originators::new(file, db, scope);
    let mut clears = Vec::new();
    for (i, p) in file.event_policies.iter().enumerate() {
        let mut fail = |why: String| problems.entry(Kind::EventPolicy, i, why);
        let mut clears_ids = Vec::new();
        for name in &p.clears {
            match scope.resolve(
                name,
                ids.get(name.as_str()).copied(),
                db_ids.get(name.as_str()).copied(),
                "event policy",
            ) {
                Ok(id) => clears_ids.push(id),
                Err(why) => fail(format!("clears {why}")),
            }
        }
        for name in &p.originators {
            if let Err(why) = originators.resolve(name) {
                fail(format!("originators {why}"));
            }
        }
        for name in &p.devices {
            if let Err(why) = devices.resolve(name) {
                fail(format!("devices {why}"));
            }
        }
        for why in originators.missing_captures(p) {
            fail(why);
        }
        clears_ids.sort_unstable();
        let id = ids[p.name.as_str()];
        let want = EventPolicy {
            id,
            name: p.name.clone(),
            action: p.action,
            severity: p.severity,
            severity_from: p.severity_from.clone(),
            severity_map: p.severity_map.clone(),
            key: p.key.clone(),
            key_map: p.key_map.clone(),
            message: p.message.clone(),
            match_in: p.match_in,
            match_logic: p.match_logic,
            first_match: p.first_match.clone(),
            second_match: p.second_match.clone(),
            clears_ids,
            originators: p.originators.clone(),
            devices: p.devices.clone(),
            expire_after_s: p.expire_after_s,
            expire_healthy_after_s: p.expire_healthy_after_s,
            rate: p.rate,
        };
        let counts = &mut plan.summary.event_policies;
        let current_clears = match by_name.get(p.name.as_str()) {
            Some(current) => {
                let columns_differ = EventPolicy {
                    clears_ids: current.clears_ids.clone(),
                    ..want.clone()
                } != **current;
                if columns_differ {
                    plan.ops.push(Op::UpdateEventPolicy(want.clone()));
                }
                if columns_differ || want.clears_ids != current.clears_ids {
                    counts.updated += 1;
                } else {
                    counts.unchanged += 1;
                }
                current.clears_ids.clone()
            }
            None => {
                plan.ops.push(Op::InsertEventPolicy(want.clone()));
                counts.created += 1;
                Vec::new()
            }
        };
        if want.clears_ids != current_clears {
            clears.push(Op::SetClears {
                id,
                clears_ids: want.clears_ids,
            });
        }
    }
    plan.ops.extend(clears);
}

/// The originators an event policy's scope and captures may refer to: the file's, and (unless
/// pruning) those only the database has.
struct Originators<'a> {
    /// (name, address, named groups of its pattern), file first.
    all: Vec<(Option<&'a str>, String, Vec<String>)>,
    /// How many of `all` are the file's.
    in_file: usize,
    scope: Scope,
}

impl<'a> Originators<'a> {
    fn new(file: &'a PolicyFile, db: &'a Existing, scope: Scope) -> Originators<'a> {
        let groups = |pattern_type: PatternType, pattern: &str| match pattern_type {
            PatternType::Classic => Vec::new(),
            PatternType::Advanced => capture_names(pattern),
        };
        let mut all: Vec<_> = file
            .originators
            .iter()
            .map(|o| {
                let groups = groups(o.pattern_type, &o.pattern);
                (o.name.as_deref(), address_key(&o.address), groups)
            })
            .collect();
        let in_file = all.len();
        for o in &db.model.originators {
            let known = all[..in_file].iter().any(|(name, address, _)| {
                OriginatorKey::of(*name, address)
                    == OriginatorKey::of(o.name.as_deref(), &o.address)
            });
            if !known {
                all.push((
                    o.name.as_deref(),
                    o.address.clone(),
                    groups(o.pattern_type, &o.pattern),
                ));
            }
        }
        Originators {
            all,
            in_file,
            scope,
        }
    }

    /// The indexes in `all` of the originators a scope entry (a name, or an address) stands
    /// for.
    fn named(&self, entry: &str) -> Vec<usize> {
        self.all
            .iter()
            .enumerate()
            .filter(|(_, (name, address, _))| scope_names(entry, *name, address))
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether a scope entry names an originator, as [`Scope::resolve`] words it.
    fn resolve(&self, entry: &str) -> Result<(), String> {
        let mut file = None;
        let mut database = None;
        for i in self.named(entry) {
            if i < self.in_file {
                file = Some(());
            } else {
                database = Some(());
            }
        }
        self.scope
            .resolve(entry, file, database, "originator name or address")
            .map(|_| ())
    }

    /// A problem for each capture `p` uses that no named group it can see defines: its match
    /// strings', and the patterns' of the originators in its scope (of every originator when
    /// it has none).
    fn missing_captures(&self, p: &EventPolicyEntry) -> Vec<String> {
        let mut used: Vec<(&str, String)> = Vec::new();
        let templates = [
            ("key", p.key.as_deref()),
            ("message", Some(p.message.as_str())),
        ];
        for (field, text) in templates {
            if let Some(Ok(template)) = text.map(MessageTemplate::parse) {
                used.extend(template.captures().map(|c| (field, c.to_owned())));
            }
        }
        used.extend(p.severity_from.iter().map(|c| ("severity_from", c.clone())));
        used.extend(p.key_map.keys().map(|c| ("key_map", c.clone())));
        if used.is_empty() {
            return Vec::new();
        }
        let mut known: HashSet<String> = HashSet::new();
        if p.match_logic == MatchLogic::Regex {
            for m in std::iter::once(&p.first_match).chain(&p.second_match) {
                known.extend(capture_names(m));
            }
        }
        let scoped: Vec<usize> = p
            .originators
            .iter()
            .flat_map(|entry| self.named(entry))
            .collect();
        for (i, (_, _, groups)) in self.all.iter().enumerate() {
            if p.originators.is_empty() || scoped.contains(&i) {
                known.extend(groups.iter().cloned());
            }
        }
        let mut seen = HashSet::new();
        used.into_iter()
            .filter(|(_, c)| !known.contains(c) && seen.insert(c.clone()))
            .map(|(field, c)| {
                format!(
                    "{field}: the capture {c:?} is not a named group (?P<{c}>…) of first_match, second_match or an originator pattern its mail can come through"
                )
            })
            .collect()
    }
}

/// The names of the named groups of `pattern` (none when it does not compile: that is
/// reported where the pattern is checked).
fn capture_names(pattern: &str) -> Vec<String> {
    compile_regex(pattern)
        .map(|re| re.capture_names().flatten().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// With `--prune`: event policies, originators, round-trip and expected-mail policies, then
/// devices the file does not have.
fn plan_prune(file: &PolicyFile, db: &Existing, plan: &mut Plan) {
    // The unnamed originators a named entry takes over are kept too.
    let taken_over: HashSet<i64> = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::UpdateOriginator(o, _) => Some(o.id),
            _ => None,
        })
        .collect();
    let (m, s) = (&db.model, &mut plan.summary);
    let policies: HashSet<&str> = file
        .event_policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let originators: HashSet<OriginatorKey> = file
        .originators
        .iter()
        .map(|o| OriginatorKey::of(o.name.as_deref(), &o.address))
        .collect();
    let roundtrips: HashSet<&str> = file.roundtrips.iter().map(|r| r.name.as_str()).collect();
    let expects: HashSet<&str> = file.expects.iter().map(|e| e.name.as_str()).collect();
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
            |o| {
                taken_over.contains(&o.id)
                    || originators.contains(&OriginatorKey::of(o.name.as_deref(), &o.address))
            },
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
            &m.expects,
            |e| e.id,
            |e| expects.contains(e.name.as_str()),
            &mut s.expects,
            Table::Expects,
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
