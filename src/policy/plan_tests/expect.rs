//! `[[expect]]`: created, updated key by key, left alone, deleted by `--prune` before the
//! devices they keep, and their references to devices and named originators.

use super::*;
use crate::events::model::MatchIn;
use crate::expect::model::{Every, ExpectPolicy, From, Outcome};

/// A named originator, and two expectations about the sample's devices (the second with
/// every default).
const EXPECTS: &str = include_str!("../../../tests/fixtures/expect/policies.toml");

/// The sample with [`EXPECTS`].
fn with_expects() -> String {
    format!("{FILE}{EXPECTS}")
}

/// The second expectation, with this id, about this device (backup-virtual).
fn ups(id: i64, device_id: i64) -> ExpectPolicy {
    ExpectPolicy {
        id,
        name: "UPS self-test".into(),
        device_id,
        from: From::Sender("ups@example.com".into()),
        match_in: MatchIn::SubjectAndBody,
        match_logic: MatchLogic::Text,
        matches: None,
        every: Every::Seconds(7 * 86_400),
        grace_s: 0,
        severity: Severity::Minor,
        failure: vec![],
        success: vec![],
        default_outcome: Outcome::Success,
        start: None,
    }
}

fn counts(created: usize, updated: usize, unchanged: usize, deleted: usize) -> Counts {
    Counts {
        created,
        updated,
        unchanged,
        deleted,
    }
}

#[test]
fn expectations_are_created_then_left_alone() {
    let text = with_expects();
    let p = plan(&file(&text), Some(&Existing::default()), false).expect("plans");
    assert_eq!(p.summary.expects, counts(2, 0, 0, 0));
    let inserts: Vec<&Op> = p
        .ops
        .iter()
        .filter(|op| matches!(op, Op::InsertExpect(_)))
        .collect();
    assert_eq!(inserts.len(), 2);
    // The first device is pinned (4242); the second is new, its id provisional.
    assert_eq!(inserts[1], &Op::InsertExpect(ups(-2, -1)));
    let Op::InsertExpect(nightly) = inserts[0] else {
        unreachable!()
    };
    assert_eq!(
        (
            nightly.id,
            nightly.device_id,
            &nightly.from,
            nightly.grace_s
        ),
        (-1, 4242, &From::Originator("veeam".into()), 7200)
    );

    let state = applied(&text);
    assert_eq!(state.model.expects.len(), 2);
    assert_eq!(state.model.expects[1], ups(2, 4243));
    // The file on its own (`policy test`) declares the same: fresh ids, devices resolved.
    assert_eq!(file(&text).to_model().expect("resolves"), state.model);
    let again = plan(&file(&text), Some(&state), false).expect("plans");
    assert_eq!(again.ops, []);
    assert_eq!(again.summary.expects, counts(0, 0, 2, 0));
    // And so does the export of what was applied.
    let exported = PolicyFile::from_model(&state.model);
    assert_eq!(plan(&exported, Some(&state), true).expect("plans").ops, []);
}

