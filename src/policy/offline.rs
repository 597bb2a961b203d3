//! The policies a file declares on its own, for `policy test --policies FILE`: the plan's
//! writes made in memory, with the ids a fresh database would assign.

use std::collections::HashMap;

use super::file::PolicyFile;
use super::plan::{plan, Existing, Op, Plan, Table};
use super::Model;
use crate::events::model::{Device, EventPolicy, Originator};
use crate::expect::model::ExpectPolicy;
use crate::roundtrip::model::RoundtripPolicy;
use crate::tickets::model::{Queue, Template, TicketPolicy, User};

impl Plan {
    /// Makes the writes in memory, assigning ids as a fresh database would: a device's pinned
    /// id or the next after the highest, and the next after the highest for the others.
    pub(crate) fn execute_in_memory(&self, state: &mut Existing) {
        let (mut devices, mut policies) = (HashMap::new(), HashMap::new());
        let (mut users, mut queues, mut templates) =
            (HashMap::new(), HashMap::new(), HashMap::new());
        let real = |map: &HashMap<i64, i64>, id: i64| if id < 0 { map[&id] } else { id };
        let m = &mut state.model;
        for op in &self.ops {
            match op {
                Op::InsertDevice(d) => {
                    let id = if d.id > 0 {
                        d.id
                    } else {
                        next(m.devices.iter().map(|d| d.id))
                    };
                    devices.insert(d.id, id);
                    m.devices.push(Device { id, ..d.clone() });
                }
                Op::UpdateDevice(d) => {
                    if let Some(row) = m.devices.iter_mut().find(|row| row.id == d.id) {
                        *row = d.clone();
                    }
                }
                Op::BumpDeviceIds => {}
                Op::InsertOriginator(o, position) => {
                    let id = next(m.originators.iter().map(|o| o.id));
                    let default_device_id = o.default_device_id.map(|d| real(&devices, d));
                    m.originators.push(Originator {
                        id,
                        default_device_id,
                        ..o.clone()
                    });
                    state.positions.push(*position);
                }
                Op::UpdateOriginator(o, position) => {
                    if let Some(i) = m.originators.iter().position(|row| row.id == o.id) {
                        let default_device_id = o.default_device_id.map(|d| real(&devices, d));
                        m.originators[i] = Originator {
                            default_device_id,
                            ..o.clone()
                        };
                        state.positions[i] = *position;
                    }
                }
                Op::InsertEventPolicy(p) => {
                    let id = next(m.event_policies.iter().map(|p| p.id));
                    policies.insert(p.id, id);
                    m.event_policies.push(EventPolicy {
                        id,
                        clears_ids: Vec::new(),
                        ..p.clone()
                    });
                }
                Op::UpdateEventPolicy(p) => {
                    if let Some(row) = m.event_policies.iter_mut().find(|row| row.id == p.id) {
                        *row = EventPolicy {
                            clears_ids: std::mem::take(&mut row.clears_ids),
                            ..p.clone()
                        };
                    }
                }
                Op::SetClears { id, clears_ids } => {
                    let id = real(&policies, *id);
                    if let Some(row) = m.event_policies.iter_mut().find(|row| row.id == id) {
                        row.clears_ids = clears_ids.iter().map(|c| real(&policies, *c)).collect();
                        row.clears_ids.sort_unstable();
                    }
                }
                Op::Delete(Table::EventPolicies, ids) => {
                    m.event_policies.retain(|p| !ids.contains(&p.id));
                    for p in &mut m.event_policies {
                        p.clears_ids.retain(|c| !ids.contains(c));
                    }
                }
                Op::Delete(Table::Originators, ids) => {
                    (m.originators, state.positions) = m
                        .originators
                        .drain(..)
                        .zip(state.positions.drain(..))
                        .filter(|(o, _)| !ids.contains(&o.id))
                        .unzip();
                }
                Op::Delete(Table::Devices, ids) => m.devices.retain(|d| !ids.contains(&d.id)),
                Op::Delete(Table::Roundtrips, ids) => m.roundtrips.retain(|r| !ids.contains(&r.id)),
                Op::Delete(Table::Expects, ids) => m.expects.retain(|e| !ids.contains(&e.id)),
                Op::InsertUser(u) => {
                    let id = next(m.users.iter().map(|u| u.id));
                    users.insert(u.id, id);
                    m.users.push(User { id, ..u.clone() });
                }
                Op::UpdateUser(u) => {
                    if let Some(row) = m.users.iter_mut().find(|row| row.id == u.id) {
                        *row = u.clone();
                    }
                }
                Op::InsertQueue(q) => {
                    let id = next(m.queues.iter().map(|q| q.id));
                    queues.insert(q.id, id);
                    m.queues.push(Queue {
                        id,
                        name: q.name.clone(),
                        member_ids: Vec::new(),
                    });
                }
                Op::AddMembers { queue_id, user_ids } => {
                    let id = real(&queues, *queue_id);
                    if let Some(row) = m.queues.iter_mut().find(|row| row.id == id) {
                        let added = user_ids.iter().map(|u| real(&users, *u));
                        row.member_ids.extend(added);
                        row.member_ids.sort_unstable();
                    }
                }
                Op::RemoveMembers { queue_id, user_ids } => {
                    if let Some(row) = m.queues.iter_mut().find(|row| row.id == *queue_id) {
                        row.member_ids.retain(|u| !user_ids.contains(u));
                    }
                }
                Op::InsertTemplate(t) | Op::UpdateTemplate(t) => {
                    let want = Template {
                        queue_id: t.queue_id.map(|q| real(&queues, q)),
                        ..t.clone()
                    };
                    let id = upsert(
                        &mut m.templates,
                        want,
                        |t| t.id,
                        |t, id| Template { id, ..t },
                    );
                    templates.insert(t.id, id);
                }
                Op::FreeDestinations(_) => {}
                Op::InsertTicketPolicy(p) | Op::UpdateTicketPolicy(p) => {
                    let want = TicketPolicy {
                        template_id: real(&templates, p.template_id),
                        ..p.clone()
                    };
                    let with_id = |p, id| TicketPolicy { id, ..p };
                    upsert(&mut m.ticket_policies, want, |p| p.id, with_id);
                }
                Op::InsertRoundtrip(r) | Op::UpdateRoundtrip(r) => {
                    let want = RoundtripPolicy {
                        device_id: real(&devices, r.device_id),
                        ..r.clone()
                    };
                    let with_id = |r, id| RoundtripPolicy { id, ..r };
                    upsert(&mut m.roundtrips, want, |r| r.id, with_id);
                }
                Op::InsertExpect(e) | Op::UpdateExpect(e) => {
                    let want = ExpectPolicy {
                        device_id: real(&devices, e.device_id),
                        ..e.clone()
                    };
                    let with_id = |e, id| ExpectPolicy { id, ..e };
                    upsert(&mut m.expects, want, |e| e.id, with_id);
                }
                Op::Delete(Table::TicketPolicies, ids) => {
                    m.ticket_policies.retain(|p| !ids.contains(&p.id))
                }
                Op::Delete(Table::Templates, ids) => m.templates.retain(|t| !ids.contains(&t.id)),
                Op::Delete(Table::Queues, ids) => m.queues.retain(|q| !ids.contains(&q.id)),
                Op::Delete(Table::Users, ids) => {
                    m.users.retain(|u| !ids.contains(&u.id));
                    for q in &mut m.queues {
                        q.member_ids.retain(|u| !ids.contains(u));
                    }
                }
            }
        }
        m.devices.sort_by_key(|d| d.id);
        m.event_policies.sort_by_key(|p| p.id);
        let mut rows: Vec<_> = m
            .originators
            .drain(..)
            .zip(state.positions.drain(..))
            .collect();
        rows.sort_by_key(|(o, position)| (*position, o.id));
        (m.originators, state.positions) = rows.into_iter().unzip();
    }
}

