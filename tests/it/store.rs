//! Storage through the real LMTP server into a real PostgreSQL: rows, redeliveries, failures.

use std::sync::Arc;

use crate::support;
use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::services::needs;
use mailops::config::{Config, Listen};
use mailops::delivery::Delivery;
use mailops::lmtp::Backend;
use mailops::{envelope, lmtp, serve, state, store};
use tokio::sync::oneshot;

const MESSAGE: &str = "From: UPS <ups@example.com>\n\
Subject: On battery\n\
Message-ID: <ups-1@example.com>\n\
\n\
Input power failed.\n";

fn config(url: &str) -> Config {
    let text = support::config::text(
        url,
        "127.0.0.1:0",
        "",
        &["mon.example.com", "ops.example.org"],
        "",
    );
    Config::parse(&text, None).expect("test config")
}

/// An LMTP server on a free port storing into `pool`; stops when the sender is dropped.
struct Server {
    addr: String,
    _stop: oneshot::Sender<()>,
}

async fn start(config: &Config, pool: deadpool_postgres::Pool) -> Server {
    let current = state::Current::default();
    current.replace(state::load(&pool, None).await.expect("state"));
    let listener = lmtp::Listener::bind(&config.lmtp.listen, "")
        .await
        .expect("bind");
    let addr = listener.local_addr_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let backend = Arc::new(Delivery::new(pool, current, Default::default(), None));
    tokio::spawn(lmtp::serve(
        listener,
        backend,
        serve::limits(config),
        "mon.example.com".into(),
        async {
            let _ = stopped.await;
        },
    ));
    Server { addr, _stop: stop }
}

async fn ready(db: &TestDb) -> (Config, Server) {
    let config = config(&db.url);
    serve::sync_recipients(&config, &db.pool)
        .await
        .expect("sync");
    let server = start(&config, db.pool.clone()).await;
    (config, server)
}

async fn count(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM inbound_messages", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn one_row_per_accepted_recipient_with_one_reply_each() {
    needs!(Database);
    let db = TestDb::new().await;
    let (_config, server) = ready(&db).await;
    let mut c = Client::connect(&server.addr).await;
    let (rcpt, data) = c
        .transaction(
            Some("4ZKfQd3Xp9z1abc"),
            "alerts@example.com",
            &[
                "notify@mon.example.com",
                "nobody@mon.example.com",
                "NOTIFY@Mon.Example.com",
                "notify@ops.example.org",
            ],
            MESSAGE,
        )
        .await;
    assert!(rcpt[0].starts_with("250 2.1.5"), "{rcpt:?}");
    assert!(rcpt[1].starts_with("550 5.1.1"), "{rcpt:?}");
    assert!(rcpt[2].starts_with("250 2.1.5"), "{rcpt:?}");
    assert!(rcpt[3].starts_with("250 2.1.5"), "{rcpt:?}");
    // RFC 2033 §4.2: one reply per accepted recipient, in order, the repeat included.
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(
        data[0].starts_with("250 2.0.0 <notify@mon.example.com> stored as "),
        "{data:?}"
    );
    assert_eq!(data[1], "250 2.0.0 <NOTIFY@Mon.Example.com> already stored");
    assert!(
        data[2].starts_with("250 2.0.0 <notify@ops.example.org> stored as "),
        "{data:?}"
    );

    let rows = db
        .client()
        .await
        .query(
            "SELECT envelope_from, recipient, route, message_id, subject, from_address, size,
                    raw, parsed, queue_id
             FROM inbound_messages JOIN inbound_raw ON inbound_message_id = id ORDER BY id",
            &[],
        )
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2);
    let raw = MESSAGE.replace('\n', "\r\n").into_bytes();
    for (row, rcpt) in rows
        .iter()
        .zip(["notify@mon.example.com", "notify@ops.example.org"])
    {
        assert_eq!(row.get::<_, &str>("envelope_from"), "alerts@example.com");
        assert_eq!(row.get::<_, &str>("recipient"), rcpt);
        assert_eq!(row.get::<_, &str>("route"), "event");
        assert_eq!(row.get::<_, &str>("message_id"), "ups-1@example.com");
        assert_eq!(row.get::<_, &str>("subject"), "On battery");
        assert_eq!(row.get::<_, &str>("from_address"), "ups@example.com");
        assert_eq!(row.get::<_, i32>("size") as usize, raw.len());
        assert_eq!(row.get::<_, Vec<u8>>("raw"), raw);
        assert!(row.get::<_, bool>("parsed"));
        assert_eq!(row.get::<_, &str>("queue_id"), "4ZKfQd3Xp9z1abc");
    }
}

