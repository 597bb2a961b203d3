//! The load: numbered messages, each to several recipients, sent through Postfix's SMTP server
//! by concurrent lettre clients, and what became of each.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Tokio1Executor};

/// Devices the alerts are about: each keeps one active event, counting its messages.
pub const DEVICES: usize = 8;
/// The event recipients every message has, and the ticket destination every third adds.
const NOTIFY: [&str; 2] = ["notify@mon.example.com", "notify@mon2.example.com"];
pub const TICKETS: &str = "help@mon.example.com";

/// What became of a message at Postfix's SMTP server.
#[derive(Debug)]
pub enum Sent {
    /// `250` after DATA: Postfix queued it, so every recipient must get exactly one row.
    Accepted,
    /// A `4xx` reply (a failed recipient lookup while PostgreSQL is away): not queued, no row.
    Refused,
    /// The connection failed before the reply (Postfix restarting): Postfix may or may not have
    /// queued it, so each recipient has one row or none, all alike.
    Unknown,
    /// A `5xx`: never right for these recipients.
    Rejected(String),
}

/// What the senders share with the test.
#[derive(Default)]
pub struct Shared {
    next: AtomicUsize,
    pub accepted: AtomicUsize,
    pub stop: AtomicBool,
    pub sent: Mutex<BTreeMap<usize, Sent>>,
}

/// Message `n`'s recipients and device.
pub fn recipients(n: usize) -> Vec<&'static str> {
    let mut to = NOTIFY.to_vec();
    if n % 3 == 0 {
        to.push(TICKETS);
    }
    to
}

pub fn device(n: usize) -> String {
    format!("dev{}.example.com", n % DEVICES)
}

pub fn message_id(n: usize) -> String {
    format!("fault-{n}@faults.example.com")
}

/// Message `n`: unique by its Message-ID and subject; its body raises the event.
fn message(n: usize) -> String {
    let device = device(n);
    format!(
        "From: Backup <backup@devices.example.com>\r\nTo: {}\r\n\
         Subject: Backup job for {device} Failed (message {n})\r\nMessage-ID: <{}>\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Backup job {n} on {device}: Failed.\r\n",
        recipients(n).join(", "),
        message_id(n)
    )
}

/// One SMTP client (lettre, a connection per message) sending new messages until told to stop.
pub async fn send(port: u16, shared: Arc<Shared>) {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(Duration::from_secs(60)))
        .build();
    while !shared.stop.load(Ordering::Relaxed) {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let envelope = Envelope::new(
            Some("backup@devices.example.com".parse().expect("address")),
            recipients(n)
                .into_iter()
                .map(|r| r.parse().expect("address"))
                .collect(),
        )
        .expect("envelope");
        let outcome = match transport.send_raw(&envelope, message(n).as_bytes()).await {
            Ok(_) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                Sent::Accepted
            }
            Err(e) if e.is_permanent() => Sent::Rejected(e.to_string()),
            Err(e) if e.is_transient() => Sent::Refused,
            Err(_) => Sent::Unknown,
        };
        if !matches!(outcome, Sent::Accepted) {
            // Postfix is restarting or cannot look recipients up: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shared.sent.lock().expect("sent").insert(n, outcome);
    }
}

/// How many messages ended which way.
#[derive(Default)]
pub struct Counts {
    pub accepted: usize,
    pub refused: usize,
    pub unknown: usize,
    pub rejected: usize,
    /// LMTP deliveries Postfix deferred.
    pub deferred: usize,
    /// Recipients mailops answered "already stored".
    pub redelivered: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "messages accepted {}, refused {}, unknown {}, rejected {}; \
             deliveries deferred {}, redeliveries recognised {}",
            self.accepted,
            self.refused,
            self.unknown,
            self.rejected,
            self.deferred,
            self.redelivered
        )
    }
}

impl Counts {
    pub fn of(sent: &BTreeMap<usize, Sent>) -> Counts {
        let mut c = Counts::default();
        for outcome in sent.values() {
            match outcome {
                Sent::Accepted => c.accepted += 1,
                Sent::Refused => c.refused += 1,
                Sent::Unknown => c.unknown += 1,
                Sent::Rejected(_) => c.rejected += 1,
            }
        }
        c
    }
}
