//! The whole product on one machine, for end-to-end tests: a real gateway for what mailops
//! sends, `mailops serve` on a fresh database, and its Postfix (from the generated
//! configuration) in front.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mailops::config::Config;

use super::db::TestDb;
use super::gateway::Gateway;
use super::postfix::{describe, free_port, run, unique_temp_dir, PostfixInstance};
use super::serve::Serve;

/// mailops's config: the ticket domain authorized, notices through the gateway's open
/// listener.
pub fn config(dir: &Path, db: &TestDb, gateway: &str, extra: &str) -> (PathBuf, Config) {
    let text = super::config::text(
        &db.url,
        &format!("127.0.0.1:{}", free_port()),
        "",
        &["mon.example.com", "tickets.example.com"],
        &format!(
            r#"{}
[outbound]
from_address = "noreply@mon.example.com"
gateway = "{gateway}"
encryption = "none"
ticket_url = "https://ops.example.com/tickets/%t"
timeout_s = 10
{extra}"#,
            super::config::postfix_section()
        ),
    );
    super::config::write(dir, &text)
}

/// A mail as a client writes it (CRLF line ends).
pub fn mail(from: &str, to: &str, subject: &str, id: &str, headers: &[&str], body: &str) -> String {
    let mut text = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
    );
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    if !headers.iter().any(|h| h.starts_with("Content-Type")) {
        text.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    text.push_str("\r\n");
    text.push_str(&body.replace('\n', "\r\n"));
    text.push_str("\r\n");
    text
}

/// Everything one end-to-end test runs: the gateway, mailops, and its Postfix in front.
pub struct Stack {
    pub db: TestDb,
    pub dir: PathBuf,
    pub gateway: Gateway,
    pub postfix: PostfixInstance,
    _serve: Serve,
}

impl Stack {
    /// Starts everything, with `setup` (SQL) run on the database first and `extra` lines
    /// added to `[outbound]`.
    pub async fn start(setup: &str, extra: &str) -> Stack {
        let gateway = Gateway::start();
        let db = TestDb::with_setup(setup).await;
        let dir = unique_temp_dir("mailops-tickets");
        let (file, config) = config(&dir, &db, &gateway.open.to_string(), extra);
        let serve = Serve::start(&file, &config);
        let postfix = PostfixInstance::start(&config);
        Stack {
            db,
            dir,
            gateway,
            postfix,
            _serve: serve,
        }
    }

    /// Sends `raw` from `from` to `to` through mailops's Postfix with swaks.
    pub fn send(&self, from: &str, to: &str, raw: &str) {
        let out = swaks(&self.postfix, &self.dir, from, to, raw);
        assert!(out.status.success(), "{}", describe(&out));
    }
}

/// Offers `raw` from `from` to `to` to `postfix`'s SMTP server with swaks (the mail written to
/// `dir` first); returns what swaks did.
pub fn swaks(postfix: &PostfixInstance, dir: &Path, from: &str, to: &str, raw: &str) -> Output {
    let file = dir.join("mail.eml");
    std::fs::write(&file, raw).expect("writing the mail");
    run(Command::new("swaks")
        .args(["--server", &postfix.smtp_addr.to_string()])
        .args(["--from", from, "--to", to])
        .args(["--helo", "client.example.org"])
        .arg("--data")
        .arg(&file)
        .args(["--timeout", "30"]))
}
