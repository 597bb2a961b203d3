//! Unit tests of the events decision: alignment, strip FQDN, patterns, match strings,
//! substitutions, clearing, E701.

use super::*;
use crate::events::model::{
    Alignment, Device, EventPolicy, MatchLogic, Originator, PatternType, RegexType, Severity,
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
        address: address.into(),
        regex_type,
        pattern_type,
        pattern: pattern.into(),
        alignment,
        default_device_id,
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
        severity: Severity::Major,
        message: "%M".into(),
        match_logic: logic,
        first_match: first.into(),
        second_match: second.map(Into::into),
        clears_id: None,
        expire_after_s: None,
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
        subject,
        body,
    }
}

fn device_of(p: &Policies, a: &Alert<'_>, strip_fqdn: bool) -> Option<String> {
    let settings = Settings {
        strip_fqdn,
        ..Settings::default()
    };
    evaluate(p, a, settings).device.map(|d| d.name.clone())
}

#[test]
fn alignment_by_device_found_or_not() {
    use Alignment::*;
    let found = alert(
        "veeam@example.com",
        "Backup job for nas1.example.com: Failed",
        "",
    );
    let unknown = alert(
        "veeam@example.com",
        "Backup job for nas9.example.com: Failed",
        "",
    );
    let no_pattern = alert("veeam@example.com", "Weekly summary", "");
    for (alignment, a, want) in [
        (Discard, &found, Some("nas1.example.com")),
        (Discard, &unknown, None),
        (Discard, &no_pattern, None),
        (DefaultIfUnmatched, &found, Some("nas1.example.com")),
        (DefaultIfUnmatched, &unknown, Some("backup-virtual")),
        (DefaultIfUnmatched, &no_pattern, None),
        (Override, &found, Some("backup-virtual")),
        (Override, &unknown, Some("backup-virtual")),
        (Override, &no_pattern, Some("backup-virtual")),
    ] {
        let default = (alignment != Discard).then_some(2);
        let o = originator(
            "veeam@example.com",
            RegexType::Subject,
            PatternType::Classic,
            "Backup job for",
            alignment,
            default,
        );
        let (p, _) = Policies::new(devices(), vec![o], vec![]);
        assert_eq!(
            device_of(&p, a, false).as_deref(),
            want,
            "{alignment} with subject {:?}",
            a.subject
        );
    }
}

#[test]
fn the_first_policy_that_yields_a_device_wins_and_the_others_are_traced() {
    let policies = vec![
        originator(
            "other@example.com",
            RegexType::Subject,
            PatternType::Classic,
            "Alert for",
            Alignment::Discard,
            None,
        ),
        originator(
            "*@example.com",
            RegexType::Body,
            PatternType::Classic,
            "Host:",
            Alignment::Discard,
            None,
        ),
        originator(
            "*@example.com",
            RegexType::Subject,
            PatternType::Classic,
            "Alert for",
            Alignment::Discard,
            None,
        ),
        originator(
            "*@example.com",
            RegexType::Subject,
            PatternType::Advanced,
            r"on (\S+)",
            Alignment::Discard,
            None,
        ),
        originator(
            "*@example.com",
            RegexType::Subject,
            PatternType::Classic,
            "Alert",
            Alignment::Discard,
            None,
        ),
    ];
    let (p, _) = Policies::new(devices(), policies, vec![]);
    let a = alert(
        "Zabbix@Example.com",
        "Alert for nas9 on nas1.example.com",
        "no host line",
    );
    let d = evaluate(&p, &a, Settings::default());
    assert_eq!(d.device.map(|d| d.id), Some(1));
    let steps: Vec<String> = d.steps.iter().map(ToString::to_string).collect();
    assert_eq!(
        steps,
        [
            "originator other@example.com: the From address does not match",
            "originator *@example.com: pattern not found in the body",
            "originator *@example.com: identifier \"nas9\" names no device (alignment discard)",
            "originator *@example.com: identifier \"nas1.example.com\", device \"nas1.example.com\" (alignment discard)",
        ]
    );
}

#[test]
fn classic_and_advanced_patterns_extract_the_identifier() {
    let classic = |text: &str| identifier(&Extractor::Classic("Alert for".into()), text);
    assert_eq!(
        classic("Alert for sc-xyz-33-12 - Settings changed").as_deref(),
        Some("sc-xyz-33-12")
    );
    assert_eq!(
        classic("Alert for nas1.example.com: disk").as_deref(),
        Some("nas1.example.com")
    );
    assert_eq!(classic("Alert for nas1,;:.").as_deref(), Some("nas1"));
    assert_eq!(
        classic("Alert for 10.6.1.20.").as_deref(),
        Some("10.6.1.20")
    );
    assert_eq!(classic("Alert for"), None);
    assert_eq!(classic("Alert for  two-spaces"), None);
    assert_eq!(classic("Alert fornothing"), None);
    assert_eq!(
        classic("alert for nas1"),
        None,
        "classic patterns are case-sensitive"
    );

    let advanced = |re: &str, text: &str| {
        identifier(
            &Extractor::Advanced(crate::events::model::compile_regex(re).expect("re")),
            text,
        )
    };
    assert_eq!(
        advanced(
            r"Alert for (.*) -",
            "Alert for sc-xyz-33-12 - Settings changed"
        )
        .as_deref(),
        Some("sc-xyz-33-12")
    );
    assert_eq!(
        advanced(r"host=\S+", "x host=nas1 y").as_deref(),
        Some("host=nas1")
    );
    assert_eq!(advanced(r"host=(\S+)", "nothing here"), None);
    assert_eq!(advanced(r"host=(\S*)", "host= empty"), None);
}

