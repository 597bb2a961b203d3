//! Applying what the database already holds writes nothing and notifies nobody, and `policy
//! export` writes back exactly what was applied.

use super::{apply, counts, every_table, snapshot, Listener, FILE, TABLES};
use crate::support::db::TestDb;
use crate::support::services::needs;
use mailops::policy;

#[tokio::test]
async fn applying_the_same_file_twice_writes_nothing_and_notifies_nobody() {
    needs!(Database);
    let db = TestDb::new().await;
    let mut listener = Listener::new(&db).await;
    apply(&db, FILE).await;
    let mut first = listener.since_last(&db).await;
    first.sort();
    first.dedup();
    let mut tables = TABLES.to_vec();
    tables.push("event_policy_clears");
    tables.sort();
    assert_eq!(first, tables);

    let before = snapshot(&db).await;
    let summary = apply(&db, FILE).await;
    assert!(!summary.changed(), "{summary}");
    assert_eq!(summary, every_table(counts(0, 0, 2, 0)));
    assert_eq!(snapshot(&db).await, before);
    assert_eq!(listener.since_last(&db).await, Vec::<String>::new());

    // One member fewer: only that membership is written.
    let summary = apply(&db, &FILE.replace(", \"Bob@Example.com\"]", "]")).await;
    assert_eq!(summary.queues, counts(0, 1, 1, 0));
    assert_eq!(summary.users, counts(0, 0, 2, 0));
    assert_eq!(listener.since_last(&db).await, ["queue_members"]);
    let summary = apply(&db, FILE).await;
    assert_eq!(summary.queues, counts(0, 1, 1, 0));
    assert_eq!(listener.since_last(&db).await, ["queue_members"]);

    // One changed value: one row written, one notification for its table.
    let summary = apply(
        &db,
        &FILE.replace("organization = \"HQ\"", "organization = \"Lab\""),
    )
    .await;
    assert_eq!(summary.devices, counts(0, 1, 1, 0));
    assert_eq!(summary.originators, counts(0, 0, 2, 0));
    assert_eq!(listener.since_last(&db).await, ["devices"]);
}

#[tokio::test]
async fn export_then_apply_changes_nothing() {
    needs!(Database);
    let db = TestDb::new().await;
    apply(&db, FILE).await;
    let exported = policy::export(&db.pool).await.expect("export");
    assert!(exported.starts_with(policy::export::HEADER), "{exported}");
    // Every device's id is pinned; unset optional keys are left out.
    assert!(
        exported.contains("name = \"backup-virtual\"\nid = 4243\n"),
        "{exported}"
    );
    assert!(!exported.contains("second_match = \"\""), "{exported}");
    assert!(
        exported.contains("address = \"veeam@example.com\""),
        "{exported}"
    );
    // Queue members by their (folded) email; notices and defaults written out.
    assert!(
        exported.contains("members = [\"alice@example.com\", \"bob@example.com\"]"),
        "{exported}"
    );
    assert!(
        exported.contains("status = \"open\"\ndescription = \"Email: %\"\n"),
        "{exported}"
    );
    assert!(
        exported.contains("msg_not_in_queue = \"You are not allowed"),
        "{exported}"
    );
    // Round trips: the device by name, `from` for from_address, defaults written out.
    assert!(
        exported.contains(&format!(
            "[[roundtrip]]\nname = \"Gmail loop\"\ndevice = \"backup-virtual\"\n\
             send_to = \"probe@gmail.example\"\nfrom = \"rt@mon.example.com\"\n\
             interval_s = 300\ntimeout_s = 600\nenabled = true\nbody = \"{}\"\n\
             severity = \"major\"\n",
            policy::file::DEFAULT_BODY
        )),
        "{exported}"
    );

    let mut listener = Listener::new(&db).await;
    let before = snapshot(&db).await;
    let summary = apply(&db, &exported).await;
    assert!(!summary.changed(), "{summary}");
    assert_eq!(snapshot(&db).await, before);
    assert_eq!(listener.since_last(&db).await, Vec::<String>::new());
    assert_eq!(policy::export(&db.pool).await.expect("export"), exported);

    // Applied to an empty database, the export makes the same policies, ids included.
    let other = TestDb::new().await;
    apply(&other, &exported).await;
    assert_eq!(policy::export(&other.pool).await.expect("export"), exported);
    assert_eq!(
        policy::load(&other.pool).await.unwrap().devices,
        policy::load(&db.pool).await.unwrap().devices
    );
}
