//! PostgreSQL as production runs it: over TLS, checked as the URL's `sslmode` and
//! `sslrootcert` say, for mailops and for Postfix's recipient lookup alike (issue 16).
//!
//! Each test runs its own cluster (`support::pgcluster`) with a test CA's certificate, and a
//! `pg_hba.conf` that refuses TCP clients without TLS: what a managed PostgreSQL requiring TLS
//! does.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::certs::Ca;
use crate::support::pgcluster::PgCluster;
use crate::support::postfix::{describe, unique_temp_dir, PostfixInstance};
use crate::support::serve::{mailops, run_mailops, Serve};
use crate::support::services::needs;
use mailops::store;

/// A cluster serving TLS with a certificate for `localhost` (not for `127.0.0.1`) from `ca`,
/// and a second CA that issued nothing it serves.
struct Tls {
    dir: PathBuf,
    ca: Ca,
    other: Ca,
    pg: PgCluster,
}

impl Tls {
    fn start() -> Tls {
        let dir = unique_temp_dir("mailops-pgtls");
        let ca = Ca::new(&dir, "ca");
        let other = Ca::new(&dir, "other");
        let pg = PgCluster::start_tls(&ca.issue("server", "DNS:localhost"));
        pg.psql("postgres", "CREATE DATABASE mailops");
        Tls { dir, ca, other, pg }
    }

    /// The URL of database `mailops` at `host`, with `sslmode` and, if given, `sslrootcert`.
    fn url(&self, host: &str, sslmode: &str, root: Option<&Path>) -> String {
        let root = root
            .map(|r| format!("&sslrootcert={}", r.display()))
            .unwrap_or_default();
        format!(
            "postgres://postgres@{host}:{}/mailops?sslmode={sslmode}{root}",
            self.pg.port
        )
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn tls_to_postgresql_is_checked_as_sslmode_says() {
    needs!(Cluster);
    let tls = Tls::start();
    let ca = Some(tls.ca.cert.as_path());
    for url in [
        tls.url("localhost", "verify-full", ca),
        // verify-ca checks the issuer only: the certificate does not name 127.0.0.1.
        tls.url("127.0.0.1", "verify-ca", ca),
        // require without a root certificate: encrypted, not checked.
        tls.url("127.0.0.1", "require", None),
        // prefer: TLS when the server offers it, as libpq does.
        tls.url("127.0.0.1", "prefer", None),
    ] {
        let pool = store::pool(&url, 1).expect("the URL parses");
        let client = pool
            .get()
            .await
            .unwrap_or_else(|e| panic!("{url}: {}", store::Error::from(e)));
        let encrypted: bool = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_ssl")
            .get(0);
        assert!(encrypted, "{url}: not over TLS");
    }
    for (url, why) in [
        (
            tls.url("127.0.0.1", "verify-full", ca),
            "not valid for name",
        ),
        (
            tls.url("localhost", "verify-full", Some(&tls.other.cert)),
            "UnknownIssuer",
        ),
        // The server's pg_hba.conf refuses TCP clients without TLS.
        (tls.url("localhost", "disable", None), "no encryption"),
    ] {
        let pool = store::pool(&url, 1).expect("the URL parses");
        let e = store::ping(&pool).await.expect_err(&url);
        assert!(e.to_string().contains(why), "{url}: {e}");
        assert!(e.is_permanent(), "{url}: {e} is not permanent");
    }
}

#[test]
fn serve_stops_on_a_database_it_cannot_trust() {
    needs!(Cluster);
    let tls = Tls::start();
    let dir = unique_temp_dir("mailops-pgtls-serve");
    let write = |url: &str| {
        let text = support::config::text(
            url,
            &format!("unix:{}", dir.join("lmtp.sock").display()),
            "",
            &["mon.example.com"],
            &support::config::postfix_section(),
        );
        std::fs::write(dir.join("mailops.toml"), text).expect("writing the config");
        dir.join("mailops.toml")
    };
    // A root certificate that is not there is a configuration error before anything runs.
    let config = write(&tls.url("localhost", "verify-full", Some(&dir.join("missing.pem"))));
    let out = support::postfix::run(mailops(&config).arg("check-config"));
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sslrootcert"),
        "{}",
        describe(&out)
    );
    // A server certificate from an unknown CA: serve says so and stops, instead of waiting
    // for a database that will never let it in.
    let config = write(&tls.url("localhost", "verify-full", Some(&tls.other.cert)));
    let mut child = mailops(&config)
        .arg("serve")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mailops serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for serve") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mailops serve kept waiting for a database whose certificate it refuses");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("serve's output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mail_through_postfix_is_stored_over_verify_full() {
    needs!(Cluster, Postfix);
    let tls = Tls::start();
    let dir = unique_temp_dir("mailops-pgtls-mail");
    let text = support::config::text(
        &tls.url("localhost", "verify-full", Some(&tls.ca.cert)),
        &format!("unix:{}", dir.join("lmtp.sock").display()),
        "",
        &["mon.example.com"],
        &support::config::postfix_section(),
    );
    let (config_file, config) = support::config::write(&dir, &text);
    run_mailops(&config_file, &["migrate"]);
    let postfix = PostfixInstance::start(&config);
    let _serve = Serve::start(&config_file, &config);
    let raw = support::stack::mail(
        "Backup <backup@devices.example.com>",
        "notify@mon.example.com",
        "Backup job Nightly failed",
        "tls-1@devices.example.com",
        &[],
        "The job failed.\n",
    );
    // Postfix asks PostgreSQL (over TLS, checked by libpq) whether the recipient exists: an
    // unknown one is refused at RCPT, a known one accepted and stored by serve.
    let unknown = support::stack::swaks(
        &postfix,
        &dir,
        "backup@devices.example.com",
        "nobody@mon.example.com",
        &raw,
    );
    assert!(
        String::from_utf8_lossy(&unknown.stdout).contains("550 5.1.1"),
        "{}",
        describe(&unknown)
    );
    let sent = support::stack::swaks(
        &postfix,
        &dir,
        "backup@devices.example.com",
        "notify@mon.example.com",
        &raw,
    );
    assert!(sent.status.success(), "{}", describe(&sent));
    assert!(
        postfix.wait_for_empty_queue(Duration::from_secs(30)),
        "not delivered:\n{}",
        postfix.log()
    );
    let stored = tls.pg.psql(
        "mailops",
        "SELECT count(*) FROM inbound_messages WHERE message_id = 'tls-1@devices.example.com'",
    );
    assert_eq!(stored, "1", "{}", postfix.log());
    // Every TCP client of the cluster, Postfix's lookup and serve's pool, came over TLS.
    let plain = tls.pg.psql(
        "mailops",
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
         WHERE client_addr IS NOT NULL AND NOT ssl",
    );
    assert_eq!(plain, "0");
    let _ = std::fs::remove_dir_all(&dir);
}
