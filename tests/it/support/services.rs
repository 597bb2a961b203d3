//! Test tiers: what a test needs beyond the code itself, and whether this machine has it.
//!
//! Every test that needs a service starts with [`needs!`]. When a service is missing, the test
//! says so in one line on stderr (`skipped store::…: needs PostgreSQL (DATABASE_URL is not
//! set)`) and passes without running, so a plain `cargo test` anywhere runs every pure test.
//! Under `MAILOPS_TEST_REQUIRE_SERVICES=1` (`scripts/test` sets it) a missing service fails
//! the test instead: nothing is skipped there. The harness's own constructors
//! ([`assert_present`]) fail a test that starts a service it did not declare.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Once, OnceLock};

/// A service a test needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The PostgreSQL server `DATABASE_URL` names, where each test creates a database of its
    /// own.
    Database,
    /// Postfix instances (Postfix with PostgreSQL lookups, mail sent with swaks), which only
    /// root may start.
    Postfix,
    /// Dovecot, which authenticates for the test gateway (with [`Service::Postfix`]).
    Dovecot,
    /// Private PostgreSQL clusters (initdb and the server run as the postgres user), which
    /// only root may start.
    Cluster,
    /// Sender verification on loopback: rspamd (which drops to `_rspamd`, so only root may
    /// start it), dnsmasq as the test domains' DNS server, dkimsign and openssl for signing
    /// test mail.
    Verifier,
}

/// What this machine offers the tests.
#[derive(Clone, Copy, Debug)]
struct Machine {
    database_url: bool,
    root: bool,
    postfix: bool,
    dovecot: bool,
    initdb: bool,
    verifier: bool,
}

impl Machine {
    /// Looked at once per test run.
    fn here() -> Machine {
        static HERE: OnceLock<Machine> = OnceLock::new();
        *HERE.get_or_init(|| Machine {
            database_url: ["DATABASE_URL", "MAILOPS_DATABASE_URL"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|url| !url.is_empty())),
            // SAFETY: geteuid(2) cannot fail and touches no memory.
            root: unsafe { libc::geteuid() } == 0,
            postfix: ["/usr/sbin/postfix", "/usr/lib/postfix/postfix-pgsql.so"]
                .iter()
                .all(|p| Path::new(p).exists())
                && on_path("swaks"),
            dovecot: Path::new("/usr/sbin/dovecot").exists(),
            initdb: super::pgcluster::initdb_installed(),
            verifier: ["/usr/bin/rspamd", "/usr/sbin/dnsmasq"]
                .iter()
                .all(|p| Path::new(p).exists())
                && on_path("dkimsign")
                && on_path("openssl"),
        })
    }

    /// Why `service` cannot run here, or None when it can.
    fn lacks(&self, service: Service) -> Option<&'static str> {
        let as_root = |what: &'static str| (!self.root).then_some(what);
        match service {
            Service::Database => {
                (!self.database_url).then_some("PostgreSQL (DATABASE_URL is not set)")
            }
            Service::Postfix => as_root("root (it starts Postfix instances)").or_else(|| {
                (!self.postfix).then_some(
                    "Postfix with PostgreSQL lookups and swaks (Debian packages postfix, \
                     postfix-pgsql, swaks)",
                )
            }),
            Service::Dovecot => (!self.dovecot).then_some("Dovecot (Debian package dovecot-core)"),
            Service::Cluster => {
                as_root("root (it starts PostgreSQL clusters as the postgres user)").or_else(|| {
                    (!self.initdb).then_some("PostgreSQL's server (Debian package postgresql)")
                })
            }
            Service::Verifier => as_root("root (rspamd starts as root)").or_else(|| {
                (!self.verifier).then_some(
                    "rspamd, dnsmasq, dkimsign and openssl (Debian packages rspamd, \
                     dnsmasq-base, python3-dkim, openssl)",
                )
            }),
        }
    }
}

/// Whether every service in `needs` is here. When one is not, says so on stderr and returns
/// false (the test then passes without running), or panics under
/// `MAILOPS_TEST_REQUIRE_SERVICES`. Called through [`needs!`].
pub fn ready(needs: &[Service]) -> bool {
    let Some(reason) = needs.iter().find_map(|&s| Machine::here().lacks(s)) else {
        return true;
    };
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let required = std::env::var("MAILOPS_TEST_REQUIRE_SERVICES");
    if required.is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!(
            "{test} needs {reason}, and MAILOPS_TEST_REQUIRE_SERVICES is set: nothing may be \
             skipped"
        );
    }
    static HOW: Once = Once::new();
    // Straight to the process's stderr: libtest captures only the print macros, and a skip
    // must show.
    let mut stderr = std::io::stderr().lock();
    HOW.call_once(|| {
        let _ = writeln!(
            stderr,
            "tests that need services are skipped; to run them all: scripts/test (as root), \
             or DATABASE_URL=postgres://... cargo test as root with postfix, postfix-pgsql, \
             swaks, dovecot-core and postgresql installed"
        );
    });
    let _ = writeln!(stderr, "skipped {test}: needs {reason}");
    false
}

/// Panics unless `service` is here: for the harness's constructors, so a test that starts a
/// service without declaring it in [`needs!`] fails where it is missing rather than deep in
/// the service's start-up.
pub fn assert_present(service: Service) {
    if let Some(reason) = Machine::here().lacks(service) {
        panic!("this test needs {reason}: declare it with needs!({service:?}) at its start");
    }
}

/// True when `program` is in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Returns from the test, after saying why, unless every service named is here: the first line
/// of every test that needs one (`needs!(Database, Postfix);`).
macro_rules! needs {
    ($($service:ident),+ $(,)?) => {
        if !$crate::support::services::ready(&[$($crate::support::services::Service::$service),+]) {
            return;
        }
    };
}
pub(crate) use needs;

#[cfg(test)]
mod tests {
    use super::{Machine, Service};

    /// A machine with every fact but those named.
    fn lacking(missing: &[&str]) -> Machine {
        let has = |fact| !missing.contains(&fact);
        Machine {
            database_url: has("database_url"),
            root: has("root"),
            postfix: has("postfix"),
            dovecot: has("dovecot"),
            initdb: has("initdb"),
            verifier: has("verifier"),
        }
    }

    #[test]
    fn each_service_names_what_is_missing() {
        use Service::*;
        let cases: [(&[&str], Service, Option<&str>); 15] = [
            (&[], Database, None),
            (&[], Postfix, None),
            (&[], Dovecot, None),
            (&[], Cluster, None),
            (&["database_url"], Database, Some("DATABASE_URL")),
            (&["root"], Database, None),
            (&["root"], Postfix, Some("root")),
            (&["root", "postfix"], Postfix, Some("root")),
            (&["postfix"], Postfix, Some("postfix-pgsql")),
            (&["initdb"], Postfix, None),
            (&["dovecot"], Dovecot, Some("dovecot-core")),
            (&["root"], Cluster, Some("root")),
            (&["initdb"], Cluster, Some("postgresql")),
            (&["root"], Verifier, Some("root")),
            (&["verifier"], Verifier, Some("rspamd")),
        ];
        for (missing, service, want) in cases {
            let got = lacking(missing).lacks(service);
            match want {
                None => assert_eq!(got, None, "{missing:?} {service:?}"),
                Some(word) => assert!(
                    got.is_some_and(|r| r.contains(word)),
                    "{missing:?} {service:?}: {got:?}"
                ),
            }
        }
    }
}
