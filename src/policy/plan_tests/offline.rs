//! The offline model (`policy test`, `check`): fresh database ids and references resolved within
//! the file alone.

use super::*;
use crate::events::model::RequireAuth;

#[test]
fn the_offline_model_has_fresh_database_ids_and_resolved_references() {
    let model = file(FILE).to_model().expect("resolves");
    let devices: Vec<(i64, &str)> = model
        .devices
        .iter()
        .map(|d| (d.id, d.name.as_str()))
        .collect();
    // The pinned id first, then the next ones after it, in file order.
    assert_eq!(
        devices,
        [(4242, "nas1.example.com"), (4243, "backup-virtual")]
    );
    assert_eq!(
        model.originators,
        [
            Originator {
                id: 1,
                name: None,
                address: "veeam@example.com".into(),
                regex_type: RegexType::Subject,
                pattern_type: PatternType::Classic,
                pattern: "Backup job for".into(),
                alignment: Alignment::DefaultIfUnmatched,
                default_device_id: Some(4243),
                require_auth: RequireAuth::None,
            },
            Originator {
                id: 2,
                name: None,
                address: "*@ups.example.com".into(),
                regex_type: RegexType::Body,
                pattern_type: PatternType::Advanced,
                pattern: r"UPS (\S+) is on battery".into(),
                alignment: Alignment::Discard,
                default_device_id: None,
                require_auth: RequireAuth::None,
            },
        ]
    );
    assert_eq!(
        model.event_policies[0],
        EventPolicy {
            id: 1,
            name: "Veeam job succeeded".into(),
            severity: Some(Severity::Healthy),
            message: "%S on %D".into(),
            match_logic: MatchLogic::Regex,
            first_match: "Success(ful)?".into(),
            clears_ids: vec![2],
            ..EventPolicy::default()
        }
    );
    assert_eq!(model.event_policies[1].id, 2);
    assert_eq!(model.event_policies[1].expire_after_s, Some(86400));
    assert_eq!(
        model.users,
        [
            User {
                id: 1,
                email: "alice@example.com".into(),
                name: Some("Alice".into()),
            },
            User {
                id: 2,
                email: "bob@example.com".into(),
                name: None,
            },
        ]
    );
    assert_eq!(
        model.queues,
        [
            Queue {
                id: 1,
                name: "Service Desk".into(),
                member_ids: vec![1, 2],
            },
            Queue {
                id: 2,
                name: "Network".into(),
                member_ids: vec![],
            },
        ]
    );
    assert_eq!(
        model.templates,
        [
            Template {
                id: 1,
                name: "Helpdesk default".into(),
                queue_id: Some(1),
                severity: Severity::Minor,
                status: Status::Open,
                description: "Email: %".into(),
            },
            Template {
                id: 2,
                name: "Walk-in".into(),
                queue_id: None,
                severity: Severity::Notice,
                status: Status::Working,
                description: "%".into(),
            },
        ]
    );
    assert_eq!(
        model.ticket_policies[0],
        TicketPolicy {
            id: 1,
            name: "Helpdesk".into(),
            destination: "help@mon.example.com".into(),
            reply_address: "help@mon.example.com".into(),
            template_id: 1,
            access: Access::Queue,
            messages: Messages {
                created: "Ticket %t opened: %W".into(),
                updated: "Ticket %t updated: %W".into(),
                failed: "Your ticket could not be created.".into(),
                not_registered: "Only registered users can open tickets here.".into(),
                not_in_queue: "You are not allowed to open tickets in this queue.".into(),
            },
        }
    );
    assert_eq!(
        (
            model.ticket_policies[1].id,
            model.ticket_policies[1].template_id
        ),
        (2, 2)
    );
    assert_eq!(
        model.roundtrips,
        [
            RoundtripPolicy {
                id: 1,
                name: "Exchange Online loop".into(),
                device_id: 4242,
                send_to: "RT-Probe@Customer.example".into(),
                from_address: "rt-probe@mon.example.com".into(),
                interval_s: 60,
                timeout_s: 900,
                enabled: false,
                body: "mailops round-trip probe - forward to notify@mon.example.com".into(),
                severity: Severity::Critical,
            },
            RoundtripPolicy {
                id: 2,
                name: "Gmail loop".into(),
                device_id: 4243,
                send_to: "probe@gmail.example".into(),
                from_address: "rt@mon.example.com".into(),
                interval_s: 300,
                timeout_s: 600,
                enabled: true,
                body: DEFAULT_BODY.into(),
                severity: Severity::Major,
            },
        ]
    );
}

#[test]
fn the_offline_model_resolves_within_the_file_only() {
    let text = FILE
        .replace(
            "default_device = \"backup-virtual\"",
            "default_device = \"backup\"",
        )
        .replace("clears = \"Veeam job failed\"", "clears = \"Veeam failed\"")
        .replace("\"Bob@Example.com\"]", "\"carol@example.com\"]")
        .replace("queue = \"Service Desk\"", "queue = \"Desk\"")
        .replace("template = \"Walk-in\"", "template = \"Walk in\"")
        .replace("\ndevice = \"backup-virtual\"", "\ndevice = \"backup\"");
    assert_eq!(
        file(&text).to_model().unwrap_err(),
        [
            r#"originator "Veeam@Example.com" (entry 1): default_device "backup" is not a device in this file"#,
            r#"event_policy "Veeam job succeeded": clears "Veeam failed" is not an event policy in this file"#,
            r#"queue "Service Desk": members "carol@example.com" is not a user in this file"#,
            r#"ticket_template "Helpdesk default": queue "Desk" is not a queue in this file"#,
            r#"ticket_policy "Front desk": template "Walk in" is not a ticket template in this file"#,
            r#"roundtrip "Gmail loop": device "backup" is not a device in this file"#,
        ]
    );
    // Without ids anywhere, devices count from 1.
    let model = file("[[device]]\nname = \"a\"\n[[device]]\nname = \"b\"\n")
        .to_model()
        .unwrap();
    assert_eq!(
        model.devices.iter().map(|d| d.id).collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn a_required_verification_is_carried_and_changing_it_alone_is_an_update() {
    // The UPS originator is the sample's only entry that discards.
    let discard = "alignment = \"discard\"\n";
    assert_eq!(FILE.matches(discard).count(), 1);
    let dkim = FILE.replace(discard, &format!("{discard}require_auth = \"dkim\"\n"));
    let model = file(&dkim).to_model().expect("resolves");
    let required: Vec<RequireAuth> = model.originators.iter().map(|o| o.require_auth).collect();
    assert_eq!(required, [RequireAuth::None, RequireAuth::Dkim]);

    let state = applied(FILE);
    let p = plan(&file(&dkim), Some(&state), false).expect("plans");
    assert_eq!(
        p.summary.originators,
        Counts {
            created: 0,
            updated: 1,
            unchanged: 1,
            deleted: 0
        }
    );
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(after.model.originators, model.originators);
    assert_eq!(plan(&file(&dkim), Some(&after), false).unwrap().ops, []);
    // And its export says so.
    let exported = PolicyFile::from_model(&after.model).to_toml();
    assert_eq!(
        exported.matches("require_auth = \"dkim\"").count(),
        1,
        "{exported}"
    );
}
