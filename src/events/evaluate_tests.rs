//! Unit tests of the events decision: alignment, strip FQDN, patterns, match strings,
//! substitutions, clearing, E701.

use super::*;
use crate::events::model::{
    Action, Alignment, Device, EventPolicy, MatchIn, MatchLogic, Originator, PatternType,
    RegexType, Severity,
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
    let classic = |text: &str| {
        identifier(&Extractor::Classic("Alert for".into()), text).map(|(found, _)| found)
    };
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
        .map(|(found, _)| found)
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
    // The capture named `device` wins over group 1.
    assert_eq!(
        advanced(r"(\w+) event on (?P<device>\S+)", "Fail event on fs01").as_deref(),
        Some("fs01")
    );
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
    let once: Vec<i64> = p
        .first_matches(|_| text)
        .iter()
        .map(|e| e.policy.id)
        .collect();
    assert_eq!(each, [1, 3, 5, 6, 8]);
    assert_eq!(once, each);
}

#[test]
fn every_matching_policy_raises_and_the_device_log_comes_first() {
    let mut clear = event_policy(12, "RAID rebuilt", MatchLogic::Text, "rebuilt", None);
    clear.clears_ids = vec![11];
    clear.severity = Some(Severity::Healthy);
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
    assert_eq!(names(&d), ["RAID rebuilt", "Any disk"]);
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
                key: String::new(),
                severity: Severity::Healthy,
                message: "Disk 2 rebuilt".into(),
                close: None,
            },
            Write::Raise {
                device_id: 1,
                event_policy_id: 13,
                key: String::new(),
                severity: Severity::Major,
                message: "Disk 2 rebuilt".into(),
                close: None,
            },
            Write::Clear {
                device_id: 1,
                event_policy_id: 11,
                key: None,
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
    assert!(d.tried.is_empty());
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
    for (template, want) in [
        ("%M", "Input power failed"),
        (
            "%D: %S (from %A)",
            "nas1.example.com: On battery on nas1.example.com (from nas@example.com)",
        ),
        ("100%% sure, %M", "100% sure, Input power failed"),
        ("no escapes", "no escapes"),
    ] {
        let mut policy = event_policy(11, "p", MatchLogic::Text, "power", None);
        policy.message = template.into();
        let p = nas_policies(vec![policy]);
        let a = alert(
            "nas@example.com",
            "On battery on nas1.example.com",
            "Input power failed",
        );
        let d = evaluate(&p, &a, Settings::default());
        assert_eq!(raised(&d), [(11, want.to_owned())], "{template:?}");
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
        &d.writes[1],
        Write::Raise {
            close: Some(Close {
                expire_after_s: Some(600),
                expire_healthy_after_s: None,
                health_changed: None,
            }),
            ..
        }
    ));
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

/// One Nagios policy for problems and recoveries, keyed per service.
fn nagios_service() -> EventPolicy {
    EventPolicy {
        key: Some("%{service}".into()),
        severity_from: Some("state".into()),
        severity_map: severity_map(&[
            ("CRITICAL", Severity::Critical),
            ("WARNING", Severity::Minor),
            ("OK", Severity::Healthy),
        ]),
        message: "%{service} is %{state} on %D".into(),
        expire_healthy_after_s: Some(86400),
        ..event_policy(
            20,
            "Nagios service",
            MatchLogic::Regex,
            r"(?m)^Service: (?P<service>.+)$",
            Some(r"(?m)^State: (?P<state>\w+)"),
        )
    }
}