#[test]
fn one_changed_key_is_one_update() {
    let state = applied(&with_expects());
    for (from, to) in [
        ("grace = \"120m\"", "grace = \"3h\""),
        ("timezone = \"Europe/Berlin\"", "timezone = \"UTC\""),
        ("default = \"failure\"", "default = \"success\""),
        (
            "failure = [\"Failed\", \"Error\"]",
            "failure = [\"Error\", \"Failed\"]",
        ),
        ("start = \"started\"\n", ""),
        (
            "originator = \"veeam\"",
            "sender = \"veeam@backup.example.com\"",
        ),
        (
            "device = \"nas1.example.com\"",
            "device = \"backup-virtual\"",
        ),
    ] {
        let changed = format!("{FILE}{}", EXPECTS.replacen(from, to, 1));
        let p = plan(&file(&changed), Some(&state), false).expect("plans");
        assert_eq!(p.summary.expects, counts(0, 1, 1, 0), "{from} -> {to}");
        let [Op::UpdateExpect(e)] = &p.ops[..] else {
            panic!("{from} -> {to}: {:?}", p.ops)
        };
        assert_eq!(e.id, 1, "{from} -> {to}");
        let mut after = state.clone();
        p.execute_in_memory(&mut after);
        assert_eq!(&after.model.expects[0], e);
        assert_eq!(plan(&file(&changed), Some(&after), false).unwrap().ops, []);
    }
    // From a cron expression to a period: every_s for cron.
    let changed = with_expects().replace(
        "cron = \"0 2 * * *\"\ntimezone = \"Europe/Berlin\"\n",
        "every = \"1d\"\n",
    );
    let p = plan(&file(&changed), Some(&state), false).expect("plans");
    let [Op::UpdateExpect(e)] = &p.ops[..] else {
        panic!("{:?}", p.ops)
    };
    assert_eq!(e.every, Every::Seconds(86_400));
}

#[test]
fn prune_deletes_the_expectations_the_file_lacks_before_devices() {
    let state = applied(&with_expects());
    // Without the UPS expectation, and without the device it was about.
    let text = with_expects()
        .replace("[[device]]\nname = \"backup-virtual\"\n\n", "")
        .replace(
            "default_device = \"backup-virtual\"\n",
            "default_device = \"nas1.example.com\"\n",
        )
        .replace(
            "device = \"backup-virtual\"\n",
            "device = \"nas1.example.com\"\n",
        );
    let text = &text[..text.find("\n[[expect]]\nname = \"UPS self-test\"").unwrap()];
    let p = plan(&file(text), Some(&state), true).expect("plans");
    assert_eq!(p.summary.expects, counts(0, 0, 1, 1));
    let deletes: Vec<&Op> = p
        .ops
        .iter()
        .filter(|op| matches!(op, Op::Delete(Table::Expects | Table::Devices, _)))
        .collect();
    assert_eq!(
        deletes,
        [
            &Op::Delete(Table::Expects, vec![2]),
            &Op::Delete(Table::Devices, vec![4243]),
        ]
    );
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    let names: Vec<&str> = after
        .model
        .expects
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["nas1 nightly backup"]);
    assert_eq!(plan(&file(text), Some(&after), true).unwrap().ops, []);
    // Without --prune nothing is deleted.
    let p = plan(&file(text), Some(&state), false).expect("plans");
    assert_eq!(p.summary.expects, counts(0, 0, 1, 0));
    assert!(!p.ops.iter().any(|op| matches!(op, Op::Delete(..))));
}

#[test]
fn references_may_name_what_only_the_database_has_unless_pruning() {
    let state = applied(&with_expects());
    let only = &EXPECTS[EXPECTS.find("[[expect]]").unwrap()..];
    let p = plan(&file(only), Some(&state), false).expect("the database has them");
    assert_eq!(p.ops, []);
    assert_eq!(
        plan(&file(only), Some(&state), true).unwrap_err(),
        [
            r#"expect "nas1 nightly backup": device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#,
            r#"expect "nas1 nightly backup": originator "veeam" is only in the database, and --prune deletes it (add the named originator to the file)"#,
            r#"expect "UPS self-test": device "backup-virtual" is only in the database, and --prune deletes it (add the device to the file)"#,
        ]
    );
    // An originator is named by its name, not its address.
    let missing = only
        .replace(
            "originator = \"veeam\"",
            "originator = \"veeam@backup.example.com\"",
        )
        .replace("device = \"backup-virtual\"", "device = \"ups9\"");
    assert_eq!(
        plan(&file(&missing), Some(&state), false).unwrap_err(),
        [
            r#"expect "nas1 nightly backup": originator "veeam@backup.example.com" is not a named originator in this file or the database"#,
            r#"expect "UPS self-test": device "ups9" is not a device in this file or the database"#,
        ]
    );
}
