//! `mailops policy test`: what a message would do, in words, without writing anything.

use std::fmt::Write as _;

use super::evaluate::{evaluate, Alert, Decision, Outcome, Raised, Settings, Tried, Write};
use super::policies::Policies;
use crate::auth::Verification;
use crate::message::Message;

/// Describes the decision for `message` under `policies`: each originator policy tried and why,
/// the device chosen and the captures, each event policy whose first match string matched and
/// what became of it (scope, second match, suppression, key and severity), and the rows that
/// would be written. The envelope sender is taken from `Return-Path`, else `From`; `sender` is
/// what was verified about it. `more` says what else the mail does (expected mail), before
/// the rows.
pub fn report(
    policies: &Policies,
    message: &Message,
    sender: &Verification,
    settings: Settings,
    more: impl FnOnce(&Alert<'_>, &Decision<'_>) -> (String, Vec<String>),
) -> String {
    let return_path = message.header("Return-Path");
    let envelope_from = return_path
        .as_deref()
        .map(|p| p.trim().trim_start_matches('<').trim_end_matches('>'))
        .or(message.from_address.as_deref())
        .unwrap_or("");
    let alert = Alert::new(message, envelope_from).verified(sender);
    let decision = evaluate(policies, &alert, settings);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "from:    {}", or_none(alert.from));
    let _ = writeln!(out, "subject: {:?}", alert.subject);
    let _ = writeln!(out, "sender:  {sender}");
    let _ = writeln!(out, "body:    {} characters", alert.body.chars().count());
    let _ = writeln!(out, "\noriginator policies tried:");
    if decision.steps.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for step in &decision.steps {
        let _ = writeln!(out, "  {step}");
    }
    let _ = match decision.device {
        Some(d) => writeln!(out, "\ndevice: {} (id {})", d.name, d.id),
        None => writeln!(out, "\ndevice: none"),
    };
    if !decision.captures.is_empty() {
        let _ = writeln!(out, "captures: {}", captures(&decision.captures));
    }
    if decision.device.is_some() {
        let (used, unused): (Vec<&Tried>, Vec<&Tried>) = decision
            .tried
            .iter()
            .partition(|t| matches!(t.outcome, Outcome::Raise(_) | Outcome::Suppress));
        let _ = writeln!(out, "\nevent policies matched:");
        if used.is_empty() {
            let _ = writeln!(out, "  (none: the mail goes to the device log only)");
        }
        for t in used {
            let name = &t.policy.name;
            match &t.outcome {
                Outcome::Suppress => {
                    let _ = writeln!(
                        out,
                        "  {name}: suppress: no policy raises or clears anything for this mail"
                    );
                }
                Outcome::Raise(raised) => match decision.suppressed_by {
                    Some(by) => {
                        let _ = writeln!(out, "  {name}: suppressed by {by}");
                    }
                    None => {
                        let _ = writeln!(out, "  {name}");
                        for line in raised.iter().filter_map(|r| describe_raised(t, r)) {
                            let _ = writeln!(out, "    {line}");
                        }
                    }
                },
                _ => {}
            }
        }
        if !unused.is_empty() {
            let _ = writeln!(
                out,
                "\nevent policies whose first match string matched, not used:"
            );
        }
        for t in unused {
            let why = match t.outcome {
                Outcome::OutOfScope => out_of_scope(t),
                _ => "second match string not found".to_owned(),
            };
            let _ = writeln!(out, "  {}: {why}", t.policy.name);
        }
    }
    let (text, rows) = more(&alert, &decision);
    out += &text;
    let _ = writeln!(out, "\nrows that would be written:");
    let _ = writeln!(out, "  inbound_messages: the message, once per recipient");
    for write in &decision.writes {
        let _ = writeln!(out, "  {}", describe(policies, write));
    }
    for row in rows {
        let _ = writeln!(out, "  {row}");
    }
    out
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "(none)"
    } else {
        s
    }
}

