//! A fresh, migrated database per test, dropped afterwards, in the server `DATABASE_URL` names.

use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_postgres::Pool;

use super::services::{assert_present, Service};

/// A database of its own for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// A pool on it.
    pub pool: Pool,
    admin_url: String,
    name: String,
}

/// The server tests run against.
pub fn admin_url() -> String {
    assert_present(Service::Database);
    std::env::var("DATABASE_URL")
        .or_else(|_| std::env::var("MAILOPS_DATABASE_URL"))
        .expect("DATABASE_URL is set")
}

/// `url` with its database name replaced by `name`.
pub fn with_dbname(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let prefix = match base.find("://") {
        Some(scheme) => match base[scheme + 3..].find('/') {
            Some(slash) => &base[..scheme + 3 + slash],
            None => base,
        },
        None => panic!("DATABASE_URL must be a postgres:// URL, got {url}"),
    };
    format!("{prefix}/{name}{query}")
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(conn);
    client
}

impl TestDb {
    /// Creates and migrates a new database.
    pub async fn new() -> TestDb {
        let db = TestDb::empty().await;
        mailops::store::migrate::run(&db.pool)
            .await
            .expect("migrations apply");
        db
    }

    /// Creates and migrates a new database, then runs `sql` on it (policies, devices…).
    pub async fn with_setup(sql: &str) -> TestDb {
        let db = TestDb::new().await;
        db.client().await.batch_execute(sql).await.expect("setup");
        db
    }

    /// Creates a new database without migrating it.
    pub async fn empty() -> TestDb {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let admin_url = admin_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!(
            "mailops_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        admin(&admin_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        let url = with_dbname(&admin_url, &name);
        let pool = mailops::store::pool(&url, 4).expect("pool");
        TestDb {
            url,
            pool,
            admin_url,
            name,
        }
    }

    /// Runs `sql` on the server's admin connection (to stop or refuse connections, say).
    pub async fn admin_execute(&self, sql: &str) {
        admin(&self.admin_url)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client on the test database.
    pub async fn client(&self) -> deadpool_postgres::Object {
        self.pool.get().await.expect("test database connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any runtime's reach; a thread of its own can block on one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let _ = admin(&admin_url)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}
