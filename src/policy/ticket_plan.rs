//! What applying the ticket entries changes (users, queues and their members, ticket templates,
//! ticket policies), decided without I/O like the rest of the plan.

use std::collections::{HashMap, HashSet};

use super::check::{Kind, Problems};
use super::file::PolicyFile;
use super::plan::{by, delete, provisional, write_row, Existing, Op, Plan, Scope, Table};
use crate::route::address_key;
use crate::tickets::model::{Access, Messages, Queue, Template, TicketPolicy, User};

/// Plans the ticket tables, in the order the writes must be made: with `--prune`, the ticket
/// policies the file lacks first (freeing their destinations); users, queues, members,
/// templates, ticket policies; then, with `--prune`, the templates, queues and users the file
/// lacks (queue members go with their queue or user).
pub(super) fn plan_tickets(
    file: &PolicyFile,
    db: &Existing,
    scope: Scope,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let m = &db.model;
    let policies: HashSet<&str> = file
        .ticket_policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    if scope.prune {
        plan.ops.extend(delete(
            &m.ticket_policies,
            |p| p.id,
            |p| policies.contains(p.name.as_str()),
            &mut plan.summary.ticket_policies,
            Table::TicketPolicies,
        ));
    }
    let users = plan_users(file, db, plan);
    let queues = plan_queues(file, db, scope, &users, plan, problems);
    let templates = plan_templates(file, db, scope, &queues, plan, problems);
    plan_policies(file, db, scope, &templates, plan, problems);
    if scope.prune {
        let templates: HashSet<&str> = file
            .ticket_templates
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let queues: HashSet<&str> = file.queues.iter().map(|q| q.name.as_str()).collect();
        let s = &mut plan.summary;
        let deletes = [
            delete(
                &m.templates,
                |t| t.id,
                |t| templates.contains(t.name.as_str()),
                &mut s.ticket_templates,
                Table::Templates,
            ),
            delete(
                &m.queues,
                |q| q.id,
                |q| queues.contains(q.name.as_str()),
                &mut s.queues,
                Table::Queues,
            ),
            delete(
                &m.users,
                |u| u.id,
                |u| users.contains_key(&u.email),
                &mut s.users,
                Table::Users,
            ),
        ];
        plan.ops.extend(deletes.into_iter().flatten());
    }
}

/// Users, keyed by [`address_key`]; returns each file user's id by folded email.
fn plan_users(file: &PolicyFile, db: &Existing, plan: &mut Plan) -> HashMap<String, i64> {
    let by_email = by(&db.model.users, |u| u.email.as_str());
    let mut ids = HashMap::new();
    let mut counter = 0;
    for u in &file.users {
        let email = address_key(&u.email);
        let current = by_email.get(email.as_str()).copied();
        let id = current.map_or_else(|| provisional(&mut counter), |c| c.id);
        let want = User {
            id,
            email: email.clone(),
            name: u.name.clone(),
        };
        let counts = &mut plan.summary.users;
        write_row(
            want,
            current,
            counts,
            Op::InsertUser,
            Op::UpdateUser,
            &mut plan.ops,
        );
        ids.insert(email, id);
    }
    ids
}

