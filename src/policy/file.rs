//! The policy file's TOML format, read and written with the same structs; reading reports
//! every problem at once (the checks of the values are in `check.rs`).

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::check::{check, Kind, Labels, Problems};
use crate::events::model::{Alignment, MatchLogic, PatternType, RegexType, Severity};
#[cfg(doc)]
use crate::route::address_key;

/// A policy file: its `[[device]]`, `[[originator]]` and `[[event_policy]]` arrays, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyFile {
    /// `[[device]]`
    #[serde(rename = "device", skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceEntry>,
    /// `[[originator]]`, in the order they are tried.
    #[serde(rename = "originator", skip_serializing_if = "Vec::is_empty")]
    pub originators: Vec<OriginatorEntry>,
    /// `[[event_policy]]`
    #[serde(rename = "event_policy", skip_serializing_if = "Vec::is_empty")]
    pub event_policies: Vec<EventPolicyEntry>,
}

/// One `[[device]]`, keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// Unique name (no two may differ only in case).
    pub name: String,
    /// Pinned device ID; assigned by the database when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Owner, for the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
}

/// One `[[originator]]`, keyed by `address` (compared with [`address_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginatorEntry {
    /// The From address, or `*@domain`.
    pub address: String,
    /// Where the pattern looks.
    pub regex_type: RegexType,
    /// Classic (literal) or advanced (regex).
    pub pattern_type: PatternType,
    /// The literal text or the regex.
    pub pattern: String,
    /// What happens when no device is found.
    pub alignment: Alignment,
    /// The default device's name; required unless `alignment` is `discard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_device: Option<String>,
}

/// One `[[event_policy]]`, keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPolicyEntry {
    /// Unique name.
    pub name: String,
    /// Severity of the events raised.
    pub severity: Severity,
    /// Event message template; `"%M"` when absent.
    #[serde(default = "default_message")]
    pub message: String,
    /// Text or regex.
    pub match_logic: MatchLogic,
    /// Must match.
    pub first_match: String,
    /// Must match too, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_match: Option<String>,
    /// Name of the event policy whose active event on the device a match clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clears: Option<String>,
    /// Seconds after which an active event not seen again is cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_after_s: Option<i32>,
}

/// The message template an event policy gets when it names none.
pub const DEFAULT_MESSAGE: &str = "%M";

fn default_message() -> String {
    DEFAULT_MESSAGE.to_owned()
}

/// Arrays the design reserves for later features: named as "not supported yet", not "unknown".
const NOT_YET: &[&str] = &[
    "user",
    "queue",
    "ticket_template",
    "ticket_policy",
    "roundtrip",
];

impl PolicyFile {
    /// Parses and checks policy file text; on failure, every problem found, each naming its entry.
    /// References to devices and event policies are resolved later, by `apply` (against the
    /// file and the database) or [`PolicyFile::to_model`] (against the file alone).
    pub fn parse(text: &str) -> Result<PolicyFile, Vec<String>> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| vec![e.to_string().trim_end().to_owned()])?;
        let mut problems = Problems::default();
        let mut labels = Labels::default();
        let devices =
            array::<DeviceEntry>(&mut table, Kind::Device, "name", &mut problems, &mut labels);
        let originators = array::<OriginatorEntry>(
            &mut table,
            Kind::Originator,
            "address",
            &mut problems,
            &mut labels,
        );
        let event_policies = array::<EventPolicyEntry>(
            &mut table,
            Kind::EventPolicy,
            "name",
            &mut problems,
            &mut labels,
        );
        for (key, value) in &table {
            if NOT_YET.contains(&key.as_str()) {
                problems.file(format!(
                    "[[{key}]]: not supported yet by this version of mailops"
                ));
            } else if value.is_array() {
                problems.file(format!("[[{key}]]: unknown array (expected [[device]], [[originator]] or [[event_policy]])"));
            } else {
                problems.file(format!("{key}: unknown key"));
            }
        }
        check(&devices, &originators, &event_policies, &mut problems);
        if !problems.is_empty() {
            return Err(problems.finish(&labels));
        }
        Ok(PolicyFile {
            devices: only(devices),
            originators: only(originators),
            event_policies: only(event_policies),
        })
    }

    /// Every problem [`PolicyFile::parse`] would find in this file's values (for files built in
    /// code); empty when it is valid.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Problems::default();
        check(
            &indexed(&self.devices),
            &indexed(&self.originators),
            &indexed(&self.event_policies),
            &mut problems,
        );
        problems.finish(&Labels::of(self))
    }

    /// The file as TOML, in the format [`PolicyFile::parse`] reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("policy entries hold only strings, integers and addresses")
    }
}

