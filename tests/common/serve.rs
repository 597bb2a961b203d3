//! `mailops serve` as a child process, as operators run it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailops::config::Config;

/// `mailops serve` running as a child process; killed if the test ends without stopping it.
pub struct Serve {
    child: Child,
}

impl Serve {
    /// Starts `mailops -c config_file serve` and returns once it accepts LMTP connections.
    pub fn start(config_file: &Path, config: &Config) -> Serve {
        let child = Command::new(env!("CARGO_BIN_EXE_mailops"))
            .arg("-c")
            .arg(config_file)
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env_remove("MAILOPS_DATABASE_URL")
            .stdin(Stdio::null())
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

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we own; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.child.wait().expect("waiting for mailops serve")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
