//! A stand-in for an organisation's SMTP gateway, for the outbound mail tests: a private
//! Postfix instance (hand-written configuration, not mailops's generated one) that relays
//! for clients authenticated through a private Dovecot's SASL service, and delivers every
//! message, whatever its recipient's domain, into one Maildir the test reads.
//!
//! Four listeners on 127.0.0.1, one per way mailops can be told to reach a gateway:
//! - `submission`: plain SMTP offering STARTTLS; AUTH only after STARTTLS.
//! - `smtps`: TLS from the first byte (RFC 8314 implicit TLS), AUTH offered.
//! - `plain`: no TLS at all, AUTH offered in the clear (encryption = none with a password).
//! - `open`: no TLS, no AUTH; relays for 127.0.0.0/8 (an unauthenticated gateway).
//! - `held`: as `open`, but its answer to the end of DATA waits for the test's Postfix policy
//!   service at `held_policy` ([`HeldPolicy`]): a gateway slow to say `250`.
//!
//! Each listener that takes AUTH offers PLAIN, LOGIN, CRAM-MD5 and XOAUTH2, and relays only
//! for an authenticated client (`554 5.7.1` at RCPT otherwise). A wrong password gets
//! `535 5.7.8` after Dovecot's usual 2 s failure delay. XOAUTH2's access tokens come from
//! the gateway's own authorization server ([`AuthServer`], `oauth`), and Dovecot's `oauth2`
//! passdb asks that server's introspection endpoint about every token it is shown: a
//! revoked or expired token gets `535 5.7.8` too. Nothing leaves the machine: every domain is
//! delivered to the Maildir, and `default_transport` is an error.
//!
//! Needs root and Debian's postfix and dovecot-core; `scripts/test` installs them. The
//! system's Postfix and Dovecot, running or not, are neither read nor touched: each
//! instance has its own configuration, sockets, state and logs in a new temporary directory,
//! and Dovecot listens on no TCP port (it serves only the SASL socket Postfix uses).

mod dovecot;
mod files;
mod held;

pub use held::HeldPolicy;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::oauth::AuthServer;
use super::postfix::{describe, free_port, postfix, random_hex, run, sbin, unique_temp_dir};
use super::services::{assert_present, Service};

/// A running test gateway; dropping it stops Postfix and Dovecot and removes its directory
/// (kept, with both logs printed, when the test is failing or `MAILOPS_KEEP_TEST_DIRS` is
/// set).
pub struct Gateway {
    /// The temporary directory holding everything below.
    pub dir: PathBuf,
    /// Postfix's configuration directory, for `postfix -c`, `postqueue -c`.
    pub config_dir: PathBuf,
    /// Plain SMTP offering STARTTLS; AUTH only after STARTTLS (`smtpd_tls_auth_only`).
    pub submission: SocketAddr,
    /// TLS from the first byte (`smtpd_tls_wrappermode`); AUTH offered.
    pub smtps: SocketAddr,
    /// No TLS; AUTH offered in the clear.
    pub plain: SocketAddr,
    /// No TLS, no AUTH: relays for clients in 127.0.0.0/8.
    pub open: SocketAddr,
    /// As `open`, its end of DATA answered once the policy service at `held_policy` says.
    pub held: SocketAddr,
    /// Where `held` asks its policy service (`smtpd_end_of_data_restrictions`); nothing
    /// listens there until a test starts a [`HeldPolicy`] (and then `held` answers `451`).
    pub held_policy: SocketAddr,
    /// The one account Dovecot knows.
    pub username: String,
    /// Its password, new for every gateway.
    pub password: String,
    /// The authorization server that issues the account's XOAUTH2 tokens and that Dovecot
    /// asks about them.
    pub oauth: AuthServer,
    /// PEM of the self-signed certificate every TLS listener presents (CN and DNS name
    /// `localhost`, IP 127.0.0.1, valid one day): the only root a client needs to trust.
    pub ca_cert: PathBuf,
    /// The Maildir every message is delivered to (one file per recipient).
    pub mailbox: PathBuf,
    /// Postfix's log (`maillog_file`).
    pub maillog: PathBuf,
    /// Dovecot's log (authentication failures included).
    pub dovecot_log: PathBuf,
    dovecot_config: PathBuf,
    dovecot_pid: Option<i32>,
    smtp_running: bool,
}

impl Gateway {
    /// Writes a certificate and both configurations into a new temporary directory, starts
    /// the authorization server, Dovecot, then Postfix on four free ports, and returns once all four accept
    /// connections. Panics with the logs when something does not come up.
    pub fn start() -> Gateway {
        assert_present(Service::Postfix);
        assert_present(Service::Dovecot);
        let dir = unique_temp_dir("mailops-gateway");
        // Postfix's and Dovecot's unprivileged processes reach the SASL socket, the
        // Maildir and the password file through this directory, whatever the umask.
        set_mode(&dir, 0o755);
        let [submission, smtps, plain, open, held, held_policy] = free_ports();
        let username = "mailops@example.com".to_owned();
        let mut gateway = Gateway {
            config_dir: dir.join("postfix"),
            submission,
            smtps,
            plain,
            open,
            held,
            held_policy,
            // Hex: no `:` to break the password file.
            password: random_hex(12),
            oauth: AuthServer::start(&username),
            username,
            ca_cert: dir.join("cert.pem"),
            mailbox: dir.join("mail/inbox"),
            maillog: dir.join("maillog"),
            dovecot_log: dir.join("dovecot/dovecot.log"),
            dovecot_config: dir.join("dovecot/dovecot.conf"),
            dir,
            dovecot_pid: None,
            smtp_running: false,
        };
        // From here on a panic drops `gateway`, which stops whatever did start.
        gateway.write_certificate();
        gateway.start_dovecot();
        gateway.configure_postfix();
        // A port can be taken between choosing it and Postfix binding it: choose again.
        for attempt in 1..=3 {
            let started = postfix(&gateway.config_dir, &["start"]);
            if started.status.success() && gateway.wait_for_listeners(true) {
                gateway.smtp_running = true;
                return gateway;
            }
            let _ = postfix(&gateway.config_dir, &["stop"]);
            assert!(
                attempt < 3,
                "the gateway's Postfix did not start: {}\n{}",
                describe(&started),
                gateway.log()
            );
            [
                gateway.submission,
                gateway.smtps,
                gateway.plain,
                gateway.open,
                gateway.held,
                gateway.held_policy,
            ] = free_ports();
            gateway.write_master_cf();
        }
        unreachable!("the loop returns or panics")
    }

