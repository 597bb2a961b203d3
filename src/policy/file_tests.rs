use super::*;
use crate::policy::check::{check_address, check_mailbox};

/// The sample shared with the other policy tests: every kind of entry.
const SAMPLE: &str = include_str!("../../tests/fixtures/policies.toml");

#[test]
fn the_sample_parses_with_its_defaults() {
    let file = PolicyFile::parse(SAMPLE).expect("valid");
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
    assert_eq!(file.event_policies[0].clears, ["Veeam job failed"]);
    assert_eq!(file.event_policies[1].message, "%M");
    assert_eq!(file.event_policies[1].expire_after_s, Some(86400));
    assert_eq!(
        file.users,
        [
            UserEntry {
                email: "Alice@Example.com".into(),
                name: Some("Alice".into()),
            },
            UserEntry {
                email: "bob@example.com".into(),
                name: None,
            },
        ]
    );
    assert_eq!(
        file.queues[0].members,
        ["alice@example.com", "Bob@Example.com"]
    );
    assert_eq!(file.queues[1].members, Vec::<String>::new());
    assert_eq!(
        file.ticket_templates[1],
        TicketTemplateEntry {
            name: "Walk-in".into(),
            queue: None,
            severity: Severity::Notice,
            status: Status::Working,
            description: "%".into(),
        }
    );
    assert_eq!(file.ticket_templates[0].status, Status::Open);
    assert_eq!(
        file.ticket_policies[1],
        TicketPolicyEntry {
            name: "Front desk".into(),
            destination: "front@mon.example.com".into(),
            reply_address: "front-desk@example.com".into(),
            template: "Walk-in".into(),
            access: Access::Open,
            msg_created: "Ticket %t created: %W".into(),
            msg_updated: "Ticket %t updated: %W".into(),
            msg_failed: "Your ticket could not be created.".into(),
            msg_not_registered: "Only registered users can open tickets here.".into(),
            msg_not_in_queue: "You are not allowed to open tickets in this queue.".into(),
        }
    );
    assert_eq!(file.ticket_policies[0].msg_created, "Ticket %t opened: %W");
    assert_eq!(file.ticket_policies[0].access, Access::Queue);
    assert_eq!(file.roundtrips[0].from, "rt-probe@mon.example.com");
    assert_eq!(
        (file.roundtrips[0].timeout_s, file.roundtrips[0].enabled),
        (900, false)
    );
    assert_eq!(
        file.roundtrips[1],
        RoundtripEntry {
            name: "Gmail loop".into(),
            device: "backup-virtual".into(),
            send_to: "probe@gmail.example".into(),
            from: "rt@mon.example.com".into(),
            interval_s: 300,
            timeout_s: 600,
            enabled: true,
            body: DEFAULT_BODY.into(),
            severity: Severity::Major,
        }
    );
    assert_eq!(file.check(), Vec::<String>::new());
}

/// [`SAMPLE`] with its UPS originator requiring DKIM: the sample file leaves `require_auth` out,
/// as the mail that tests send through it is not verified.
fn sample_with_every_key() -> String {
    let ups = "pattern = 'UPS (\\S+) is on battery'\nalignment = \"discard\"\n";
    assert!(SAMPLE.contains(ups), "the sample's UPS originator");
    SAMPLE.replace(ups, &format!("{ups}require_auth = \"dkim\"\n"))
}

