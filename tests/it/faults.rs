//! Faults: nothing lost, nothing doubled, nothing late. Thousands of messages, each to several
//! recipients (two `notify@` addresses and, for every third, a ticket destination), go through
//! a real Postfix, configured as `mailops postfix-config` generates it (Postfix's own back-off
//! untouched), to `mailops serve` while the test kills `serve` with SIGKILL, restarts
//! PostgreSQL (`fast` and `immediate`), makes it refuse connections, and restarts Postfix, at
//! random moments; another run fails PostgreSQL over to its synchronous standby (the URL lists
//! both servers, `target_session_attrs=read-write`). After each fault, what Postfix deferred
//! meanwhile must reach mailops within [`DRAIN_BOUND`] (serve tells Postfix's queue manager
//! when it is back). Once Postfix's queue is empty, every (message, recipient) pair Postfix
//! accepted is exactly one `inbound_messages` row, each message raised its event and wrote its
//! device log exactly once, and each ticket message opened exactly one ticket.
//!
//! PostgreSQL is a private cluster (`support::pgcluster`): the shared server is never disturbed.
//! `MAILOPS_FAULTS_MESSAGES=N` sends at least N messages (default 2,000) and keeps injecting
//! faults until then; `MAILOPS_FAULTS_SEED=S` repeats a run's choices (the seed is printed).

mod check;
mod load;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support;
use crate::support::pgcluster::PgCluster;
use crate::support::postfix::{unique_temp_dir, PostfixInstance};
use crate::support::serve::{run_mailops, Serve};
use crate::support::services::needs;
use load::{Counts, Shared, DEVICES, TICKETS};
use mailops::config::Config;

/// Concurrent SMTP clients.
const SENDERS: usize = 4;

/// How soon after a fault ends the mail Postfix deferred during it must reach mailops
/// (issue 16).
const DRAIN_BOUND: Duration = Duration::from_secs(30);

/// The two fault tests share the machine's two cores: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the test does to the running system.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGKILL `mailops serve`, then start it again.
    KillServe,
    /// SIGTERM `mailops serve`: it must exit 0; then start it again.
    StopServe,
    /// `pg_ctl restart -m MODE`.
    RestartPostgres(&'static str),
    /// PostgreSQL refuses connections (and drops those it has) for a few seconds.
    RefusePostgres,
    /// `postfix stop`, `postfix start`.
    RestartPostfix,
    /// The primary stops (`immediate`, as in a crash), its synchronous standby is promoted,
    /// and the old primary's place is taken by a new standby of the new primary.
    Failover,
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_lost_nothing_doubled_through_crashes_and_outages() {
    needs!(Cluster, Postfix);
    let _serial = SERIAL.lock().await;
    let faults = [
        Fault::KillServe,
        Fault::KillServe,
        Fault::KillServe,
        Fault::RestartPostgres("fast"),
        Fault::RestartPostgres("immediate"),
        Fault::RefusePostgres,
        Fault::RestartPostfix,
    ];
    run_faults(&faults, messages(2000)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_exits_cleanly_and_loses_nothing() {
    needs!(Cluster, Postfix);
    let _serial = SERIAL.lock().await;
    run_faults(
        &[Fault::StopServe, Fault::StopServe, Fault::StopServe],
        messages(2000) / 4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_to_a_streaming_standby_loses_nothing() {
    needs!(Cluster, Postfix);
    let _serial = SERIAL.lock().await;
    run_faults(&[Fault::Failover], messages(2000) / 8).await;
}

/// `MAILOPS_FAULTS_MESSAGES`, else `default`.
fn messages(default: usize) -> usize {
    std::env::var("MAILOPS_FAULTS_MESSAGES")
        .ok()
        .map(|v| v.parse().expect("MAILOPS_FAULTS_MESSAGES is a number"))
        .unwrap_or(default)
}

/// Sends at least `target` messages Postfix accepts while injecting `faults` in a random order at
/// random moments (again and again until the target is reached), then checks every row.
async fn run_faults(faults: &[Fault], target: usize) {
    let seed = std::env::var("MAILOPS_FAULTS_SEED")
        .ok()
        .map(|v| v.parse().expect("MAILOPS_FAULTS_SEED is a number"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64
        });
    eprintln!("fault test: MAILOPS_FAULTS_SEED={seed}, at least {target} messages");
    let replicated = faults.iter().any(|f| matches!(f, Fault::Failover));
    let system = tokio::task::spawn_blocking(move || System::start(replicated))
        .await
        .expect("setting up");
    let load = Arc::new(Shared::default());
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            tokio::spawn(load::send(
                system.postfix.smtp_addr.port(),
                Arc::clone(&load),
            ))
        })
        .collect();
    let injector = {
        let (faults, shared) = (faults.to_vec(), Arc::clone(&load));
        tokio::task::spawn_blocking(move || inject(system, &faults, seed, target, &shared))
    };
    let (system, timeline, drains) = injector.await.expect("injecting faults");
    let deadline = Instant::now() + Duration::from_secs(600);
    while load.accepted.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "fewer than {target} messages accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.expect("a sender");
    }
    let sent = std::mem::take(&mut *load.sent.lock().expect("sent"));
    let context = format!(
        "seed {seed}; serve log {}; faults:\n{}",
        system.serve_log.display(),
        timeline.join("\n")
    );
    // No `postqueue -f`: what is still queued must go on its own.
    let emptied = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + DRAIN_BOUND;
        while !system.postfix.queue_is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let emptied = system.postfix.queue_is_empty();
        (system, emptied)
    });
    let (mut system, emptied) = emptied.await.expect("waiting for the queue");
    assert!(
        emptied,
        "Postfix's queue did not empty within {DRAIN_BOUND:?} of the last fault; {context}"
    );
    let late: Vec<&String> = drains
        .iter()
        .filter(|(_, d)| *d > DRAIN_BOUND)
        .map(|(f, _)| f)
        .collect();
    assert!(
        late.is_empty(),
        "deferred mail waited longer than {DRAIN_BOUND:?} after {late:?}; {context}"
    );
    let mut problems = check::postfix_problems(&system.postfix);
    problems.extend(check::rows(&system.pg.url("mailops"), &sent).await);
    let status = system.serve.take().expect("serve runs").stop();
    assert!(status.success(), "mailops serve exited with {status}");
    let serve_log = std::fs::read_to_string(&system.serve_log).unwrap_or_default();
    problems.extend(
        serve_log
            .lines()
            .filter(|l| l.contains("panicked"))
            .map(|l| format!("mailops serve: {l}")),
    );
    // How hard the faults hit: deliveries Postfix had to retry, and redeliveries of mail
    // already committed (a reply lost to a crash), which mailops must recognise.
    let log = system.postfix.log();
    let counts = Counts {
        deferred: log.matches("status=deferred").count(),
        redelivered: log.matches("already stored").count(),
        ..Counts::of(&sent)
    };
    eprintln!("fault test: {counts}; {context}");
    assert!(
        problems.is_empty(),
        "{} problems (first 30):\n{}\n{counts}; {context}",
        problems.len(),
        problems[..problems.len().min(30)].join("\n")
    );
}

