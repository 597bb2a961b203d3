//! Hostile input through the real `mailops serve` over TCP: the malformed-message corpus
//! (`hostile/samples.rs`) and protocol abuse (`hostile/abuse.rs`). Every sample goes to an
//! events address and a ticket destination, so it is parsed, routed and evaluated; each gets its
//! documented reply, the rows stay sane, the server stays up with bounded memory, and a normal
//! message is still answered after each one.

mod abuse;
mod samples;

use std::future::Future;
use std::time::Duration;

use crate::support;
use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::postfix::{free_port, unique_temp_dir};
use crate::support::serve::Serve;
use crate::support::services::needs;
use mailops::policy::{self, Options, PolicyFile};
use samples::{Expect, Row};
use tokio_postgres::types::ToSql;

/// How long any one step may take before the server counts as stuck. A liveness bound, far
/// above what a step needs: no test asserts how long anything took.
const LIVENESS: Duration = Duration::from_secs(30);
/// The events address and the ticket destination (access `open`) every sample goes to.
const NOTIFY: &str = "notify@mon.example.com";
const TICKETS: &str = "front@mon.example.com";
/// The most memory `serve` may have used after the whole corpus.
const MAX_RSS_KB: u64 = 256 * 1024;

/// `mailops serve` on a fresh database holding the policies of `tests/fixtures/policies.toml`.
struct Server {
    db: TestDb,
    serve: Serve,
    addr: String,
}

impl Server {
    /// Starts serve with `lmtp` added to its `[lmtp]` section.
    async fn start(lmtp: &str) -> Server {
        let db = TestDb::new().await;
        let file = PolicyFile::parse(include_str!("../fixtures/policies.toml")).expect("policies");
        let port = free_port();
        let text = support::config::text(
            &db.url,
            &format!("127.0.0.1:{port}"),
            lmtp,
            &["mon.example.com"],
            &format!(
                "[outbound]\nfrom_address = \"mailops@mon.example.com\"\n\
                 gateway = \"127.0.0.1:{}\"\nblock_outgoing = true\nnotices_per_hour = 100000",
                free_port()
            ),
        );
        let (config_file, config) =
            support::config::write(&unique_temp_dir("mailops-hostile"), &text);
        policy::apply(&db.pool, &file, &config.inbound, Options::default())
            .await
            .expect("policies apply");
        let serve = Serve::start(&config_file, &config);
        Server {
            db,
            serve,
            addr: format!("127.0.0.1:{port}"),
        }
    }

    /// A new connection, greeted.
    async fn connect(&self) -> Client {
        live("the greeting", Client::connect(&self.addr)).await
    }

    /// A normal alert on a new connection still gets `250` for both recipients.
    async fn still_serves(&self, after: &str) {
        let mut c = self.connect().await;
        let ident = format!("normal-{}", support::postfix::random_hex(8));
        let message = format!("From: Veeam <Veeam@Example.com>\r\nSubject: Backup job for nas1.example.com: Failed\r\n\r\nAfter {after}\r\n");
        let replies = live(after, deliver(&mut c, &ident, message.as_bytes())).await;
        for reply in &replies {
            assert!(reply.starts_with("250 2.0.0"), "after {after}: {replies:?}");
        }
    }

    /// The stored copies of the message sent with XFORWARD IDENT `ident`, events one first.
    async fn rows(&self, ident: &str) -> Vec<(String, i64, Row)> {
        let rows = self
            .db
            .client()
            .await
            .query(
                "SELECT route, id, parsed, subject, message_id, from_address, raw
                 FROM inbound_messages JOIN inbound_raw ON inbound_message_id = id
                 WHERE queue_id = $1 ORDER BY route",
                &[&ident],
            )
            .await
            .expect("inbound_messages");
        rows.iter()
            .map(|r| {
                let row = Row {
                    parsed: r.get("parsed"),
                    subject: r.get("subject"),
                    message_id: r.get("message_id"),
                    from_address: r.get("from_address"),
                    raw: r.get("raw"),
                };
                (r.get("route"), r.get("id"), row)
            })
            .collect()
    }

    /// The single number `sql` selects.
    async fn count(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> i64 {
        self.db
            .client()
            .await
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// The most memory serve has used so far (VmHWM), in kB.
    fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.serve.pid()))
            .expect("serve's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }
}

/// `step`, or a failure naming `what` once [`LIVENESS`] is over.
async fn live<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIVENESS, step)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {LIVENESS:?}"))
}

