//! The real `mailops` binary: `mailops serve` as a child process, as operators run it, and the
//! command line every test runs it with.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mailops::config::Config;

use super::postfix::{describe, run};

/// `mailops -c config_file`, the real binary, taking its database from the config file only: the
/// environment's `DATABASE_URL` names the server the tests share, not the test's own database.
pub fn mailops(config_file: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailops"));
    command
        .arg("-c")
        .arg(config_file)
        .env_remove("DATABASE_URL")
        .env_remove("MAILOPS_DATABASE_URL");
    command
}

/// Runs `mailops -c config_file ARGS...`, which must succeed.
pub fn run_mailops(config_file: &Path, args: &[&str]) {
    let out = run(mailops(config_file).args(args));
    assert!(out.status.success(), "mailops {args:?}: {}", describe(&out));
}

/// `mailops serve` running as a child process; killed if the test ends without stopping it.
pub struct Serve {
    child: Child,
}

impl Serve {
    /// Starts `mailops -c config_file serve` and returns once it accepts LMTP connections.
    pub fn start(config_file: &Path, config: &Config) -> Serve {
        Serve::launch(config_file, config, Stdio::inherit())
    }

    /// As [`Serve::start`], with its log appended to `log` (for a test that starts it many
    /// times under load, whose log would drown the test output).
    pub fn start_logging_to(config_file: &Path, config: &Config, log: &Path) -> Serve {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        Serve::launch(config_file, config, Stdio::from(file))
    }

    fn launch(config_file: &Path, config: &Config, stderr: Stdio) -> Serve {
        let child = mailops(config_file)
            .arg("serve")
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting mailops serve");
        let serve = Serve { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        let listening = || match &config.lmtp.listen {
            mailops::config::Listen::Unix(p) => std::os::unix::net::UnixStream::connect(p).is_ok(),
            mailops::config::Listen::Tcp(a) => std::net::TcpStream::connect(a).is_ok(),
        };
        while !listening() {
            assert!(
                Instant::now() < deadline,
                "mailops serve did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    /// The process id, to read its `/proc` entries.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status; panics unless it exits within a minute (it only
    /// finishes the transactions in flight).
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for mailops serve") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "mailops serve did not exit within a minute of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash or the OOM killer would end it, and waits for it.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        self.child.wait().expect("waiting for mailops serve");
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we own; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mailops serve` run in this process (`mailops::serve::run`) on a free loopback port, for
/// `domains`, with `rest` after `[inbound]`'s keys (more of them, then other sections). Returns
/// its LMTP address once it listens; it stops when the sender is used or dropped.
pub async fn in_process(
    database_url: &str,
    domains: &[&str],
    rest: &str,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let addr = format!("127.0.0.1:{}", super::postfix::free_port());
    let text = super::config::text(database_url, &addr, "", domains, rest);
    let config = Config::parse(&text, None).expect("config");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mailops::serve::run(config, async {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(Instant::now() < deadline, "serve did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (addr, stop)
}