/// A small xorshift generator: the fault order and timing, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// Sleeps between `min_ms` and `max_ms`.
    fn pause(&mut self, min_ms: u64, max_ms: u64) {
        let ms = min_ms + self.below(max_ms - min_ms + 1);
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Everything mail passes through, each part a fault may stop: PostgreSQL, `mailops serve`
/// and Postfix, set up as an operator would (migrate, policy apply, generated Postfix config).
struct System {
    dir: PathBuf,
    config_file: PathBuf,
    config: Config,
    serve_log: PathBuf,
    // Dropped in this order: Postfix and serve stop before the database they use.
    postfix: PostfixInstance,
    serve: Option<Serve>,
    /// The primary.
    pg: PgCluster,
    /// Its synchronous standby, when the test fails over.
    standby: Option<PgCluster>,
}

impl System {
    /// Everything running; with `replicated`, PostgreSQL is a primary and a synchronous
    /// standby, and mailops's URL lists both (`target_session_attrs=read-write`).
    fn start(replicated: bool) -> System {
        let (pg, standby) = if replicated {
            let primary = PgCluster::start_primary();
            let standby = PgCluster::standby_of(&primary, None);
            (primary, Some(standby))
        } else {
            (PgCluster::start(), None)
        };
        pg.psql("postgres", "CREATE DATABASE mailops");
        let url = match &standby {
            Some(standby) => format!(
                "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/mailops?target_session_attrs=read-write",
                pg.port, standby.port
            ),
            None => pg.url("mailops"),
        };
        let dir = unique_temp_dir("mailops-faults");
        let text = support::config::text(
            &url,
            &format!("unix:{}", dir.join("lmtp.sock").display()),
            "",
            &["mon.example.com", "mon2.example.com"],
            &support::config::postfix_section(),
        );
        let (_, config) = support::config::write(&dir, &text);
        // Postfix as generated, with nothing changed; serve's config names its queue, whose
        // manager serve tells to retry deferred mail once it is back.
        let postfix = PostfixInstance::start(&config);
        let text = format!(
            "{text}queue_directory = \"{}\"\n",
            postfix.config.postfix.queue_directory.display()
        );
        let (config_file, config) = support::config::write(&dir, &text);
        run_mailops(&config_file, &["migrate"]);
        let policies = dir.join("policies.toml");
        std::fs::write(&policies, policy_file()).expect("writing the policy file");
        run_mailops(
            &config_file,
            &["policy", "apply", &policies.to_string_lossy()],
        );
        let serve_log = dir.join("serve.log");
        let serve = Serve::start_logging_to(&config_file, &config, &serve_log);
        System {
            dir,
            config_file,
            config,
            serve_log,
            postfix,
            serve: Some(serve),
            pg,
            standby,
        }
    }

    fn start_serve(&mut self) {
        self.serve = Some(Serve::start_logging_to(
            &self.config_file,
            &self.config,
            &self.serve_log,
        ));
    }

    /// Does `fault`; returns a line for the timeline.
    fn apply(&mut self, fault: Fault, rng: &mut Rng) -> String {
        match fault {
            Fault::KillServe => {
                self.serve.take().expect("serve runs").kill();
                rng.pause(0, 1000);
                self.start_serve();
                "SIGKILL mailops serve, started again".into()
            }
            Fault::StopServe => {
                let status = self.serve.take().expect("serve runs").stop();
                assert!(
                    status.success(),
                    "mailops serve exited with {status} on SIGTERM"
                );
                self.start_serve();
                "SIGTERM mailops serve (exit 0), started again".into()
            }
            Fault::RestartPostgres(mode) => {
                self.pg.restart(mode);
                format!("pg_ctl restart -m {mode}")
            }
            Fault::RefusePostgres => {
                self.pg.refuse_connections();
                rng.pause(2000, 5000);
                self.pg.allow_connections();
                "PostgreSQL refused connections for a while".into()
            }
            Fault::RestartPostfix => {
                self.postfix.restart();
                "postfix stop; postfix start".into()
            }
            Fault::Failover => {
                let standby = self.standby.take().expect("a standby");
                self.pg.stop("immediate");
                standby.promote();
                let old = std::mem::replace(&mut self.pg, standby);
                // The operator's next step: a new standby where the old primary was.
                let port = old.port;
                drop(old);
                self.standby = Some(PgCluster::standby_of(&self.pg, Some(port)));
                format!(
                    "primary stopped (immediate), standby on port {} promoted, a new standby on port {port}",
                    self.pg.port
                )
            }
        }
    }
}

impl System {
    /// How long until Postfix's deferred queue is empty and stays so for a second (a delivery
    /// the fault made fail may only now be deferred); gives up a while past [`DRAIN_BOUND`].
    fn drain(&self) -> Duration {
        let started = Instant::now();
        let mut empty_since: Option<Instant> = None;
        while started.elapsed() < DRAIN_BOUND * 2 {
            match (self.postfix.deferred(), empty_since) {
                (0, Some(since)) if since.elapsed() >= Duration::from_secs(1) => {
                    return since - started;
                }
                (0, None) => empty_since = Some(Instant::now()),
                (0, Some(_)) => {}
                _ => empty_since = None,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    }
}

impl Drop for System {
    fn drop(&mut self) {
        // The directory holds serve's log: keep it when the test fails.
        if std::thread::panicking() || std::env::var_os("MAILOPS_KEEP_TEST_DIRS").is_some() {
            eprintln!("fault test directory kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Devices `dev0`…, one originator policy naming them in the subject, one event policy every
/// message matches, and an open ticket desk.
fn policy_file() -> String {
    let mut text = String::new();
    for d in 0..DEVICES {
        text.push_str(&format!("[[device]]\nname = \"dev{d}.example.com\"\n\n"));
    }
    text.push_str(&format!(
        r#"
[[originator]]
address = "*@devices.example.com"
regex_type = "subject"
pattern_type = "classic"
pattern = "Backup job for"
alignment = "discard"

[[event_policy]]
name = "Backup failed"
severity = "major"
message = "%D: %S"
match_logic = "text"
first_match = "Failed"

[[ticket_template]]
name = "Faults"
severity = "minor"
description = "Email: %"

[[ticket_policy]]
name = "Faults desk"
destination = "{TICKETS}"
reply_address = "{TICKETS}"
template = "Faults"
access = "open"
"#
    ));
    text
}

/// Injects `faults` in a random order with random pauses, round after round until `target`
/// messages were accepted (at least one round); returns the system, what was done when, and
/// after each fault how long Postfix's deferred queue took to empty.
fn inject(
    mut system: System,
    faults: &[Fault],
    seed: u64,
    target: usize,
    load: &Shared,
) -> (System, Vec<String>, Vec<(String, Duration)>) {
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let mut timeline = Vec::new();
    let mut drains = Vec::new();
    // Let mail flow first, so the first fault hits deliveries in progress.
    rng.pause(1000, 2000);
    loop {
        let mut round = faults.to_vec();
        for i in (1..round.len()).rev() {
            round.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for fault in round {
            let what = system.apply(fault, &mut rng);
            let drained = system.drain();
            timeline.push(format!(
                "{:6.1}s after {:5} accepted: {what}; deferred mail drained in {:.1}s",
                started.elapsed().as_secs_f64(),
                load.accepted.load(Ordering::Relaxed),
                drained.as_secs_f64()
            ));
            drains.push((what, drained));
            rng.pause(1000, 3000);
        }
        if load.accepted.load(Ordering::Relaxed) >= target {
            return (system, timeline, drains);
        }
    }
}