fn nagios_mail(service: &str, state: &str) -> String {
    format!(
        "Notification Type: PROBLEM\nService: {service}\nHost: nas1.example.com\nState: {state}"
    )
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

#[test]
fn a_key_and_a_severity_come_from_the_mail() {
    let p = nagios(vec![nagios_service()]);
    let check = |service: &str, state: &str, severity: Severity, reason: &str| {
        let body = nagios_mail(service, state);
        let a = alert("nagios@mon1.example.com", "Service Alert", &body);
        let d = evaluate(&p, &a, Settings::default());
        assert_eq!(d.device.map(|d| d.id), Some(1));
        assert_eq!(
            raises(&d),
            [(
                20,
                service.to_owned(),
                severity,
                format!("{service} is {state} on nas1.example.com"),
                Some(format!("{reason} by Nagios service")),
            )],
            "{service} {state}"
        );
    };
    check("Disk /var", "CRITICAL", Severity::Critical, "superseded");
    check("HTTP", "WARNING", Severity::Minor, "superseded");
    // The recovery is the same policy, the same key: it closes the problem's event.
    check("Disk /var", "OK", Severity::Healthy, "cleared");
    // A state the map lacks takes the policy's own severity.
    check("Disk /var", "UNKNOWN", Severity::Major, "superseded");
}

#[test]
fn every_match_of_a_keyed_policy_is_an_event_once_per_key() {
    // A backup report listing several guests, each with its status.
    let policy = EventPolicy {
        key: Some("%{vmid}".into()),
        severity_from: Some("status".into()),
        severity_map: severity_map(&[("err", Severity::Major), ("ok", Severity::Healthy)]),
        ..event_policy(
            30,
            "Backup",
            MatchLogic::Regex,
            r"(?m)^(?P<vmid>\d+)\s+(?P<status>ok|err)",
            None,
        )
    };
    let p = nagios(vec![policy]);
    let body = "Host: nas1.example.com\n101 ok\n102 err\n101 ok\n103 ERR";
    let d = evaluate(&p, &alert("nagios@x", "vzdump", body), Settings::default());
    let keys: Vec<(String, Severity)> = raises(&d).into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        keys,
        [
            ("101".to_owned(), Severity::Healthy),
            ("102".to_owned(), Severity::Major),
        ]
    );
}

#[test]
fn a_key_map_pairs_different_words_for_one_thing() {
    let policy = EventPolicy {
        key: Some("%{service}/%{what}".into()),
        key_map: [(
            "what".to_owned(),
            [
                ("Does not exist".to_owned(), "exists".to_owned()),
                ("Exists".to_owned(), "exists".to_owned()),
            ]
            .into(),
        )]
        .into(),
        ..event_policy(
            40,
            "Monit",
            MatchLogic::Regex,
            r"(?m)^(?P<what>Does not exist|Exists) Service (?P<service>\S+)",
            None,
        )
    };
    let p = nagios(vec![policy]);
    for line in [
        "Does not exist Service nginx",
        "exists Service nginx",
        "Exists Service nginx",
    ] {
        let body = format!("Host: nas1.example.com\n{line}");
        let d = evaluate(&p, &alert("nagios@x", "monit", &body), Settings::default());
        let keys: Vec<String> = raises(&d).into_iter().map(|r| r.1).collect();
        if line.starts_with("exists") {
            assert!(keys.is_empty(), "{line}: the regex is case-sensitive");
        } else {
            assert_eq!(keys, ["nginx/exists"], "{line}");
        }
    }
}

#[test]
fn clears_keep_to_the_key_of_a_keyed_policy() {
    let problem = event_policy(50, "Disk problem", MatchLogic::Text, "PROBLEM", None);
    let keyed = EventPolicy {
        key: Some("%{service}".into()),
        clears_ids: vec![50, 51],
        severity: Some(Severity::Healthy),
        ..event_policy(
            52,
            "Recovery",
            MatchLogic::Regex,
            r"(?m)^Service: (?P<service>.+)$",
            Some("RECOVERY"),
        )
    };
    let unkeyed = EventPolicy {
        clears_ids: vec![50],
        severity: Some(Severity::Healthy),
        ..event_policy(53, "All clear", MatchLogic::Text, "ALL CLEAR", None)
    };
    let other = event_policy(51, "Other", MatchLogic::Text, "OTHER", None);
    let p = nagios(vec![problem, other, keyed, unkeyed]);
    let body = "RECOVERY ALL CLEAR\nService: HTTP\nHost: nas1.example.com";
    let d = evaluate(&p, &alert("nagios@x", "s", body), Settings::default());
    let clears: Vec<(i64, Option<String>, String)> = d
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::Clear {
                event_policy_id,
                key,
                reason,
                ..
            } => Some((*event_policy_id, key.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        clears,
        [
            (50, Some("HTTP".into()), "cleared by Recovery".into()),
            (51, Some("HTTP".into()), "cleared by Recovery".into()),
            (50, None, "cleared by All clear".into()),
        ]
    );
}

#[test]
fn scoped_policies_are_tried_only_for_their_originators_and_devices() {
    let cron_only = EventPolicy {
        originators: vec!["cron".into()],
        ..event_policy(
            60,
            "Cron failed",
            MatchLogic::Regex,
            "(?i)error|failed",
            None,
        )
    };
    let nagios_only = EventPolicy {
        originators: vec!["nagios@*".into()],
        devices: vec!["nas1.example.com".into()],
        ..event_policy(61, "Nagios on nas1", MatchLogic::Text, "failed", None)
    };
    let other_device = EventPolicy {
        devices: vec!["backup-virtual".into()],
        ..event_policy(62, "Only backup-virtual", MatchLogic::Text, "failed", None)
    };
    let cron = named(
        8,
        "cron",
        "root@*",
        RegexType::Subject,
        r"^Cron <\S+@(?P<device>[^>]+)>",
    );
    let nagios_o = Originator {
        name: None,
        ..named(
            7,
            "nagios",
            "nagios@*",
            RegexType::Body,
            r"(?m)^Host: (\S+)",
        )
    };
    let (p, problems) = Policies::new(
        devices(),
        vec![nagios_o, cron],
        vec![cron_only, nagios_only, other_device],
    );
    assert!(problems.is_empty(), "{problems:?}");
    let body = "Host: nas1.example.com\nJob failed";
    let d = evaluate(
        &p,
        &alert("nagios@mon", "report", body),
        Settings::default(),
    );
    let outcomes: Vec<(&str, bool)> = d
        .tried
        .iter()
        .map(|t| (t.policy.name.as_str(), t.outcome != Outcome::OutOfScope))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("Cron failed", false),
            ("Nagios on nas1", true),
            ("Only backup-virtual", false),
        ]
    );
    assert_eq!(raises(&d).len(), 1);
    let d = evaluate(
        &p,
        &alert(
            "root@nas1",
            "Cron <root@nas1.example.com> backup.sh",
            "error: disk full",
        ),
        Settings::default(),
    );
    assert_eq!(d.device.map(|d| d.id), Some(1));
    assert_eq!(names(&d), ["Cron failed"]);
}