/// `raw` as DATA carries it: a `.` starting a line doubled (RFC 5321 §4.5.2), then the end.
fn data(raw: &[u8]) -> Vec<u8> {
    assert!(
        raw.is_empty() || raw.ends_with(b"\r\n"),
        "a message ends in CRLF"
    );
    let mut out = mailops::lmtp::stuff(raw);
    out.extend(b".\r\n");
    out
}

/// One transaction from Veeam to both addresses, IDENT `ident`; the two DATA replies.
async fn deliver(c: &mut Client, ident: &str, raw: &[u8]) -> Vec<String> {
    for (line, want) in [
        ("LHLO hostile.example".to_owned(), "250"),
        // As Postfix forwards mail from a client in mynetworks, whose sender is verified: the
        // corpus's ticket notices are then sent (and checked for injected headers).
        (
            format!("XFORWARD IDENT={ident} ADDR=127.0.0.1"),
            "250 2.0.0",
        ),
        ("MAIL FROM:<Veeam@Example.com>".to_owned(), "250 2.1.0"),
        (format!("RCPT TO:<{NOTIFY}>"), "250 2.1.5"),
        (format!("RCPT TO:<{TICKETS}>"), "250 2.1.5"),
        ("DATA".to_owned(), "354"),
    ] {
        let reply = c.command(&line).await;
        assert!(reply.starts_with(want), "{line}: {reply}");
    }
    c.send(&data(raw)).await;
    vec![c.reply().await, c.reply().await]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_corpus_gets_documented_replies_and_bounded_memory() {
    needs!(Database);
    let max_size = 26_214_400;
    let server = Server::start("").await;
    for (i, sample) in samples::corpus(max_size).into_iter().enumerate() {
        let ident = format!("hostile-{i}");
        let started = std::time::Instant::now();
        let mut c = server.connect().await;
        let replies = live(sample.name, deliver(&mut c, &ident, &sample.raw)).await;
        eprintln!(
            "{}: {} in {:?}, peak RSS {} kB",
            sample.name,
            replies[0],
            started.elapsed(),
            server.peak_rss_kb()
        );
        let rows = server.rows(&ident).await;
        match sample.expect {
            Expect::Refused(reply) => {
                for r in &replies {
                    assert!(r.starts_with(reply), "{}: {replies:?}", sample.name);
                }
                assert!(rows.is_empty(), "{}: stored", sample.name);
            }
            Expect::Stored { parsed } => {
                for r in &replies {
                    assert!(r.starts_with("250 2.0.0"), "{}: {replies:?}", sample.name);
                }
                let routes: Vec<&str> = rows.iter().map(|(route, ..)| route.as_str()).collect();
                assert_eq!(routes, ["event", "ticket"], "{}", sample.name);
                for (route, _, row) in &rows {
                    assert_eq!(row.parsed, parsed, "{}: {route} parsed", sample.name);
                    assert!(
                        row.raw == sample.raw,
                        "{}: {route} raw differs",
                        sample.name
                    );
                    (sample.check)(row);
                }
                // The events pipeline evaluated it: a device log or an E701 line.
                let evaluated = server
                    .count(
                        "SELECT (SELECT count(*) FROM device_logs WHERE inbound_message_id = $1)
                              + (SELECT count(*) FROM system_log WHERE inbound_message_id = $1)",
                        &[&rows[0].1],
                    )
                    .await;
                assert!(evaluated >= 1, "{}: not evaluated", sample.name);
            }
        }
        server.still_serves(sample.name).await;
    }
    notices_carry_no_injected_headers(&server).await;

    let peak = server.peak_rss_kb();
    eprintln!("mailops serve peak RSS after the corpus: {peak} kB");
    assert!(peak < MAX_RSS_KB, "peak RSS {peak} kB");
    let status = server.serve.stop();
    assert!(status.success(), "serve exited with {status}");
}

/// Every ticket notice the corpus caused has a well-formed header block: CRLF line ends, no
/// NUL, no header a decoded subject smuggled in.
async fn notices_carry_no_injected_headers(server: &Server) {
    let rows = server
        .db
        .client()
        .await
        .query(
            "SELECT message FROM outbox WHERE ticket_id IS NOT NULL OR subject LIKE 'Re:%'",
            &[],
        )
        .await
        .expect("outbox");
    assert!(!rows.is_empty(), "the corpus made ticket notices");
    for row in rows {
        let message: Vec<u8> = row.get(0);
        let text = String::from_utf8_lossy(&message);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        assert!(!head.contains('\0'), "{head}");
        for line in head.split("\r\n") {
            assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
            assert!(line.len() <= 998, "a header line of {} octets", line.len());
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            assert!(
                !["bcc", "x-injected", "x-injected-too"].contains(&name.as_str()),
                "injected header {line:?}"
            );
        }
    }
}
