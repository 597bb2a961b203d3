//! Event policies scoped to originators or devices, scopes that name nothing, and suppress
//! policies.

use super::*;

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
            message: body.into(),
            unless_over: Vec::new(),
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