/// Queues, keyed by name, and their members (only the memberships that differ are written);
/// returns each file queue's id.
fn plan_queues<'f>(
    file: &'f PolicyFile,
    db: &Existing,
    scope: Scope,
    users: &HashMap<String, i64>,
    plan: &mut Plan,
    problems: &mut Problems,
) -> HashMap<&'f str, i64> {
    let by_name = by(&db.model.queues, |q| q.name.as_str());
    let db_users = by(&db.model.users, |u| u.email.as_str());
    let (mut ids, mut members) = (HashMap::new(), Vec::new());
    let mut counter = 0;
    for (i, q) in file.queues.iter().enumerate() {
        let current = by_name.get(q.name.as_str()).copied();
        let id = current.map_or_else(|| provisional(&mut counter), |c| c.id);
        ids.insert(q.name.as_str(), id);
        let mut want = Vec::new();
        for email in &q.members {
            let key = address_key(email);
            let found = users.get(&key).copied();
            let in_db = db_users.get(key.as_str()).map(|u| u.id);
            match scope.resolve(email, found, in_db, "user") {
                Ok(user_id) => want.push(user_id),
                Err(why) => problems.entry(Kind::Queue, i, format!("members {why}")),
            }
        }
        let have = current.map_or(&[][..], |c| &c.member_ids[..]);
        let add: Vec<i64> = want.iter().filter(|u| !have.contains(u)).copied().collect();
        let remove: Vec<i64> = have.iter().filter(|u| !want.contains(u)).copied().collect();
        let counts = &mut plan.summary.queues;
        match current {
            None => {
                plan.ops.push(Op::InsertQueue(Queue {
                    id,
                    name: q.name.clone(),
                    member_ids: Vec::new(),
                }));
                counts.created += 1;
            }
            Some(_) if add.is_empty() && remove.is_empty() => counts.unchanged += 1,
            Some(_) => counts.updated += 1,
        }
        if !remove.is_empty() {
            members.push(Op::RemoveMembers {
                queue_id: id,
                user_ids: remove,
            });
        }
        if !add.is_empty() {
            members.push(Op::AddMembers {
                queue_id: id,
                user_ids: add,
            });
        }
    }
    plan.ops.extend(members);
    ids
}

/// A ticket template as a reference sees it: its id, and whether it has a queue.
#[derive(Clone, Copy)]
struct TemplateRef {
    id: i64,
    has_queue: bool,
}

/// Ticket templates, keyed by name; returns each file template by name.
fn plan_templates<'f>(
    file: &'f PolicyFile,
    db: &Existing,
    scope: Scope,
    queues: &HashMap<&str, i64>,
    plan: &mut Plan,
    problems: &mut Problems,
) -> HashMap<&'f str, TemplateRef> {
    let by_name = by(&db.model.templates, |t| t.name.as_str());
    let db_queues = by(&db.model.queues, |q| q.name.as_str());
    let mut refs = HashMap::new();
    let mut counter = 0;
    for (i, t) in file.ticket_templates.iter().enumerate() {
        let current = by_name.get(t.name.as_str()).copied();
        let id = current.map_or_else(|| provisional(&mut counter), |c| c.id);
        let queue_id = match &t.queue {
            None => None,
            Some(name) => {
                let found = queues.get(name.as_str()).copied();
                let in_db = db_queues.get(name.as_str()).map(|q| q.id);
                match scope.resolve(name, found, in_db, "queue") {
                    Ok(id) => Some(id),
                    Err(why) => {
                        problems.entry(Kind::TicketTemplate, i, format!("queue {why}"));
                        // Unknown, but named: policies with access "queue" are not blamed.
                        refs.insert(
                            t.name.as_str(),
                            TemplateRef {
                                id,
                                has_queue: true,
                            },
                        );
                        continue;
                    }
                }
            }
        };
        refs.insert(
            t.name.as_str(),
            TemplateRef {
                id,
                has_queue: queue_id.is_some(),
            },
        );
        let want = Template {
            id,
            name: t.name.clone(),
            queue_id,
            severity: t.severity,
            status: t.status,
            description: t.description.clone(),
        };
        let counts = &mut plan.summary.ticket_templates;
        write_row(
            want,
            current,
            counts,
            Op::InsertTemplate,
            Op::UpdateTemplate,
            &mut plan.ops,
        );
    }
    refs
}

