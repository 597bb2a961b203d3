//! Planning against what the database holds: nothing for the same file, only what differs,
//! queue members one by one, destinations and round trips moving, pinned ids kept.

use super::*;

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