/// Entries without their index.
fn only<T>(entries: Vec<(usize, T)>) -> Vec<T> {
    entries.into_iter().map(|(_, e)| e).collect()
}

/// Entries tagged with their index.
fn indexed<T: Clone>(entries: &[T]) -> Vec<(usize, T)> {
    entries.iter().cloned().enumerate().collect()
}

/// Takes the array `kind` out of `table` and deserializes each entry on its own, so that one
/// bad entry does not hide the problems of the others.
fn array<T: Entry>(
    table: &mut toml::Table,
    kind: Kind,
    key_field: &str,
    problems: &mut Problems,
    labels: &mut Labels,
) -> Vec<(usize, T)> {
    let values = match table.remove(kind.key()) {
        None => return Vec::new(),
        Some(toml::Value::Array(values)) => values,
        Some(_) => {
            let name = kind.key();
            problems.file(format!(
                "{name}: must be an array of tables, written [[{name}]]"
            ));
            return Vec::new();
        }
    };
    let keys: Vec<Option<&str>> = values
        .iter()
        .map(|v| v.get(key_field).and_then(toml::Value::as_str))
        .collect();
    labels.add(kind, &keys);
    values
        .iter()
        .enumerate()
        .filter_map(|(index, value)| Some((index, entry(value, kind, index, problems)?)))
        .collect()
}

/// An entry type: for each required key, a stand-in value that deserializes and raises no
/// problem in the checks of other keys, so the rest of a broken entry can still be checked.
pub(crate) trait Entry: DeserializeOwned {
    /// (key, stand-in) for every required key.
    const STAND_INS: &'static [(&'static str, &'static str)];
}

impl Entry for DeviceEntry {
    const STAND_INS: &'static [(&'static str, &'static str)] = &[("name", "")];
}

impl Entry for OriginatorEntry {
    const STAND_INS: &'static [(&'static str, &'static str)] = &[
        ("address", ""),
        ("regex_type", "subject"),
        ("pattern_type", "classic"),
        ("pattern", ""),
        ("alignment", "discard"),
    ];
}

impl Entry for EventPolicyEntry {
    const STAND_INS: &'static [(&'static str, &'static str)] = &[
        ("name", ""),
        ("severity", "notice"),
        ("match_logic", "text"),
        ("first_match", ""),
    ];
}

/// Deserializes one entry, reporting every unknown key, every missing key and every value of
/// the wrong type or spelling: each bad or missing key is reported, replaced by its stand-in
/// (or removed when optional), and the entry deserialized again; further problems with that
/// key are then not reported.
fn entry<T: Entry>(
    value: &toml::Value,
    kind: Kind,
    index: usize,
    problems: &mut Problems,
) -> Option<T> {
    let Some(table) = value.as_table() else {
        problems.entry(kind, index, "must be a table");
        return None;
    };
    let mut table = table.clone();
    let mut replaced: Vec<String> = Vec::new();
    loop {
        let mut unknown = Vec::new();
        let result = serde_ignored::deserialize(toml::Value::Table(table.clone()), |path| {
            unknown.push(path.to_string())
        });
        let error = match result {
            Ok(value) => {
                for key in unknown {
                    problems.entry(kind, index, format!("{key}: unknown key"));
                }
                return Some(value);
            }
            Err(e) => e.to_string(),
        };
        let (message, key) = split_error(&error);
        let field = match (key, missing_field(message)) {
            (Some(key), _) if table.contains_key(key) && !replaced.iter().any(|r| r == key) => {
                problems.entry(kind, index, format!("{key}: {message}"));
                key
            }
            (None, Some(field)) if !replaced.iter().any(|r| r == field) => {
                problems.entry(kind, index, format!("{field}: missing (required)"));
                field
            }
            _ => {
                // Not a key's problem (or a stand-in that failed): report it as it is.
                for key in unknown {
                    problems.entry(kind, index, format!("{key}: unknown key"));
                }
                problems.entry(kind, index, message);
                return None;
            }
        };
        problems.skip(kind, index, field);
        match T::STAND_INS.iter().find(|(k, _)| *k == field) {
            Some((_, stand_in)) => {
                table.insert(field.to_owned(), toml::Value::String((*stand_in).into()))
            }
            None => table.remove(field),
        };
        replaced.push(field.to_owned());
    }
}

/// Splits a `toml` value error into its message and the key it names (`"…\nin `key`\n"`).
fn split_error(error: &str) -> (&str, Option<&str>) {
    let error = error.trim_end();
    match error.rsplit_once("\nin `") {
        Some((message, key)) => (message.trim(), key.strip_suffix('`')),
        None => (error, None),
    }
}

/// The field serde's "missing field `name`" names.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
