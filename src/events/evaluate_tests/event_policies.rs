//! Event policies as SL1 has them: first and second match strings, every matching policy
//! raising, the device log, what is matched and logged, substitutions, E701, expiry.

use super::*;

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
        // Found through the literal every match ends with, and through none.
        (Regex, r"[a-z]+ \[x\]"),
        (Regex, r"\d \w+:"),
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
    assert_eq!(each, [1, 3, 5, 6, 8, 9, 10]);
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
                message: "Disk 2 rebuilt".into(),
                unless_over: Vec::new(),
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
            message: "All volumes healthy".into(),
            unless_over: Vec::new(),
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
            message: "see attachment".into(),
            unless_over: Vec::new(),
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
            message: "FAILED on nas1.example.com\nsee attachment".into(),
            unless_over: Vec::new(),
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
fn a_capped_policy_takes_a_token_before_the_device_log() {
    let capped = EventPolicy {
        rate: Some(Rate {
            count: 10,
            per_s: 60,
        }),
        ..event_policy(10, "Disk failed", MatchLogic::Text, "failed", None)
    };
    let uncapped = event_policy(11, "Volume", MatchLogic::Text, "Volume", None);
    let a = alert(
        "nas@example.com",
        "Alert on nas1.example.com",
        "Volume 1: disk 3 failed",
    );
    let kinds = |d: &Decision<'_>| {
        d.writes
            .iter()
            .map(|w| match w {
                Write::Take {
                    event_policy_id,
                    rate,
                    ..
                } => format!("take {event_policy_id} {rate}"),
                Write::DeviceLog { unless_over, .. } => format!("log unless {unless_over:?}"),
                Write::Raise {
                    event_policy_id, ..
                } => format!("raise {event_policy_id}"),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    // Capped alone: logged only while under the cap.
    let alone = nas_policies(vec![capped.clone()]);
    let d = evaluate(&alone, &a, Settings::default());
    assert_eq!(kinds(&d), ["take 10 10/min", "log unless [10]", "raise 10"]);
    // With an uncapped policy raising too, the mail is always logged.
    let both = nas_policies(vec![capped, uncapped]);
    let d = evaluate(&both, &a, Settings::default());
    assert_eq!(
        kinds(&d),
        ["take 10 10/min", "log unless []", "raise 10", "raise 11"]
    );
}
