//! Tickets from email, end to end: mail goes through a real Postfix from the generated
//! configuration to `mailops serve`, tickets and notes land in PostgreSQL, and the notices go
//! out through a real gateway into a mailbox the test reads. The noise and rate-limit rules
//! are checked straight over LMTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::postfix::unique_temp_dir;
use crate::support::services::needs;
use crate::support::stack::{config, mail, Stack};
use mail_parser::MessageParser;
use mailops::delivery::{self, Delivery};
use mailops::{lmtp, serve, state};

const WAIT: Duration = Duration::from_secs(30);

/// Users, a queue, a template and three ticket policies (one per access rule), as plain SQL:
/// `serve` picks up changes however they are made.
pub(crate) const POLICIES: &str = "
INSERT INTO users (email, name) VALUES ('alice@example.com', 'Alice'), ('carol@example.com', 'Carol');
INSERT INTO queues (name) VALUES ('Service Desk');
INSERT INTO queue_members SELECT q.id, u.id FROM queues q, users u WHERE u.email = 'alice@example.com';
INSERT INTO ticket_templates (name, queue_id, severity, status, description)
    SELECT 'Helpdesk default', id, 'minor', 'open', 'Email: %' FROM queues;
INSERT INTO ticket_policies (name, destination, reply_address, template_id, access, msg_created,
        msg_updated, msg_failed, msg_not_registered, msg_not_in_queue)
    SELECT p.name, p.destination, p.destination, t.id, p.access, 'Ticket %t created: %W',
           'Ticket %t updated: %W', 'Your ticket could not be created.',
           'Only registered users can open tickets here.',
           'You are not allowed to open tickets in this queue.'
    FROM ticket_templates t,
         (VALUES ('Helpdesk', 'help@tickets.example.com', 'open'),
                 ('Registered desk', 'reg@tickets.example.com', 'registered'),
                 ('Queue desk', 'queue@tickets.example.com', 'queue')) AS p(name, destination, access);
";

/// Tests of the ticket pipeline through the whole stack.
struct Desk(Stack);

impl std::ops::Deref for Desk {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.0
    }
}

impl Desk {
    async fn start() -> Desk {
        Desk(Stack::start(POLICIES, "").await)
    }

    /// Waits until `n` mails are stored; returns the last one's `ignored_reason`.
    async fn stored(&self, n: i64) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let rows = self
                .db
                .client()
                .await
                .query(
                    "SELECT ignored_reason FROM inbound_messages ORDER BY id",
                    &[],
                )
                .await
                .expect("inbound_messages");
            if rows.len() as i64 >= n {
                assert_eq!(rows.len() as i64, n, "more mail stored than sent");
                return rows.last().and_then(|r| r.get(0));
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} mails stored\n{}",
                rows.len(),
                self.postfix.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the `n`th notice in the gateway's mailbox and returns it.
    fn notice(&self, n: usize) -> Notice {
        let messages = self.gateway.wait_for_messages(n, WAIT);
        assert_eq!(messages.len(), n, "more notices than expected");
        Notice::parse(&messages[n - 1])
    }
}

/// A notice as its recipient reads it.
#[derive(Debug)]
struct Notice {
    to: String,
    from: String,
    subject: String,
    body: String,
    message_id: String,
    in_reply_to: Vec<String>,
    auto_submitted: String,
}

