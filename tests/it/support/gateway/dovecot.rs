//! The gateway's Dovecot: the SASL service its Postfix authenticates clients with, passwords
//! from a file and XOAUTH2 tokens checked at the authorization server.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{id, read_lossy, set_mode, write, Gateway};
use crate::support::postfix::sbin;

impl Gateway {
    pub(super) fn start_dovecot(&mut self) {
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
    pub(super) fn sasl_socket(&self) -> PathBuf {
        self.dir.join("sasl")
    }

    pub(super) fn stop_dovecot(&mut self) {
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

/// True while process `pid` exists and is not a zombie (a daemon's parent may never reap it).
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !state.is_some_and(|s| s.starts_with('Z'))
        })
        .unwrap_or(false)
}