#[test]
fn strip_fqdn_picks_the_highest_id_among_short_names() {
    let o = originator(
        "*@example.com",
        RegexType::Subject,
        PatternType::Classic,
        "Alert for",
        Alignment::Discard,
        None,
    );
    let (p, _) = Policies::new(devices(), vec![o], vec![]);
    let a = alert(
        "nagios@example.com",
        "Alert for nas1.corp.example.net down",
        "",
    );
    assert_eq!(device_of(&p, &a, false), None);
    assert_eq!(
        device_of(&p, &a, true).as_deref(),
        Some("nas1.lab.example.com")
    );
    let by_ip = alert("nagios@example.com", "Alert for 10.6.1.20 down", "");
    assert_eq!(
        device_of(&p, &by_ip, true).as_deref(),
        Some("nas1.example.com")
    );
    let by_id = alert("nagios@example.com", "Alert for 4242 down", "");
    assert_eq!(
        device_of(&p, &by_id, false).as_deref(),
        Some("esx7.example.com")
    );
}

fn nas_policies(event_policies: Vec<EventPolicy>) -> Policies {
    let o = originator(
        "nas@example.com",
        RegexType::Subject,
        PatternType::Classic,
        "on",
        Alignment::Discard,
        None,
    );
    let (p, problems) = Policies::new(devices(), vec![o], event_policies);
    assert!(problems.is_empty(), "{problems:?}");
    p
}

