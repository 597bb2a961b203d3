use super::*;
use crate::events::model::{Alignment, MatchLogic, PatternType, RegexType, Severity};
use crate::policy::Counts;

const FILE: &str = r#"
[[device]]
name = "backup-virtual"

[[device]]
name = "nas1.example.com"
id = 4242
ip = "10.6.1.20"

[[device]]
name = "ups1"

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
pattern = 'UPS (\S+)'
alignment = "override"
default_device = "ups1"

[[event_policy]]
name = "Veeam job succeeded"
severity = "healthy"
match_logic = "text"
first_match = "Success"
clears = "Veeam job failed"

[[event_policy]]
name = "Veeam job failed"
severity = "major"
match_logic = "regex"
first_match = "Failed|Error"
expire_after_s = 3600
"#;

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
        [
            (4242, "nas1.example.com"),
            (4243, "backup-virtual"),
            (4244, "ups1")
        ]
    );
    assert_eq!(
        model.originators,
        [
            Originator {
                id: 1,
                address: "veeam@example.com".into(),
                regex_type: RegexType::Subject,
                pattern_type: PatternType::Classic,
                pattern: "Backup job for".into(),
                alignment: Alignment::DefaultIfUnmatched,
                default_device_id: Some(4243),
            },
            Originator {
                id: 2,
                address: "*@ups.example.com".into(),
                regex_type: RegexType::Body,
                pattern_type: PatternType::Advanced,
                pattern: r"UPS (\S+)".into(),
                alignment: Alignment::Override,
                default_device_id: Some(4244),
            },
        ]
    );
    assert_eq!(
        model.event_policies[0],
        EventPolicy {
            id: 1,
            name: "Veeam job succeeded".into(),
            severity: Severity::Healthy,
            message: "%M".into(),
            match_logic: MatchLogic::Text,
            first_match: "Success".into(),
            second_match: None,
            clears_id: Some(2),
            expire_after_s: None,
        }
    );
    assert_eq!(model.event_policies[1].id, 2);
    assert_eq!(model.event_policies[1].expire_after_s, Some(3600));
}

#[test]
fn the_offline_model_resolves_within_the_file_only() {
    let text = FILE
        .replace("default_device = \"ups1\"", "default_device = \"ups9\"")
        .replace("clears = \"Veeam job failed\"", "clears = \"Veeam failed\"");
    assert_eq!(
        file(&text).to_model().unwrap_err(),
        [
            r#"originator "*@ups.example.com" (entry 2): default_device "ups9" is not a device in this file"#,
            r#"event_policy "Veeam job succeeded": clears "Veeam failed" is not an event policy in this file"#,
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
    assert_eq!(again.summary.devices.unchanged, 3);
    assert_eq!(again.summary.originators.unchanged, 2);
    assert_eq!(again.summary.event_policies.unchanged, 2);
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
            unchanged: 2,
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
    assert_eq!(after.model.event_policies[0].clears_id, None);
    assert_eq!(after.model.event_policies[1].severity, Severity::Critical);
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
"#;
    let p = plan(&file(text), Some(&state), false).expect("the database has both");
    assert_eq!(p.summary.originators.created, 1);
    assert_eq!(
        plan(&file(text), Some(&state), true).unwrap_err(),
        [
            r#"originator "nas@example.com" (entry 1): default_device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#,
            r#"event_policy "NAS ok": clears "Veeam job failed" is only in the database, and --prune deletes it (add the event policy to the file)"#,
        ]
    );
    let missing = text.replace("nas1.example.com", "nas9");
    assert_eq!(
        plan(&file(&missing), Some(&state), false).unwrap_err(),
        [
            r#"originator "nas@example.com" (entry 1): default_device "nas9" is not a device in this file or the database"#
        ]
    );
}

#[test]
fn prune_deletes_what_the_file_lacks() {
    let state = applied(FILE);
    let text = r#"
[[device]]
name = "ups1"

[[originator]]
address = "*@UPS.example.com"
regex_type = "body"
pattern_type = "advanced"
pattern = 'UPS (\S+)'
alignment = "override"
default_device = "ups1"
"#;
    let p = plan(&file(text), Some(&state), true).expect("plans");
    assert_eq!(
        p.summary.devices,
        Counts {
            created: 0,
            updated: 0,
            unchanged: 1,
            deleted: 2
        }
    );
    assert_eq!(
        p.summary.originators,
        Counts {
            created: 0,
            updated: 1,
            unchanged: 0,
            deleted: 1
        }
    );
    assert_eq!(p.summary.event_policies.deleted, 2);
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(after.model.devices.len(), 1);
    assert_eq!(after.model.originators.len(), 1);
    assert_eq!(after.model.event_policies, []);
    assert_eq!(plan(&file(text), Some(&after), true).unwrap().ops, []);
    // Without --prune nothing is deleted.
    let p = plan(&file(text), Some(&state), false).expect("plans");
    assert!(!p.ops.iter().any(|op| matches!(
        op,
        Op::DeleteDevices(_) | Op::DeleteOriginators(_) | Op::DeleteEventPolicies(_)
    )));
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