/// The id after the highest of `ids` (1 when there is none), as a fresh database assigns it.
fn next(ids: impl Iterator<Item = i64>) -> i64 {
    ids.max().unwrap_or(0) + 1
}

/// Puts `want` in the place of the row with its id or, when there is none (its id is
/// provisional), adds it with the [`next`] id, given by `with_id`; returns the id it has.
fn upsert<T>(
    rows: &mut Vec<T>,
    want: T,
    id: impl Fn(&T) -> i64,
    with_id: impl FnOnce(T, i64) -> T,
) -> i64 {
    let wanted = id(&want);
    match rows.iter_mut().find(|row| id(row) == wanted) {
        Some(row) => {
            *row = want;
            wanted
        }
        None => {
            let new = next(rows.iter().map(&id));
            rows.push(with_id(want, new));
            new
        }
    }
}

impl PolicyFile {
    /// The policies this file declares on its own (for `policy test --policies FILE`), with ids
    /// as a fresh database would assign them: devices their pinned id or the next after the
    /// highest pinned one, in file order; the other entries 1, 2, … in file order.
    /// References resolve within the file only.
    pub fn to_model(&self) -> Result<Model, Vec<String>> {
        let problems = self.check();
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut state = Existing::default();
        plan(self, None, false)?.execute_in_memory(&mut state);
        Ok(state.model)
    }
}
