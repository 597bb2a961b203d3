//! Device alignment: which originator policy finds the device, by name, IP or ID, with classic
//! and advanced patterns, strip FQDN, the device from the sender or a header.

use super::*;

fn device_of(p: &Policies, a: &Alert<'_>, strip_fqdn: bool) -> Option<String> {
    let settings = Settings {
        strip_fqdn,
        ..Settings::default()
    };
    evaluate(p, a, settings).device.map(|d| d.name.to_owned())
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
            d.device.map(|d| d.name),
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