fn raised(d: &Decision<'_>) -> Vec<(i64, String)> {
    d.writes
        .iter()
        .filter_map(|w| match w {
            Write::Raise {
                event_policy_id,
                message,
                ..
            } => Some((*event_policy_id, message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn first_and_second_match_strings_for_text_and_regex() {
    use MatchLogic::*;
    let body = "Volume 1 degraded: disk 3 failed (error 5)";
    for (logic, first, second, want) in [
        (Text, "degraded", None, true),
        (Text, "Degraded", None, false),
        (Text, "degraded", Some("error"), true),
        (Text, "degraded", Some("warning"), false),
        (Regex, r"disk \d+ failed", None, true),
        (Regex, r"(?i)VOLUME \d", Some(r"error \d"), true),
        (Regex, r"disk \d+ failed", Some(r"^warning"), false),
        (Regex, r"disk [a-z]+ failed", None, false),
    ] {
        let p = nas_policies(vec![event_policy(10, "p", logic, first, second)]);
        let a = alert("nas@example.com", "Alert on nas1.example.com", body);
        let d = evaluate(&p, &a, Settings::default());
        assert_eq!(!raised(&d).is_empty(), want, "{logic} {first:?} {second:?}");
    }
}

#[test]
fn one_pass_over_many_policies_finds_what_each_policy_would() {
    use MatchLogic::*;
    let text = "Volume 1 degraded: disk 3 failed (error 5) at a.b [x]";
    let mut policies: Vec<EventPolicy> = [
        (Text, "degraded"),
        (Text, "Degraded"),
        (Text, "a.b [x]"),
        (Text, "a?b"),
        (Regex, r"disk \d+ failed"),
        (Regex, r"(?i)VOLUME \d"),
        (Regex, r"disk [a-z]+ failed"),
        (Regex, r"^Volume"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (logic, first))| event_policy(i as i64 + 1, first, logic, first, None))
    .collect();
    // Many more, as at a real site, none of which match.
    policies.extend((100..300).map(|i| {
        let first = format!("Service check {i} is CRITICAL");
        event_policy(i, &first, Text, &first, None)
    }));
    let p = nas_policies(policies);
    let each: Vec<i64> = p
        .event_policies()
        .iter()
        .filter(|e| e.first.is_match(text))
        .map(|e| e.policy.id)
        .collect();
    let once: Vec<i64> = p.first_matches(text).iter().map(|e| e.policy.id).collect();
    assert_eq!(each, [1, 3, 5, 6, 8]);
    assert_eq!(once, each);
}

#[test]
fn every_matching_policy_raises_and_the_device_log_comes_first() {
    let mut clear = event_policy(12, "RAID rebuilt", MatchLogic::Text, "rebuilt", None);
    clear.clears_id = Some(11);
    clear.severity = Severity::Healthy;
    let p = nas_policies(vec![
        event_policy(11, "RAID degraded", MatchLogic::Text, "degraded", None),
        clear,
        event_policy(13, "Any disk", MatchLogic::Regex, r"[Dd]isk", None),
    ]);
    let a = alert(
        "NAS@example.com",
        "Event on nas1.example.com",
        "Disk 2 rebuilt",
    );
    let d = evaluate(&p, &a, Settings::default());
    assert_eq!(d.matched, ["RAID rebuilt", "Any disk"]);
    assert_eq!(
        d.writes,
        [
            Write::DeviceLog {
                device_id: 1,
                message: "Disk 2 rebuilt".into()
            },
            Write::Raise {
                device_id: 1,
                event_policy_id: 12,
                severity: Severity::Healthy,
                message: "Disk 2 rebuilt".into(),
                expire_after_s: None
            },
            Write::Raise {
                device_id: 1,
                event_policy_id: 13,
                severity: Severity::Major,
                message: "Disk 2 rebuilt".into(),
                expire_after_s: None
            },
            Write::Clear {
                device_id: 1,
                event_policy_id: 11,
                reason: "cleared by RAID rebuilt".into()
            },
        ]
    );
}

#[test]
fn a_device_without_a_matching_event_policy_gets_only_its_log() {
    let p = nas_policies(vec![event_policy(
        11,
        "RAID degraded",
        MatchLogic::Text,
        "degraded",
        None,
    )]);
    let a = alert(
        "nas@example.com",
        "Report on nas1.example.com",
        "All volumes healthy",
    );
    let d = evaluate(&p, &a, Settings::default());
    assert!(d.matched.is_empty());
    assert_eq!(
        d.writes,
        [Write::DeviceLog {
            device_id: 1,
            message: "All volumes healthy".into()
        }]
    );
}

#[test]
fn alert_message_setting_decides_what_is_matched_and_logged() {
    let p = nas_policies(vec![event_policy(
        11,
        "Subject says FAILED",
        MatchLogic::Text,
        "FAILED",
        None,
    )]);
    let a = alert(
        "nas@example.com",
        "FAILED on nas1.example.com",
        "see attachment",
    );
    let body_only = evaluate(&p, &a, Settings::default());
    assert!(raised(&body_only).is_empty());
    assert_eq!(
        body_only.writes[0],
        Write::DeviceLog {
            device_id: 1,
            message: "see attachment".into()
        }
    );
    let both = Settings {
        alert_message: AlertMessage::SubjectAndBody,
        ..Settings::default()
    };
    let d = evaluate(&p, &a, both);
    assert_eq!(raised(&d).len(), 1);
    assert_eq!(
        d.writes[0],
        Write::DeviceLog {
            device_id: 1,
            message: "FAILED on nas1.example.com\nsee attachment".into()
        }
    );
}

#[test]
fn message_substitutions() {
    let a = alert("ups@example.com", "On battery", "Input power failed");
    for (template, want) in [
        ("%M", "Input power failed"),
        (
            "%D: %S (from %A)",
            "ups1: On battery (from ups@example.com)",
        ),
        ("100%% sure, %M", "100% sure, Input power failed"),
        ("odd %x and trailing %", "odd %x and trailing %"),
        ("no escapes", "no escapes"),
    ] {
        assert_eq!(expand(template, &a, "ups1"), want, "{template:?}");
    }
}

#[test]
fn long_text_is_cut_at_a_character_boundary() {
    let body = "é".repeat(MAX_LOG_MESSAGE);
    let p = nas_policies(vec![event_policy(11, "any", MatchLogic::Text, "é", None)]);
    let a = alert("nas@example.com", "x on nas1.example.com", &body);
    let d = evaluate(&p, &a, Settings::default());
    let Write::DeviceLog { message, .. } = &d.writes[0] else {
        panic!("device log first")
    };
    assert!(message.len() <= MAX_LOG_MESSAGE && message.len() > MAX_LOG_MESSAGE - 2);
    let (_, event) = &raised(&d)[0];
    assert!(event.len() <= MAX_EVENT_MESSAGE && event.len() > MAX_EVENT_MESSAGE - 2);
}

#[test]
fn no_device_writes_e701_with_sender_and_subject() {
    let p = nas_policies(vec![event_policy(11, "any", MatchLogic::Text, "a", None)]);
    let a = alert("stranger@elsewhere.org", "Disk on fire", "a");
    let d = evaluate(&p, &a, Settings::default());
    assert_eq!(d.device, None);
    assert_eq!(
        d.writes,
        [Write::SystemLog {
            code: "E701",
            message: "Could not match device to email from stranger@elsewhere.org with subject \"Disk on fire\"".into()
        }]
    );
    assert_eq!(
        d.steps,
        [Step::OtherSender {
            policy: "nas@example.com"
        }]
    );
}

#[test]
fn expiry_travels_with_the_raise() {
    let mut policy = event_policy(11, "flap", MatchLogic::Text, "down", None);
    policy.expire_after_s = Some(600);
    let p = nas_policies(vec![policy]);
    let a = alert("nas@example.com", "x on nas1.example.com", "link down");
    let d = evaluate(&p, &a, Settings::default());
    assert!(matches!(
        d.writes[1],
        Write::Raise {
            expire_after_s: Some(600),
            ..
        }
    ));
}
