//! The policy file's TOML format, read and written with the same structs; reading reports
//! every problem at once (the checks of the values are in `check.rs`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::check::{check, Labels, Problems};
use super::expect_checks::check_expects;
use super::roundtrip_checks::check_roundtrips;
use super::ticket_checks::{check_destinations, check_tickets};
use crate::config::Inbound;
use crate::events::model::{
    Action, Alignment, MatchIn, MatchLogic, PatternType, Rate, RegexType, RequireAuth, Severity,
};
use crate::expect::model::Outcome;
#[cfg(doc)]
use crate::route::address_key;
use crate::tickets::model::{Access, Status};

/// A policy file: its arrays (`[[device]]`, `[[originator]]`, `[[event_policy]]`, `[[user]]`,
/// `[[queue]]`, `[[ticket_template]]`, `[[ticket_policy]]`, `[[roundtrip]]`, `[[expect]]`), each
/// in file order.
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
    /// `[[user]]`
    #[serde(rename = "user", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserEntry>,
    /// `[[queue]]`
    #[serde(rename = "queue", skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueEntry>,
    /// `[[ticket_template]]`
    #[serde(rename = "ticket_template", skip_serializing_if = "Vec::is_empty")]
    pub ticket_templates: Vec<TicketTemplateEntry>,
    /// `[[ticket_policy]]`
    #[serde(rename = "ticket_policy", skip_serializing_if = "Vec::is_empty")]
    pub ticket_policies: Vec<TicketPolicyEntry>,
    /// `[[roundtrip]]`
    #[serde(rename = "roundtrip", skip_serializing_if = "Vec::is_empty")]
    pub roundtrips: Vec<RoundtripEntry>,
    /// `[[expect]]`
    #[serde(rename = "expect", skip_serializing_if = "Vec::is_empty")]
    pub expects: Vec<ExpectEntry>,
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

/// One `[[originator]]`, keyed by `name`, or by `address` (compared with [`address_key`])
/// when it has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginatorEntry {
    /// Unique name; needed when several originators share an address, and to scope event
    /// policies by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The From address, or a pattern: `*@domain`, `local@*`, `*@*`.
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
    /// Which verification its mail needs to count; `none` (all mail counts) when absent.
    #[serde(default, skip_serializing_if = "is_none")]
    pub require_auth: RequireAuth,
}

fn is_none(require_auth: &RequireAuth) -> bool {
    *require_auth == RequireAuth::None
}

/// One `[[event_policy]]`, keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EventPolicyEntry {
    /// Unique name.
    pub name: String,
    /// `raise` (when absent) or `suppress`.
    #[serde(default, skip_serializing_if = "is_raise")]
    pub action: Action,
    /// Severity of the events raised (the fallback with `severity_from`); required unless
    /// `action` is `suppress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// The capture whose value picks the severity through `severity_map`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity_from: Option<String>,
    /// Captured value (compared ignoring case) to severity.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "severity_map"
    )]
    pub severity_map: BTreeMap<String, Severity>,
    /// The event key's template: one active event per (device, policy, key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Per capture, values (compared ignoring case) replaced before they go into the key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_map: BTreeMap<String, BTreeMap<String, String>>,
    /// Event message template; `"%M"` when absent.
    #[serde(default = "default_message")]
    pub message: String,
    /// What the match strings are tried on; the config's `[inbound] alert_message` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_in: Option<MatchIn>,
    /// Text or regex.
    pub match_logic: MatchLogic,
    /// Must match.
    pub first_match: String,
    /// Must match too, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_match: Option<String>,
    /// Names of the event policies whose active events on the device a match clears (a name,
    /// or a list of names).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "one_or_many::serialize",
        deserialize_with = "one_or_many::deserialize"
    )]
    pub clears: Vec<String>,
    /// Scope: only mail aligned through these originators (names or addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub originators: Vec<String>,
    /// Scope: only mail about these devices (names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Seconds after which an active event not seen again is cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_after_s: Option<i32>,
    /// Seconds after which an active healthy event not seen again is cleared (instead of
    /// `expire_after_s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_healthy_after_s: Option<i32>,
    /// At most this many alerts per device are logged (`10/min`); past it, repeats count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

