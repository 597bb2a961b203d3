//! A private PostgreSQL cluster for one test, which the test may stop, restart and make refuse
//! connections: the shared server in `DATABASE_URL` serves every other test and must never be
//! disturbed.
//!
//! `initdb` and the server refuse to run as root, so both run as the `postgres` user (through
//! `runuser`, as `scripts/lib.sh` does for `scripts/run`'s cluster). The cluster listens on a
//! free port on 127.0.0.1 and on a socket in its own directory; authentication is `trust`.
//!
//! Refusing connections is done where a real outage would show: `pg_hba.conf` gets a `reject`
//! line for TCP clients (mailops and Postfix both connect over TCP), the server reloads it, and
//! every client backend is terminated. TCP clients then get "pg_hba.conf rejects connection"
//! until [`PgCluster::allow_connections`]. The harness itself keeps the socket, which is not
//! rejected.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::certs::Issued;
use super::postfix::{describe, free_port, run, unique_temp_dir};
use super::services::{assert_present, Service};

/// `pg_hba.conf` while clients are welcome, and while TCP clients are refused.
const HBA_OPEN: &str =
    "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 trust\n";
const HBA_REFUSING: &str =
    "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 reject\n";
/// `pg_hba.conf` of a cluster whose TCP clients must use TLS.
const HBA_TLS_ONLY: &str = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n\
                            hostnossl all all 127.0.0.1/32 reject\n";

/// A running cluster; dropping it stops it and removes its directory (kept, with the server log
/// printed, when the test is failing or `MAILOPS_KEEP_TEST_DIRS` is set).
pub struct PgCluster {
    /// The temporary directory holding the data directory, the socket and the log.
    pub dir: PathBuf,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    /// `pg_hba.conf` while clients are welcome.
    hba_open: &'static str,
}

/// How a new cluster serves.
enum Kind<'a> {
    /// Plain TCP.
    Plain,
    /// TLS with this certificate, and only TLS over TCP.
    Tls(&'a Issued),
    /// Plain TCP, each commit waiting until a streaming standby has it too.
    SyncPrimary,
}

impl PgCluster {
    /// Creates a cluster with initdb and starts it.
    pub fn start() -> PgCluster {
        PgCluster::start_with(Kind::Plain)
    }

    /// As [`PgCluster::start`], serving TLS with `server`'s certificate and refusing TCP
    /// clients that do not use it.
    pub fn start_tls(server: &Issued) -> PgCluster {
        PgCluster::start_with(Kind::Tls(server))
    }

    /// A primary with a synchronous streaming standby (`synchronous_standby_names = '*'`:
    /// a commit is reported only once the standby has flushed it, so a failover loses no
    /// committed transaction). Commits wait until [`PgCluster::standby_of`] made one.
    pub fn start_primary() -> PgCluster {
        PgCluster::start_with(Kind::SyncPrimary)
    }

