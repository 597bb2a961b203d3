use super::*;
use crate::events::model::{MatchLogic, Severity};
use crate::expect::model::Every;

fn policy(id: i64, name: &str, from: From) -> ExpectPolicy {
    ExpectPolicy {
        id,
        name: name.into(),
        device_id: 1,
        from,
        match_in: MatchIn::SubjectAndBody,
        match_logic: MatchLogic::Text,
        matches: Some("Backup job nas1".into()),
        every: Every::Seconds(86_400),
        grace_s: 3600,
        severity: Severity::Major,
        failure: vec!["Failed".into(), "Error".into()],
        success: vec!["Success".into()],
        default_outcome: Outcome::Failure,
        start: Some("started".into()),
    }
}

fn expects() -> Expects {
    let (expects, problems) = Expects::new(vec![
        policy(1, "by sender", From::Sender("*@backup.example.com".into())),
        policy(2, "by originator", From::Originator("veeam".into())),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    expects
}

fn alert<'a>(from: &'a str, subject: &'a str) -> Alert<'a> {
    Alert {
        from,
        envelope_from: from,
        subject,
        body: "Details follow.",
        ..Alert::default()
    }
}

/// (policy name, what the mail is to it) for each policy it reports to.
fn seen(
    expects: &Expects,
    a: &Alert<'_>,
    aligned: Option<(i64, Option<&str>)>,
) -> Vec<(String, Kind)> {
    reports(expects, a, aligned)
        .into_iter()
        .map(|r| (r.compiled.policy.name.clone(), r.kind))
        .collect()
}

#[test]
fn failure_is_tried_first_then_success_then_the_default() {
    let e = expects();
    let from = "vbr@backup.example.com";
    let kind = |subject| seen(&e, &alert(from, subject), None)[0].1.clone();
    assert_eq!(
        kind("Backup job nas1: 1 Successful, 1 Failed"),
        Kind::Report(Outcome::Failure, "failure \"Failed\" matched".into())
    );
    assert_eq!(
        kind("Backup job nas1: Success"),
        Kind::Report(Outcome::Success, "success \"Success\" matched".into())
    );
    assert_eq!(
        kind("Backup job nas1: Warning"),
        Kind::Report(
            Outcome::Failure,
            "neither list matched: default failure".into()
        )
    );
    assert_eq!(kind("Backup job nas1 started"), Kind::Started);
}

#[test]
fn a_report_comes_from_the_sender_or_through_the_originator_about_the_device() {
    let e = expects();
    let subject = "Backup job nas1: Success";
    let names = |a: &Alert<'_>, aligned| {
        seen(&e, a, aligned)
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
    };
    // The sender's pattern; no device aligned, or this one.
    let from_backup = alert("vbr@backup.example.com", subject);
    assert_eq!(names(&from_backup, None), ["by sender"]);
    assert_eq!(names(&from_backup, Some((1, None))), ["by sender"]);
    // Aligned to another device: not this device's report.
    assert!(names(&from_backup, Some((2, None))).is_empty());
    // Through the named originator, whoever sent it, to the policy's device only.
    let other = alert("veeam@example.com", subject);
    assert_eq!(names(&other, Some((1, Some("veeam")))), ["by originator"]);
    assert!(names(&other, Some((1, Some("apc")))).is_empty());
    assert!(names(&other, None).is_empty());
    // The match string decides which job it is.
    assert!(names(
        &alert("vbr@backup.example.com", "Backup job nas2: Success"),
        None
    )
    .is_empty());
}

#[test]
fn reports_write_their_outcome_and_next_deadline() {
    let e = expects();
    let now: jiff::Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
    let r = &reports(
        &e,
        &alert("vbr@backup.example.com", "Backup job nas1: Failed"),
        None,
    )[0];
    let Write::Report {
        expect_policy_id,
        outcome,
        due,
        severity,
        message,
        ..
    } = r.write(now, "Backup job nas1: Failed")
    else {
        panic!("a report");
    };
    assert_eq!(
        (expect_policy_id, outcome, severity),
        (1, "failure", Severity::Major)
    );
    // A day and the hour's grace from the report.
    let want: jiff::Timestamp = "2026-12-05T11:00:00Z".parse().unwrap();
    assert_eq!(due, Some(std::time::SystemTime::from(want)));
    assert_eq!(
        message,
        "Expected mail by sender: the report is a failure (failure \"Failed\" matched): \
         Backup job nas1: Failed"
    );
}

#[test]
fn a_policy_that_does_not_compile_is_left_out() {
    let mut bad = policy(3, "bad", From::Sender("a@b.example".into()));
    bad.match_logic = MatchLogic::Regex;
    bad.matches = Some("(".into());
    let (expects, problems) = Expects::new(vec![bad]);
    assert!(expects.is_empty());
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("expect \"bad\": "), "{problems:?}");
}
