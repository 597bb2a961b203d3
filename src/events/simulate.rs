//! `mailops policy test`: what a message would do, in words, without writing anything.

use std::fmt::Write as _;

use super::evaluate::{evaluate, Alert, Settings, Write};
use super::policies::Policies;
use crate::message::Message;

/// Describes the decision for `message` under `policies`: each originator policy tried and why,
/// the device chosen, each event policy that matched, and the rows that would be written.
pub fn report(policies: &Policies, message: &Message, settings: Settings) -> String {
    let alert = Alert {
        from: message.from_address.as_deref().unwrap_or(""),
        subject: message.subject.as_deref().unwrap_or(""),
        body: &message.body,
    };
    let decision = evaluate(policies, &alert, settings);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "from:    {}", or_none(alert.from));
    let _ = writeln!(out, "subject: {:?}", alert.subject);
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
    if decision.device.is_some() {
        let _ = writeln!(out, "\nevent policies matched:");
        if decision.matched.is_empty() {
            let _ = writeln!(out, "  (none: the mail goes to the device log only)");
        }
        for name in &decision.matched {
            let _ = writeln!(out, "  {name}");
        }
    }
    let _ = writeln!(out, "\nrows that would be written:");
    let _ = writeln!(out, "  inbound_messages: the message, once per recipient");
    for write in &decision.writes {
        let _ = writeln!(out, "  {}", describe(policies, write));
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

/// One planned write, in words.
fn describe(policies: &Policies, write: &Write) -> String {
    let device = |id: i64| {
        policies
            .device(id)
            .map_or("?", |d| d.name.as_str())
            .to_owned()
    };
    let policy = |id: i64| policies.event_policy_name(id).unwrap_or("?").to_owned();
    match write {
        Write::DeviceLog { device_id, message } => {
            format!("device_logs: {} <- {:?}", device(*device_id), message)
        }
        Write::SystemLog { code, message } => format!("system_log: {code} {message}"),
        Write::Raise {
            device_id,
            event_policy_id,
            severity,
            message,
            ..
        } => format!(
            "events: {} {severity} on {} (or count a repeat of the active one): {message:?}",
            policy(*event_policy_id),
            device(*device_id)
        ),
        Write::Clear {
            device_id,
            event_policy_id,
            reason,
        } => format!(
            "events: clear the active {} event on {} ({reason})",
            policy(*event_policy_id),
            device(*device_id)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{
        Alignment, Device, EventPolicy, MatchLogic, Originator, PatternType, RegexType, Severity,
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
                    address: "*@other.example".into(),
                    regex_type: RegexType::Subject,
                    pattern_type: PatternType::Classic,
                    pattern: "UPS".into(),
                    alignment: Alignment::Discard,
                    default_device_id: None,
                },
                Originator {
                    id: 2,
                    address: "ups@example.com".into(),
                    regex_type: RegexType::Subject,
                    pattern_type: PatternType::Advanced,
                    pattern: r"UPS (\S+)".into(),
                    alignment: Alignment::Discard,
                    default_device_id: None,
                },
            ],
            vec![
                EventPolicy {
                    id: 7,
                    name: "On battery".into(),
                    severity: Severity::Major,
                    message: "%D: %M".into(),
                    match_logic: MatchLogic::Text,
                    first_match: "battery".into(),
                    second_match: None,
                    clears_id: None,
                    expire_after_s: None,
                },
                EventPolicy {
                    id: 8,
                    name: "Restored".into(),
                    severity: Severity::Healthy,
                    message: "%S".into(),
                    match_logic: MatchLogic::Text,
                    first_match: "restored".into(),
                    second_match: None,
                    clears_id: Some(7),
                    expire_after_s: None,
                },
            ],
        );
        let message = Message::parse(
            b"From: ups@example.com\r\nSubject: UPS ups1 power\r\n\r\nPower restored\r\n",
        );
        assert_eq!(
            report(&policies, &message, Settings::default()),
            "from:    ups@example.com
subject: \"UPS ups1 power\"
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
        let text = report(&policies, &stranger, Settings::default());
        assert!(text.contains("device: none"), "{text}");
        assert!(
            text.contains("system_log: E701 Could not match device to email"),
            "{text}"
        );
    }
}
