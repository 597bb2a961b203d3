use super::*;
use crate::events::model::{Alignment, MatchLogic, PatternType, RegexType, Severity};
use crate::policy::file::DEFAULT_BODY;
use crate::policy::Counts;
use crate::tickets::model::{Access, Messages, Status};

/// The sample shared with the other policy tests: every kind of entry.
const FILE: &str = include_str!("../../tests/fixtures/policies.toml");

/// `FILE` without the entries holding any of these lines (each entry is a paragraph).
fn without(lines: &[&str]) -> String {
    let drop = |entry: &&str| entry.lines().any(|l| lines.contains(&l));
    FILE.split_inclusive("\n\n").filter(|e| !drop(e)).collect()
}

fn file(text: &str) -> PolicyFile {
    PolicyFile::parse(text).expect("valid file")
}

/// The state after applying `text` to an empty database, as the in-memory writes leave it.
fn applied(text: &str) -> Existing {
    let mut state = Existing::default();
    plan(&file(text), Some(&state), false)
        .expect("plans")
        .execute_in_memory(&mut state);
    state
}

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
fn applying_the_same_file_again_plans_nothing() {
    let state = applied(FILE);
    let again = plan(&file(FILE), Some(&state), false).expect("plans");
    assert_eq!(again.ops, []);
    assert!(!again.summary.changed());
    let s = again.summary;
    assert_eq!(s.devices.unchanged, 2);
    for counts in [
        s.originators,
        s.event_policies,
        s.users,
        s.queues,
        s.ticket_templates,
        s.ticket_policies,
        s.roundtrips,
    ] {
        assert_eq!(counts.unchanged, 2);
    }
    // And so does the export of what was applied.
    let exported = PolicyFile::from_model(&state.model);
    let again = plan(&exported, Some(&state), true).expect("plans");
    assert_eq!(again.ops, []);
}

#[test]
fn only_what_differs_is_written() {
    let state = applied(FILE);
    let changed = FILE
        .replace("ip = \"10.6.1.20\"", "ip = \"10.6.1.21\"")
        .replace("severity = \"major\"", "severity = \"critical\"")
        .replace("clears = \"Veeam job failed\"\n", "");
    // The two originators swap places.
    let (head, rest) = changed.split_at(changed.find("[[originator]]").unwrap());
    let (first, rest) = rest.split_at(rest[1..].find("[[originator]]").unwrap() + 1);
    let (second, tail) = rest.split_at(rest.find("[[event_policy]]").unwrap());
    let changed = format!("{head}{second}{first}{tail}");
    let p = plan(&file(&changed), Some(&state), false).expect("plans");
    assert_eq!(
        p.summary.devices,
        Counts {
            created: 0,
            updated: 1,
            unchanged: 1,
            deleted: 0
        }
    );
    assert_eq!(
        p.summary.originators,
        Counts {
            created: 0,
            updated: 2,
            unchanged: 0,
            deleted: 0
        }
    );
    assert_eq!(
        p.summary.event_policies,
        Counts {
            created: 0,
            updated: 2,
            unchanged: 0,
            deleted: 0
        }
    );
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(after.model.originators[0].address, "*@ups.example.com");
    assert_eq!(after.positions, [1, 2]);
    assert!(after.model.event_policies[0].clears_ids.is_empty());
    assert_eq!(
        after.model.event_policies[1].severity,
        Some(Severity::Critical)
    );
    assert_eq!(plan(&file(&changed), Some(&after), false).unwrap().ops, []);
}

