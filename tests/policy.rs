//! `policy apply` and `policy export` against a real PostgreSQL: rows, idempotence (no writes,
//! no NOTIFY), export round trips, --prune (round trips before their devices), every problem at
//! once, device ids, ticket destinations, concurrency.

mod common;

use std::process::Command;
use std::time::Duration;

use common::db::TestDb;
use common::postfix::unique_temp_dir;
use mailops::config::Inbound;
use mailops::policy::{self, Counts, Options, PolicyFile, Summary};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// The sample shared with the unit tests: every kind of entry.
const FILE: &str = include_str!("fixtures/policies.toml");

/// The `[inbound]` of the tests' config: mail is accepted at mon.example.com.
fn inbound() -> Inbound {
    Inbound {
        authorized_domains: vec!["mon.example.com".into()],
        notify_local_part: "notify".into(),
        strip_fqdn: false,
        alert_message: Default::default(),
    }
}

/// `FILE` without the entries holding any of these lines (each entry is a paragraph).
fn sample_without(lines: &[&str]) -> String {
    let drop = |entry: &&str| entry.lines().any(|l| lines.contains(&l));
    FILE.split_inclusive("\n\n").filter(|e| !drop(e)).collect()
}

fn counts(created: usize, updated: usize, unchanged: usize, deleted: usize) -> Counts {
    Counts {
        created,
        updated,
        unchanged,
        deleted,
    }
}

async fn apply_with(db: &TestDb, text: &str, options: Options) -> Result<Summary, policy::Error> {
    let file = PolicyFile::parse(text).map_err(policy::Error::Invalid)?;
    policy::apply(&db.pool, &file, &inbound(), options).await
}

async fn apply(db: &TestDb, text: &str) -> Summary {
    apply_with(db, text, Options::default())
        .await
        .expect("the file applies")
}

async fn prune(db: &TestDb, text: &str) -> Result<Summary, policy::Error> {
    let options = Options {
        prune: true,
        ..Options::default()
    };
    apply_with(db, text, options).await
}

/// The policy tables.
const TABLES: [&str; 9] = [
    "devices",
    "originator_policies",
    "event_policies",
    "users",
    "queues",
    "queue_members",
    "ticket_templates",
    "ticket_policies",
    "roundtrip_policies",
];

/// Every row of the policy tables with its `xmin`, which any write (even of equal values)
/// changes.
async fn snapshot(db: &TestDb) -> String {
    let mut all = String::new();
    for table in TABLES {
        let rows: String = db
            .client()
            .await
            .query_one(
                &format!(
                    "SELECT coalesce(string_agg(format('%s %s', t.xmin, t), E'\\n' ORDER BY t::text), '')
                     FROM {table} t"
                ),
                &[],
            )
            .await
            .expect("snapshot")
            .get(0);
        all += &format!("{table}:\n{rows}\n");
    }
    all
}

/// How many rows these tables hold together.
async fn rows_in(db: &TestDb, tables: &[&str]) -> i64 {
    let counts: Vec<String> = tables
        .iter()
        .map(|t| format!("(SELECT count(*) FROM {t})"))
        .collect();
    let sql = format!("SELECT {}", counts.join(" + "));
    db.client().await.query_one(&sql, &[]).await.unwrap().get(0)
}

/// A summary with the same counts for every table.
fn every_table(c: Counts) -> Summary {
    Summary {
        devices: c,
        originators: c,
        event_policies: c,
        users: c,
        queues: c,
        ticket_templates: c,
        ticket_policies: c,
        roundtrips: c,
    }
}

/// A connection LISTENing on `mailops_policies`.
struct Listener {
    _client: tokio_postgres::Client,
    payloads: mpsc::UnboundedReceiver<String>,
}

impl Listener {
    async fn new(db: &TestDb) -> Listener {
        let (client, mut connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("listener connects");
        let (tx, payloads) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let AsyncMessage::Notification(n) = message {
                    let _ = tx.send(n.payload().to_owned());
                }
            }
        });
        client
            .batch_execute("LISTEN mailops_policies")
            .await
            .expect("LISTEN");
        Listener {
            _client: client,
            payloads,
        }
    }

    /// The notifications since the last call: a marker is notified now, and as notifications
    /// arrive in commit order, everything committed before it has arrived once it does.
    async fn since_last(&mut self, db: &TestDb) -> Vec<String> {
        db.client()
            .await
            .batch_execute("NOTIFY mailops_policies, 'marker'")
            .await
            .expect("NOTIFY");
        let mut seen = Vec::new();
        loop {
            let payload = tokio::time::timeout(Duration::from_secs(10), self.payloads.recv())
                .await
                .expect("the marker arrives")
                .expect("listener open");
            if payload == "marker" {
                return seen;
            }
            seen.push(payload);
        }
    }
}

#[tokio::test]
async fn apply_creates_the_rows_the_file_declares() {
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
         round-trip policies: 2 created, 0 updated, 0 unchanged, 0 deleted\n"
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
async fn applying_the_same_file_twice_writes_nothing_and_notifies_nobody() {
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

#[tokio::test]
async fn prune_removes_what_the_file_lacks_but_not_a_device_still_in_use() {
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

#[tokio::test]
async fn ticket_destinations_mail_cannot_reach_are_problems() {
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

#[tokio::test]
async fn pinned_and_assigned_device_ids_never_collide() {
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
async fn concurrent_applies_serialize() {
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

#[tokio::test]
async fn a_dry_run_reports_the_changes_and_writes_nothing() {
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

/// The command line: problems on stderr with a failing exit status, summaries and exports on
/// stdout.
#[tokio::test]
async fn the_command_line_applies_and_exports() {
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-policy");
    let config = dir.join("mailops.toml");
    std::fs::write(
        &config,
        common::config::text(
            "postgres://unused/unused",
            "127.0.0.1:0",
            "",
            &["mon.example.com"],
            "",
        ),
    )
    .unwrap();
    let mailops = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mailops"))
            .arg("-c")
            .arg(&config)
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env_remove("MAILOPS_DATABASE_URL")
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("mailops runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let good = dir.join("policies.toml");
    std::fs::write(&good, FILE).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        FILE.replace("severity = \"major\"", "severity = \"fatal\"")
            .replace("id = 4242", "id = -1"),
    )
    .unwrap();

    let (ok, stdout, stderr) = mailops(&["policy", "apply", bad.to_str().unwrap()]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("2 problems, nothing was written"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"device "nas1.example.com": id: -1 is not a positive integer"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"event_policy "Veeam job failed": severity: unknown variant `fatal`"#),
        "{stderr}"
    );

    let (ok, stdout, stderr) = mailops(&["policy", "apply", "--dry-run", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.ends_with("dry run: nothing was written\n"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = mailops(&["policy", "apply", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("devices: 2 created, 0 updated, 0 unchanged, 0 deleted\n"),
        "{stdout}"
    );

    let (ok, exported, stderr) = mailops(&["policy", "export"]);
    assert!(ok, "{stderr}");
    assert_eq!(exported, policy::export(&db.pool).await.unwrap());
    std::fs::write(&good, &exported).unwrap();
    let (ok, stdout, stderr) = mailops(&["policy", "apply", "--prune", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("devices: 0 created, 0 updated, 2 unchanged, 0 deleted"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
