use super::*;
use crate::policy::check::check_address;

/// Every key of every entry kind, with the shapes of the issue's example.
const EXAMPLE: &str = r#"
[[device]]
name = "nas1.example.com"
id = 4242
ip = "10.6.1.20"
organization = "HQ"

[[device]]
name = "backup-virtual"

[[originator]]
address = "Veeam@Example.com"
regex_type = "subject"
pattern_type = "classic"
pattern = "Backup job for"
alignment = "default_if_unmatched"
default_device = "backup-virtual"

[[originator]]
address = "*@ups.example.com"
regex_type = "body"
pattern_type = "advanced"
pattern = 'UPS (\S+) is on battery'
alignment = "discard"

[[event_policy]]
name = "Veeam job failed"
severity = "major"
match_logic = "text"
first_match = "Failed"
second_match = "error"
expire_after_s = 86400

[[event_policy]]
name = "Veeam job succeeded"
severity = "healthy"
message = "%S on %D from %A: %M (100%%)"
match_logic = "regex"
first_match = "Success(ful)?"
clears = "Veeam job failed"
"#;

#[test]
fn the_example_parses_with_its_defaults() {
    let file = PolicyFile::parse(EXAMPLE).expect("valid");
    assert_eq!(file.devices.len(), 2);
    assert_eq!(
        file.devices[0],
        DeviceEntry {
            name: "nas1.example.com".into(),
            id: Some(4242),
            ip: Some("10.6.1.20".parse().unwrap()),
            organization: Some("HQ".into()),
        }
    );
    assert_eq!(file.devices[1].id, None);
    assert_eq!(file.originators[0].address, "Veeam@Example.com");
    assert_eq!(file.originators[0].alignment, Alignment::DefaultIfUnmatched);
    assert_eq!(file.originators[1].default_device, None);
    assert_eq!(file.event_policies[0].message, "%M");
    assert_eq!(file.event_policies[0].expire_after_s, Some(86400));
    assert_eq!(
        file.event_policies[1].clears.as_deref(),
        Some("Veeam job failed")
    );
    assert_eq!(file.check(), Vec::<String>::new());
}

#[test]
fn what_is_written_reads_back_the_same() {
    let file = PolicyFile::parse(EXAMPLE).expect("valid");
    let text = file.to_toml();
    assert_eq!(PolicyFile::parse(&text), Ok(file.clone()));
    assert_eq!(PolicyFile::parse(&text).unwrap().to_toml(), text);
    // Unset optional keys are left out.
    assert!(!text.contains("second_match = \"\""), "{text}");
    assert_eq!(text.matches("id = ").count(), 1, "{text}");
    assert_eq!(PolicyFile::default().to_toml(), "");
    assert_eq!(PolicyFile::parse(""), Ok(PolicyFile::default()));
}

/// An entry of `kind` with valid values, then `overrides` (`key = value` lines; a value of
/// `-` removes the key).
fn entry(kind: &str, overrides: &[(&str, &str)]) -> String {
    let base: &[(&str, &str)] = match kind {
        "device" => &[("name", "\"nas1\"")],
        "originator" => &[
            ("address", "\"alerts@example.com\""),
            ("regex_type", "\"subject\""),
            ("pattern_type", "\"classic\""),
            ("pattern", "\"Alert for\""),
            ("alignment", "\"discard\""),
        ],
        _ => &[
            ("name", "\"Disk failed\""),
            ("severity", "\"major\""),
            ("match_logic", "\"text\""),
            ("first_match", "\"failed\""),
        ],
    };
    let mut lines: Vec<(&str, &str)> = base.to_vec();
    for (key, value) in overrides {
        lines.retain(|(k, _)| k != key);
        if *value != "-" {
            lines.push((key, value));
        }
    }
    let body: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    format!("[[{kind}]]\n{body}\n")
}

fn device(o: &[(&str, &str)]) -> String {
    entry("device", o)
}
fn originator(o: &[(&str, &str)]) -> String {
    entry("originator", o)
}
fn policy(o: &[(&str, &str)]) -> String {
    entry("event_policy", o)
}