/// `severity_map`, each bad severity named with its value.
fn severity_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Severity>, D::Error> {
    BTreeMap::<String, String>::deserialize(d)?
        .into_iter()
        .map(|(value, severity)| match severity.parse() {
            Ok(severity) => Ok((value, severity)),
            Err(why) => Err(serde::de::Error::custom(format!("{value}: {why}"))),
        })
        .collect()
}

fn is_raise(action: &Action) -> bool {
    *action == Action::Raise
}

/// `clears`: a name, or a list of names; written as a name when there is one.
mod one_or_many {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(names: &[String], s: S) -> Result<S::Ok, S::Error> {
        match names {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an event policy name or a list of names")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Vec<String>, E> {
                Ok(vec![name.to_owned()])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element()? {
                    names.push(name);
                }
                Ok(names)
            }
        }
        d.deserialize_any(Names)
    }
}

/// The message template an event policy gets when it names none.
pub const DEFAULT_MESSAGE: &str = "%M";

fn default_message() -> String {
    DEFAULT_MESSAGE.to_owned()
}

/// One `[[user]]`, keyed by `email` (compared with [`address_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// Their address.
    pub email: String,
    /// Their display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One `[[queue]]`, keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Unique name.
    pub name: String,
    /// The `email` of each member, a user in the file or the database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// One `[[ticket_template]]`, keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketTemplateEntry {
    /// Unique name.
    pub name: String,
    /// The name of the queue its tickets go to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// A new ticket's severity.
    pub severity: Severity,
    /// A new ticket's status; `open` when absent.
    #[serde(default = "default_status")]
    pub status: Status,
    /// A new ticket's description, `%` replaced by the subject; `"%"` when absent.
    #[serde(default = "default_description")]
    pub description: String,
}

/// One `[[ticket_policy]]`, keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketPolicyEntry {
    /// Unique name.
    pub name: String,
    /// The address mail opens tickets at (unique, compared with [`address_key`]).
    pub destination: String,
    /// The address notices come from.
    pub reply_address: String,
    /// The name of the ticket template new tickets start as.
    pub template: String,
    /// Who may open tickets.
    pub access: Access,
    /// Notice: a ticket was opened.
    #[serde(default = "default_msg_created")]
    pub msg_created: String,
    /// Notice: a note was added.
    #[serde(default = "default_msg_updated")]
    pub msg_updated: String,
    /// Notice: the ticket could not be opened.
    #[serde(default = "default_msg_failed")]
    pub msg_failed: String,
    /// Notice: the sender is not a user (access `registered`).
    #[serde(default = "default_msg_not_registered")]
    pub msg_not_registered: String,
    /// Notice: the sender is not in the template's queue (access `queue`).
    #[serde(default = "default_msg_not_in_queue")]
    pub msg_not_in_queue: String,
}

/// The description a ticket template gets when it names none: the subject.
pub const DEFAULT_DESCRIPTION: &str = "%";

/// The five notices a ticket policy gets for the `msg_*` keys it leaves out, by key.
pub const DEFAULT_NOTICES: [(&str, &str); 5] = [
    ("msg_created", "Ticket %t created: %W"),
    ("msg_updated", "Ticket %t updated: %W"),
    ("msg_failed", "Your ticket could not be created."),
    (
        "msg_not_registered",
        "Only registered users can open tickets here.",
    ),
    (
        "msg_not_in_queue",
        "You are not allowed to open tickets in this queue.",
    ),
];

fn default_status() -> Status {
    Status::Open
}

fn default_description() -> String {
    DEFAULT_DESCRIPTION.to_owned()
}

fn default_msg_created() -> String {
    DEFAULT_NOTICES[0].1.to_owned()
}

fn default_msg_updated() -> String {
    DEFAULT_NOTICES[1].1.to_owned()
}

fn default_msg_failed() -> String {
    DEFAULT_NOTICES[2].1.to_owned()
}

fn default_msg_not_registered() -> String {
    DEFAULT_NOTICES[3].1.to_owned()
}