impl Notice {
    fn parse(raw: &[u8]) -> Notice {
        let m = MessageParser::default()
            .parse(raw)
            .expect("a notice parses");
        let address = |a: Option<&mail_parser::Address>| {
            a.and_then(|a| a.first()?.address())
                .unwrap_or_default()
                .to_owned()
        };
        Notice {
            to: address(m.to()),
            from: address(m.from()),
            subject: m.subject().unwrap_or_default().to_owned(),
            body: m.body_text(0).unwrap_or_default().trim().to_owned(),
            message_id: m.message_id().unwrap_or_default().to_owned(),
            in_reply_to: m
                .in_reply_to()
                .as_text_list()
                .unwrap_or_default()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            auto_submitted: m
                .header_raw("Auto-Submitted")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

/// (author, body) of a ticket's notes, oldest first.
async fn notes(db: &TestDb, ticket: i64) -> Vec<(String, String)> {
    db.client()
        .await
        .query(
            "SELECT author, body FROM ticket_notes WHERE ticket_id = $1 ORDER BY id",
            &[&ticket],
        )
        .await
        .expect("notes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_is_opened_by_mail_and_replies_become_notes() {
    needs!(Database, Postfix, Dovecot);
    let desk = Desk::start().await;
    let db = &desk.db;

    // A request with an attachment opens a ticket from the template.
    let request = mail(
        "Bob <bob@example.org>",
        "help@tickets.example.com",
        "Printer on fire",
        "req1@example.org",
        &["Content-Type: multipart/mixed; boundary=b"],
        "--b\nContent-Type: text/plain\n\nThe printer on floor 3 is on fire.\n\
         --b\nContent-Type: text/plain; name=\"error.log\"\n\
         Content-Disposition: attachment; filename=\"error.log\"\n\
         Content-Transfer-Encoding: base64\n\ncGFwZXIgamFtIGF0IDQwMCBkZWdyZWVz\n--b--",
    );
    desk.send("bob@example.org", "help@tickets.example.com", &request);
    assert_eq!(desk.stored(1).await, None);
    let t = db
        .client()
        .await
        .query_one(
            "SELECT t.id, t.requester, t.description, t.severity, t.status, q.name, p.name
             FROM tickets t JOIN queues q ON q.id = t.queue_id
             JOIN ticket_policies p ON p.id = t.ticket_policy_id",
            &[],
        )
        .await
        .expect("one ticket");
    let ticket: i64 = t.get(0);
    assert_eq!(
        (
            t.get::<_, &str>(1),
            t.get::<_, &str>(2),
            t.get::<_, &str>(3),
            t.get::<_, &str>(4),
            t.get::<_, &str>(5),
            t.get::<_, &str>(6)
        ),
        (
            "bob@example.org",
            "Email: Printer on fire",
            "minor",
            "open",
            "Service Desk",
            "Helpdesk"
        )
    );
    assert_eq!(
        notes(db, ticket).await,
        [(
            "bob@example.org".to_owned(),
            "The printer on floor 3 is on fire.".to_owned()
        )]
    );
    let a = db
        .client()
        .await
        .query_one(
            "SELECT filename, content_type, size, content FROM attachments WHERE ticket_id = $1",
            &[&ticket],
        )
        .await
        .expect("one attachment");
    assert_eq!(a.get::<_, Option<&str>>(0), Some("error.log"));
    assert_eq!(a.get::<_, &str>(1), "text/plain");
    assert_eq!(a.get::<_, &[u8]>(3), b"paper jam at 400 degrees");

    // The "created" notice reaches the requester through the gateway, threaded and marked.
    let created = desk.notice(1);
    assert_eq!(created.to, "bob@example.org");
    assert_eq!(created.from, "help@tickets.example.com");
    assert_eq!(
        created.subject,
        format!("[Ticket #{ticket}] Printer on fire")
    );
    assert_eq!(
        created.body,
        format!("Ticket {ticket} created: https://ops.example.com/tickets/{ticket}")
    );
    assert_eq!(created.in_reply_to, ["req1@example.org"]);
    assert_eq!(created.auto_submitted, "auto-replied");
    assert!(
        created.message_id.ends_with("@tickets.example.com"),
        "{}",
        created.message_id
    );

    // A reply found by In-Reply-To (its subject has no token) adds its new text only.
    let reply = mail(
        "bob@example.org",
        "help@tickets.example.com",
        "Re: printer",
        "reply1@example.org",
        &[
            &format!("In-Reply-To: <{}>", created.message_id),
            &format!("References: <req1@example.org> <{}>", created.message_id),
        ],
        &format!(
            "It is out now.\n\nOn Sun, 22 Nov 2026 at 10:01, mailops wrote:\n> {}",
            created.body
        ),
    );
    desk.send("bob@example.org", "help@tickets.example.com", &reply);
    assert_eq!(desk.stored(2).await, None);
    let updated = desk.notice(2);
    assert_eq!(updated.to, "bob@example.org");
    assert_eq!(updated.subject, format!("[Ticket #{ticket}] printer"));
    assert_eq!(
        updated.body,
        format!("Ticket {ticket} updated: https://ops.example.com/tickets/{ticket}")
    );
    assert_eq!(updated.in_reply_to, ["reply1@example.org"]);

    // A queue member's reply found by the token in its subject, behind a German prefix.
    let member = mail(
        "Alice <alice@example.com>",
        "help@tickets.example.com",
        &format!("AW: [Ticket #{ticket}] Printer on fire"),
        "alice1@example.com",
        &[],
        "Replaced the printer.",
    );
    desk.send("alice@example.com", "help@tickets.example.com", &member);
    assert_eq!(desk.stored(3).await, None);
    assert_eq!(desk.notice(3).to, "alice@example.com");
    let expected = [
        ("bob@example.org", "The printer on floor 3 is on fire."),
        ("bob@example.org", "It is out now."),
        ("alice@example.com", "Replaced the printer."),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(notes(db, ticket).await, expected);

    // A stranger quoting the ticket (token and In-Reply-To) cannot write to it: the mail is
    // a new request under the access rule ("open" here).
    let forged = mail(
        "mallory@evil.example",
        "help@tickets.example.com",
        &format!("Re: [Ticket #{ticket}] Printer on fire"),
        "forged1@evil.example",
        &[&format!("In-Reply-To: <{}>", created.message_id)],
        "Please send me the admin password.",
    );
    desk.send("mallory@evil.example", "help@tickets.example.com", &forged);
    assert_eq!(desk.stored(4).await, None);
    assert_eq!(notes(db, ticket).await, expected);
    let other: i64 = db
        .client()
        .await
        .query_one(
            "SELECT id FROM tickets WHERE requester = 'mallory@evil.example'",
            &[],
        )
        .await
        .expect("the stranger's own ticket")
        .get(0);
    assert_ne!(other, ticket);
    let theirs = desk.notice(4);
    assert_eq!(theirs.to, "mallory@evil.example");
    assert!(theirs.body.starts_with(&format!("Ticket {other} created")));

    // The requester's out-of-office answers the "updated" notice: no note, no notice, no loop.
    let away = mail(
        "bob@example.org",
        "help@tickets.example.com",
        &format!("Automatic reply: [Ticket #{ticket}] printer"),
        "ooo1@example.org",
        &[
            "Auto-Submitted: auto-replied",
            &format!("In-Reply-To: <{}>", updated.message_id),
        ],
        "I am out of the office until Monday.",
    );
    desk.send("bob@example.org", "help@tickets.example.com", &away);
    assert_eq!(
        desk.stored(5).await.as_deref(),
        Some("Auto-Submitted: auto-replied")
    );
    assert_eq!(notes(db, ticket).await, expected);
    assert_eq!(count(db, "SELECT count(*) FROM outbox").await, 4);
    // The worker has had time to send anything queued: still four notices.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(desk.gateway.messages().len(), 4);
    assert!(desk.postfix.wait_for_empty_queue(WAIT), "mail left queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn access_rules_open_or_refuse_with_the_right_notice() {
    needs!(Database, Postfix, Dovecot);
    let desk = Desk::start().await;
    let cases = [
        // (sender, destination, ticket opened, notice text)
        (
            "bob@example.org",
            "reg@tickets.example.com",
            false,
            "Only registered users can open tickets here.",
        ),
        (
            "carol@example.com",
            "reg@tickets.example.com",
            true,
            "created",
        ),
        (
            "carol@example.com",
            "queue@tickets.example.com",
            false,
            "You are not allowed to open tickets in this queue.",
        ),
        (
            "alice@example.com",
            "queue@tickets.example.com",
            true,
            "created",
        ),
    ];
    for (i, (sender, destination, opened, text)) in cases.into_iter().enumerate() {
        let n = i + 1;
        let raw = mail(
            sender,
            destination,
            "Access please",
            &format!("access{n}@example.org"),
            &[],
            "Let me in.",
        );
        desk.send(sender, destination, &raw);
        let reason = desk.stored(n as i64).await;
        assert_eq!(
            reason.is_none(),
            opened,
            "{sender} → {destination}: {reason:?}"
        );
        let notice = desk.notice(n);
        assert_eq!(notice.to, sender);
        assert_eq!(notice.from, destination);
        assert!(notice.body.contains(text), "{notice:?}");
        let opened_by_sender = count(
            &desk.db,
            &format!(
                "SELECT count(*) FROM tickets t JOIN ticket_policies p ON p.id = t.ticket_policy_id
                 WHERE t.requester = '{sender}' AND p.destination = '{destination}'"
            ),
        )
        .await;
        assert_eq!(opened_by_sender > 0, opened, "{sender} → {destination}");
        if !opened {
            assert_eq!(notice.subject, "Re: Access please");
        }
    }
    assert_eq!(count(&desk.db, "SELECT count(*) FROM tickets").await, 2);
}

/// `raw` with LF line ends, as the LMTP test client takes it.
fn lf(raw: &str) -> String {
    raw.replace("\r\n", "\n")
}

/// An in-process LMTP server storing into `db`, with `[outbound]` configured (no worker: the
/// notices stay queued, which is what these tests look at).
async fn lmtp_server(db: &TestDb, extra: &str) -> String {
    let dir = unique_temp_dir("mailops-tickets-lmtp");
    let (_, config) = config(&dir, db, "127.0.0.1:1", extra);
    serve::sync_recipients(&config, &db.pool)
        .await
        .expect("sync");
    let current = state::Current::default();
    current.replace(state::load(&db.pool, None).await.expect("state"));
    let listener = lmtp::Listener::bind(&config.lmtp.listen, "")
        .await
        .expect("bind");
    let addr = listener.local_addr_string();
    let backend = Delivery::new(
        db.pool.clone(),
        current,
        delivery::Settings::from(&config),
        config.outbound.clone().map(Arc::new),
    );
    tokio::spawn(lmtp::serve(
        listener,
        Arc::new(backend),
        serve::limits(&config),
        "mon.example.com".into(),
        std::future::pending(),
    ));
    addr
}

#[tokio::test]
async fn automatic_mail_and_our_own_never_open_tickets_or_get_notices() {
    needs!(Database);
    let db = TestDb::with_setup(POLICIES).await;
    let addr = lmtp_server(&db, "").await;
    let to = "help@tickets.example.com";
    let report = "Content-Type: multipart/report; report-type=delivery-status; boundary=r";
    let cases: [(&str, &str, &[&str], &str); 7] = [
        (
            "",
            "bob@example.org",
            &[],
            "null sender (a bounce or report)",
        ),
        (
            "bob@example.org",
            "bob@example.org",
            &["Auto-Submitted: auto-generated"],
            "Auto-Submitted: auto-generated",
        ),
        (
            "list@example.org",
            "list@example.org",
            &["Precedence: bulk"],
            "Precedence: bulk",
        ),
        (
            "bob@example.org",
            "bob@example.org",
            &[report],
            "delivery status report",
        ),
        (
            "x@example.org",
            "help@tickets.example.com",
            &[],
            "sent by mailops itself (help@tickets.example.com)",
        ),
        (
            "noreply@mon.example.com",
            "noreply@mon.example.com",
            &[],
            "sent by mailops itself (noreply@mon.example.com)",
        ),
        (
            "bob@example.org",
            "bob@example.org",
            &["X-Autoreply: yes"],
            "automatic reply (X-Autoreply)",
        ),
    ];
    // As Postfix delivers what a client in mynetworks sent.
    let mut c = Client::connect(&addr).await.with_client("127.0.0.1");
    for (i, (envelope_from, from, headers, reason)) in cases.iter().enumerate() {
        let raw = mail(
            from,
            to,
            "Hello",
            &format!("noise{i}@example.org"),
            headers,
            "x",
        );
        let (_, replies) = c.transaction(None, envelope_from, &[to], &lf(&raw)).await;
        assert!(replies[0].starts_with("250 "), "{replies:?}");
        let stored: Option<String> = db
            .client()
            .await
            .query_one(
                "SELECT ignored_reason FROM inbound_messages ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .expect("stored")
            .get(0);
        assert_eq!(stored.as_deref(), Some(*reason), "case {i}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM tickets").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM outbox").await, 0);
}

#[tokio::test]
async fn notices_to_one_address_are_rate_limited_and_redeliveries_do_nothing_twice() {
    needs!(Database);
    let db = TestDb::with_setup(POLICIES).await;
    let addr = lmtp_server(&db, "notices_per_hour = 2").await;
    let to = "help@tickets.example.com";
    // As Postfix delivers what a client in mynetworks sent.
    let mut c = Client::connect(&addr).await.with_client("127.0.0.1");
    for i in 0..3 {
        let raw = mail(
            "bob@example.org",
            to,
            &format!("Request {i}"),
            &format!("r{i}@example.org"),
            &[],
            "x",
        );
        let (_, replies) = c
            .transaction(None, "bob@example.org", &[to], &lf(&raw))
            .await;
        assert!(replies[0].starts_with("250 "), "{replies:?}");
        if i == 0 {
            // The same mail again (no queue id: recognised by content): nothing new.
            let (_, again) = c
                .transaction(None, "bob@example.org", &[to], &lf(&raw))
                .await;
            assert!(again[0].contains("already stored"), "{again:?}");
        }
    }
    assert_eq!(count(&db, "SELECT count(*) FROM tickets").await, 3);
    assert_eq!(count(&db, "SELECT count(*) FROM ticket_notes").await, 3);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE kind = 'ticket_created'"
        )
        .await,
        2
    );
}
