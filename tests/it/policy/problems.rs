//! A file with problems: every one is reported at once, and nothing is written.

use super::{apply, apply_with, snapshot, Listener, FILE};
use crate::support::db::TestDb;
use crate::support::services::needs;
use mailops::policy::{Options, PolicyFile};

#[tokio::test]
async fn ticket_destinations_mail_cannot_reach_are_problems() {
    needs!(Database);
    let db = TestDb::new().await;
    let text = FILE
        .replace("\"Help@Mon.Example.com\"", "\"help@example.com\"")
        .replace("\"front@mon.example.com\"", "\"NOTIFY@mon.example.com\"");
    let err = apply_with(&db, &text, Options::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "2 problems, nothing was written:\n  \
         ticket_policy \"Helpdesk\": destination: \"help@example.com\" is not at an authorized domain of the config ([inbound] authorized_domains: mon.example.com), so Postfix would refuse mail for it\n  \
         ticket_policy \"Front desk\": destination: \"NOTIFY@mon.example.com\" is the config's events address (notify_local_part at an authorized domain)"
    );
    assert_eq!(snapshot(&db).await, snapshot(&TestDb::new().await).await);
}

#[tokio::test]
async fn a_bad_file_lists_every_problem_and_writes_nothing() {
    needs!(Database);
    let db = TestDb::new().await;
    apply(&db, FILE).await;
    let before = snapshot(&db).await;
    let mut listener = Listener::new(&db).await;

    // Problems in the file itself: all of them, each with its entry.
    let bad = FILE
        .replace(
            "ip = \"10.6.1.20\"",
            "ip = \"10.6.1.300\"\ncolour = \"red\"",
        )
        .replace(
            "first_match = \"Success(ful)?\"",
            "first_match = \"Success(\"",
        )
        .replace("severity = \"major\"", "severity = \"fatal\"")
        .replace(
            "alignment = \"default_if_unmatched\"",
            "alignment = \"override\"\nregex = 1",
        )
        .replace("access = \"open\"", "access = \"anyone\"")
        .replace("timeout_s = 900", "timeout_s = 0")
        + "\n[[roundtrip]]\nname = \"probe\"\ndevice = \"nas1.example.com\"\n";
    let problems = PolicyFile::parse(&bad).unwrap_err();
    let want = [
        r#"device "nas1.example.com": ip: invalid IP address syntax"#,
        r#"device "nas1.example.com": colour: unknown key"#,
        r#"originator "Veeam@Example.com" (entry 1): regex: unknown key"#,
        r#"event_policy "Veeam job succeeded": first_match: invalid regex: regex parse error:"#,
        r#"event_policy "Veeam job failed": severity: unknown variant `fatal`"#,
        r#"ticket_policy "Front desk": access: unknown variant `anyone`"#,
        r#"roundtrip "Exchange Online loop": timeout_s: 0 is not a positive number of seconds"#,
        r#"roundtrip "probe": send_to: missing (required)"#,
        r#"roundtrip "probe": from: missing (required)"#,
    ];
    assert_eq!(problems.len(), want.len(), "{problems:#?}");
    for (got, want) in problems.iter().zip(want) {
        assert!(got.starts_with(want), "{got:?} is not {want:?}…");
    }

    // Problems only the database reveals: all of them too, and still nothing is written.
    let clashing = FILE
        .replace("id = 4242", "id = 4243")
        .replace(
            "default_device = \"backup-virtual\"",
            "default_device = \"backup\"",
        )
        .replace(
            "clears = \"Veeam job failed\"",
            "clears = \"Veeam job broke\"",
        )
        .replace("template = \"Walk-in\"", "template = \"Walk in\"")
        .replace("\ndevice = \"backup-virtual\"", "\ndevice = \"backup\"")
        + "\n[[device]]\nname = \"spare\"\nid = 4242\n";
    let err = apply_with(&db, &clashing, Options::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "6 problems, nothing was written:\n  \
         device \"nas1.example.com\": id: 4243 differs from the id this device has in the database, 4242; a device's id cannot change\n  \
         device \"spare\": id: 4242 is already the id of device \"nas1.example.com\" in the database\n  \
         originator \"Veeam@Example.com\" (entry 1): default_device \"backup\" is not a device in this file or the database\n  \
         event_policy \"Veeam job succeeded\": clears \"Veeam job broke\" is not an event policy in this file or the database\n  \
         ticket_policy \"Front desk\": template \"Walk in\" is not a ticket template in this file or the database\n  \
         roundtrip \"Gmail loop\": device \"backup\" is not a device in this file or the database"
    );
    assert_eq!(snapshot(&db).await, before);
    assert_eq!(listener.since_last(&db).await, Vec::<String>::new());
}