fn default_msg_not_in_queue() -> String {
    DEFAULT_NOTICES[4].1.to_owned()
}

impl TicketPolicyEntry {
    /// The five notices with their keys, in [`DEFAULT_NOTICES`] order.
    pub(crate) fn notices(&self) -> [(&'static str, &str); 5] {
        [
            (DEFAULT_NOTICES[0].0, &self.msg_created),
            (DEFAULT_NOTICES[1].0, &self.msg_updated),
            (DEFAULT_NOTICES[2].0, &self.msg_failed),
            (DEFAULT_NOTICES[3].0, &self.msg_not_registered),
            (DEFAULT_NOTICES[4].0, &self.msg_not_in_queue),
        ]
    }
}

/// One `[[roundtrip]]`, keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundtripEntry {
    /// Unique name.
    pub name: String,
    /// The name of the device its timings and timeout events belong to.
    pub device: String,
    /// The external mailbox the probe goes to, which forwards it back to `notify@`.
    pub send_to: String,
    /// The probe's From and envelope sender (`roundtrip_policies.from_address`).
    pub from: String,
    /// Seconds between probes; [`DEFAULT_INTERVAL_S`] when absent.
    #[serde(default = "default_interval_s")]
    pub interval_s: i32,
    /// Seconds a probe may take to come back; [`DEFAULT_TIMEOUT_S`] when absent.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: i32,
    /// Whether probes are sent; `true` when absent.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// The probe's text (the token is added to it); [`DEFAULT_BODY`] when absent.
    #[serde(default = "default_body")]
    pub body: String,
    /// The severity of the timeout event; `major` when absent.
    #[serde(default = "default_severity")]
    pub severity: Severity,
}

/// The seconds between probes a round trip gets when it names none.
pub const DEFAULT_INTERVAL_S: i32 = 300;

/// The seconds a probe may take that a round trip gets when it names none.
pub const DEFAULT_TIMEOUT_S: i32 = 600;

/// The probe text a round trip gets when it names none: what the remote side should do.
pub const DEFAULT_BODY: &str = "This is a mailops round-trip probe. Please forward it, unchanged, \
     to the notify@ address of the mailops server that sent it.";

fn default_interval_s() -> i32 {
    DEFAULT_INTERVAL_S
}

fn default_timeout_s() -> i32 {
    DEFAULT_TIMEOUT_S
}

fn default_enabled() -> bool {
    true
}

fn default_body() -> String {
    DEFAULT_BODY.to_owned()
}

fn default_severity() -> Severity {
    Severity::Major
}

/// One `[[expect]]`, keyed by `name`: a report expected on a schedule from a sender (or through
/// an originator) about a device. Durations are written as `parse_duration` reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectEntry {
    /// Unique name.
    pub name: String,
    /// The name of the device the reports are about, where a miss or a failure raises its event.
    pub device: String,
    /// The reports' From: an address, `*@domain`, `local@*` or `*@*` (stored lower case); or
    /// `originator`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// The name of the `[[originator]]` whose aligned mail the reports are; or `sender`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub originator: Option<String>,
    /// What a report's text must match; any mail from the sender when absent.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// Text (when absent) or regex, for `match`, `failure`, `success` and `start`.
    #[serde(default, skip_serializing_if = "is_text")]
    pub match_logic: MatchLogic,
    /// What the match strings are tried on; `subject_and_body` when absent.
    #[serde(
        default = "default_expect_match_in",
        skip_serializing_if = "is_subject_and_body"
    )]
    pub match_in: MatchIn,
    /// The period: a duration (`24h`); or `cron`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// A cron expression (minute hour day-of-month month day-of-week); or `every`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The cron expression's time zone (an IANA name); [`DEFAULT_TIMEZONE`] when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// How late a report may be (a duration); none when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
    /// The severity of the event a miss or a failure raises.
    pub severity: Severity,
    /// A report matching any of these is a failure (tried first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure: Vec<String>,
    /// A report matching any of these (and no failure) is a success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success: Vec<String>,
    /// What a report matching neither list is; `success` when absent.
    #[serde(
        rename = "default",
        default = "default_outcome",
        skip_serializing_if = "is_success"
    )]
    pub default_outcome: Outcome,
    /// What a start mail (from the same sender) matches: the report after it records the job's
    /// duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

