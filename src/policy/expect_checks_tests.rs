//! `[[expect]]` entries: read with their defaults, every problem named with its key, and
//! written back (by `export`) as they are read.

use crate::events::model::{MatchIn, MatchLogic, Severity};
use crate::expect::model::{Every, ExpectPolicy, From, Outcome};
use crate::policy::file::ExpectEntry;
use crate::policy::PolicyFile;

/// An `[[expect]]` with valid values, then `overrides` (`key = value` lines; a value of `-`
/// removes the key).
fn expect(overrides: &[(&str, &str)]) -> String {
    let mut lines = vec![
        ("name", "\"Nightly\""),
        ("device", "\"nas1\""),
        ("sender", "\"veeam@example.com\""),
        ("every", "\"24h\""),
        ("severity", "\"major\""),
    ];
    for (key, value) in overrides {
        lines.retain(|(k, _)| k != key);
        if *value != "-" {
            lines.push((key, value));
        }
    }
    let body: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    format!("[[expect]]\n{body}\n")
}

#[test]
fn every_problem_is_reported_with_its_entry_and_key() {
    let cron = ("cron", "\"0 2 * * *\"");
    let no_every = ("every", "-");
    // (file text, the problems: each line the start of the problem reported in its place).
    let cases: Vec<(String, Vec<&str>)> = vec![
        (expect(&[]), vec![]),
        (
            expect(&[("name", "-"), ("device", "-"), ("severity", "-")]),
            vec![
                "expect (entry 1): name: missing (required)",
                "expect (entry 1): device: missing (required)",
                "expect (entry 1): severity: missing (required)",
            ],
        ),
        (
            expect(&[("name", "\"\"")]),
            vec!["expect (entry 1): name: must not be empty"],
        ),
        (
            expect(&[("name", "\"Nightly \"")]),
            vec![r#"expect "Nightly ": name: must not start or end with white space"#],
        ),
        (
            expect(&[]) + &expect(&[]),
            vec![r#"expect "Nightly" (entry 2): name: duplicate of expect entry 1"#],
        ),
        // Names are compared exactly.
        (expect(&[]) + &expect(&[("name", "\"nightly\"")]), vec![]),
        (
            expect(&[("device", "\"\"")]),
            vec![r#"expect "Nightly": device: must not be empty"#],
        ),
        // From: exactly one of sender and originator.
        (
            expect(&[("originator", "\"veeam\"")]),
            vec![r#"expect "Nightly": originator: give sender or originator, not both"#],
        ),
        (
            expect(&[("sender", "-")]),
            vec![r#"expect "Nightly": sender: missing (give sender, or originator)"#],
        ),
        (
            expect(&[("sender", "-"), ("originator", "\"veeam\"")]),
            vec![],
        ),
        (
            expect(&[("sender", "-"), ("originator", "\" \"")]),
            vec![r#"expect "Nightly": originator: must not be empty"#],
        ),
        (
            expect(&[("sender", "\"veeam\"")]),
            vec![
                r#"expect "Nightly": sender: "veeam" is not an email address, *@domain, local@* or *@*"#,
            ],
        ),
        (expect(&[("sender", "\"*@Example.com\"")]), vec![]),
        (expect(&[("sender", "\"root@*\"")]), vec![]),
        (expect(&[("sender", "\"*@*\"")]), vec![]),
        // The schedule: exactly one of every and cron, timezone only with cron.
        (
            expect(&[cron]),
            vec![r#"expect "Nightly": cron: give every or cron, not both"#],
        ),
        (
            expect(&[no_every]),
            vec![r#"expect "Nightly": every: missing (give every, or cron)"#],
        ),
        (expect(&[no_every, cron]), vec![]),
        (
            expect(&[no_every, cron, ("timezone", "\"Europe/Berlin\"")]),
            vec![],
        ),
        (
            expect(&[("timezone", "\"UTC\"")]),
            vec![r#"expect "Nightly": timezone: only with cron"#],
        ),
        (
            expect(&[("every", "\"1 day\"")]),
            vec![
                r#"expect "Nightly": every: "1 day" is not a duration such as 90s, 15m, 24h or 7d"#,
            ],
        ),
        (
            expect(&[("every", "\"0s\"")]),
            vec![r#"expect "Nightly": every: must be at least 1s"#],
        ),
        (
            expect(&[("every", "\"400d\"")]),
            vec![r#"expect "Nightly": every: "400d" is longer than 366 days"#],
        ),
        (
            expect(&[("every", "86400")]),
            vec![r#"expect "Nightly": every: invalid type: integer `86400`, expected a string"#],
        ),
        (
            expect(&[no_every, ("cron", "\"0 2 * *\"")]),
            vec![r#"expect "Nightly": cron: the expression has 4 fields"#],
        ),
        (
            expect(&[no_every, ("cron", "\"0 0 31 2 *\"")]),
            vec![r#"expect "Nightly": cron: the expression never fires"#],
        ),
        (
            expect(&[no_every, cron, ("timezone", "\"Mars/Olympus\"")]),
            vec![r#"expect "Nightly": timezone: unknown time zone "Mars/Olympus""#],
        ),
        (expect(&[("grace", "\"2h\"")]), vec![]),
        (expect(&[("grace", "\"0s\"")]), vec![]),
        (
            expect(&[("grace", "\"2 hours\"")]),
            vec![r#"expect "Nightly": grace: "2 hours" is not a duration"#],
        ),
        (
            expect(&[("severity", "\"healthy\"")]),
            vec![r#"expect "Nightly": severity: "healthy" raises nothing"#],
        ),
        (
            expect(&[("severity", "\"fatal\"")]),
            vec![
                r#"expect "Nightly": severity: unknown variant `fatal`, expected one of `healthy`, `notice`, `minor`, `major`, `critical`"#,
            ],
        ),
        // Match strings: never empty; regexes compile, within the limits of every policy regex.
        (
            expect(&[("match", "\"\"")]),
            vec![
                r#"expect "Nightly": match: must not be empty (leave it out for any mail from the sender)"#,
            ],
        ),
        (
            expect(&[("start", "\"\"")]),
            vec![r#"expect "Nightly": start: must not be empty (leave it out for no start mail)"#],
        ),
        (
            expect(&[("failure", "[\"Failed\", \"\"]")]),
            vec![r#"expect "Nightly": failure: a match string must not be empty"#],
        ),
        (
            expect(&[("success", "[\"\"]")]),
            vec![r#"expect "Nightly": success: a match string must not be empty"#],
        ),
        (
            expect(&[
                ("match", "\"(\""),
                ("failure", "[\"[z-a\"]"),
                ("start", "\"(\""),
            ]),
            vec![],
        ),
        (
            expect(&[
                ("match_logic", "\"regex\""),
                ("match", "\"(\""),
                ("failure", "[\"Fail(ed)?\", \"[z-a\"]"),
                ("success", "[\"OK\"]"),
                ("start", "'\\w{1000}{1000}'"),
            ]),
            vec![
                r#"expect "Nightly": match: invalid regex: regex parse error:"#,
                r#"expect "Nightly": failure: invalid regex: regex parse error:"#,
                r#"expect "Nightly": start: invalid regex: the regex is too large"#,
            ],
        ),
        (
            expect(&[("match_logic", "\"glob\"")]),
            vec![
                r#"expect "Nightly": match_logic: unknown variant `glob`, expected `text` or `regex`"#,
            ],
        ),
        (
            expect(&[("match_in", "\"header\"")]),
            vec![
                r#"expect "Nightly": match_in: unknown variant `header`, expected one of `subject`, `body`, `subject_and_body`"#,
            ],
        ),
        (
            expect(&[("default", "\"missed\"")]),
            vec![
                r#"expect "Nightly": default: unknown variant `missed`, expected `success` or `failure`"#,
            ],
        ),
        (
            expect(&[("failure", "\"Failed\"")]),
            vec![
                r#"expect "Nightly": failure: invalid type: string "Failed", expected a sequence"#,
            ],
        ),
        (
            expect(&[("interval", "\"24h\"")]),
            vec![r#"expect "Nightly": interval: unknown key"#],
        ),
        // A key that cannot be read is reported once; the entry's other keys are still checked.
        (
            expect(&[
                ("severity", "\"fatal\""),
                ("every", "\"soon\""),
                ("sender", "\"x\""),
            ]),
            vec![
                r#"expect "Nightly": severity: unknown variant `fatal`"#,
                r#"expect "Nightly": sender: "x" is not an email address"#,
                r#"expect "Nightly": every: "soon" is not a duration"#,
            ],
        ),
    ];
    crate::policy::file::tests::assert_problems(&cases);
}

#[test]
fn an_entry_reads_with_its_defaults_into_the_model() {
    let text = format!(
        "[[device]]\nname = \"nas1\"\n\n{}",
        expect(&[("sender", "\"Veeam@Example.COM\"")])
    );
    let file = PolicyFile::parse(&text).expect("valid");
    assert_eq!(
        file.expects,
        [ExpectEntry {
            name: "Nightly".into(),
            device: "nas1".into(),
            sender: Some("Veeam@Example.COM".into()),
            originator: None,
            matches: None,
            match_logic: MatchLogic::Text,
            match_in: MatchIn::SubjectAndBody,
            every: Some("24h".into()),
            cron: None,
            timezone: None,
            grace: None,
            severity: Severity::Major,
            failure: vec![],
            success: vec![],
            default_outcome: Outcome::Success,
            start: None,
        }]
    );
    let model = file.to_model().expect("resolves");
    assert_eq!(
        model.expects,
        [ExpectPolicy {
            id: 1,
            name: "Nightly".into(),
            device_id: 1,
            // Senders are compared lower case.
            from: From::Sender("veeam@example.com".into()),
            match_in: MatchIn::SubjectAndBody,
            match_logic: MatchLogic::Text,
            matches: None,
            every: Every::Seconds(86_400),
            grace_s: 0,
            severity: Severity::Major,
            failure: vec![],
            success: vec![],
            default_outcome: Outcome::Success,
            start: None,
        }]
    );
}

/// Two expectations that give every key between them, and their devices.
fn every_key() -> String {
    format!(
        "[[device]]\nname = \"nas1.example.com\"\n\n[[device]]\nname = \"backup-virtual\"\n\n{}",
        include_str!("../../tests/fixtures/expect/policies.toml")
    )
}

#[test]
fn what_export_writes_reads_back_the_same() {
    let file = PolicyFile::parse(&every_key()).expect("valid");
    assert_eq!(PolicyFile::parse(&file.to_toml()), Ok(file.clone()));
    let model = file.to_model().expect("resolves");
    assert_eq!(
        model.expects[0],
        ExpectPolicy {
            id: 1,
            name: "nas1 nightly backup".into(),
            device_id: 1,
            from: From::Originator("veeam".into()),
            match_in: MatchIn::Subject,
            match_logic: MatchLogic::Regex,
            matches: Some(r"Backup job (?P<job>\S+)".into()),
            every: Every::Cron {
                expr: "0 2 * * *".into(),
                timezone: "Europe/Berlin".into(),
            },
            grace_s: 7200,
            severity: Severity::Critical,
            failure: vec!["Failed".into(), "Error".into()],
            success: vec!["Success".into()],
            default_outcome: Outcome::Failure,
            start: Some("started".into()),
        }
    );
    let exported = PolicyFile::from_model(&model);
    let text = exported.to_toml();
    // Durations in the largest unit that divides them, defaults left out, the sender as stored.
    assert!(
        text.ends_with(
            "[[expect]]\nname = \"UPS self-test\"\ndevice = \"backup-virtual\"\n\
             sender = \"ups@example.com\"\nevery = \"7d\"\nseverity = \"minor\"\n"
        ),
        "{text}"
    );
    assert!(text.contains("grace = \"2h\"\n"), "{text}");
    assert!(text.contains("timezone = \"Europe/Berlin\"\n"), "{text}");
    let read = PolicyFile::parse(&text).expect("the export is valid");
    assert_eq!(read, exported);
    assert_eq!(read.to_model(), Ok(model.clone()));

    // A cron expression in UTC is written without its time zone.
    let utc = every_key().replace("timezone = \"Europe/Berlin\"\n", "");
    let model = PolicyFile::parse(&utc).unwrap().to_model().unwrap();
    assert_eq!(
        model.expects[0].every,
        Every::Cron {
            expr: "0 2 * * *".into(),
            timezone: "UTC".into(),
        }
    );
    let text = PolicyFile::from_model(&model).to_toml();
    assert!(!text.contains("timezone"), "{text}");
    assert_eq!(PolicyFile::parse(&text).unwrap().to_model(), Ok(model));
}

#[test]
fn the_device_and_the_originator_must_be_in_the_file_when_it_is_on_its_own() {
    let text = every_key()
        .replace("name = \"veeam\"\n", "")
        .replace("device = \"backup-virtual\"", "device = \"ups9\"");
    assert_eq!(
        PolicyFile::parse(&text).unwrap().to_model().unwrap_err(),
        [
            // An originator known by its address is no originator name.
            r#"expect "nas1 nightly backup": originator "veeam" is not a named originator in this file"#,
            r#"expect "UPS self-test": device "ups9" is not a device in this file"#,
        ]
    );
}
