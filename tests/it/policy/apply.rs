//! `policy apply` into an empty database: the rows the file declares, pinned and assigned
//! device ids, a dry run, and applies racing each other.

use super::{apply, apply_with, counts, every_table, rows_in, snapshot, FILE, TABLES};
use crate::support::db::TestDb;
use crate::support::services::needs;
use mailops::policy::{self, Options, PolicyFile};

#[tokio::test]
async fn apply_creates_the_rows_the_file_declares() {
    needs!(Database);
    let db = TestDb::new().await;
    let summary = apply(&db, FILE).await;
    assert_eq!(summary, every_table(counts(2, 0, 0, 0)));
    assert_eq!(
        summary.to_string(),
        "devices: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         originators: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         event policies: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         users: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         queues: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         ticket templates: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         ticket policies: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         round-trip policies: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         expected-mail policies: 0 created, 0 updated, 0 unchanged, 0 deleted\n"
    );

    let c = db.client().await;
    let devices: Vec<(i64, String, Option<String>, Option<String>)> = c
        .query(
            "SELECT id, name, host(ip), organization FROM devices ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        devices,
        [
            (
                4242,
                "nas1.example.com".into(),
                Some("10.6.1.20".into()),
                Some("HQ".into())
            ),
            (4243, "backup-virtual".into(), None, None),
        ]
    );
    let originators: Vec<(i32, String, String, String, Option<String>)> = c
        .query(
            "SELECT o.position, o.address, o.pattern_type, o.alignment, d.name
             FROM originator_policies o LEFT JOIN devices d ON d.id = o.default_device_id
             ORDER BY o.position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        originators,
        [
            (
                1,
                "veeam@example.com".into(),
                "classic".into(),
                "default_if_unmatched".into(),
                Some("backup-virtual".into())
            ),
            (
                2,
                "*@ups.example.com".into(),
                "advanced".into(),
                "discard".into(),
                None
            ),
        ]
    );
    let policies: Vec<String> = c
        .query(
            "SELECT concat_ws(' | ', p.name, p.severity, p.message,
                              coalesce((SELECT string_agg(c.name, ', ' ORDER BY c.name)
                                        FROM event_policy_clears x
                                        JOIN event_policies c ON c.id = x.clears_id
                                        WHERE x.event_policy_id = p.id), '-'),
                              coalesce(p.expire_after_s::text, '-'))
             FROM event_policies p ORDER BY p.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        policies,
        [
            "Veeam job succeeded | healthy | %S on %D | Veeam job failed | -",
            "Veeam job failed | major | %M | - | 86400",
        ]
    );

    let rows = |sql: &'static str| {
        let c = &c;
        async move {
            c.query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(
        rows("SELECT concat_ws(' | ', email, coalesce(name, '-')) FROM users ORDER BY id").await,
        ["alice@example.com | Alice", "bob@example.com | -"]
    );
    assert_eq!(
        rows(
            "SELECT concat_ws(' | ', q.name, coalesce(string_agg(u.email, ', ' ORDER BY u.email), '-'))
             FROM queues q LEFT JOIN queue_members m ON m.queue_id = q.id
                  LEFT JOIN users u ON u.id = m.user_id
             GROUP BY q.id ORDER BY q.id"
        )
        .await,
        [
            "Service Desk | alice@example.com, bob@example.com",
            "Network | -"
        ]
    );
    assert_eq!(
        rows(
            "SELECT concat_ws(' | ', t.name, coalesce(q.name, '-'), t.severity, t.status, t.description)
             FROM ticket_templates t LEFT JOIN queues q ON q.id = t.queue_id ORDER BY t.id"
        )
        .await,
        [
            "Helpdesk default | Service Desk | minor | open | Email: %",
            "Walk-in | - | notice | working | %"
        ]
    );
    assert_eq!(
        rows(
            "SELECT concat_ws(' | ', p.name, p.destination, p.reply_address, t.name, p.access,
                              p.msg_created, p.msg_updated, p.msg_failed, p.msg_not_registered,
                              p.msg_not_in_queue)
             FROM ticket_policies p JOIN ticket_templates t ON t.id = p.template_id
             ORDER BY p.id"
        )
        .await,
        [
            "Helpdesk | help@mon.example.com | help@mon.example.com | Helpdesk default | queue | \
             Ticket %t opened: %W | Ticket %t updated: %W | Your ticket could not be created. | \
             Only registered users can open tickets here. | \
             You are not allowed to open tickets in this queue.",
            "Front desk | front@mon.example.com | front-desk@example.com | Walk-in | open | \
             Ticket %t created: %W | Ticket %t updated: %W | Your ticket could not be created. | \
             Only registered users can open tickets here. | \
             You are not allowed to open tickets in this queue.",
        ]
    );
    assert_eq!(
        rows(
            "SELECT concat_ws(' | ', p.name, d.name, p.send_to, p.from_address, p.interval_s,
                              p.timeout_s, p.enabled, p.body, p.severity)
             FROM roundtrip_policies p JOIN devices d ON d.id = p.device_id ORDER BY p.id"
        )
        .await,
        [
            "Exchange Online loop | nas1.example.com | RT-Probe@Customer.example | \
             rt-probe@mon.example.com | 60 | 900 | f | \
             mailops round-trip probe - forward to notify@mon.example.com | critical",
            &format!(
                "Gmail loop | backup-virtual | probe@gmail.example | rt@mon.example.com | 300 | \
                 600 | t | {} | major",
                policy::file::DEFAULT_BODY
            ),
        ]
    );
    // Ticket destinations are valid recipients at once.
    assert_eq!(
        rows("SELECT address FROM valid_recipients WHERE route = 'ticket' ORDER BY address").await,
        ["front@mon.example.com", "help@mon.example.com"]
    );

    // What `serve` loads is what the file says (a fresh database assigns the ids the offline
    // model does).
    let model = policy::load(&db.pool).await.expect("load");
    let offline = PolicyFile::parse(FILE).unwrap().to_model().unwrap();
    assert_eq!(model.devices, offline.devices);
    assert_eq!(model.users, offline.users);
    assert_eq!(model.queues, offline.queues);
    assert_eq!(model.templates, offline.templates);
    assert_eq!(model.ticket_policies, offline.ticket_policies);
    assert_eq!(model.roundtrips, offline.roundtrips);
    assert_eq!(model.originators.len(), 2);
    assert_eq!(
        model.originators[0].default_device_id,
        offline.originators[0].default_device_id
    );
}

