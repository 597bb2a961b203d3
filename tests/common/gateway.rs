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

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::oauth::AuthServer;
use super::postfix::{
    describe, free_port, postfix, random_hex, require_postfix, run, sbin, unique_temp_dir,
};

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
        require_postfix();
        require_dovecot();
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

    fn write_certificate(&self) {
        let config = self.dir.join("openssl.cnf");
        // CA:FALSE and serverAuth: rustls (lettre's TLS) refuses a CA certificate as a
        // server's own, while a self-signed leaf given as a root is fine to both it and
        // OpenSSL.
        write(
            &config,
            r#"[req]
distinguished_name = dn
prompt = no
x509_extensions = leaf
[dn]
CN = localhost
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
"#,
        );
        let key = self.dir.join("key.pem");
        let out = run(Command::new("openssl")
            .args(["req", "-x509", "-config"])
            .arg(&config)
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
            .args(["-nodes", "-days", "1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&self.ca_cert));
        assert!(out.status.success(), "openssl req: {}", describe(&out));
        // smtpd_tls_chain_files: the key, then its certificate, in one file.
        let chain = [read(&key), read(&self.ca_cert)].concat();
        write(
            &self.dir.join("chain.pem"),
            &String::from_utf8_lossy(&chain),
        );
        set_mode(&self.dir.join("chain.pem"), 0o600);
    }

    fn start_dovecot(&mut self) {
        let dovecot = self.dir.join("dovecot");
        std::fs::create_dir_all(&dovecot)
            .unwrap_or_else(|e| panic!("creating {}: {e}", dovecot.display()));
        let users = dovecot.join("users");
        // The auth process runs as user dovecot; this file is the only secret here.
        write(
            &users,
            &format!("{}:{{PLAIN}}{}\n", self.username, self.password),
        );
        set_mode(&users, 0o640);
        let group = id("-g", "dovecot");
        std::os::unix::fs::chown(&users, None, Some(group))
            .unwrap_or_else(|e| panic!("chown {}: {e}", users.display()));
        // Dovecot 2.3's oauth2 passdb: no tokeninfo_url, so every token goes straight to
        // introspection; the answer must name this user and say `"active": true`.
        let oauth2 = dovecot.join("dovecot-oauth2.conf.ext");
        write(
            &oauth2,
            &format!(
                "introspection_mode = post\n\
                 introspection_url = {}\n\
                 username_attribute = username\n\
                 active_attribute = active\n\
                 active_value = true\n\
                 timeout_msecs = 10000\n",
                self.oauth.introspection_url()
            ),
        );
        write(
            &self.dovecot_config,
            &format!(
                r#"# The test gateway's SASL service: no protocol, so no TCP listener.
base_dir = {dovecot}/run
state_dir = {dovecot}/state
instance_name = mailops-gateway
log_path = {log}
info_log_path = {log}
protocols =
ssl = no
# The plain listener takes PLAIN and LOGIN without TLS, as some gateways do.
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 xoauth2
auth_verbose = yes
# CRAM-MD5 needs the password itself (or its CRAM-MD5 hash) on the server.
passdb {{
  driver = passwd-file
  mechanisms = plain login cram-md5
  args = scheme=PLAIN username_format=%u {users}
}}
# XOAUTH2: the token is checked at the authorization server, never against the password.
passdb {{
  driver = oauth2
  mechanisms = xoauth2
  args = {oauth2}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {socket} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"#,
                dovecot = dovecot.display(),
                log = self.dovecot_log.display(),
                users = users.display(),
                oauth2 = oauth2.display(),
                socket = self.sasl_socket().display(),
            ),
        );
        // Not `run`: the daemonized master keeps the stdout and stderr it inherited open,
        // so reading them to their end would wait until it stops. Into a file instead.
        let startup_log = dovecot.join("startup.log");
        let output = std::fs::File::create(&startup_log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", startup_log.display()));
        let errors = output.try_clone().expect("duplicating a file handle");
        let status = Command::new(sbin("dovecot"))
            .arg("-c")
            .arg(&self.dovecot_config)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .status()
            .unwrap_or_else(|e| panic!("running dovecot: {e}"));
        assert!(
            status.success(),
            "dovecot -c {}: {status}\n{}\n{}",
            self.dovecot_config.display(),
            read_lossy(&startup_log),
            self.log()
        );
        // The master daemonizes; it writes its pid and creates the sockets after the
        // command above has returned.
        let pid_file = dovecot.join("run/master.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if pid.is_some() {
                self.dovecot_pid = pid;
            }
            if pid.is_some() && self.sasl_socket().exists() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Dovecot did not create {} and {}\n{}",
                pid_file.display(),
                self.sasl_socket().display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Dovecot's authentication socket for Postfix. Postfix takes an absolute path as it
    /// is when smtpd runs without chroot (as here); a relative one would be under the queue.
    fn sasl_socket(&self) -> PathBuf {
        self.dir.join("sasl")
    }

    fn configure_postfix(&self) {
        let queue = self.dir.join("queue");
        // Postfix chdirs into the queue first, so it must exist; it creates the data
        // directory itself (owned by postfix).
        std::fs::create_dir_all(&queue)
            .unwrap_or_else(|e| panic!("creating {}: {e}", queue.display()));
        std::fs::create_dir_all(&self.config_dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", self.config_dir.display()));
        // virtual(8) delivers as nobody, creating the Maildir below this directory.
        let mail = self
            .mailbox
            .parent()
            .expect("the Maildir is dir/mail/inbox");
        std::fs::create_dir_all(mail)
            .unwrap_or_else(|e| panic!("creating {}: {e}", mail.display()));
        let (uid, gid) = (id("-u", "nobody"), id("-g", "nobody"));
        std::os::unix::fs::chown(mail, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", mail.display()));
        let dir = self.dir.display();
        write(
            &self.config_dir.join("main.cf"),
            &format!(
                r#"# The test gateway: relays for authenticated clients, delivers every domain into
# one Maildir. Hand-written: it stands for a customer's relay, not for mailops's own Postfix.
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
myhostname = gateway.mailops.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
syslog_name = postfix-gateway
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}/maillog
# No DNS on a test machine: clients are logged as unknown[127.0.0.1].
smtpd_peername_lookup = no
mynetworks = 127.0.0.0/8

# Every domain is a virtual mailbox domain (a static: table matches any name), every
# address a mailbox, and every mailbox the same Maildir: {mailbox}/
mydestination =
virtual_mailbox_domains = static:all
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
# Nothing is relayed off this machine, whatever the configuration above.
relayhost =
relay_domains =
default_transport = error:no outside mail in tests
local_transport = error:no local delivery in tests
alias_maps =
alias_database =
# The mailbox holds what clients sent, never Postfix's own notices.
notify_classes =

# Relaying: per listener in master.cf; nothing by default.
smtpd_relay_restrictions = reject
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sasl}
# The Received header names the authenticated user, and the TLS version.
smtpd_sasl_authenticated_header = yes
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_tls_chain_files = {dir}/chain.pem
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
"#,
                mailbox = self.mailbox.display(),
                sasl = self.sasl_socket().display(),
            ),
        );
        self.write_master_cf();
    }

    fn write_master_cf(&self) {
        // Only the services this gateway needs: no smtp, relay, lmtp, local or pipe
        // service exists to carry mail anywhere but the Maildir.
        write(
            &self.config_dir.join("master.cf"),
            &format!(
                r#"# service type  private unpriv  chroot  wakeup  maxproc command + args
{submission} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/submission
  -o smtpd_tls_security_level=may
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{smtps} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{plain} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/plain
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{open} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/open
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=permit_mynetworks,reject
{held} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/held
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_end_of_data_restrictions=check_policy_service,inet:{held_policy}
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
virtual   unix  - n n -     - virtual
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"#,
                submission = self.submission,
                smtps = self.smtps,
                plain = self.plain,
                open = self.open,
                held = self.held,
                held_policy = self.held_policy,
            ),
        );
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

    fn stop_dovecot(&mut self) {
        let Some(pid) = self.dovecot_pid.take() else {
            return;
        };
        // SAFETY: kill(2) on the pid Dovecot's master wrote; no memory is involved.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return;
        }
        // The master reaps its own processes, then exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// Panics with what to do unless Dovecot is installed.
pub fn require_dovecot() {
    assert!(
        sbin("dovecot").is_absolute(),
        "Dovecot is not installed: scripts/test installs it (Debian package dovecot-core)"
    );
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

/// True while process `pid` exists and is not a zombie (a daemon's parent may never reap it).
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !state.is_some_and(|s| s.starts_with('Z'))
        })
        .unwrap_or(false)
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

/// The Postfix policy service (the SMTPD access policy delegation protocol) that the gateway's
/// `held` listener asks at the end of DATA: it answers the first request only once the test
/// releases it, so the client waits for its `250`; later requests at once.
pub struct HeldPolicy {
    arrived: Option<tokio::sync::oneshot::Receiver<()>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HeldPolicy {
    /// Listens on `addr` (the gateway's `held_policy`).
    pub async fn start(addr: SocketAddr) -> HeldPolicy {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("binding the policy service on {addr}: {e}"));
        let (arrived_tx, arrived) = tokio::sync::oneshot::channel();
        let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut first = Some((arrived_tx, release_rx));
            while let Ok((stream, _)) = listener.accept().await {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                // Requests are `name=value` lines ending with an empty line.
                while matches!(stream.read_line(&mut line).await, Ok(n) if n > 0) {
                    if line.trim_end().is_empty() {
                        if let Some((arrived, release)) = first.take() {
                            let _ = arrived.send(());
                            let _ = release.await;
                        }
                        if stream
                            .get_mut()
                            .write_all(b"action=DUNNO\n\n")
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    line.clear();
                }
            }
        });
        HeldPolicy {
            arrived: Some(arrived),
            release: Some(release),
        }
    }

    /// Waits until the first end of DATA is being held; panics after `timeout`.
    pub async fn wait_until_held(&mut self, timeout: Duration) {
        let arrived = self.arrived.take().expect("waited for once");
        tokio::time::timeout(timeout, arrived)
            .await
            .expect("no end of DATA reached the held listener")
            .expect("the policy service ended");
    }

    /// Lets the held end of DATA be answered.
    pub fn release(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}
