//! `policy apply --prune`: what the file no longer declares goes, in dependency order, unless
//! mail still refers to it.

use super::{
    apply, apply_with, counts, every_table, prune, rows_in, sample_without, snapshot, FILE, TABLES,
};
use crate::support::db::TestDb;
use crate::support::services::needs;
use mailops::policy::{self, Options, Summary};

#[tokio::test]
async fn prune_removes_what_the_file_lacks_but_not_a_device_still_in_use() {
    needs!(Database);
    let db = TestDb::new().await;
    apply(&db, FILE).await;
    let smaller = &sample_without(&[
        "name = \"nas1.example.com\"",
        "address = \"*@ups.example.com\"",
        "name = \"Veeam job succeeded\"",
        "[[user]]",
        "[[queue]]",
        "[[ticket_template]]",
        "[[ticket_policy]]",
        "name = \"Exchange Online loop\"",
    ]);
    // Without --prune, what the file lacks stays.
    let summary = apply(&db, smaller).await;
    assert!(!summary.changed(), "{summary}");

    // A device the database has but the file lacks cannot be pruned while a kept originator
    // or round trip uses it: every such problem is listed and nothing is written.
    let before = snapshot(&db).await;
    let uses_nas = smaller
        .replace(
            "default_device = \"backup-virtual\"",
            "default_device = \"nas1.example.com\"",
        )
        .replace(
            "\ndevice = \"backup-virtual\"",
            "\ndevice = \"nas1.example.com\"",
        );
    let err = prune(&db, &uses_nas).await.unwrap_err();
    let policy::Error::Invalid(problems) = err else {
        panic!("expected problems, got {err}");
    };
    assert_eq!(
        problems,
        [
            r#"originator "Veeam@Example.com" (entry 1): default_device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#,
            r#"roundtrip "Gmail loop": device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#,
        ]
    );
    assert_eq!(snapshot(&db).await, before);

    // The round trip on nas1 has probed: its history goes with it (ON DELETE CASCADE), and it
    // goes before nas1, which it would keep from being deleted (ON DELETE RESTRICT).
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO roundtrip_schedule (roundtrip_policy_id, next_probe_at)
             SELECT id, now() FROM roundtrip_policies WHERE name = 'Exchange Online loop';
         INSERT INTO roundtrip_probes (roundtrip_policy_id, token)
             SELECT id, 'probe-1' FROM roundtrip_policies WHERE name = 'Exchange Online loop'",
    )
    .await
    .unwrap();

    let summary = prune(&db, smaller).await.expect("prunes");
    assert_eq!(
        summary,
        Summary {
            devices: counts(0, 0, 1, 1),
            originators: counts(0, 0, 1, 1),
            event_policies: counts(0, 0, 1, 1),
            roundtrips: counts(0, 0, 1, 1),
            ..every_table(counts(0, 0, 0, 2))
        }
    );
    let names: Vec<String> = c
        .query("SELECT name FROM devices ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["backup-virtual"]);
    assert_eq!(rows_in(&db, &["originator_policies"]).await, 1);
    assert_eq!(rows_in(&db, &["event_policies"]).await, 1);
    assert_eq!(rows_in(&db, &TABLES[3..8]).await, 0, "no ticket rows left");
    assert_eq!(rows_in(&db, &["roundtrip_policies"]).await, 1);
    assert_eq!(
        rows_in(&db, &["roundtrip_schedule", "roundtrip_probes"]).await,
        0
    );
    assert!(!prune(&db, smaller).await.unwrap().changed());
}

#[tokio::test]
async fn ticket_entries_are_pruned_in_dependency_order_and_destinations_move() {
    needs!(Database);
    let db = TestDb::new().await;
    apply(&db, FILE).await;
    // User bob and the queue "Network" go; the two ticket policies swap destinations;
    // "Walk-in" (in use by "Front desk") is replaced by a new template, and goes.
    let text = sample_without(&["email = \"bob@example.com\"", "name = \"Network\""])
        .replace(", \"Bob@Example.com\"]", "]")
        .replace(
            "name = \"Walk-in\"\nseverity = \"notice\"\nstatus = \"working\"",
            "name = \"Front desk default\"\nseverity = \"notice\"",
        )
        .replace(
            "template = \"Walk-in\"",
            "template = \"Front desk default\"",
        )
        .replace("access = \"queue\"", "access = \"registered\"")
        .replace("\"front@mon.example.com\"", "\"help@mon.example.com\"")
        .replace("\"Help@Mon.Example.com\"", "\"front@mon.example.com\"");
    let summary = prune(&db, &text).await.expect("prunes");
    assert_eq!(summary.users, counts(0, 0, 1, 1));
    assert_eq!(summary.queues, counts(0, 1, 0, 1));
    assert_eq!(summary.ticket_templates, counts(1, 0, 1, 1));
    assert_eq!(summary.ticket_policies, counts(0, 2, 0, 0));
    let c = db.client().await;
    let policies: Vec<(String, String, String)> = c
        .query(
            "SELECT p.name, p.destination, t.name FROM ticket_policies p
             JOIN ticket_templates t ON t.id = p.template_id ORDER BY p.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        policies,
        [
            (
                "Helpdesk".into(),
                "front@mon.example.com".into(),
                "Helpdesk default".into()
            ),
            (
                "Front desk".into(),
                "help@mon.example.com".into(),
                "Front desk default".into()
            ),
        ]
    );
    let before = snapshot(&db).await;
    assert!(!prune(&db, &text).await.unwrap().changed());
    assert_eq!(snapshot(&db).await, before);

    // A ticket policy may take the destination of one --prune deletes, in the same apply.
    let renamed = text.replace("name = \"Front desk\"", "name = \"Reception\"");
    let summary = prune(&db, &renamed).await.expect("prunes");
    assert_eq!(summary.ticket_policies, counts(1, 0, 1, 1));
    // Without --prune, the destination is still taken: a problem, nothing written.
    let before = snapshot(&db).await;
    let err = apply_with(&db, &text, Options::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 problem, nothing was written:\n  \
         ticket_policy \"Front desk\": destination: \"help@mon.example.com\" is the destination of ticket policy \"Reception\", which only the database has (give one of them another destination, or use --prune)"
    );
    assert_eq!(snapshot(&db).await, before);
}