#[tokio::test]
async fn pinned_and_assigned_device_ids_never_collide() {
    needs!(Database);
    let db = TestDb::new().await;
    // An unpinned device listed before pinned ones still gets an id after them.
    let summary = apply(
        &db,
        "[[device]]\nname = \"a\"\n[[device]]\nname = \"b\"\nid = 1\n[[device]]\nname = \"c\"\nid = 5\n",
    )
    .await;
    assert_eq!(summary.devices, counts(3, 0, 0, 0));
    let c = db.client().await;
    let ids = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, i64)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    assert_eq!(
        ids(c
            .query("SELECT name, id FROM devices ORDER BY id", &[])
            .await
            .unwrap()),
        [("b".into(), 1), ("c".into(), 5), ("a".into(), 6)]
    );
    // Plain SQL inserts after an apply get fresh ids too.
    let by_sql: i64 = c
        .query_one(
            "INSERT INTO devices (name) VALUES ('by-sql') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_sql, 7);
    apply(
        &db,
        "[[device]]\nname = \"d\"\nid = 100\n[[device]]\nname = \"e\"\n",
    )
    .await;
    let by_sql: i64 = c
        .query_one(
            "INSERT INTO devices (name) VALUES ('by-sql-2') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        ids(c
            .query(
                "SELECT name, id FROM devices WHERE id >= 100 ORDER BY id",
                &[]
            )
            .await
            .unwrap()),
        [
            ("d".into(), 100),
            ("e".into(), 101),
            ("by-sql-2".into(), 102)
        ]
    );
    assert_eq!(by_sql, 102);
}

#[tokio::test]
async fn a_dry_run_reports_the_changes_and_writes_nothing() {
    needs!(Database);
    let db = TestDb::new().await;
    let before = snapshot(&db).await;
    let options = Options {
        dry_run: true,
        ..Options::default()
    };
    let summary = apply_with(&db, FILE, options).await.expect("dry run");
    assert_eq!(summary.devices, counts(2, 0, 0, 0));
    assert_eq!(snapshot(&db).await, before);
}

#[tokio::test]
async fn concurrent_applies_serialize() {
    needs!(Database);
    let db = TestDb::new().await;
    let file = |n: usize| {
        format!(
            "[[device]]\nname = \"dev{n}\"\n\
             [[originator]]\naddress = \"sender{n}@example.com\"\nregex_type = \"subject\"\n\
             pattern_type = \"classic\"\npattern = \"Alert for\"\nalignment = \"override\"\n\
             default_device = \"dev{n}\"\n\
             [[event_policy]]\nname = \"policy {n}\"\nseverity = \"minor\"\n\
             match_logic = \"text\"\nfirst_match = \"down\"\n"
        )
    };
    // Different files: both apply in full.
    let (one, two) = (file(1), file(2));
    let (a, b) = tokio::join!(apply(&db, &one), apply(&db, &two));
    assert_eq!((a.devices.created, b.devices.created), (1, 1));
    assert_eq!(rows_in(&db, &TABLES[..3]).await, 6);
    // The same file at once: one creates, the other then finds everything in place.
    for round in 3..8 {
        let text = file(round);
        let (a, b) = tokio::join!(apply(&db, &text), apply(&db, &text));
        let mut created = [a.devices.created, b.devices.created];
        created.sort();
        assert_eq!(created, [0, 1], "round {round}");
        assert_eq!(a.devices.unchanged + b.devices.unchanged, 1);
    }
}