/// Ticket policies, keyed by name. A destination may move from one policy to another within
/// the file (the policy losing it is given a placeholder first); it may not be taken from a
/// policy only the database has, unless `--prune` deletes that one.
fn plan_policies(
    file: &PolicyFile,
    db: &Existing,
    scope: Scope,
    templates: &HashMap<&str, TemplateRef>,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let m = &db.model;
    let by_name = by(&m.ticket_policies, |p| p.name.as_str());
    let by_destination = by(&m.ticket_policies, |p| p.destination.as_str());
    let db_templates: HashMap<&str, TemplateRef> = m
        .templates
        .iter()
        .map(|t| {
            let has_queue = t.queue_id.is_some();
            (
                t.name.as_str(),
                TemplateRef {
                    id: t.id,
                    has_queue,
                },
            )
        })
        .collect();
    let in_file: HashSet<&str> = file
        .ticket_policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let (mut free, mut writes) = (Vec::new(), Vec::new());
    let mut counter = 0;
    for (i, p) in file.ticket_policies.iter().enumerate() {
        let mut at = |text: String| problems.entry(Kind::TicketPolicy, i, text);
        let name = p.template.as_str();
        let found = (templates.get(name), db_templates.get(name));
        let template =
            match scope.resolve(name, found.0.copied(), found.1.copied(), "ticket template") {
                Ok(template) => template,
                Err(why) => {
                    at(format!("template {why}"));
                    continue;
                }
            };
        if p.access == Access::Queue && !template.has_queue {
            at(format!(
                "access: \"queue\" admits the members of the template's queue, and ticket template {name:?} has no queue"
            ));
        }
        let destination = address_key(&p.destination);
        match by_destination.get(destination.as_str()) {
            Some(holder) if holder.name != p.name => {
                if in_file.contains(holder.name.as_str()) {
                    // The file gives the holder another destination (destinations are unique
                    // within the file): it lets go of this one first.
                    free.push(holder.id);
                } else if !scope.prune {
                    at(format!(
                        "destination: {:?} is the destination of ticket policy {:?}, which only the database has (give one of them another destination, or use --prune)",
                        p.destination, holder.name
                    ));
                }
            }
            _ => {}
        }
        let current = by_name.get(p.name.as_str()).copied();
        let want = TicketPolicy {
            id: current.map_or_else(|| provisional(&mut counter), |c| c.id),
            name: p.name.clone(),
            destination,
            reply_address: p.reply_address.clone(),
            template_id: template.id,
            access: p.access,
            messages: Messages {
                created: p.msg_created.clone(),
                updated: p.msg_updated.clone(),
                failed: p.msg_failed.clone(),
                not_registered: p.msg_not_registered.clone(),
                not_in_queue: p.msg_not_in_queue.clone(),
            },
        };
        let counts = &mut plan.summary.ticket_policies;
        write_row(
            want,
            current,
            counts,
            Op::InsertTicketPolicy,
            Op::UpdateTicketPolicy,
            &mut writes,
        );
    }
    // A policy only the database has, kept (no --prune), whose access needs a queue: the file
    // may not take its template's queue away.
    if !scope.prune {
        let kept = m
            .ticket_policies
            .iter()
            .filter(|p| p.access == Access::Queue && !in_file.contains(p.name.as_str()));
        for policy in kept {
            let emptied = file.ticket_templates.iter().position(|t| {
                t.queue.is_none() && by_template_id(m, policy.template_id) == Some(t.name.as_str())
            });
            if let Some(i) = emptied {
                problems.entry(Kind::TicketTemplate, i, format!(
                    "queue: ticket policy {:?}, which only the database has, has access \"queue\" and needs this template's queue",
                    policy.name
                ));
            }
        }
    }
    if !free.is_empty() {
        free.sort_unstable();
        plan.ops.push(Op::FreeDestinations(free));
    }
    plan.ops.extend(writes);
}

/// The name of the database's template with this id.
fn by_template_id(model: &super::Model, id: i64) -> Option<&str> {
    model
        .templates
        .iter()
        .find(|t| t.id == id)
        .map(|t| t.name.as_str())
}
