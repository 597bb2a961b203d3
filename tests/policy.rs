//! `policy apply` and `policy export` against a real PostgreSQL: rows, idempotence (no writes,
//! no NOTIFY), export round trips, --prune, every problem at once, device ids, concurrency.

mod common;

use std::process::Command;
use std::time::Duration;

use common::db::TestDb;
use common::postfix::unique_temp_dir;
use mailops::policy::{self, Counts, Options, PolicyFile, Summary};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

const FILE: &str = r#"
[[device]]
name = "nas1.example.com"
id = 4242
ip = "10.6.1.20"
organization = "HQ"

[[device]]
name = "backup-virtual"

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
pattern = 'UPS (\S+) is on battery'
alignment = "discard"

# `clears` names a policy defined further down.
[[event_policy]]
name = "Veeam job succeeded"
severity = "healthy"
message = "%S on %D"
match_logic = "regex"
first_match = "Success(ful)?"
clears = "Veeam job failed"

[[event_policy]]
name = "Veeam job failed"
severity = "major"
match_logic = "text"
first_match = "Failed"
second_match = "error"
expire_after_s = 86400
"#;

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
    policy::apply(&db.pool, &file, options).await
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

/// Every row of the policy tables with its `xmin`, which any write (even of equal values)
/// changes.
async fn snapshot(db: &TestDb) -> String {
    let mut all = String::new();
    for table in ["devices", "originator_policies", "event_policies"] {
        let rows: String = db
            .client()
            .await
            .query_one(
                &format!(
                    "SELECT coalesce(string_agg(format('%s %s', t.xmin, t), E'\\n' ORDER BY t.id), '')
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
    assert_eq!(summary.devices, counts(2, 0, 0, 0));
    assert_eq!(summary.originators, counts(2, 0, 0, 0));
    assert_eq!(summary.event_policies, counts(2, 0, 0, 0));
    assert_eq!(
        summary.to_string(),
        "devices: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         originators: 2 created, 0 updated, 0 unchanged, 0 deleted\n\
         event policies: 2 created, 0 updated, 0 unchanged, 0 deleted\n"
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
            "SELECT concat_ws(' | ', p.name, p.severity, p.message, coalesce(c.name, '-'),
                              coalesce(p.expire_after_s::text, '-'))
             FROM event_policies p LEFT JOIN event_policies c ON c.id = p.clears_event_policy_id
             ORDER BY p.id",
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

    // What `serve` loads is what the file says.
    let model = policy::load(&db.pool).await.expect("load");
    let offline = PolicyFile::parse(FILE).unwrap().to_model().unwrap();
    assert_eq!(model.devices, offline.devices);
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
    assert_eq!(first, ["devices", "event_policies", "originator_policies"]);

    let before = snapshot(&db).await;
    let summary = apply(&db, FILE).await;
    assert!(!summary.changed(), "{summary}");
    assert_eq!(summary.devices, counts(0, 0, 2, 0));
    assert_eq!(summary.originators, counts(0, 0, 2, 0));
    assert_eq!(summary.event_policies, counts(0, 0, 2, 0));
    assert_eq!(snapshot(&db).await, before);
    assert_eq!(listener.since_last(&db).await, Vec::<String>::new());

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
    let smaller = r#"
[[device]]
name = "backup-virtual"

[[originator]]
address = "veeam@example.com"
regex_type = "subject"
pattern_type = "classic"
pattern = "Backup job for"
alignment = "default_if_unmatched"
default_device = "backup-virtual"

[[event_policy]]
name = "Veeam job failed"
severity = "major"
match_logic = "text"
first_match = "Failed"
second_match = "error"
expire_after_s = 86400
"#;
    // Without --prune, what the file lacks stays.
    let summary = apply(&db, smaller).await;
    assert!(!summary.changed(), "{summary}");

    // A device the database has but the file lacks cannot be pruned while a kept originator
    // uses it: every such problem is listed and nothing is written.
    let before = snapshot(&db).await;
    let uses_nas = smaller.replace(
        "default_device = \"backup-virtual\"",
        "default_device = \"nas1.example.com\"",
    );
    let err = prune(&db, &uses_nas).await.unwrap_err();
    let policy::Error::Invalid(problems) = err else {
        panic!("expected problems, got {err}");
    };
    assert_eq!(
        problems,
        [
            r#"originator "veeam@example.com" (entry 1): default_device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#
        ]
    );
    assert_eq!(snapshot(&db).await, before);

    let summary = prune(&db, smaller).await.expect("prunes");
    assert_eq!(summary.devices, counts(0, 0, 1, 1));
    assert_eq!(summary.originators, counts(0, 0, 1, 1));
    assert_eq!(summary.event_policies, counts(0, 0, 1, 1));
    let c = db.client().await;
    let names: Vec<String> = c
        .query("SELECT name FROM devices ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["backup-virtual"]);
    let left: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM originator_policies) * 10 + count(*) FROM event_policies",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 11);
    assert!(!prune(&db, smaller).await.unwrap().changed());
}

#[tokio::test]
async fn a_bad_file_lists_every_problem_and_writes_nothing() {
    let db = TestDb::new().await;
    apply(&db, FILE).await;
    let before = snapshot(&db).await;
    let mut listener = Listener::new(&db).await;

    // Problems in the file itself: all of them, each with its entry.
    let bad =
        FILE.replace(
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
        ) + "\n[[user]]\naddress = \"ops@example.com\"\n";
    let problems = PolicyFile::parse(&bad).unwrap_err();
    let want = [
        "[[user]]: not supported yet by this version of mailops",
        r#"device "nas1.example.com": ip: invalid IP address syntax"#,
        r#"device "nas1.example.com": colour: unknown key"#,
        r#"originator "Veeam@Example.com" (entry 1): regex: unknown key"#,
        r#"event_policy "Veeam job succeeded": first_match: invalid regex: regex parse error:"#,
        r#"event_policy "Veeam job failed": severity: unknown variant `fatal`"#,
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
        + "\n[[device]]\nname = \"spare\"\nid = 4242\n";
    let err = apply_with(&db, &clashing, Options::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "4 problems, nothing was written:\n  \
         device \"nas1.example.com\": id: 4243 differs from the id this device has in the database, 4242; a device's id cannot change\n  \
         device \"spare\": id: 4242 is already the id of device \"nas1.example.com\" in the database\n  \
         originator \"Veeam@Example.com\" (entry 1): default_device \"backup\" is not a device in this file or the database\n  \
         event_policy \"Veeam job succeeded\": clears \"Veeam job broke\" is not an event policy in this file or the database"
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
    let c = db.client().await;
    let count: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM devices) + (SELECT count(*) FROM originator_policies)
                    + (SELECT count(*) FROM event_policies)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 6);
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
        "[database]\nurl = \"postgres://unused/unused\"\n\
         [lmtp]\nlisten = \"127.0.0.1:0\"\n\
         [inbound]\nauthorized_domains = [\"mon.example.com\"]\n",
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