#[test]
fn what_is_written_reads_back_the_same() {
    let file = PolicyFile::parse(&sample_with_every_key()).expect("valid");
    assert_eq!(file.originators[1].require_auth, RequireAuth::Dkim);
    let text = file.to_toml();
    assert_eq!(PolicyFile::parse(&text), Ok(file.clone()));
    assert_eq!(PolicyFile::parse(&text).unwrap().to_toml(), text);
    // Unset optional keys are left out, and so is `require_auth = "none"`.
    assert!(!text.contains("second_match = \"\""), "{text}");
    assert_eq!(text.matches("id = ").count(), 1, "{text}");
    assert_eq!(text.matches("require_auth = ").count(), 1, "{text}");
    assert!(text.contains("require_auth = \"dkim\"\n"), "{text}");
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
        "event_policy" => &[
            ("name", "\"Disk failed\""),
            ("severity", "\"major\""),
            ("match_logic", "\"text\""),
            ("first_match", "\"failed\""),
        ],
        "user" => &[("email", "\"alice@example.com\"")],
        "queue" => &[("name", "\"Desk\"")],
        "ticket_template" => &[("name", "\"Default\""), ("severity", "\"minor\"")],
        "roundtrip" => &[
            ("name", "\"Loop\""),
            ("device", "\"nas1\""),
            ("send_to", "\"probe@customer.example\""),
            ("from", "\"rt@mon.example.com\""),
        ],
        _ => &[
            ("name", "\"Help\""),
            ("destination", "\"help@mon.example.com\""),
            ("reply_address", "\"help@mon.example.com\""),
            ("template", "\"Default\""),
            ("access", "\"open\""),
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
fn user(o: &[(&str, &str)]) -> String {
    entry("user", o)
}
fn queue(o: &[(&str, &str)]) -> String {
    entry("queue", o)
}
fn template(o: &[(&str, &str)]) -> String {
    entry("ticket_template", o)
}
fn ticket_policy(o: &[(&str, &str)]) -> String {
    entry("ticket_policy", o)
}
fn roundtrip(o: &[(&str, &str)]) -> String {
    entry("roundtrip", o)
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
        (originator(&[("regex_type", "\"header:X Device\"")]), vec![r#"originator "alerts@example.com" (entry 1): regex_type: "X Device" is not a header field name"#]),
        (originator(&[("regex_type", "\"header:X-Device\"")]), vec![]),
        (originator(&[("name", "\" x\"")]), vec![r#"originator " x" (entry 1): name: must not start or end with white space"#]),
        // Named originators may share an address; unnamed ones may not, nor may names repeat.
        (originator(&[("name", "\"a\"")]) + &originator(&[("name", "\"b\"")]) + &originator(&[]), vec![]),
        (originator(&[]) + &originator(&[]), vec![r#"originator "alerts@example.com" (entry 2): address: duplicate of originator entry 1"#]),
        (originator(&[("name", "\"a\"")]) + &originator(&[("name", "\"a\"")]), vec![r#"originator "a" (entry 2): name: duplicate of originator entry 1"#]),
        (originator(&[("address", "\"veeam\"")]), vec![r#"originator "veeam" (entry 1): address: "veeam" is not an email address, *@domain, local@* or *@*"#]),
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
                r#"originator "alerts@example.com" (entry 1): regex_type: "header" is not one of subject, body, from, envelope_from, header:<Name>"#,
            ],
        ),
        (originator(&[("require_auth", "\"none\"")]), vec![]),
        (originator(&[("require_auth", "\"dkim\"")]), vec![]),
        (
            originator(&[("require_auth", "\"tls\""), ("pattern", "\"\"")]),
            vec![
                r#"originator "alerts@example.com" (entry 1): require_auth: unknown variant `tls`, expected one of `none`, `dmarc`, `spf`, `dkim`"#,
                r#"originator "alerts@example.com" (entry 1): pattern: must not be empty"#,
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
        (policy(&[("message", "\"%M on %d\"")]), vec![r#"event_policy "Disk failed": message: unknown escape %d (the escapes are %M body, %S subject, %D device, %A sender, %{name} a capture, %% a %)"#]),
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
        (policy(&[("clears", "\"\"")]), vec![r#"event_policy "Disk failed": clears: a name must not be empty"#]),
        (policy(&[("clears", "[\"A\", \"B\", \"A\"]")]), vec![r#"event_policy "Disk failed": clears: "A" is listed twice"#]),
        (policy(&[("clears", "7")]), vec![r#"event_policy "Disk failed": clears: invalid type: integer `7`, expected an event policy name or a list of names"#]),
        (policy(&[("originators", "[\"nagios\", \" \"]"), ("devices", "[\"db1\", \"db1\"]")]), vec![
            r#"event_policy "Disk failed": originators: a name must not be empty"#,
            r#"event_policy "Disk failed": devices: "db1" is listed twice"#,
        ]),
        (policy(&[("severity", "-")]), vec![r#"event_policy "Disk failed": severity: missing (required unless action is "suppress")"#]),
        (policy(&[("action", "\"drop\"")]), vec![r#"event_policy "Disk failed": action: unknown variant `drop`, expected `raise` or `suppress`"#]),
        (policy(&[("action", "\"suppress\""), ("key", "\"%D\"")]), vec![
            r#"event_policy "Disk failed": severity: a suppress policy raises nothing (leave the key out)"#,
            r#"event_policy "Disk failed": key: a suppress policy raises nothing (leave the key out)"#,
        ]),
        (policy(&[("action", "\"suppress\""), ("severity", "-")]), vec![]),
        (policy(&[("severity_from", "\"state\"")]), vec![r#"event_policy "Disk failed": severity_map: required with severity_from"#]),
        (policy(&[("severity_map", "{ OK = \"healthy\" }")]), vec![r#"event_policy "Disk failed": severity_map: needs severity_from"#]),
        (policy(&[("severity_from", "\"two words\""), ("severity_map", "{ OK = \"healthy\", ok = \"notice\", WARN = \"bad\" }")]), vec![
            r#"event_policy "Disk failed": severity_map: WARN: "bad" is not one of healthy, notice, minor, major, critical"#,
            r#"event_policy "Disk failed": severity_from: "two words" cannot name a capture"#,
        ]),
        (policy(&[("severity_from", "\"two words\""), ("severity_map", "{ OK = \"healthy\", ok = \"notice\" }")]), vec![
            r#"event_policy "Disk failed": severity_from: "two words" cannot name a capture"#,
            r#"event_policy "Disk failed": severity_map: "ok" is there twice (values are compared ignoring case)"#,
        ]),
        (policy(&[("key", "\"\"")]), vec![r#"event_policy "Disk failed": key: must not be empty"#]),
        (policy(&[("key", "\"%{service\"")]), vec![r#"event_policy "Disk failed": key: %{service… is not a capture"#]),
        (policy(&[("key_map", "{ service = { a = \"b\" } }")]), vec![r#"event_policy "Disk failed": key_map: needs key"#]),
        (policy(&[("key", "\"%D\""), ("key_map", "{ \"9\" = { a = \"b\", A = \"c\" } }")]), vec![
            r#"event_policy "Disk failed": key_map: "9" cannot name a capture"#,
            r#"event_policy "Disk failed": key_map.9: "a" is there twice"#,
        ]),
        (policy(&[("rate", "\"10/min\"")]), vec![]),
        (policy(&[("rate", "\"1/h\"")]), vec![]),
        (policy(&[("rate", "\"ten/min\"")]), vec![r#"event_policy "Disk failed": rate: "ten/min" is not a rate such as 10/min (per s, min or h)"#]),
        (policy(&[("rate", "\"0/s\"")]), vec![r#"event_policy "Disk failed": rate: "0/s": the count must be at least 1"#]),
        (policy(&[("rate", "\"5/day\"")]), vec![r#"event_policy "Disk failed": rate: "5/day" is not a rate"#]),
        (policy(&[("expire_healthy_after_s", "0")]), vec![r#"event_policy "Disk failed": expire_healthy_after_s: 0 is not a positive number of seconds"#]),
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
        (user(&[("email", "\"alice\"")]), vec![r#"user "alice": email: "alice" is not an email address"#]),
        (user(&[("email", "\"*@example.com\"")]), vec![r#"user "*@example.com": email: "*@example.com" is not an email address"#]),
        (user(&[("email", "-")]), vec!["user (entry 1): email: missing (required)"]),
        (
            user(&[]) + &user(&[("email", "\"Alice@Example.COM\"")]),
            vec![r#"user "Alice@Example.COM" (entry 2): email: duplicate of user entry 1 (addresses are compared ignoring case)"#],
        ),
        (user(&[("name", "\"\"")]), vec![r#"user "alice@example.com": name: must not be empty (leave the key out instead)"#]),
        (user(&[("name", "\"Alice\""), ("phone", "1")]), vec![r#"user "alice@example.com": phone: unknown key"#]),
        (queue(&[("name", "\"\"")]), vec!["queue (entry 1): name: must not be empty"]),
        (queue(&[]) + &queue(&[]), vec![r#"queue "Desk" (entry 2): name: duplicate of queue entry 1"#]),
        // Queue names are compared exactly.
        (queue(&[]) + &queue(&[("name", "\"desk\"")]), vec![]),
        (
            queue(&[("members", "[\"a@example.com\", \"b@example.com\", \"A@EXAMPLE.com\"]")]),
            vec![r#"queue "Desk": members: "A@EXAMPLE.com" is listed twice (addresses are compared ignoring case)"#],
        ),
        (queue(&[("members", "\"a@example.com\"")]), vec![r#"queue "Desk": members: invalid type: string "a@example.com", expected a sequence"#]),
        (template(&[("name", "-"), ("severity", "-")]), vec!["ticket_template (entry 1): name: missing (required)", "ticket_template (entry 1): severity: missing (required)"]),
        (template(&[]) + &template(&[]), vec![r#"ticket_template "Default" (entry 2): name: duplicate of ticket_template entry 1"#]),
        (template(&[("severity", "\"urgent\"")]), vec![r#"ticket_template "Default": severity: unknown variant `urgent`, expected one of `healthy`, `notice`, `minor`, `major`, `critical`"#]),
        (template(&[("status", "\"closed\"")]), vec![r#"ticket_template "Default": status: unknown variant `closed`, expected one of `open`, `working`, `pending`, `resolved`"#]),
        (template(&[("queue", "\"\"")]), vec![r#"ticket_template "Default": queue: must not be empty (leave the key out instead)"#]),
        (template(&[("description", "\"\"")]), vec![r#"ticket_template "Default": description: must not be empty (leave it out for "%")"#]),
        (
            ticket_policy(&[("name", "-"), ("destination", "-"), ("reply_address", "-"), ("template", "-"), ("access", "-")]),
            vec![
                "ticket_policy (entry 1): name: missing (required)",
                "ticket_policy (entry 1): destination: missing (required)",
                "ticket_policy (entry 1): reply_address: missing (required)",
                "ticket_policy (entry 1): template: missing (required)",
                "ticket_policy (entry 1): access: missing (required)",
            ],
        ),
        (ticket_policy(&[("access", "\"anyone\"")]), vec![r#"ticket_policy "Help": access: unknown variant `anyone`, expected one of `open`, `registered`, `queue`"#]),
        (
            ticket_policy(&[("destination", "\"*@mon.example.com\""), ("reply_address", "\"help\"")]),
            vec![
                r#"ticket_policy "Help": destination: "*@mon.example.com" is not an email address"#,
                r#"ticket_policy "Help": reply_address: "help" is not an email address"#,
            ],
        ),
        (
            ticket_policy(&[]) + &ticket_policy(&[("name", "\"Help 2\""), ("destination", "\"HELP@mon.example.com\"")]),
            vec![r#"ticket_policy "Help 2": destination: duplicate of ticket_policy entry 1 (addresses are compared ignoring case)"#],
        ),
        (ticket_policy(&[]) + &ticket_policy(&[]), vec![
            r#"ticket_policy "Help" (entry 2): name: duplicate of ticket_policy entry 1"#,
            r#"ticket_policy "Help" (entry 2): destination: duplicate of ticket_policy entry 1"#,
        ]),
        (ticket_policy(&[("template", "\"\"")]), vec![r#"ticket_policy "Help": template: must not be empty"#]),
        (
            ticket_policy(&[("msg_created", "\"\""), ("msg_not_in_queue", "\" \"")]),
            vec![
                r#"ticket_policy "Help": msg_created: must not be empty (leave it out for the default notice)"#,
                r#"ticket_policy "Help": msg_not_in_queue: must not be empty"#,
            ],
        ),
        (ticket_policy(&[("msg_closed", "\"Closed\"")]), vec![r#"ticket_policy "Help": msg_closed: unknown key"#]),
        ("colour = \"blue\"\n".into(), vec!["colour: unknown key"]),
        (
            roundtrip(&[("name", "-"), ("device", "-"), ("send_to", "-"), ("from", "-")]),
            vec![
                "roundtrip (entry 1): name: missing (required)",
                "roundtrip (entry 1): device: missing (required)",
                "roundtrip (entry 1): send_to: missing (required)",
                "roundtrip (entry 1): from: missing (required)",
            ],
        ),
        (roundtrip(&[("name", "\" Loop\"")]), vec![r#"roundtrip " Loop": name: must not start or end with white space"#]),
        (roundtrip(&[]) + &roundtrip(&[]), vec![r#"roundtrip "Loop" (entry 2): name: duplicate of roundtrip entry 1"#]),
        // Round trip names are compared exactly.
        (roundtrip(&[]) + &roundtrip(&[("name", "\"loop\"")]), vec![]),
        (roundtrip(&[("device", "\"\"")]), vec![r#"roundtrip "Loop": device: must not be empty"#]),
        (
            roundtrip(&[("send_to", "\"*@customer.example\""), ("from", "\"rt\"")]),
            vec![
                r#"roundtrip "Loop": send_to: "*@customer.example" is not an email address"#,
                r#"roundtrip "Loop": from: "rt" is not an email address"#,
            ],
        ),
        (
            roundtrip(&[("interval_s", "0"), ("timeout_s", "-1")]),
            vec![
                r#"roundtrip "Loop": interval_s: 0 is not a positive number of seconds"#,
                r#"roundtrip "Loop": timeout_s: -1 is not a positive number of seconds"#,
            ],
        ),
        // A timeout longer than the interval: probes overlap, each timed on its own.
        (roundtrip(&[("interval_s", "60"), ("timeout_s", "3600")]), vec![]),
        (roundtrip(&[("interval_s", "\"5m\"")]), vec![r#"roundtrip "Loop": interval_s: invalid type: string "5m", expected i32"#]),
        (roundtrip(&[("timeout_s", "3000000000")]), vec![r#"roundtrip "Loop": timeout_s: invalid value: integer `3000000000`, expected i32"#]),
        (roundtrip(&[("enabled", "\"yes\"")]), vec![r#"roundtrip "Loop": enabled: invalid type: string "yes", expected a boolean"#]),
        (roundtrip(&[("severity", "\"fatal\"")]), vec![r#"roundtrip "Loop": severity: unknown variant `fatal`, expected one of `healthy`, `notice`, `minor`, `major`, `critical`"#]),
        (roundtrip(&[("body", "\" \"")]), vec![r#"roundtrip "Loop": body: must not be empty (leave it out for the default text)"#]),
        (roundtrip(&[("from_address", "\"rt@mon.example.com\"")]), vec![r#"roundtrip "Loop": from_address: unknown key"#]),
        ("[[devices]]\nname = \"x\"\n".into(), vec!["[[devices]]: unknown array (expected [[device]], [[originator]], [[event_policy]], [[user]], [[queue]], [[ticket_template]], [[ticket_policy]], [[roundtrip]], [[expect]])"]),
        ("[user]\nemail = \"a@example.com\"\n".into(), vec!["user: must be an array of tables, written [[user]]"]),
        ("[device]\nname = \"x\"\n".into(), vec!["device: must be an array of tables, written [[device]]"]),
        ("device = [\"nas1\"]\n".into(), vec!["device (entry 1): must be a table"]),
        ("[[device]\nname = \"x\"\n".into(), vec!["TOML parse error at line 1"]),
    ];
    assert_problems(&cases);
}

/// Each text reads with exactly its problems, in order (each given by its start).
pub(crate) fn assert_problems(cases: &[(String, Vec<&str>)]) {
    for (text, want) in cases {
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
fn an_originator_may_require_its_sender_verified() {
    let text = originator(&[("require_auth", "\"dkim\"")])
        + &originator(&[("address", "\"ups@example.com\"")]);
    let file = PolicyFile::parse(&text).expect("valid");
    let required: Vec<RequireAuth> = file.originators.iter().map(|o| o.require_auth).collect();
    // Absent: every mail counts.
    assert_eq!(required, [RequireAuth::Dkim, RequireAuth::None]);
    for value in RequireAuth::ALL {
        let text = originator(&[("require_auth", &format!("{:?}", value.as_str()))]);
        let file = PolicyFile::parse(&text).expect("valid");
        assert_eq!(file.originators[0].require_auth, *value);
        // Written only when it is not the default, and read back the same.
        let written = file.to_toml();
        assert_eq!(
            written.contains("require_auth"),
            *value != RequireAuth::None,
            "{written}"
        );
        assert_eq!(PolicyFile::parse(&written), Ok(file));
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
            r#"originator "x" (entry 1): address: "x" is not an email address, *@domain, local@* or *@*"#,
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
        "root@*",
        "Monit@*",
        "*@*",
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
        "*@*.example.com",
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
        assert!(check_mailbox(bad).is_err(), "{bad:?} accepted");
    }
    // A mailbox is an address without the wildcard.
    assert_eq!(check_mailbox("veeam@example.com"), Ok(()));
    assert_eq!(check_mailbox("a*b@example.com"), Ok(()));
    assert!(check_mailbox("*@example.com").is_err());
    assert!(check_mailbox("root@*").is_err());
}

#[test]
fn built_files_are_checked_like_parsed_ones() {
    let mut file = PolicyFile::parse(SAMPLE).expect("valid");
    file.devices[1].name = "NAS1.example.com".into();
    file.event_policies[0].first_match = "(".into();
    file.users[1].email = "bob".into();
    assert_eq!(
        file.check(),
        [
            r#"device "NAS1.example.com" (entry 2): name: duplicate of device entry 1 (device names are compared ignoring case)"#,
            "event_policy \"Veeam job succeeded\": first_match: invalid regex: regex parse error:\n          (\n          ^\n      error: unclosed group",
            r#"user "bob": email: "bob" is not an email address"#,
        ]
    );
}

/// The `[inbound]` of a config that authorizes `domains`.
fn inbound(domains: &[&str]) -> Inbound {
    Inbound {
        authorized_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        notify_local_part: "notify".into(),
        strip_fqdn: false,
        alert_message: Default::default(),
        auth: Default::default(),
    }
}

#[test]
fn ticket_destinations_must_be_reachable_under_the_config() {
    let text = ticket_policy(&[("destination", "\"help@Example.org\"")])
        + &ticket_policy(&[
            ("name", "\"Events\""),
            ("destination", "\"Notify@mon.example.com\""),
        ])
        + &ticket_policy(&[
            ("name", "\"Ok\""),
            ("destination", "\"ok@OPS.example.com\""),
        ]);
    let file = PolicyFile::parse(&text).expect("valid on its own");
    assert_eq!(
        file.check_with_config(&inbound(&["mon.example.com", "ops.example.com"])),
        [
            r#"ticket_policy "Help": destination: "help@Example.org" is not at an authorized domain of the config ([inbound] authorized_domains: mon.example.com, ops.example.com), so Postfix would refuse mail for it"#,
            r#"ticket_policy "Events": destination: "Notify@mon.example.com" is the config's events address (notify_local_part at an authorized domain)"#,
        ]
    );
}

#[test]
fn the_shipped_example_is_valid_on_its_own_and_with_the_shipped_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/policies.example.toml"))
        .expect("policies.example.toml ships");
    let file = PolicyFile::parse(&text).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    file.to_model()
        .unwrap_or_else(|p| panic!("{}", p.join("\n")));
    let config = std::fs::read_to_string(format!("{root}/mailops.example.toml"))
        .expect("mailops.example.toml ships");
    let config = crate::config::Config::parse(&config, None).expect("the example config is valid");
    assert_eq!(
        file.check_with_config(&config.inbound),
        Vec::<String>::new()
    );
    assert!(
        !file.ticket_policies.is_empty(),
        "the example shows tickets"
    );
    // Round trips are commented out (they would mail probes once [outbound] is set), and so is
    // the expected mail (it would raise misses on a machine that gets no backup reports):
    // valid too.
    assert!(file.roundtrips.is_empty(), "the example sends no probes");
    assert!(file.expects.is_empty(), "the example expects no mail");
    let example = &text[text
        .find("\n# [[device]]\n")
        .expect("a commented round trip")..];
    let uncommented: String = example
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix('#').unwrap_or(l).trim_start()))
        .collect();
    let file = PolicyFile::parse(&format!("{text}{uncommented}"))
        .unwrap_or_else(|p| panic!("{}", p.join("\n")));
    let model = file
        .to_model()
        .unwrap_or_else(|p| panic!("{}", p.join("\n")));
    assert_eq!(model.roundtrips.len(), 1);
    assert_eq!(model.expects.len(), 1);
}
