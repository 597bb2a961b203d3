//! `[[expect]]` through `policy apply` and `policy export`: the rows, nothing written when
//! nothing differs, one key one update, the export applying as nothing, `--prune`.

use super::{apply, counts, prune, FILE};
use crate::support::db::TestDb;
use crate::support::services::needs;
use mailops::policy;
use serde_json::{json, Value};

/// A named originator, and two expectations about the sample's devices (the second with
/// every default).
const EXPECTS: &str = include_str!("../../fixtures/expect/policies.toml");

/// The `expect_policies` rows, every column but the ids, the device by name.
async fn rows(db: &TestDb) -> Vec<Value> {
    db.client()
        .await
        .query(
            "SELECT to_jsonb(p) - 'id' - 'device_id' || jsonb_build_object('device', d.name)
             FROM expect_policies p JOIN devices d ON d.id = p.device_id ORDER BY p.id",
            &[],
        )
        .await
        .expect("expect_policies")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Each row's `xmin`, which any write (even of equal values) changes.
async fn versions(db: &TestDb) -> Vec<String> {
    db.client()
        .await
        .query("SELECT xmin::text FROM expect_policies ORDER BY id", &[])
        .await
        .expect("xmin")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn expectations_are_applied_exported_and_pruned() {
    needs!(Database);
    let db = TestDb::new().await;
    let text = format!("{FILE}{EXPECTS}");
    let summary = apply(&db, &text).await;
    assert_eq!(summary.expects, counts(2, 0, 0, 0));
    assert!(
        summary
            .to_string()
            .ends_with("expected-mail policies: 2 created, 0 updated, 0 unchanged, 0 deleted\n"),
        "{summary}"
    );
    assert_eq!(
        rows(&db).await,
        [
            json!({
                "name": "nas1 nightly backup",
                "device": "nas1.example.com",
                "sender": null,
                "originator": "veeam",
                "match_in": "subject",
                "match_logic": "regex",
                "match": r"Backup job (?P<job>\S+)",
                "every_s": null,
                "cron": "0 2 * * *",
                "timezone": "Europe/Berlin",
                "grace_s": 7200,
                "severity": "critical",
                "failure": ["Failed", "Error"],
                "success": ["Success"],
                "default_outcome": "failure",
                "start_match": "started",
            }),
            json!({
                "name": "UPS self-test",
                "device": "backup-virtual",
                "sender": "ups@example.com",
                "originator": null,
                "match_in": "subject_and_body",
                "match_logic": "text",
                "match": null,
                "every_s": 7 * 86_400,
                "cron": null,
                "timezone": "UTC",
                "grace_s": 0,
                "severity": "minor",
                "failure": [],
                "success": [],
                "default_outcome": "success",
                "start_match": null,
            }),
        ]
    );

    // The same file again: nothing written.
    let before = versions(&db).await;
    let summary = apply(&db, &text).await;
    assert_eq!(summary.expects, counts(0, 0, 2, 0));
    assert!(!summary.changed(), "{summary}");
    assert_eq!(versions(&db).await, before);

    // One key changed: that row only.
    let changed = text.replace("grace = \"120m\"", "grace = \"3h\"");
    let summary = apply(&db, &changed).await;
    assert_eq!(summary.expects, counts(0, 1, 1, 0));
    let after = versions(&db).await;
    assert_ne!(after[0], before[0]);
    assert_eq!(after[1], before[1]);
    assert_eq!(rows(&db).await[0]["grace_s"], 3 * 3600);

    // The export: defaults left out, durations as written, and applying it changes nothing.
    let exported = policy::export(&db.pool).await.expect("export");
    assert!(
        exported.contains(
            "[[expect]]\nname = \"UPS self-test\"\ndevice = \"backup-virtual\"\n\
             sender = \"ups@example.com\"\nevery = \"7d\"\nseverity = \"minor\"\n"
        ),
        "{exported}"
    );
    assert!(exported.contains("grace = \"3h\"\n"), "{exported}");
    let summary = apply(&db, &exported).await;
    assert!(!summary.changed(), "{summary}");
    assert_eq!(versions(&db).await, after);

    // --prune: the expectation the file lacks goes (its state and reports with it), before
    // the device it kept from being deleted.
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO expect_state (expect_policy_id, due_at)
             SELECT id, now() FROM expect_policies WHERE name = 'UPS self-test';
         INSERT INTO expect_reports (expect_policy_id, outcome)
             SELECT id, 'missed' FROM expect_policies WHERE name = 'UPS self-test'",
    )
    .await
    .expect("state and a report");
    let without_ups = &changed[..changed
        .find("\n[[expect]]\nname = \"UPS self-test\"")
        .unwrap()];
    let without_device = without_ups
        .replace("[[device]]\nname = \"backup-virtual\"\n\n", "")
        .replace(
            "default_device = \"backup-virtual\"",
            "default_device = \"nas1.example.com\"",
        )
        .replace(
            "\ndevice = \"backup-virtual\"",
            "\ndevice = \"nas1.example.com\"",
        );
    let summary = prune(&db, &without_device).await.expect("prunes");
    assert_eq!(summary.expects, counts(0, 0, 1, 1));
    assert_eq!(summary.devices, counts(0, 0, 1, 1));
    let names: Vec<Value> = rows(&db)
        .await
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, ["nas1 nightly backup"]);
    let left: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM expect_state) + (SELECT count(*) FROM expect_reports)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