#[tokio::test]
async fn an_address_added_after_loading_is_found_through_recipient_route() {
    needs!(Database);
    let db = TestDb::new().await;
    let (_config, server) = ready(&db).await;
    let client = db.client().await;
    let route = |address: &'static str| {
        let client = &client;
        async move {
            client
                .query_one("SELECT recipient_route($1)", &[&address])
                .await
                .expect("recipient_route")
                .get::<_, Option<String>>(0)
        }
    };
    assert_eq!(
        route("NOTIFY@Mon.Example.com").await.as_deref(),
        Some("event")
    );
    assert_eq!(route("late@mon.example.com").await, None);

    // Not in the server's memory: its RCPT check asks the database, as Postfix's lookup does.
    client
        .execute(
            "INSERT INTO config_recipients (address, route) VALUES ('late@mon.example.com', 'event')",
            &[],
        )
        .await
        .expect("insert");
    assert_eq!(
        route("Late@mon.example.com").await.as_deref(),
        Some("event")
    );
    let mut c = Client::connect(&server.addr).await;
    let (rcpt, data) = c
        .transaction(
            None,
            "alerts@example.com",
            &["Late@mon.example.com", "later@mon.example.com"],
            MESSAGE,
        )
        .await;
    assert!(rcpt[0].starts_with("250 2.1.5"), "{rcpt:?}");
    assert!(rcpt[1].starts_with("550 5.1.1"), "{rcpt:?}");
    assert!(
        data[0].starts_with("250 2.0.0 <Late@mon.example.com> stored as "),
        "{data:?}"
    );
}

#[tokio::test]
async fn a_redelivery_is_answered_250_and_stores_nothing_new() {
    needs!(Database);
    let db = TestDb::new().await;
    let (_config, server) = ready(&db).await;
    let rcpts = ["notify@mon.example.com"];

    // Postfix's queue id (XFORWARD IDENT) with the content identifies the message.
    let mut c = Client::connect(&server.addr).await;
    let (_, first) = c
        .transaction(Some("4ZKq1"), "a@example.com", &rcpts, MESSAGE)
        .await;
    let mut c = Client::connect(&server.addr).await;
    let (_, again) = c
        .transaction(Some("4ZKq1"), "a@example.com", &rcpts, MESSAGE)
        .await;
    assert!(first[0].contains("stored as"), "{first:?}");
    assert_eq!(again, ["250 2.0.0 <notify@mon.example.com> already stored"]);
    assert_eq!(count(&db).await, 1);

    // Without a queue id, the same sender and content is the same message...
    let (_, first) = c.transaction(None, "a@example.com", &rcpts, MESSAGE).await;
    let (_, again) = c.transaction(None, "a@example.com", &rcpts, MESSAGE).await;
    assert!(first[0].contains("stored as"), "{first:?}");
    assert!(again[0].contains("already stored"), "{again:?}");
    assert_eq!(count(&db).await, 2);

    // ...and other content, or another queue id, is another message; so is other content
    // under a queue id a Postfix with short ids used before (issue 16).
    let other = MESSAGE.replace("Input power failed", "Input power restored");
    let (_, third) = c.transaction(None, "a@example.com", &rcpts, &other).await;
    let (_, fourth) = c
        .transaction(Some("4ZKq2"), "a@example.com", &rcpts, MESSAGE)
        .await;
    let (_, reused) = c
        .transaction(Some("4ZKq1"), "a@example.com", &rcpts, &other)
        .await;
    assert!(third[0].contains("stored as"), "{third:?}");
    assert!(fourth[0].contains("stored as"), "{fourth:?}");
    assert!(reused[0].contains("stored as"), "{reused:?}");
    assert_eq!(count(&db).await, 5);
}

/// Deliveries handed over at once: on this single-threaded test runtime, all are queued before
/// the writers run, so they are stored as one batch unless one of them makes it fail.
async fn deliver_at_once(backend: &Delivery, queue_ids: std::ops::Range<usize>) -> Vec<String> {
    let deliveries = queue_ids.map(|i| {
        Box::pin(async move {
            let envelope = envelope::Envelope {
                mail_from: "ups@example.com".into(),
                recipients: vec!["notify@mon.example.com".into()],
                queue_id: Some(format!("4ZKb{i:04}")),
                ..Default::default()
            };
            let raw = MESSAGE.replace("ups-1@", &format!("ups-{i}@")).into_bytes();
            let replies = backend.deliver(&envelope, raw).await;
            replies[0].to_string().trim_end().to_string()
        })
    });
    store::in_order(deliveries.collect()).await
}

#[tokio::test]
async fn copies_stored_together_share_a_commit_and_survive_a_redelivery_among_them() {
    needs!(Database);
    let db = TestDb::new().await;
    let (_config, _server) = ready(&db).await;
    let current = state::Current::default();
    current.replace(state::load(&db.pool, None).await.expect("state"));
    let backend = Delivery::new(db.pool.clone(), current, Default::default(), None);

    let first = deliver_at_once(&backend, 0..30).await;
    assert!(first.iter().all(|r| r.contains("stored as")), "{first:?}");
    let commits: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM inbound_messages",
            &[],
        )
        .await
        .expect("commits")
        .get(0);
    assert_eq!(
        commits, 1,
        "30 copies handed over at once share one transaction"
    );

    // Message 29 again among 20 new ones: that batch fails at its INSERT, and each copy is
    // stored on its own instead.
    let second = deliver_at_once(&backend, 29..50).await;
    assert!(second[0].ends_with("already stored"), "{second:?}");
    assert!(
        second[1..].iter().all(|r| r.contains("stored as")),
        "{second:?}"
    );
    assert_eq!(count(&db).await, 50);
    // Each message's write (no device matches it: one system_log row) exactly once.
    let logged: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(DISTINCT inbound_message_id) FROM system_log",
            &[],
        )
        .await
        .expect("system_log")
        .get(0);
    assert_eq!(logged, 50);
}