    /// Every message delivered so far, raw (with the `Return-Path`, `Delivered-To` and
    /// `Received` headers the gateway added), in the order they arrived. A message for
    /// several recipients is there once per recipient.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        // Postfix writes each message under tmp/ and links it into new/ once complete.
        for sub in ["new", "cur"] {
            let entries = match std::fs::read_dir(self.mailbox.join(sub)) {
                Ok(entries) => entries,
                // Created with the first delivery.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => panic!("reading {}: {e}", self.mailbox.display()),
            };
            for entry in entries {
                let path = entry.expect("reading the Maildir").path();
                files.push((arrival(&path), path));
            }
        }
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| {
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            })
            .collect()
    }

    /// Waits until at least `n` messages have been delivered and returns them all. Panics
    /// with the queue and the logs when fewer have arrived after `timeout`.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if Instant::now() >= deadline {
                let queue = run(Command::new(sbin("postqueue"))
                    .arg("-c")
                    .arg(&self.config_dir)
                    .arg("-p"));
                panic!(
                    "{} of {n} messages delivered to the gateway's mailbox after {timeout:?}\n\
                     --- queue ---\n{}\n{}",
                    messages.len(),
                    String::from_utf8_lossy(&queue.stdout),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Takes all four listeners down (`postfix stop`; Dovecot keeps running) and returns
    /// once each refuses connections. Mail already accepted stays queued until
    /// [`Gateway::start_smtp`].
    pub fn stop_smtp(&mut self) {
        if !std::mem::take(&mut self.smtp_running) {
            return;
        }
        let out = postfix(&self.config_dir, &["stop"]);
        assert!(out.status.success(), "postfix stop: {}", describe(&out));
        assert!(
            self.wait_for_listeners(false),
            "the gateway still accepts connections after postfix stop\n{}",
            self.log()
        );
    }

    /// Brings the listeners back on the same addresses and returns once each accepts
    /// connections.
    pub fn start_smtp(&mut self) {
        if self.smtp_running {
            return;
        }
        let out = postfix(&self.config_dir, &["start"]);
        assert!(
            out.status.success() && self.wait_for_listeners(true),
            "the gateway's Postfix did not start again: {}\n{}",
            describe(&out),
            self.log()
        );
        self.smtp_running = true;
    }

    /// Postfix's log followed by Dovecot's.
    pub fn log(&self) -> String {
        format!(
            "--- {} ---\n{}\n--- {} ---\n{}",
            self.maillog.display(),
            read_lossy(&self.maillog),
            self.dovecot_log.display(),
            read_lossy(&self.dovecot_log)
        )
    }

    /// Waits up to 10 s until every listener accepts connections (`up`) or refuses them.
    fn wait_for_listeners(&self, up: bool) -> bool {
        super::postfix::wait_for_listeners(
            &[
                self.submission,
                self.smtps,
                self.plain,
                self.open,
                self.held,
            ],
            up,
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::mem::take(&mut self.smtp_running) {
            let _ = postfix(&self.config_dir, &["stop"]);
        }
        self.stop_dovecot();
        if std::thread::panicking() || std::env::var_os("MAILOPS_KEEP_TEST_DIRS").is_some() {
            eprintln!("Gateway kept in {}\n{}", self.dir.display(), self.log());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Distinct ports on 127.0.0.1 that were free a moment ago.
fn free_ports<const N: usize>() -> [SocketAddr; N] {
    loop {
        let ports: [u16; N] = std::array::from_fn(|_| free_port());
        let distinct = (1..ports.len()).all(|i| !ports[..i].contains(&ports[i]));
        if distinct {
            return ports.map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
        }
    }
}

/// When a Maildir file arrived: Postfix names it `<seconds>.V<dev>I<inode>M<microseconds>.<host>`;
/// the modification time for a name that does not parse. The path breaks ties.
fn arrival(path: &Path) -> (u64, u64) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut parts = name.split('.');
    let seconds = parts.next().and_then(|s| s.parse().ok());
    let micros = parts
        .next()
        .and_then(|unique| unique.rsplit_once('M'))
        .and_then(|(_, m)| m.parse().ok());
    if let (Some(seconds), Some(micros)) = (seconds, micros) {
        return (seconds, micros);
    }
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    (modified.as_secs(), u64::from(modified.subsec_micros()))
}

/// `id FLAG NAME` (`-u` or `-g`): a system user's uid or primary gid.
fn id(flag: &str, name: &str) -> u32 {
    let out = run(Command::new("id").arg(flag).arg(name));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {flag} {name}: {}", describe(&out)))
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}
