//! Sender verification for end-to-end tests, all on loopback: an authoritative DNS server
//! (dnsmasq) answering for the test domains only, the verifier (rspamd) started from the
//! configuration `mailops postfix-config` generated, and a signing key whose public half the
//! DNS server publishes. Nothing here asks outside DNS.
//!
//! Needs root (rspamd drops to `_rspamd`) and Debian's rspamd, dnsmasq-base, python3-dkim
//! (`dkimsign`) and openssl; `scripts/test` installs them.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::postfix::{describe, run, PostfixInstance};
use super::services::{assert_present, Service};

/// A DNS server on 127.0.0.1 that knows only the TXT records it was given (every other name:
/// NXDOMAIN, never forwarded).
pub struct Dns {
    /// `127.0.0.1:port`, for `[inbound.auth] nameservers`.
    pub addr: String,
    child: Child,
}

impl Dns {
    /// Starts dnsmasq serving `txt` (name, text) records.
    pub fn start(txt: &[(&str, &str)]) -> Dns {
        assert_present(Service::Verifier);
        for attempt in 1..=3 {
            let port = free_udp_port();
            let mut command = Command::new("dnsmasq");
            command.args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--local=/#/",
                "--user=root",
            ]);
            command.arg(format!("--port={port}"));
            for (name, text) in txt {
                // dnsmasq splits a record's strings at commas: none in ours.
                assert!(!text.contains(','), "a TXT record with a comma: {text}");
                command.arg(format!("--txt-record={name},{text}"));
            }
            let mut child = command
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting dnsmasq");
            std::thread::sleep(Duration::from_millis(200));
            match child.try_wait() {
                Ok(None) => {
                    return Dns {
                        addr: format!("127.0.0.1:{port}"),
                        child,
                    }
                }
                _ if attempt < 3 => continue,
                _ => panic!(
                    "dnsmasq did not start: {}",
                    describe(&child.wait_with_output().expect("dnsmasq's output"))
                ),
            }
        }
        unreachable!("the loop returns or panics")
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .expect("binding 127.0.0.1:0 (udp)")
        .port()
}

/// The verifier (rspamd) of a Postfix instance, from the rspamd.conf generated beside its
/// main.cf.
pub struct Verifier {
    child: Child,
    log: PathBuf,
}

impl Verifier {
    /// Prepares `directory` (`[inbound.auth] verifier_directory`) as an operator would (owned
    /// by `_rspamd`, reachable by the postfix group), starts rspamd and waits for its milter
    /// socket.
    pub fn start(postfix: &PostfixInstance) -> Verifier {
        assert_present(Service::Verifier);
        let directory = &postfix.config.inbound.auth.verifier_directory;
        std::fs::create_dir_all(directory).expect("creating the verifier directory");
        let out = run(Command::new("chown").arg("_rspamd:postfix").arg(directory));
        assert!(out.status.success(), "chown: {}", describe(&out));
        let out = run(Command::new("chmod").arg("0750").arg(directory));
        assert!(out.status.success(), "chmod: {}", describe(&out));
        let log = postfix.dir.join("rspamd.log");
        let file = std::fs::File::create(&log).expect("creating rspamd's log");
        let child = Command::new("rspamd")
            .arg("-f")
            .arg("-c")
            .arg(postfix.config_dir.join("rspamd.conf"))
            .args(["-u", "_rspamd", "-g", "_rspamd"])
            .stdout(file.try_clone().expect("rspamd's log"))
            .stderr(file)
            .spawn()
            .expect("starting rspamd");
        let mut verifier = Verifier { child, log };
        let socket = directory.join("milter.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !socket.exists() {
            let exited = verifier.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "rspamd did not open {} ({exited:?})\n--- its log ---\n{}",
                socket.display(),
                verifier.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        verifier
    }

    /// What rspamd has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        // SIGTERM: rspamd's main process stops its workers and removes its sockets.
        // SAFETY: kill(2) with a child's pid and a signal number touches no memory.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- rspamd's log ---\n{}", self.log());
        }
    }
}

/// An RSA key for signing test mail with DKIM, and the TXT record publishing it.
pub struct SigningKey {
    /// The private key (PEM).
    pub file: PathBuf,
    /// `v=DKIM1; k=rsa; p=...` (a 1024-bit key: the record fits one TXT string).
    pub record: String,
}

impl SigningKey {
    /// Makes a new key in `dir`.
    pub fn new(dir: &Path) -> SigningKey {
        let file = dir.join("dkim.key");
        let out = run(Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&file)
            .arg("1024"));
        assert!(out.status.success(), "openssl genrsa: {}", describe(&out));
        let out = run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&file));
        assert!(out.status.success(), "openssl rsa: {}", describe(&out));
        // The PEM's base64 lines, joined: the key in DER, as DKIM's p= wants it.
        let pem = String::from_utf8_lossy(&out.stdout);
        let p: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let record = format!("v=DKIM1; k=rsa; p={p}");
        SigningKey { file, record }
    }

    /// `raw` signed for `domain` with selector `selector` (dkimpy's dkimsign).
    pub fn sign(&self, raw: &str, selector: &str, domain: &str) -> String {
        let mut child = Command::new("dkimsign")
            .arg(selector)
            .arg(domain)
            .arg(&self.file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dkimsign");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), raw.as_bytes())
            .expect("writing to dkimsign");
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("dkimsign's output");
        assert!(out.status.success(), "dkimsign: {}", describe(&out));
        String::from_utf8(out.stdout).expect("a signed mail is text")
    }
}