/// `name = "value", …`
fn captures(captures: &super::template::Captures) -> String {
    captures
        .iter()
        .map(|(name, value)| format!("{name} = {value:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One event a policy raises: its key, its severity and how it was chosen, its captures;
/// nothing to say for a policy that uses none of them.
fn describe_raised(t: &Tried<'_>, r: &Raised) -> Option<String> {
    if t.policy.key.is_none() && r.severity_from.is_none() && r.captures.is_empty() {
        return None;
    }
    let mut line = String::new();
    if t.policy.key.is_some() {
        let _ = write!(line, "key {:?}, ", r.key);
    }
    let _ = write!(line, "severity {}", r.severity);
    if let Some(how) = &r.severity_from {
        let _ = match (&how.value, how.mapped) {
            (Some(value), true) => write!(line, " ({} = {value:?} in severity_map)", how.capture),
            (Some(value), false) => write!(
                line,
                " ({} = {value:?} is not in severity_map: the policy's severity)",
                how.capture
            ),
            (None, _) => write!(
                line,
                " ({} took part in no match: the policy's severity)",
                how.capture
            ),
        };
    }
    if !r.captures.is_empty() {
        let _ = write!(line, "; captures: {}", captures(&r.captures));
    }
    Some(line)
}

/// Why a policy's scope left the mail out.
fn out_of_scope(t: &Tried<'_>) -> String {
    let mut scope = Vec::new();
    if !t.policy.originators.is_empty() {
        scope.push(format!("originators: {}", t.policy.originators.join(", ")));
    }
    if !t.policy.devices.is_empty() {
        scope.push(format!("devices: {}", t.policy.devices.join(", ")));
    }
    format!("out of scope ({})", scope.join("; "))
}

/// One planned write, in words.
fn describe(policies: &Policies, write: &Write) -> String {
    let device = |id: i64| policies.device(id).map_or("?", |d| d.name).to_owned();
    let policy = |id: i64| policies.event_policy_name(id).unwrap_or("?").to_owned();
    let with_key = |key: Option<&str>| match key {
        Some(key) if !key.is_empty() => format!(" with key {key:?}"),
        _ => String::new(),
    };
    match write {
        Write::DeviceLog {
            device_id,
            message,
            unless_over,
        } => {
            let unless = match unless_over.as_slice() {
                [] => String::new(),
                ids => format!(
                    " (unless {} over its rate)",
                    ids.iter().map(|id| policy(*id)).collect::<Vec<_>>().join(" and ")
                ),
            };
            format!("device_logs: {} <- {:?}{unless}", device(*device_id), message)
        }
        Write::Take {
            device_id,
            event_policy_id,
            rate,
            ..
        } => format!(
            "alert_buckets: one of {} {rate} on {} (none left: a flood event, the alert only counted)",
            policy(*event_policy_id),
            device(*device_id)
        ),
        Write::SystemLog { code, message } => format!("system_log: {code} {message}"),
        Write::Raise {
            device_id,
            event_policy_id,
            key,
            severity,
            message,
            ..
        } => format!(
            "events: {} {severity} on {}{} (or count a repeat of the active one): {message:?}",
            policy(*event_policy_id),
            device(*device_id),
            with_key(Some(key)),
        ),
        Write::Clear {
            device_id,
            event_policy_id,
            key,
            reason,
        } => format!(
            "events: clear the active {} event{} on {} ({reason})",
            policy(*event_policy_id),
            with_key(key.as_deref()),
            device(*device_id)
        ),
        // Expected-mail reports are described where they are decided (`more`).
        Write::Report {
            expect_policy_id,
            outcome,
            ..
        } => format!("expect_reports: policy {expect_policy_id}: {outcome}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing more than the events decision.
    fn none(_: &Alert<'_>, _: &Decision<'_>) -> (String, Vec<String>) {
        Default::default()
    }
    use crate::events::model::{
        Alignment, Device, EventPolicy, MatchLogic, Originator, PatternType, RegexType,
        RequireAuth, Severity,
    };

    #[test]
    fn a_report_names_every_step_and_row() {
        let (policies, _) = Policies::new(
            vec![Device {
                id: 3,
                name: "ups1".into(),
                ip: None,
                organization: None,
            }],
            vec![
                Originator {
                    id: 1,
                    name: None,
                    address: "*@other.example".into(),
                    regex_type: RegexType::Subject,
                    pattern_type: PatternType::Classic,
                    pattern: "UPS".into(),
                    alignment: Alignment::Discard,
                    default_device_id: None,
                    require_auth: RequireAuth::None,
                },
                Originator {
                    id: 2,
                    name: None,
                    address: "ups@example.com".into(),
                    regex_type: RegexType::Subject,
                    pattern_type: PatternType::Advanced,
                    pattern: r"UPS (\S+)".into(),
                    alignment: Alignment::Discard,
                    default_device_id: None,
                    require_auth: RequireAuth::None,
                },
            ],
            vec![
                EventPolicy {
                    id: 7,
                    name: "On battery".into(),
                    severity: Some(Severity::Major),
                    message: "%D: %M".into(),
                    match_logic: MatchLogic::Text,
                    first_match: "battery".into(),
                    ..EventPolicy::default()
                },
                EventPolicy {
                    id: 8,
                    name: "Restored".into(),
                    severity: Some(Severity::Healthy),
                    message: "%S".into(),
                    match_logic: MatchLogic::Text,
                    first_match: "restored".into(),
                    clears_ids: vec![7],
                    ..EventPolicy::default()
                },
            ],
        );
        let message = Message::parse(
            b"From: ups@example.com\r\nSubject: UPS ups1 power\r\n\r\nPower restored\r\n",
        );
        assert_eq!(
            report(
                &policies,
                &message,
                &Verification::default(),
                Settings::default(),
                none
            ),
            "from:    ups@example.com
subject: \"UPS ups1 power\"
sender:  spf=not checked dkim=not checked dmarc=not checked, client not in mynetworks
body:    14 characters

originator policies tried:
  originator *@other.example: the From address does not match
  originator ups@example.com: identifier \"ups1\", device \"ups1\" (alignment discard)

device: ups1 (id 3)

event policies matched:
  Restored

rows that would be written:
  inbound_messages: the message, once per recipient
  device_logs: ups1 <- \"Power restored\"
  events: Restored healthy on ups1 (or count a repeat of the active one): \"UPS ups1 power\"
  events: clear the active On battery event on ups1 (cleared by Restored)
"
        );
        let stranger = Message::parse(b"Subject: hello\r\n\r\nhi\r\n");
        let text = report(
            &policies,
            &stranger,
            &Verification::default(),
            Settings::default(),
            none,
        );
        assert!(text.contains("device: none"), "{text}");
        assert!(
            text.contains("system_log: E701 Could not match device to email"),
            "{text}"
        );
    }
}