#[test]
fn references_may_name_what_only_the_database_has_unless_pruning() {
    let state = applied(FILE);
    let text = r#"
[[originator]]
address = "nas@example.com"
regex_type = "subject"
pattern_type = "classic"
pattern = "NAS"
alignment = "override"
default_device = "nas1.example.com"

[[event_policy]]
name = "NAS ok"
severity = "healthy"
match_logic = "text"
first_match = "ok"
clears = "Veeam job failed"

[[roundtrip]]
name = "NAS loop"
device = "nas1.example.com"
send_to = "probe@customer.example"
from = "rt@mon.example.com"
"#;
    let p = plan(&file(text), Some(&state), false).expect("the database has all three");
    assert_eq!(p.summary.originators.created, 1);
    assert_eq!(p.summary.roundtrips.created, 1);
    assert!(p.ops.contains(&Op::InsertRoundtrip(RoundtripPolicy {
        id: -1,
        name: "NAS loop".into(),
        device_id: 4242,
        send_to: "probe@customer.example".into(),
        from_address: "rt@mon.example.com".into(),
        // The defaults, as "Gmail loop" has them.
        ..state.model.roundtrips[1].clone()
    })));
    assert_eq!(
        plan(&file(text), Some(&state), true).unwrap_err(),
        [
            r#"originator "nas@example.com" (entry 1): default_device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#,
            r#"event_policy "NAS ok": clears "Veeam job failed" is only in the database, and --prune deletes it (add the event policy to the file)"#,
            r#"roundtrip "NAS loop": device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#,
        ]
    );
    let missing = text.replace("nas1.example.com", "nas9");
    assert_eq!(
        plan(&file(&missing), Some(&state), false).unwrap_err(),
        [
            r#"originator "nas@example.com" (entry 1): default_device "nas9" is not a device in this file or the database"#,
            r#"roundtrip "NAS loop": device "nas9" is not a device in this file or the database"#,
        ]
    );
}

