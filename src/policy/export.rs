//! `mailops policy export`: the database's policies in the policy file format.

use std::collections::HashMap;

use deadpool_postgres::Pool;

use super::file::{DeviceEntry, EventPolicyEntry, OriginatorEntry};
use super::{load, Model, PolicyFile};
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
    /// The file that declares `model`, entries in the model's order (devices and event
    /// policies by id, originators in the order they are tried), every device's id pinned,
    /// references by name, optional keys left out when unset.
    pub fn from_model(model: &Model) -> PolicyFile {
        let devices: HashMap<i64, &str> = model
            .devices
            .iter()
            .map(|d| (d.id, d.name.as_str()))
            .collect();
        let policies: HashMap<i64, &str> = model
            .event_policies
            .iter()
            .map(|p| (p.id, p.name.as_str()))
            .collect();
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
                    address: o.address.clone(),
                    regex_type: o.regex_type,
                    pattern_type: o.pattern_type,
                    pattern: o.pattern.clone(),
                    alignment: o.alignment,
                    default_device: name(&devices, o.default_device_id),
                })
                .collect(),
            event_policies: model
                .event_policies
                .iter()
                .map(|p| EventPolicyEntry {
                    name: p.name.clone(),
                    severity: p.severity,
                    message: p.message.clone(),
                    match_logic: p.match_logic,
                    first_match: p.first_match.clone(),
                    second_match: p.second_match.clone(),
                    clears: name(&policies, p.clears_id),
                    expire_after_s: p.expire_after_s,
                })
                .collect(),
        }
    }
}