    fn start_with(kind: Kind<'_>) -> PgCluster {
        let cluster = PgCluster::new(
            free_port(),
            if matches!(kind, Kind::Tls(_)) {
                HBA_TLS_ONLY
            } else {
                HBA_OPEN
            },
        );
        let initdb = cluster.as_postgres("initdb", |c| {
            c.arg("-D").arg(&cluster.data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ])
        });
        assert!(initdb.status.success(), "initdb: {}", describe(&initdb));
        let mut settings = cluster.own_settings();
        match kind {
            Kind::Plain => {}
            Kind::Tls(server) => {
                for (from, to) in [(&server.cert, "server.crt"), (&server.key, "server.key")] {
                    let to = cluster.data.join(to);
                    std::fs::copy(from, &to)
                        .unwrap_or_else(|e| panic!("copying {}: {e}", to.display()));
                }
                // The server refuses a key others can read.
                let own = run(Command::new("sh").arg("-c").arg(format!(
                    "chown postgres:postgres '{0}/server.crt' '{0}/server.key' && chmod 600 '{0}/server.key'",
                    cluster.data.display()
                )));
                assert!(own.status.success(), "chown: {}", describe(&own));
                settings.push_str(
                    "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
                );
            }
            Kind::SyncPrimary => settings.push_str("synchronous_standby_names = '*'\n"),
        }
        cluster.append_settings(&settings);
        cluster.write_hba(cluster.hba_open);
        cluster.pg_ctl(&["start"]);
        cluster
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), listening on `port`, else a
    /// free one; running and answering read-only queries when this returns.
    pub fn standby_of(primary: &PgCluster, port: Option<u16>) -> PgCluster {
        let cluster = PgCluster::new(port.unwrap_or_else(free_port), primary.hba_open);
        let backup = cluster.as_postgres("pg_basebackup", |c| {
            c.arg("-D")
                .arg(&cluster.data)
                .args(["-R", "-X", "stream", "-c", "fast", "-U", "postgres", "-h"])
                .arg(&primary.socket_dir)
                .args(["-p", &primary.port.to_string()])
        });
        assert!(
            backup.status.success(),
            "pg_basebackup: {}",
            describe(&backup)
        );
        // The primary's settings came with the backup; these come later and win.
        cluster.append_settings(&cluster.own_settings());
        cluster.pg_ctl(&["start"]);
        cluster
    }

    /// `pg_ctl promote`: the standby becomes a primary.
    pub fn promote(&self) {
        self.pg_ctl(&["promote"]);
    }

    /// `pg_ctl stop -m MODE`.
    pub fn stop(&self, mode: &str) {
        self.pg_ctl(&["stop", "-m", mode]);
    }

    /// A cluster's directories (owned by the postgres user), not yet created by initdb.
    fn new(port: u16, hba_open: &'static str) -> PgCluster {
        assert_present(Service::Cluster);
        let dir = unique_temp_dir("mailops-pg");
        let cluster = PgCluster {
            port,
            data: dir.join("data"),
            socket_dir: dir.join("run"),
            log: dir.join("server.log"),
            hba_open,
            bin: bindir(),
            dir,
        };
        std::fs::create_dir_all(&cluster.socket_dir).expect("creating the socket directory");
        let chown = run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&cluster.dir));
        assert!(chown.status.success(), "chown: {}", describe(&chown));
        cluster
    }

    /// Where this cluster listens. fsync and synchronous commit stay on: durability across a
    /// crash is what is tested.
    fn own_settings(&self) -> String {
        format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = 200\n",
            self.port,
            self.socket_dir.display()
        )
    }

    fn append_settings(&self, settings: &str) {
        let conf = self.data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| std::io::Write::write_all(&mut f, settings.as_bytes()))
            .unwrap_or_else(|e| panic!("appending to {}: {e}", conf.display()));
    }

    /// The URL of database `name` on this cluster, over TCP.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `sql` with psql over the socket (which refusing connections leaves open).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self.as_postgres("psql", |c| {
            c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&self.socket_dir)
                .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
        });
        assert!(out.status.success(), "psql {sql:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `pg_ctl restart -m MODE` (`fast`: clients are disconnected, a clean shutdown;
    /// `immediate`: the server stops as in a crash and recovers from its WAL at start).
    pub fn restart(&self, mode: &str) {
        self.pg_ctl(&["restart", "-m", mode]);
    }

    /// TCP clients are refused from now on, and those connected are disconnected.
    pub fn refuse_connections(&self) {
        self.write_hba(HBA_REFUSING);
        self.pg_ctl(&["reload"]);
        // The postmaster rereads pg_hba.conf when it handles the SIGHUP: wait until a TCP
        // client is rejected, so no connection made before that outlives the next statement.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.tcp_accepts() {
            assert!(
                Instant::now() < deadline,
                "pg_hba.conf reject not in effect"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.psql(
            "postgres",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        );
    }

    /// TCP clients are welcome again.
    pub fn allow_connections(&self) {
        self.write_hba(self.hba_open);
        self.pg_ctl(&["reload"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.tcp_accepts() {
            assert!(Instant::now() < deadline, "pg_hba.conf trust not in effect");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// True when a TCP client can run a statement.
    fn tcp_accepts(&self) -> bool {
        self.as_postgres("psql", |c| {
            c.args(["-X", "-q", "-d"])
                .arg(self.url("postgres"))
                .args(["-c", "SELECT 1"])
        })
        .status
        .success()
    }

    /// `pg_ctl -D DATA -l LOG -w ARGS...`, which must succeed.
    fn pg_ctl(&self, args: &[&str]) {
        let out = self.as_postgres("pg_ctl", |c| {
            c.arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(["-w", "-t", "60"])
                .args(args)
        });
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}\n--- server log ---\n{}",
            describe(&out),
            self.log()
        );
    }

    fn write_hba(&self, text: &str) {
        let file = self.data.join("pg_hba.conf");
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    }

    /// Runs PostgreSQL program `program` as the postgres user, from `/` (which it can enter).
    fn as_postgres(
        &self,
        program: &str,
        args: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Output {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .current_dir("/");
        run(args(&mut command))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.as_postgres("pg_ctl", |c| {
            c.arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
        });
        if std::thread::panicking() || std::env::var_os("MAILOPS_KEEP_TEST_DIRS").is_some() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "PostgreSQL cluster kept in {}\n--- {} (last 200 lines) ---\n{}",
                self.dir.display(),
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin).
fn bindir() -> PathBuf {
    installed_bindir()
        .expect("PostgreSQL's initdb not found under /usr/lib/postgresql (package postgresql)")
}

/// True when a PostgreSQL server is installed, for [`super::services`].
pub fn initdb_installed() -> bool {
    installed_bindir().is_some()
}

fn installed_bindir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}