#[test]
fn prune_deletes_what_the_file_lacks() {
    let state = applied(FILE);
    let text = &without(&[
        "name = \"nas1.example.com\"",
        "address = \"Veeam@Example.com\"",
        "[[event_policy]]",
        "email = \"bob@example.com\"",
        "name = \"Network\"",
        "name = \"Walk-in\"",
        "[[ticket_policy]]",
        "name = \"Exchange Online loop\"",
    ])
    .replace(", \"Bob@Example.com\"]", "]");
    let p = plan(&file(text), Some(&state), true).expect("plans");
    let counts = |created, updated, unchanged, deleted| Counts {
        created,
        updated,
        unchanged,
        deleted,
    };
    assert_eq!(
        p.summary,
        Summary {
            devices: counts(0, 0, 1, 1),
            // Its position moves from 2 to 1.
            originators: counts(0, 1, 0, 1),
            event_policies: counts(0, 0, 0, 2),
            users: counts(0, 0, 1, 1),
            queues: counts(0, 1, 0, 1),
            ticket_templates: counts(0, 0, 1, 1),
            ticket_policies: counts(0, 0, 0, 2),
            roundtrips: counts(0, 0, 1, 1),
        }
    );
    // Round-trip policies go before devices, which they keep from being deleted.
    let events: Vec<&Op> = p
        .ops
        .iter()
        .filter(|op| {
            matches!(
                op,
                Op::Delete(
                    Table::EventPolicies | Table::Originators | Table::Roundtrips | Table::Devices,
                    _
                )
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            &Op::Delete(Table::EventPolicies, vec![1, 2]),
            &Op::Delete(Table::Originators, vec![1]),
            &Op::Delete(Table::Roundtrips, vec![1]),
            &Op::Delete(Table::Devices, vec![4242]),
        ]
    );
    // Ticket policies go first; then bob leaves the queue, and the rest goes in dependency order.
    let tickets: Vec<&Op> = p
        .ops
        .iter()
        .filter(|op| match op {
            Op::Delete(table, _) => !matches!(
                table,
                Table::EventPolicies | Table::Originators | Table::Roundtrips | Table::Devices
            ),
            Op::RemoveMembers { .. } => true,
            _ => false,
        })
        .collect();
    assert_eq!(
        tickets,
        [
            &Op::Delete(Table::TicketPolicies, vec![1, 2]),
            &Op::RemoveMembers {
                queue_id: 1,
                user_ids: vec![2]
            },
            &Op::Delete(Table::Templates, vec![2]),
            &Op::Delete(Table::Queues, vec![2]),
            &Op::Delete(Table::Users, vec![2]),
        ]
    );
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(after.model.devices.len(), 1);
    assert_eq!(after.model.originators.len(), 1);
    assert_eq!(after.model.event_policies, []);
    assert_eq!(after.model.ticket_policies, []);
    assert_eq!(after.model.queues[0].member_ids, [1]);
    assert_eq!(after.model.roundtrips.len(), 1);
    assert_eq!(plan(&file(text), Some(&after), true).unwrap().ops, []);
    // Without --prune nothing is deleted.
    let p = plan(&file(text), Some(&state), false).expect("plans");
    assert!(!p.ops.iter().any(|op| matches!(op, Op::Delete(..))));
    // A kept ticket policy may not rely on what --prune deletes.
    let policy = "\n[[ticket_policy]]\nname = \"Helpdesk\"\ndestination = \"help@mon.example.com\"\n\
                  reply_address = \"help@mon.example.com\"\ntemplate = \"Walk-in\"\naccess = \"open\"\n";
    assert_eq!(
        plan(&file(&format!("{text}{policy}")), Some(&state), true).unwrap_err(),
        [
            r#"ticket_policy "Helpdesk": template "Walk-in" is only in the database, and --prune deletes it (add the ticket template to the file)"#
        ]
    );
}

#[test]
fn queue_members_change_one_by_one() {
    let state = applied(FILE);
    let text = FILE.replace(
        r#"members = ["alice@example.com", "Bob@Example.com"]"#,
        r#"members = ["bob@example.com", "carol@example.com"]"#,
    ) + "[[user]]\nemail = \"carol@example.com\"\n";
    let p = plan(&file(&text), Some(&state), false).expect("plans");
    assert_eq!(p.summary.queues.updated, 1);
    assert_eq!(p.summary.users.created, 1);
    assert_eq!(
        p.ops,
        [
            Op::InsertUser(User {
                id: -1,
                email: "carol@example.com".into(),
                name: None
            }),
            Op::RemoveMembers {
                queue_id: 1,
                user_ids: vec![1]
            },
            Op::AddMembers {
                queue_id: 1,
                user_ids: vec![-1]
            },
        ]
    );
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(after.model.queues[0].member_ids, [2, 3]);
    assert_eq!(plan(&file(&text), Some(&after), false).unwrap().ops, []);
}

#[test]
fn access_queue_needs_a_template_with_a_queue() {
    let state = applied(FILE);
    // In the file: the policy's own template.
    let text = FILE.replace("access = \"open\"", "access = \"queue\"");
    let problem = r#"ticket_policy "Front desk": access: "queue" admits the members of the template's queue, and ticket template "Walk-in" has no queue"#;
    assert_eq!(file(&text).to_model().unwrap_err(), [problem]);
    // Only in the database: the same.
    let only_policy = &text[text.find("[[ticket_policy]]").unwrap()..];
    assert_eq!(
        plan(&file(only_policy), Some(&state), false).unwrap_err(),
        [problem]
    );
    // A template the file empties while a policy only the database has needs its queue.
    let template = "[[ticket_template]]\nname = \"Helpdesk default\"\nseverity = \"minor\"\n";
    assert_eq!(
        plan(&file(template), Some(&state), false).unwrap_err(),
        [
            r#"ticket_template "Helpdesk default": queue: ticket policy "Helpdesk", which only the database has, has access "queue" and needs this template's queue"#
        ]
    );
    // With --prune that policy goes (and so does everything else the file lacks).
    assert!(plan(&file(template), Some(&state), true).is_ok());
}

#[test]
fn destinations_move_between_policies() {
    let state = applied(FILE);
    // The two policies swap destinations: one is given a placeholder first.
    let swapped = FILE
        .replace("\"Help@Mon.Example.com\"", "\"tmp\"")
        .replace("\"front@mon.example.com\"", "\"help@mon.example.com\"")
        .replace("\"tmp\"", "\"front@mon.example.com\"");
    let p = plan(&file(&swapped), Some(&state), false).expect("plans");
    assert_eq!(p.summary.ticket_policies.updated, 2);
    let ops: Vec<&Op> = p
        .ops
        .iter()
        .filter(|op| !matches!(op, Op::UpdateTicketPolicy(_)))
        .collect();
    assert_eq!(ops, [&Op::FreeDestinations(vec![1, 2])]);
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(
        after.model.ticket_policies[0].destination,
        "front@mon.example.com"
    );
    // A destination a policy only the database has keeps: a problem unless pruning.
    let taken = "[[ticket_policy]]\nname = \"New\"\ndestination = \"FRONT@mon.example.com\"\n\
                 reply_address = \"new@example.com\"\ntemplate = \"Walk-in\"\naccess = \"open\"\n";
    assert_eq!(
        plan(&file(taken), Some(&state), false).unwrap_err(),
        [
            r#"ticket_policy "New": destination: "FRONT@mon.example.com" is the destination of ticket policy "Front desk", which only the database has (give one of them another destination, or use --prune)"#
        ]
    );
    let pruned = format!("{}{taken}", without(&["[[ticket_policy]]"]));
    let p = plan(&file(&pruned), Some(&state), true).expect("plans");
    assert_eq!(
        p.ops.first(),
        Some(&Op::Delete(Table::TicketPolicies, vec![1, 2]))
    );
}

#[test]
fn pinned_ids_cannot_move_or_collide() {
    let state = applied(FILE);
    let text = "[[device]]\nname = \"nas1.example.com\"\nid = 7\n\
                [[device]]\nname = \"new\"\nid = 4243\n";
    assert_eq!(
        plan(&file(text), Some(&state), false).unwrap_err(),
        [
            r#"device "nas1.example.com": id: 7 differs from the id this device has in the database, 4242; a device's id cannot change"#,
            r#"device "new": id: 4243 is already the id of device "backup-virtual" in the database"#,
        ]
    );
    // New pinned devices are inserted before assigned ones, which come after the sequence moved.
    let p = plan(
        &file("[[device]]\nname = \"a\"\n[[device]]\nname = \"b\"\nid = 1\n"),
        None,
        false,
    )
    .unwrap();
    assert!(
        matches!(&p.ops[..], [Op::InsertDevice(b), Op::BumpDeviceIds, Op::InsertDevice(a)] if b.id == 1 && a.id < 0)
    );
}

#[test]
fn a_roundtrip_is_updated_in_place_and_may_move_to_a_new_device() {
    let state = applied(FILE);
    let text = FILE.replace("enabled = false\n", "").replace(
        "\ndevice = \"backup-virtual\"",
        "\ndevice = \"exchange-online\"",
    ) + "\n[[device]]\nname = \"exchange-online\"\n";
    let p = plan(&file(&text), Some(&state), false).expect("plans");
    assert_eq!(
        p.summary.roundtrips,
        Counts {
            created: 0,
            updated: 2,
            unchanged: 0,
            deleted: 0
        }
    );
    // The new device is inserted first; the policy refers to it by its provisional id.
    assert!(matches!(
        &p.ops[..],
        [Op::BumpDeviceIds, Op::InsertDevice(d), Op::UpdateRoundtrip(a), Op::UpdateRoundtrip(b)]
            if d.id == -1 && a.enabled && a.id == 1 && b.device_id == -1 && b.id == 2
    ));
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(after.model.roundtrips[1].device_id, 4244);
    assert_eq!(plan(&file(&text), Some(&after), false).unwrap().ops, []);
}

/// A file with every key the events entries gained in issue 15.
const KEYED: &str = r#"
[[device]]
name = "db1.example.com"

[[originator]]
name = "nagios"
address = "nagios@*"
regex_type = "body"
pattern_type = "advanced"
pattern = '(?m)^Host: (?P<device>\S+)'
alignment = "discard"

[[originator]]
name = "cron"
address = "root@*"
regex_type = "header:X-Cron-Env"
pattern_type = "advanced"
pattern = 'HOSTNAME=(\S+)'
alignment = "discard"

[[event_policy]]
name = "Nagios service"
originators = ["nagios"]
devices = ["db1.example.com"]
match_in = "body"
match_logic = "regex"
first_match = '(?m)^Service: (?P<service>.+)$'
second_match = '(?m)^State: (?P<state>\w+)'
severity = "major"
severity_from = "state"
severity_map = { CRITICAL = "critical", OK = "healthy" }
key = "%D/%{service}"
key_map = { service = { "Disk /VAR" = "Disk /var" } }
message = "%{service} is %{state}"
clears = ["Legacy", "Other"]
expire_healthy_after_s = 86400

[[event_policy]]
name = "Legacy"
severity = "minor"
match_logic = "text"
first_match = "legacy"

[[event_policy]]
name = "Other"
severity = "minor"
match_logic = "text"
first_match = "other"

[[event_policy]]
name = "Noise"
action = "suppress"
originators = ["root@*"]
match_logic = "text"
first_match = "This is a test"
"#;

#[test]
fn every_new_key_is_planned_exported_and_planned_again_as_nothing() {
    let state = applied(KEYED);
    let nagios = &state.model.event_policies[0];
    assert_eq!(nagios.key.as_deref(), Some("%D/%{service}"));
    assert_eq!(nagios.originators, ["nagios"]);
    assert_eq!(nagios.clears_ids, [2, 3]);
    assert_eq!(
        state.model.originators[1].regex_type.as_str(),
        "header:X-Cron-Env"
    );
    let exported = PolicyFile::from_model(&state.model);
    assert_eq!(PolicyFile::parse(&exported.to_toml()), Ok(exported.clone()));
    assert_eq!(plan(&exported, Some(&state), true).expect("plans").ops, []);
    assert_eq!(
        plan(&file(KEYED), Some(&state), false).expect("plans").ops,
        []
    );
}

#[test]
fn scopes_and_captures_must_name_what_exists() {
    let bad = KEYED
        .replace("originators = [\"nagios\"]", "originators = [\"nagois\"]")
        .replace("devices = [\"db1.example.com\"]", "devices = [\"db9\"]")
        .replace("key = \"%D/%{service}\"", "key = \"%D/%{servcie}\"");
    let problems = plan(&file(&bad), None, false).unwrap_err();
    assert_eq!(
        problems,
        [
            r#"event_policy "Nagios service": originators "nagois" is not an originator name or address in this file"#,
            r#"event_policy "Nagios service": devices "db9" is not a device in this file"#,
            r#"event_policy "Nagios service": key: the capture "servcie" is not a named group (?P<servcie>…) of first_match, second_match or an originator pattern its mail can come through"#,
        ]
    );
    // An unscoped policy may use what any originator captures; a scoped one only its own.
    let unscoped = KEYED.replace("originators = [\"nagios\"]\n", "").replace(
        "message = \"%{service} is %{state}\"",
        "message = \"%{device}: %{state}\"",
    );
    assert!(plan(&file(&unscoped), None, false).is_ok());
    let scoped = KEYED.replace(
        "message = \"%{service} is %{state}\"",
        "message = \"%{device}: %{state}\"",
    );
    assert!(
        plan(&file(&scoped), None, false).is_ok(),
        "nagios captures device"
    );
    let other = scoped.replace("originators = [\"nagios\"]", "originators = [\"cron\"]");
    assert_eq!(
        plan(&file(&other), None, false).unwrap_err(),
        [
            r#"event_policy "Nagios service": message: the capture "device" is not a named group (?P<device>…) of first_match, second_match or an originator pattern its mail can come through"#
        ]
    );
}

#[test]
fn naming_an_unnamed_originator_keeps_its_row() {
    let state = applied(FILE);
    let named = FILE.replacen(
        "[[originator]]\naddress = \"Veeam@Example.com\"",
        "[[originator]]\nname = \"veeam\"\naddress = \"Veeam@Example.com\"",
        1,
    );
    let p = plan(&file(&named), Some(&state), true).expect("plans");
    assert_eq!(p.summary.originators.updated, 1);
    assert_eq!(p.summary.originators.created, 0);
    assert_eq!(p.summary.originators.deleted, 0);
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(after.model.originators[0].id, state.model.originators[0].id);
    assert_eq!(after.model.originators[0].name.as_deref(), Some("veeam"));
}
