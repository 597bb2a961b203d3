//! `policy apply` and `policy export` against a real PostgreSQL: the rows a file declares
//! (`apply`), idempotence and export round trips (`idempotence`), `--prune` (`prune`), every
//! problem at once (`problems`), the command line (`command_line`), and expected mail
//! (`expect_test`). Here: what they share.

mod apply;
mod command_line;
mod expect_test;
mod idempotence;
mod problems;
mod prune;
mod ticket_test;

use std::time::Duration;

use crate::support::db::TestDb;
use mailops::config::Inbound;
use mailops::policy::{self, Counts, Options, PolicyFile, Summary};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// The sample shared with the unit tests: every kind of entry.
const FILE: &str = include_str!("../fixtures/policies.toml");

/// The `[inbound]` of the tests' config: mail is accepted at mon.example.com.
fn inbound() -> Inbound {
    Inbound {
        authorized_domains: vec!["mon.example.com".into()],
        notify_local_part: "notify".into(),
        strip_fqdn: false,
        alert_message: Default::default(),
        auth: Default::default(),
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

/// A summary with the same counts for every table the sample has rows in (none for expected
/// mail: `expect` tests its own).
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
        expects: Counts::default(),
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
