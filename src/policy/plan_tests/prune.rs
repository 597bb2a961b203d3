//! `--prune`: what the file lacks is deleted.

use super::*;

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
            expects: counts(0, 0, 0, 0),
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
