//! Events keyed by what the mail says: keys and severities from captures, a key map, clears
//! of the same key only, and a bound on the matches read from one mail.

use super::*;

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