#[test]
fn every_problem_is_reported_with_its_entry_and_key() {
    let long = format!("\"{}\"", "a".repeat(256));
    // (file text, the problems: each line the start of the problem reported in its place).
    let cases: Vec<(String, Vec<&str>)> = vec![
        (device(&[("name", "\"\"")]), vec!["device (entry 1): name: must not be empty"]),
        (device(&[("name", "\" nas1\"")]), vec![r#"device " nas1": name: must not start or end with white space"#]),
        (device(&[("name", "-")]), vec!["device (entry 1): name: missing (required)"]),
        (
            device(&[]) + &device(&[("name", "\"NAS1\"")]),
            vec![r#"device "NAS1" (entry 2): name: duplicate of device entry 1 (device names are compared ignoring case)"#],
        ),
        (
            device(&[("id", "7")]) + &device(&[("name", "\"ups1\""), ("id", "7")]),
            vec![r#"device "ups1": id: 7 is also the id of device entry 1"#],
        ),
        (device(&[("id", "0")]), vec![r#"device "nas1": id: 0 is not a positive integer"#]),
        (device(&[("id", "\"7\"")]), vec![r#"device "nas1": id: invalid type: string "7", expected i64"#]),
        (device(&[("ip", "\"10.6.1.300\"")]), vec![r#"device "nas1": ip: invalid IP address syntax"#]),
        (device(&[("organization", "\"\"")]), vec![r#"device "nas1": organization: must not be empty (leave the key out instead)"#]),
        (device(&[("colour", "\"red\""), ("site", "1")]), vec![r#"device "nas1": colour: unknown key"#, r#"device "nas1": site: unknown key"#]),
        (originator(&[("address", "\"veeam\"")]), vec![r#"originator "veeam" (entry 1): address: "veeam" is not an email address or *@domain"#]),
        (originator(&[("address", "\"@example.com\"")]), vec![r#"originator "@example.com" (entry 1): address: "@example.com" is not"#]),
        (originator(&[("address", "\"a@\"")]), vec![r#"originator "a@" (entry 1): address: "a@" is not"#]),
        (originator(&[("address", "\"a b@example.com\"")]), vec![r#"originator "a b@example.com" (entry 1): address:"#]),
        (originator(&[("address", "\"a..b@example.com\"")]), vec![r#"originator "a..b@example.com" (entry 1): address:"#]),
        (originator(&[("address", "\"*@*.example.com\"")]), vec![r#"originator "*@*.example.com" (entry 1): address:"#]),
        (originator(&[("address", "\"\"")]), vec!["originator (entry 1): address: \"\" is not"]),
        (
            originator(&[]) + &originator(&[("address", "\"Alerts@EXAMPLE.com\"")]),
            vec![r#"originator "Alerts@EXAMPLE.com" (entry 2): address: duplicate of originator entry 1 (addresses are compared ignoring case)"#],
        ),
        (originator(&[("pattern", "\"\"")]), vec![r#"originator "alerts@example.com" (entry 1): pattern: must not be empty"#]),
        (
            originator(&[("pattern_type", "\"advanced\""), ("pattern", "\"Alert for (\"")]),
            vec![r#"originator "alerts@example.com" (entry 1): pattern: invalid regex: regex parse error:"#],
        ),
        (
            originator(&[("pattern_type", "\"advanced\""), ("pattern", &long)]),
            vec![r#"originator "alerts@example.com" (entry 1): pattern: an advanced pattern is at most 255 characters, this one has 256"#],
        ),
        // A classic pattern is literal text: no regex rules, no length limit.
        (originator(&[("pattern", &format!("\"({}\"", "a".repeat(300)))]), vec![]),
        (
            originator(&[("alignment", "\"override\"")]),
            vec![r#"originator "alerts@example.com" (entry 1): default_device: required when alignment is "override""#],
        ),
        (
            originator(&[("alignment", "\"default_if_unmatched\"")]),
            vec![r#"originator "alerts@example.com" (entry 1): default_device: required when alignment is "default_if_unmatched""#],
        ),
        (
            originator(&[("default_device", "\"\"")]),
            vec![r#"originator "alerts@example.com" (entry 1): default_device: must not be empty"#],
        ),
        (
            originator(&[("regex_type", "\"header\""), ("pattern_type", "\"glob\""), ("alignment", "\"always\"")]),
            vec![
                r#"originator "alerts@example.com" (entry 1): alignment: unknown variant `always`, expected one of `discard`, `default_if_unmatched`, `override`"#,
                r#"originator "alerts@example.com" (entry 1): pattern_type: unknown variant `glob`, expected `classic` or `advanced`"#,
                r#"originator "alerts@example.com" (entry 1): regex_type: unknown variant `header`, expected `subject` or `body`"#,
            ],
        ),
        (
            originator(&[("address", "-"), ("pattern", "-"), ("regex_type", "-")]),
            vec![
                "originator (entry 1): address: missing (required)",
                "originator (entry 1): regex_type: missing (required)",
                "originator (entry 1): pattern: missing (required)",
            ],
        ),
        (policy(&[("name", "\"\"")]), vec!["event_policy (entry 1): name: must not be empty"]),
        (
            policy(&[]) + &policy(&[]),
            vec![r#"event_policy "Disk failed" (entry 2): name: duplicate of event_policy entry 1"#],
        ),
        // Event policy names are compared exactly.
        (policy(&[]) + &policy(&[("name", "\"disk failed\"")]), vec![]),
        (policy(&[("severity", "\"fatal\"")]), vec![r#"event_policy "Disk failed": severity: unknown variant `fatal`, expected one of `healthy`, `notice`, `minor`, `major`, `critical`"#]),
        (policy(&[("match_logic", "\"glob\"")]), vec![r#"event_policy "Disk failed": match_logic: unknown variant `glob`"#]),
        (policy(&[("message", "\"\"")]), vec![r#"event_policy "Disk failed": message: must not be empty (leave it out for "%M")"#]),
        (policy(&[("message", "\"%M on %d\"")]), vec![r#"event_policy "Disk failed": message: unknown escape %d (the escapes are %M body, %S subject, %D device, %A sender, %% a %)"#]),
        (policy(&[("message", "\"100%\"")]), vec![r#"event_policy "Disk failed": message: ends with a lone % (write %% for a %)"#]),
        (policy(&[("message", "\"%%%M %S %D %A\"")]), vec![]),
        (policy(&[("first_match", "\"\"")]), vec![r#"event_policy "Disk failed": first_match: must not be empty"#]),
        (policy(&[("second_match", "\"\"")]), vec![r#"event_policy "Disk failed": second_match: must not be empty"#]),
        // Text logic: any text; regex logic: both match strings must compile.
        (policy(&[("first_match", "\"failed (\"")]), vec![]),
        (
            policy(&[("match_logic", "\"regex\""), ("first_match", "\"failed (\""), ("second_match", "\"[z-a]\"")]),
            vec![
                r#"event_policy "Disk failed": first_match: invalid regex: regex parse error:"#,
                r#"event_policy "Disk failed": second_match: invalid regex: regex parse error:"#,
            ],
        ),
        (policy(&[("clears", "\"Disk failed\"")]), vec![r#"event_policy "Disk failed": clears: an event policy cannot clear itself"#]),
        (policy(&[("clears", "\"\"")]), vec![r#"event_policy "Disk failed": clears: must not be empty"#]),
        (policy(&[("expire_after_s", "0")]), vec![r#"event_policy "Disk failed": expire_after_s: 0 is not a positive number of seconds"#]),
        (policy(&[("expire_after_s", "-60")]), vec![r#"event_policy "Disk failed": expire_after_s: -60 is not"#]),
        (policy(&[("expire_after_s", "3000000000")]), vec![r#"event_policy "Disk failed": expire_after_s: invalid value: integer `3000000000`, expected i32"#]),
        // A key that cannot be read is reported once; the entry's other keys are still checked.
        (
            policy(&[("severity", "\"fatal\""), ("first_match", "7"), ("message", "\"%x\""), ("clears", "\"Disk failed\"")]),
            vec![
                r#"event_policy "Disk failed": first_match: invalid type: integer `7`, expected a string"#,
                r#"event_policy "Disk failed": severity: unknown variant `fatal`"#,
                r#"event_policy "Disk failed": message: unknown escape %x"#,
                r#"event_policy "Disk failed": clears: an event policy cannot clear itself"#,
            ],
        ),
        ("colour = \"blue\"\n".into(), vec!["colour: unknown key"]),
        ("[[ticket_policy]]\nname = \"x\"\n".into(), vec!["[[ticket_policy]]: not supported yet by this version of mailops"]),
        ("[[roundtrip]]\nname = \"x\"\n".into(), vec!["[[roundtrip]]: not supported yet"]),
        ("[[devices]]\nname = \"x\"\n".into(), vec!["[[devices]]: unknown array (expected [[device]], [[originator]] or [[event_policy]])"]),
        ("[device]\nname = \"x\"\n".into(), vec!["device: must be an array of tables, written [[device]]"]),
        ("device = [\"nas1\"]\n".into(), vec!["device (entry 1): must be a table"]),
        ("[[device]\nname = \"x\"\n".into(), vec!["TOML parse error at line 1"]),
    ];
    for (text, want) in &cases {
        let got = match PolicyFile::parse(text) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        };
        assert_eq!(got.len(), want.len(), "for\n{text}\ngot {got:#?}");
        for (got, want) in got.iter().zip(want) {
            assert!(
                got.starts_with(want),
                "for\n{text}\ngot  {got:?}\nwant {want:?}…"
            );
        }
    }
}

#[test]
fn problems_are_listed_in_file_order_all_at_once() {
    let text = format!(
        "colour = 1\n{}{}{}{}{}",
        policy(&[("severity", "\"fatal\"")]),
        originator(&[("address", "\"x\"")]),
        device(&[("ip", "\"nope\"")]),
        device(&[("name", "\"ups1\""), ("id", "-1")]),
        policy(&[("name", "\"Disk ok\""), ("first_match", "\"\"")]),
    );
    let problems = PolicyFile::parse(&text).unwrap_err();
    assert_eq!(
        problems,
        [
            "colour: unknown key",
            r#"device "nas1": ip: invalid IP address syntax"#,
            r#"device "ups1": id: -1 is not a positive integer"#,
            r#"originator "x" (entry 1): address: "x" is not an email address or *@domain"#,
            r#"event_policy "Disk failed": severity: unknown variant `fatal`, expected one of `healthy`, `notice`, `minor`, `major`, `critical`"#,
            r#"event_policy "Disk ok": first_match: must not be empty"#,
        ]
    );
}

#[test]
fn addresses() {
    for good in [
        "veeam@example.com",
        "Veeam.Backup+alerts@Example.COM",
        "*@example.com",
        "root@nas1",
        "o'brien@mail-1.example.co.uk",
        "überwachung@beispiel.de",
    ] {
        assert_eq!(check_address(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "veeam",
        "veeam@",
        "@example.com",
        "*@",
        "a*b*@*",
        "a@b@c",
        ".a@example.com",
        "a.@example.com",
        "a@example..com",
        "a@-example.com",
        "a@example.com.",
        "\"a b\"@example.com",
        "<a@example.com>",
        "a@exa mple.com",
    ] {
        assert!(check_address(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn built_files_are_checked_like_parsed_ones() {
    let mut file = PolicyFile::parse(EXAMPLE).expect("valid");
    file.devices[1].name = "NAS1.example.com".into();
    file.event_policies[1].first_match = "(".into();
    assert_eq!(
        file.check(),
        [
            r#"device "NAS1.example.com" (entry 2): name: duplicate of device entry 1 (device names are compared ignoring case)"#,
            "event_policy \"Veeam job succeeded\": first_match: invalid regex: regex parse error:\n          (\n          ^\n      error: unclosed group",
        ]
    );
}

#[test]
fn the_shipped_example_is_valid_on_its_own() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/policies.example.toml");
    let text = std::fs::read_to_string(path).expect("policies.example.toml ships");
    let file = PolicyFile::parse(&text).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    file.to_model()
        .unwrap_or_else(|p| panic!("{}", p.join("\n")));
}
