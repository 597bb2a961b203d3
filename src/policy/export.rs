//! `mailops policy export`: the database's policies in the policy file format.

use std::collections::HashMap;

use deadpool_postgres::Pool;

use super::file::{
    DeviceEntry, EventPolicyEntry, ExpectEntry, OriginatorEntry, QueueEntry, RoundtripEntry,
    TicketPolicyEntry, TicketTemplateEntry, UserEntry, DEFAULT_TIMEZONE,
};
use super::{load, Model, PolicyFile};
use crate::expect::model::{Every, ExpectPolicy, From};
use crate::expect::schedule::format_duration;
use crate::store;

/// The line every export starts with.
pub const HEADER: &str = "# mailops policies, written by `mailops policy export`.\n\n";

/// The database's policies as policy file text: [`HEADER`], then [`PolicyFile::from_model`].
pub async fn export(pool: &Pool) -> Result<String, store::Error> {
    let model = load(pool).await?;
    Ok(format!(
        "{HEADER}{}",
        PolicyFile::from_model(&model).to_toml()
    ))
}

impl PolicyFile {
    /// The file that declares `model`, entries in the model's order (originators in the order
    /// they are tried, the others by id), every device's id pinned, references by name (queue
    /// members by email), optional keys left out when unset (and, for expected mail, when
    /// they have their default value).
    pub fn from_model(model: &Model) -> PolicyFile {
        fn names<T>(rows: &[T], id_name: impl Fn(&T) -> (i64, &str)) -> HashMap<i64, &str> {
            rows.iter().map(id_name).collect()
        }
        let devices = names(&model.devices, |d| (d.id, &d.name));
        let policies = names(&model.event_policies, |p| (p.id, &p.name));
        let users = names(&model.users, |u| (u.id, &u.email));
        let queues = names(&model.queues, |q| (q.id, &q.name));
        let templates = names(&model.templates, |t| (t.id, &t.name));
        // The foreign keys guarantee the names exist; were one missing, the reference would be
        // left out, and applying the export would report it rather than guess.
        let name = |names: &HashMap<i64, &str>, id: Option<i64>| {
            id.and_then(|id| names.get(&id)).map(|n| (*n).to_owned())
        };
        PolicyFile {
            devices: model
                .devices
                .iter()
                .map(|d| DeviceEntry {
                    name: d.name.clone(),
                    id: Some(d.id),
                    ip: d.ip,
                    organization: d.organization.clone(),
                })
                .collect(),
            originators: model
                .originators
                .iter()
                .map(|o| OriginatorEntry {
                    name: o.name.clone(),
                    address: o.address.clone(),
                    regex_type: o.regex_type.clone(),
                    pattern_type: o.pattern_type,
                    pattern: o.pattern.clone(),
                    alignment: o.alignment,
                    default_device: name(&devices, o.default_device_id),
                    require_auth: o.require_auth,
                })
                .collect(),
            event_policies: model
                .event_policies
                .iter()
                .map(|p| EventPolicyEntry {
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
                    clears: p
                        .clears_ids
                        .iter()
                        .filter_map(|id| name(&policies, Some(*id)))
                        .collect(),
                    originators: p.originators.clone(),
                    devices: p.devices.clone(),
                    expire_after_s: p.expire_after_s,
                    expire_healthy_after_s: p.expire_healthy_after_s,
                    rate: p.rate,
                })
                .collect(),
            users: model
                .users
                .iter()
                .map(|u| UserEntry {
                    email: u.email.clone(),
                    name: u.name.clone(),
                })
                .collect(),
            queues: model
                .queues
                .iter()
                .map(|q| QueueEntry {
                    name: q.name.clone(),
                    members: q
                        .member_ids
                        .iter()
                        .filter_map(|id| name(&users, Some(*id)))
                        .collect(),
                })
                .collect(),
            ticket_templates: model
                .templates
                .iter()
                .map(|t| TicketTemplateEntry {
                    name: t.name.clone(),
                    queue: name(&queues, t.queue_id),
                    severity: t.severity,
                    status: t.status,
                    description: t.description.clone(),
                })
                .collect(),
            ticket_policies: model
                .ticket_policies
                .iter()
                .map(|p| TicketPolicyEntry {
                    name: p.name.clone(),
                    destination: p.destination.clone(),
                    reply_address: p.reply_address.clone(),
                    // Not found, it is left empty: applying the export reports it.
                    template: name(&templates, Some(p.template_id)).unwrap_or_default(),
                    access: p.access,
                    msg_created: p.messages.created.clone(),
                    msg_updated: p.messages.updated.clone(),
                    msg_failed: p.messages.failed.clone(),
                    msg_not_registered: p.messages.not_registered.clone(),
                    msg_not_in_queue: p.messages.not_in_queue.clone(),
                })
                .collect(),
            roundtrips: model
                .roundtrips
                .iter()
                .map(|r| RoundtripEntry {
                    name: r.name.clone(),
                    // Not found, it is left empty: applying the export reports it.
                    device: name(&devices, Some(r.device_id)).unwrap_or_default(),
                    send_to: r.send_to.clone(),
                    from: r.from_address.clone(),
                    interval_s: r.interval_s,
                    timeout_s: r.timeout_s,
                    enabled: r.enabled,
                    body: r.body.clone(),
                    severity: r.severity,
                })
                .collect(),
            expects: model
                .expects
                .iter()
                .map(|e| {
                    // Not found, it is left empty: applying the export reports it.
                    let device = name(&devices, Some(e.device_id)).unwrap_or_default();
                    expect_entry(e, device)
                })
                .collect(),
        }
    }
}

/// The `[[expect]]` that declares `e`, about the device named `device`: defaults left out,
/// durations as `parse_duration` reads them.
fn expect_entry(e: &ExpectPolicy, device: String) -> ExpectEntry {
    let (sender, originator) = match &e.from {
        From::Sender(address) => (Some(address.clone()), None),
        From::Originator(name) => (None, Some(name.clone())),
    };
    let (every, cron, timezone) = match &e.every {
        Every::Seconds(s) => (Some(format_duration(*s)), None, None),
        Every::Cron { expr, timezone } => {
            let timezone = (timezone != DEFAULT_TIMEZONE).then(|| timezone.clone());
            (None, Some(expr.clone()), timezone)
        }
    };
    ExpectEntry {
        name: e.name.clone(),
        device,
        sender,
        originator,
        matches: e.matches.clone(),
        match_logic: e.match_logic,
        match_in: e.match_in,
        every,
        cron,
        timezone,
        grace: (e.grace_s != 0).then(|| format_duration(e.grace_s)),
        severity: e.severity,
        failure: e.failure.clone(),
        success: e.success.clone(),
        default_outcome: e.default_outcome,
        start: e.start.clone(),
    }
}