/// The time zone of an expected-mail policy's cron expression when it names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

fn is_text(logic: &MatchLogic) -> bool {
    *logic == MatchLogic::Text
}

fn default_expect_match_in() -> MatchIn {
    MatchIn::SubjectAndBody
}

fn is_subject_and_body(match_in: &MatchIn) -> bool {
    *match_in == MatchIn::SubjectAndBody
}

fn default_outcome() -> Outcome {
    Outcome::Success
}

fn is_success(outcome: &Outcome) -> bool {
    *outcome == Outcome::Success
}

impl PolicyFile {
    /// Every problem [`PolicyFile::parse`] would find in this file's values (for files built in
    /// code); empty when it is valid.
    pub fn check(&self) -> Vec<String> {
        self.problems(None)
    }

    /// Every problem [`PolicyFile::check`] finds, and the ticket policy destinations that a
    /// mailops run with `inbound` cannot receive mail for: outside its authorized domains, or
    /// one of the addresses the config itself routes (`notify@…`).
    pub fn check_with_config(&self, inbound: &Inbound) -> Vec<String> {
        self.problems(Some(inbound))
    }

    fn problems(&self, inbound: Option<&Inbound>) -> Vec<String> {
        let mut problems = Problems::default();
        let entries = Entries::of(self);
        entries.check(&mut problems);
        if let Some(inbound) = inbound {
            check_destinations(&entries.ticket_policies, inbound, &mut problems);
        }
        problems.finish(&mut Labels::of(self))
    }

    /// The file as TOML, in the format [`PolicyFile::parse`] reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self)
            .expect("policy entries hold only strings, integers, booleans and addresses")
    }
}

/// A file's entries, each tagged with its index among the entries of its kind (entries that
/// could not be read are missing, so the index is not the position in the vector).
#[derive(Debug, Default)]
pub(crate) struct Entries {
    pub devices: Vec<(usize, DeviceEntry)>,
    pub originators: Vec<(usize, OriginatorEntry)>,
    pub event_policies: Vec<(usize, EventPolicyEntry)>,
    pub users: Vec<(usize, UserEntry)>,
    pub queues: Vec<(usize, QueueEntry)>,
    pub ticket_templates: Vec<(usize, TicketTemplateEntry)>,
    pub ticket_policies: Vec<(usize, TicketPolicyEntry)>,
    pub roundtrips: Vec<(usize, RoundtripEntry)>,
    pub expects: Vec<(usize, ExpectEntry)>,
}

impl Entries {
    fn of(file: &PolicyFile) -> Entries {
        fn indexed<T: Clone>(entries: &[T]) -> Vec<(usize, T)> {
            entries.iter().cloned().enumerate().collect()
        }
        Entries {
            devices: indexed(&file.devices),
            originators: indexed(&file.originators),
            event_policies: indexed(&file.event_policies),
            users: indexed(&file.users),
            queues: indexed(&file.queues),
            ticket_templates: indexed(&file.ticket_templates),
            ticket_policies: indexed(&file.ticket_policies),
            roundtrips: indexed(&file.roundtrips),
            expects: indexed(&file.expects),
        }
    }

    pub(super) fn into_file(self) -> PolicyFile {
        fn only<T>(entries: Vec<(usize, T)>) -> Vec<T> {
            entries.into_iter().map(|(_, e)| e).collect()
        }
        PolicyFile {
            devices: only(self.devices),
            originators: only(self.originators),
            event_policies: only(self.event_policies),
            users: only(self.users),
            queues: only(self.queues),
            ticket_templates: only(self.ticket_templates),
            ticket_policies: only(self.ticket_policies),
            roundtrips: only(self.roundtrips),
            expects: only(self.expects),
        }
    }

    /// The checks of the values that need nothing but the file.
    pub(super) fn check(&self, problems: &mut Problems) {
        check(self, problems);
        check_tickets(self, problems);
        check_roundtrips(self, problems);
        check_expects(self, problems);
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
pub(crate) mod tests;
