//! Unit tests of the events decision, by topic: device alignment (`alignment`), SL1's event
//! policies (`event_policies`), keys and severities from the mail (`keys`), scoped and suppress
//! policies (`scopes`). Here: the builders they share.

// Loaded with #[path] from evaluate.rs, so its modules are named by path too.
#[path = "evaluate_tests/alignment.rs"]
mod alignment;
#[path = "evaluate_tests/event_policies.rs"]
mod event_policies;
#[path = "evaluate_tests/keys.rs"]
mod keys;
#[path = "evaluate_tests/scopes.rs"]
mod scopes;

use super::*;
use crate::events::model::{
    Action, Alignment, Device, EventPolicy, MatchIn, MatchLogic, Originator, PatternType,
    RegexType, RequireAuth, Severity,
};

fn device(id: i64, name: &str, ip: Option<&str>) -> Device {
    Device {
        id,
        name: name.into(),
        ip: ip.map(|i| i.parse().expect("ip")),
        organization: None,
    }
}

fn originator(
    address: &str,
    regex_type: RegexType,
    pattern_type: PatternType,
    pattern: &str,
    alignment: Alignment,
    default_device_id: Option<i64>,
) -> Originator {
    Originator {
        id: 0,
        name: None,
        address: address.into(),
        regex_type,
        pattern_type,
        pattern: pattern.into(),
        alignment,
        default_device_id,
        require_auth: RequireAuth::None,
    }
}

fn event_policy(
    id: i64,
    name: &str,
    logic: MatchLogic,
    first: &str,
    second: Option<&str>,
) -> EventPolicy {
    EventPolicy {
        id,
        name: name.into(),
        severity: Some(Severity::Major),
        message: "%M".into(),
        match_logic: logic,
        first_match: first.into(),
        second_match: second.map(Into::into),
        ..EventPolicy::default()
    }
}

fn devices() -> Vec<Device> {
    vec![
        device(1, "nas1.example.com", Some("10.6.1.20")),
        device(2, "backup-virtual", None),
        device(5, "nas1.lab.example.com", None),
        device(4242, "esx7.example.com", None),
    ]
}

fn alert<'a>(from: &'a str, subject: &'a str, body: &'a str) -> Alert<'a> {
    Alert {
        from,
        envelope_from: from,
        subject,
        body,
        ..Alert::default()
    }
}

/// The names of the policies that raise, in order.
fn names<'a>(d: &Decision<'a>) -> Vec<&'a str> {
    d.tried
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Raise(_)))
        .map(|t| t.policy.name.as_str())
        .collect()
}

/// A `severity_map` of these (value, severity) pairs.
fn severity_map(pairs: &[(&str, Severity)]) -> std::collections::BTreeMap<String, Severity> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// A named originator with an advanced pattern that discards.
fn named(id: i64, name: &str, address: &str, regex_type: RegexType, pattern: &str) -> Originator {
    Originator {
        id,
        name: Some(name.into()),
        ..originator(
            address,
            regex_type,
            PatternType::Advanced,
            pattern,
            Alignment::Discard,
            None,
        )
    }
}

/// A Nagios-style originator (the host from the body) and policies over its mail.
fn nagios(event_policies: Vec<EventPolicy>) -> Policies {
    let o = named(
        7,
        "nagios",
        "nagios@*",
        RegexType::Body,
        r"(?m)^Host: (?P<device>\S+)",
    );
    let (p, problems) = Policies::new(devices(), vec![o], event_policies);
    assert!(problems.is_empty(), "{problems:?}");
    p
}

/// (policy id, key, severity, message, health_changed reason) of each raise.
fn raises(d: &Decision<'_>) -> Vec<(i64, String, Severity, String, Option<String>)> {
    d.writes
        .iter()
        .filter_map(|w| match w {
            Write::Raise {
                event_policy_id,
                key,
                severity,
                message,
                close,
                ..
            } => Some((
                *event_policy_id,
                key.clone(),
                *severity,
                message.clone(),
                close.as_ref().and_then(|c| c.health_changed.clone()),
            )),
            _ => None,
        })
        .collect()
}
