//! A private Postfix instance for one test: the generated configuration in a temporary
//! directory, its own queue, a free port on 127.0.0.1, and a log file to read.
//!
//! Needs root (Postfix's master runs as root) and Debian's postfix and postfix-pgsql
//! packages; `scripts/test` installs them. The system's Postfix (/etc/postfix) is never read
//! or touched: `postfix -c DIR` runs an instance from DIR alone.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailops::config::Config;

use super::services::{assert_present, Service};

/// A running Postfix instance; dropping it stops it and removes its directory (kept, with
/// the log printed, when the test is failing or `MAILOPS_KEEP_TEST_DIRS` is set).
pub struct PostfixInstance {
    /// The temporary directory holding everything below.
    pub dir: PathBuf,
    /// The configuration directory, for `postfix -c`, `postqueue -c`, `postmap -c`.
    pub config_dir: PathBuf,
    /// Where its SMTP server listens.
    pub smtp_addr: SocketAddr,
    /// Its log (`maillog_file`).
    pub maillog: PathBuf,
    /// The config the instance was generated from: the caller's, with the port and the
    /// directories above.
    pub config: Config,
    running: bool,
}

impl PostfixInstance {
    /// Generates the configuration for `config` (with a free port, and queue, data and log
    /// in a new temporary directory), checks it and starts Postfix. Panics with the log when
    /// Postfix does not come up.
    pub fn start(config: &Config) -> PostfixInstance {
        let mut instance = PostfixInstance::configure(config);
        // The port can be taken between choosing it and Postfix binding it: choose again.
        for attempt in 1..=3 {
            let started = postfix(&instance.config_dir, &["start"]);
            if started.status.success() && wait_for_listeners(&[instance.smtp_addr], true) {
                instance.running = true;
                return instance;
            }
            let _ = postfix(&instance.config_dir, &["stop"]);
            if attempt == 3 {
                panic!(
                    "Postfix did not start on {}: {}\n--- log ---\n{}",
                    instance.smtp_addr,
                    describe(&started),
                    instance.log()
                );
            }
            instance.config.postfix.smtpd_listen =
                SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            instance.smtp_addr = instance.config.postfix.smtpd_listen;
            instance.write_config();
        }
        unreachable!("the loop returns or panics")
    }

    /// Generates and writes the configuration as [`PostfixInstance::start`] does, without
    /// starting Postfix (for checking the configuration itself).
    pub fn configure(config: &Config) -> PostfixInstance {
        assert_present(Service::Postfix);
        let dir = unique_temp_dir("mailops-postfix");
        let queue = dir.join("queue");
        // Postfix chdirs into the queue before anything else, so it must exist; it creates
        // the queue's subdirectories, and the data directory (owned by postfix) itself.
        std::fs::create_dir_all(&queue)
            .unwrap_or_else(|e| panic!("creating {}: {e}", queue.display()));
        let mut config = config.clone();
        config.postfix.smtpd_listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        config.postfix.queue_directory = queue;
        config.postfix.data_directory = dir.join("data");
        config.postfix.maillog_file = Some(dir.join("maillog"));
        let instance = PostfixInstance {
            config_dir: dir.join("etc"),
            smtp_addr: config.postfix.smtpd_listen,
            maillog: dir.join("maillog"),
            dir,
            config,
            running: false,
        };
        instance.write_config();
        instance
    }

    fn write_config(&self) {
        mailops::postfix::write(&self.config, &self.config_dir)
            .unwrap_or_else(|e| panic!("generating the Postfix configuration: {e}"));
    }

    /// Asks Postfix to retry every deferred message now.
    pub fn flush(&self) {
        let out = run(Command::new(sbin("postqueue"))
            .arg("-c")
            .arg(&self.config_dir)
            .arg("-f"));
        assert!(out.status.success(), "postqueue -f: {}", describe(&out));
    }