#[test]
fn a_scope_naming_nothing_narrows_the_policy_and_is_reported() {
    let ghost = EventPolicy {
        originators: vec!["ghost".into()],
        ..event_policy(63, "Ghost", MatchLogic::Text, "failed", None)
    };
    let (p, problems) = Policies::new(devices(), vec![], vec![ghost]);
    assert_eq!(
        problems,
        ["event_policy \"Ghost\": originators: \"ghost\" names no originator policy; the policy is not tried for it"]
    );
    assert_eq!(
        p.event_policies()[0].scope.originators,
        Some(Default::default())
    );
}

#[test]
fn a_suppress_policy_leaves_only_the_device_log() {
    let noise = EventPolicy {
        action: Action::Suppress,
        severity: None,
        ..event_policy(70, "Test mail", MatchLogic::Text, "This is a test", None)
    };
    let p = nagios(vec![
        event_policy(71, "Any failure", MatchLogic::Text, "failed", None),
        noise,
    ]);
    let body = "Host: nas1.example.com\nThis is a test: job failed";
    let d = evaluate(&p, &alert("nagios@x", "s", body), Settings::default());
    assert_eq!(d.suppressed_by, Some("Test mail"));
    assert_eq!(
        d.writes,
        [Write::DeviceLog {
            device_id: 1,
            message: body.into()
        }]
    );
    // Without the noise, the failure raises.
    let d = evaluate(
        &p,
        &alert("nagios@x", "s", "Host: nas1.example.com\njob failed"),
        Settings::default(),
    );
    assert_eq!(names(&d), ["Any failure"]);
}

#[test]
fn the_device_can_come_from_the_sender_or_a_header() {
    let from = |address: &str, regex_type: RegexType, pattern: &str| {
        let o = Originator {
            name: None,
            ..named(0, "", address, regex_type, pattern)
        };
        Policies::new(devices(), vec![o], vec![]).0
    };
    let mut a = alert("root@nas1.example.com", "mdadm", "");
    let headers = "From: \"OA-ESX7\" <oa@encl.example.com>\nX-Device: esx7.example.com";
    a.headers = headers;
    a.from_name = Some("backup-virtual");
    a.envelope_from = "bounce+4242@relay.example.com";
    for (address, regex_type, pattern, want) in [
        // `local@*`: root at any host; the host is the device.
        (
            "root@*",
            RegexType::From,
            r"@(?P<device>[^>\s]+)>$",
            Some("nas1.example.com"),
        ),
        ("*@*", RegexType::From, r"^(\S+) <", Some("backup-virtual")),
        (
            "*@*",
            RegexType::EnvelopeFrom,
            r"\+(\d+)@",
            Some("esx7.example.com"),
        ),
        (
            "*@*",
            RegexType::Header("x-device".into()),
            r".+",
            Some("esx7.example.com"),
        ),
        ("*@*", RegexType::Header("X-Missing".into()), r".*", None),
        ("root@*", RegexType::Subject, r"(\S+)", None),
        ("monit@*", RegexType::From, r"@(\S+)", None),
        ("*@example.com", RegexType::From, r"@(\S+)", None),
    ] {
        let p = from(address, regex_type.clone(), pattern);
        let d = evaluate(&p, &a, Settings::default());
        assert_eq!(
            d.device.map(|d| d.name.as_str()),
            want,
            "{address} {regex_type:?} {pattern}"
        );
    }
}