#[tokio::test]
async fn an_unreachable_database_answers_451_and_writes_nothing() {
    needs!(Database);
    let db = TestDb::new().await;
    let config = config(&db.url);
    serve::sync_recipients(&config, &db.pool)
        .await
        .expect("sync");
    // The state comes from the real database; the pool for deliveries points at a dead port.
    let current = state::Current::default();
    current.replace(state::load(&db.pool, None).await.expect("state"));
    let dead = store::pool("postgres://mailops@127.0.0.1:1/mailops", 2).expect("pool");
    let listener = lmtp::Listener::bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap()), "")
        .await
        .expect("bind");
    let addr = listener.local_addr_string();
    tokio::spawn(lmtp::serve(
        listener,
        Arc::new(Delivery::new(dead, current, Default::default(), None)),
        serve::limits(&config),
        "mon.example.com".into(),
        std::future::pending(),
    ));
    let mut c = Client::connect(&addr).await;
    let rcpts = ["notify@mon.example.com", "notify@ops.example.org"];
    let (_, data) = c
        .transaction(Some("4ZKd1"), "a@example.com", &rcpts, MESSAGE)
        .await;
    assert_eq!(
        data,
        [
            "451 4.3.0 Temporary storage failure, try again later",
            "451 4.3.0 Temporary storage failure, try again later"
        ]
    );
    // The session goes on: the client may try again on the same connection.
    assert!(c.command("NOOP").await.starts_with("250"));
    assert_eq!(count(&db).await, 0);
}

#[tokio::test]
async fn a_database_that_refuses_for_a_while_defers_then_stores_exactly_once() {
    needs!(Database);
    let db = TestDb::new().await;
    let (_config, server) = ready(&db).await;
    let rcpts = ["notify@mon.example.com", "notify@ops.example.org"];

    // PostgreSQL stops taking connections to this database and drops the ones it has.
    db.admin_execute(&format!(
        "ALTER DATABASE {0} ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
        db.name()
    ))
    .await;
    let mut c = Client::connect(&server.addr).await;
    let (_, data) = c
        .transaction(Some("4ZKr1"), "a@example.com", &rcpts, MESSAGE)
        .await;
    assert!(data.iter().all(|r| r.starts_with("451 4.3.0")), "{data:?}");

    // It comes back; Postfix retries the same queue file and each recipient is stored once.
    db.admin_execute(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        db.name()
    ))
    .await;
    let (_, data) = c
        .transaction(Some("4ZKr1"), "a@example.com", &rcpts, MESSAGE)
        .await;
    assert!(data.iter().all(|r| r.contains("stored as")), "{data:?}");
    let (_, data) = c
        .transaction(Some("4ZKr1"), "a@example.com", &rcpts, MESSAGE)
        .await;
    assert!(
        data.iter().all(|r| r.contains("already stored")),
        "{data:?}"
    );
    assert_eq!(count(&db).await, 2);
}

#[tokio::test]
async fn a_message_that_cannot_be_parsed_is_stored_raw_and_accepted() {
    needs!(Database);
    let db = TestDb::new().await;
    let (_config, server) = ready(&db).await;
    let mut c = Client::connect(&server.addr).await;
    let (_, data) = c
        .transaction(None, "", &["notify@mon.example.com"], "")
        .await;
    assert!(data[0].contains("stored as"), "{data:?}");
    let row = db
        .client()
        .await
        .query_one(
            "SELECT envelope_from, parsed, size, subject FROM inbound_messages",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, &str>(0), "");
    assert!(!row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i32>(2), 0);
    assert_eq!(row.get::<_, Option<&str>>(3), None);
}

#[tokio::test]
async fn migrate_is_safe_twice_and_from_two_processes_at_once() {
    needs!(Database);
    let db = TestDb::empty().await;
    let other = store::pool(&db.url, 1).expect("pool");
    let (a, b) = tokio::join!(store::migrate::run(&db.pool), store::migrate::run(&other));
    let mut applied = [a.expect("first"), b.expect("second")].concat();
    applied.sort();
    let all: Vec<i32> = store::migrate::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(applied, all, "each migration applied exactly once");
    assert_eq!(
        store::migrate::run(&db.pool).await.expect("again"),
        Vec::<i32>::new()
    );
    store::migrate::check(&db.pool)
        .await
        .expect("schema current");
    let recorded: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(recorded as usize, all.len());
}

#[tokio::test]
async fn serve_refuses_a_database_that_was_never_migrated() {
    needs!(Database);
    let db = TestDb::empty().await;
    let err = store::migrate::check(&db.pool).await.unwrap_err();
    assert!(err.to_string().contains("run `mailops migrate`"), "{err}");
    // A failing statement says what the server said, not just "db error".
    let err = store::policies::load(&db.pool).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "database: ERROR: relation \"devices\" does not exist (42P01)"
    );
}