    /// True when no message is queued (incoming, active, deferred or on hold).
    pub fn queue_is_empty(&self) -> bool {
        // -j prints one JSON line per queued message and nothing for an empty queue.
        let out = run(Command::new(sbin("postqueue"))
            .arg("-c")
            .arg(&self.config_dir)
            .arg("-j"));
        assert!(out.status.success(), "postqueue -j: {}", describe(&out));
        out.stdout.iter().all(u8::is_ascii_whitespace)
    }

    /// Messages in the deferred queue (each waiting out Postfix's back-off).
    pub fn deferred(&self) -> usize {
        fn files(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => files(&e.path()),
                    _ => 1,
                })
                .sum()
        }
        files(&self.config.postfix.queue_directory.join("deferred"))
    }

    /// Waits until the queue is empty, flushing it now and then; false on timeout.
    pub fn wait_for_empty_queue(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut next_flush = Instant::now() + Duration::from_secs(1);
        loop {
            if self.queue_is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if Instant::now() >= next_flush {
                self.flush();
                next_flush = Instant::now() + Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything Postfix has logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.maillog)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the log contains `needle`; false on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops Postfix and starts it again on the same port, with the same queue.
    pub fn restart(&mut self) {
        self.stop();
        let out = postfix(&self.config_dir, &["start"]);
        assert!(
            out.status.success() && wait_for_listeners(&[self.smtp_addr], true),
            "Postfix did not start again on {}: {}\n--- log ---\n{}",
            self.smtp_addr,
            describe(&out),
            self.log()
        );
        self.running = true;
    }

    /// Stops Postfix (waiting for its master to exit); dropping the instance does it too.
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.running) {
            let out = postfix(&self.config_dir, &["stop"]);
            assert!(out.status.success(), "postfix stop: {}", describe(&out));
        }
    }
}

impl Drop for PostfixInstance {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            let _ = postfix(&self.config_dir, &["stop"]);
        }
        if std::thread::panicking() || std::env::var_os("MAILOPS_KEEP_TEST_DIRS").is_some() {
            eprintln!(
                "Postfix instance kept in {}\n--- {} ---\n{}",
                self.dir.display(),
                self.maillog.display(),
                self.log()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `postfix -c DIR ARGS...`.
pub fn postfix(config_dir: &Path, args: &[&str]) -> Output {
    run(Command::new(sbin("postfix"))
        .arg("-c")
        .arg(config_dir)
        .args(args))
}

/// Where Debian installs Postfix command `name`; a PATH without /usr/sbin is common for
/// non-login shells.
pub fn sbin(name: &str) -> PathBuf {
    let path = Path::new("/usr/sbin").join(name);
    if path.exists() {
        path
    } else {
        PathBuf::from(name)
    }
}

/// Runs `command` to completion, panicking only if it cannot be started.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

/// A command's exit status, stdout and stderr, for an assertion message.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// `bytes` random bytes from the kernel's random source, in lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .expect("reading /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new, empty directory under the system's temporary directory.
pub fn unique_temp_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Waits up to 10 s until every address accepts connections (`up`), or every one refuses them.
pub fn wait_for_listeners(addrs: &[SocketAddr], up: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let accepting =
        |addr: &SocketAddr| TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok();
    while Instant::now() < deadline {
        let done = if up {
            addrs.iter().all(accepting)
        } else {
            !addrs.iter().any(accepting)
        };
        if done {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A minimal SMTP client over a plain socket, for asserting the replies Postfix gives.
pub struct SmtpClient {
    reader: BufReader<TcpStream>,
    /// The greeting, e.g. `220 mon.example.com ESMTP Postfix`.
    pub banner: String,
}

impl SmtpClient {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> SmtpClient {
        let stream =
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("setting a read timeout");
        let mut client = SmtpClient {
            reader: BufReader::new(stream),
            banner: String::new(),
        };
        client.banner = client.reply();
        client
    }

    /// Sends one command line and returns the whole reply, lines joined with `\n`.
    pub fn command(&mut self, line: &str) -> String {
        let stream = self.reader.get_mut();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
        self.reply()
    }

    /// Reads one reply: continuation lines (`250-...`) up to the last (`250 ...`).
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("reading a reply: {e}"));
            assert!(n > 0, "connection closed after {lines:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }
}