#[test]
fn several_originators_may_share_an_address_the_first_with_a_device_wins() {
    let mdadm = named(
        1,
        "mdadm",
        "root@*",
        RegexType::Subject,
        r"^\w+ event on /dev/\S+:(?P<device>\S+)$",
    );
    let cron = named(
        2,
        "cron",
        "root@*",
        RegexType::Subject,
        r"^Cron <\S+@(?P<device>[^>]+)>",
    );
    let (p, _) = Policies::new(devices(), vec![mdadm, cron], vec![]);
    let d = evaluate(
        &p,
        &alert(
            "root@localhost.localdomain",
            "Cron <root@nas1.example.com> /usr/local/bin/backup",
            "",
        ),
        Settings::default(),
    );
    assert_eq!(d.originator.and_then(|o| o.name.as_deref()), Some("cron"));
    assert_eq!(
        d.steps[0].to_string(),
        "originator mdadm: pattern not found in the subject"
    );
}

#[test]
fn a_policy_may_match_the_subject_whatever_the_setting() {
    let status = EventPolicy {
        match_in: Some(MatchIn::Subject),
        key: Some("%{alertname}".into()),
        severity_from: Some("status".into()),
        severity_map: severity_map(&[("FIRING", Severity::Major), ("RESOLVED", Severity::Healthy)]),
        ..event_policy(
            80,
            "Alertmanager",
            MatchLogic::Regex,
            r"^\[(?P<status>FIRING|RESOLVED)(?::\d+)?\] (?P<alertname>\S+)",
            None,
        )
    };
    let body_word = event_policy(81, "Body says FIRING", MatchLogic::Text, "FIRING", None);
    let p = nagios(vec![status, body_word]);
    let a = alert(
        "nagios@x",
        "[RESOLVED] InstanceDown (node01 node)",
        "Host: nas1.example.com\nno status word here",
    );
    for setting in [AlertMessage::Body, AlertMessage::SubjectAndBody] {
        let settings = Settings {
            alert_message: setting,
            ..Settings::default()
        };
        let d = evaluate(&p, &a, settings);
        let got: Vec<(i64, String, Severity)> =
            raises(&d).into_iter().map(|r| (r.0, r.1, r.2)).collect();
        // The body has no status word: only the policy matching the subject raises.
        assert_eq!(
            got,
            [(80, "InstanceDown".to_owned(), Severity::Healthy)],
            "{setting:?}"
        );
    }
}

#[test]
fn an_override_originator_still_lends_its_captures() {
    let o = originator(
        "veeam@example.com",
        RegexType::Subject,
        PatternType::Advanced,
        r"^\[(?P<result>\w+)\] (?P<job>\S+)",
        Alignment::Override,
        Some(2),
    );
    let policy = EventPolicy {
        key: Some("%{job}".into()),
        ..event_policy(90, "Job", MatchLogic::Text, "Backup", None)
    };
    let (p, problems) = Policies::new(devices(), vec![o], vec![policy]);
    assert!(problems.is_empty(), "{problems:?}");
    let a = alert(
        "veeam@example.com",
        "[Failed] Daily-VMs (3 machines)",
        "Backup failed",
    );
    let d = evaluate(&p, &a, Settings::default());
    assert_eq!(d.device.map(|d| d.id), Some(2));
    assert_eq!(raises(&d)[0].1, "Daily-VMs");
    // Without a match the default device is still taken, with no captures.
    let a = alert("veeam@example.com", "Weekly summary", "Backup report");
    let d = evaluate(&p, &a, Settings::default());
    assert_eq!(
        (d.device.map(|d| d.id), raises(&d)[0].1.as_str()),
        (Some(2), "")
    );
}

#[test]
fn a_keyed_policy_reads_at_most_so_many_matches_of_one_mail() {
    let policy = EventPolicy {
        key: Some("%{n}".into()),
        ..event_policy(
            95,
            "Line",
            MatchLogic::Regex,
            r"(?m)^line (?P<n>\d+)$",
            None,
        )
    };
    let p = nagios(vec![policy]);
    let mut body = "Host: nas1.example.com\n".to_owned();
    for n in 0..MAX_MATCHES + 500 {
        body.push_str(&format!("line {n}\n"));
    }
    let d = evaluate(&p, &alert("nagios@x", "s", &body), Settings::default());
    assert_eq!(raises(&d).len(), MAX_MATCHES);
}
