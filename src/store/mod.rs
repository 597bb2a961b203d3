//! PostgreSQL: the connection pool, migrations, and one file per table group.

pub mod connect;
pub mod events;
pub mod expect;
pub mod inbound;
pub mod migrate;
pub mod outbox;
pub mod policies;
pub mod recipients;
pub mod retention;
pub mod roundtrip;
pub mod tickets;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

/// How long a caller waits for a pooled connection, or for a new one to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a storage call failed. A connection's or statement's error shows the whole cause in
/// its own text (the server's message, the TLS check's reason), so it names no source for an
/// error report to repeat.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL cannot be used.
    #[error("database url: {0}")]
    Url(String),
    /// No connection could be had (down, refusing, pool exhausted).
    #[error("no database connection: {}", pool_detail(.0))]
    Pool(deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("database: {}", detail(.0))]
    Db(tokio_postgres::Error),
    /// The pool could not be built.
    #[error("database pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    /// A row holds what its table's constraints should have kept out.
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The policies in memory are behind the database (a reload is on its way).
    #[error("the policies in memory are behind the database: {0}")]
    Stale(String),
    /// The task storing an events delivery stopped before answering (the server is shutting
    /// down, or storing its batch panicked).
    #[error("the events writers have stopped")]
    Stopped,
    /// The schema is older than this binary.
    #[error("the database schema is at migration {have}, this mailops needs {want}: run `mailops migrate`")]
    SchemaBehind {
        /// Latest migration applied.
        have: i32,
        /// Latest migration this binary ships.
        want: i32,
    },
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::Pool(e)
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Db(e)
    }
}

/// What went wrong, with the server's own message when it sent one ("db error" alone says
/// nothing).
fn detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    // "error performing TLS handshake" alone does not say what was wrong with it.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

/// Why no connection could be had, with the server's or the TLS check's own words.
fn pool_detail(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => detail(e),
        e => e.to_string(),
    }
}

impl Error {
    /// Whether trying again cannot help until the operator changes something: the URL, the
    /// server's certificate failing its check, TLS required of a server without it, or the
    /// server refusing the user, its password or the database. `serve` stops on these at start
    /// instead of waiting for a database that will never let it in.
    pub fn is_permanent(&self) -> bool {
        let e = match self {
            Error::Url(_) => return true,
            Error::Db(e) => e,
            Error::Pool(deadpool_postgres::PoolError::Backend(e)) => e,
            _ => return false,
        };
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            // Class 28: invalid authorization (password, pg_hba.conf); 3D000: no such database.
            return code.code().starts_with("28")
                || *code == tokio_postgres::error::SqlState::INVALID_CATALOG_NAME;
        }
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let tls = s
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>());
            if tls || s.to_string() == "server does not support TLS" {
                return true;
            }
            source = s.source();
        }
        false
    }
}

/// Whether the database answers through `pool`.
pub async fn ping(pool: &Pool) -> Result<(), Error> {
    pool.get().await?.simple_query("").await?;
    Ok(())
}

/// Opens a pool of `size` connections to `url`; connections are made on first use.
pub fn pool(url: &str, size: usize) -> Result<Pool, Error> {
    let target = connect::Target::parse(url).map_err(Error::Url)?;
    let manager = Manager::from_config(
        target.pg.clone(),
        target.tls(),
        ManagerConfig {
            // A connection the server closed is noticed by `is_closed` and replaced.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()?)
}

/// Runs `writes` as one transaction in a single round trip: BEGIN, the writes and COMMIT go out
/// together (tokio-postgres pipelines requests made concurrently on one connection) and are
/// answered in order. `writes` must send every statement when first polled: prepare statements
/// beforehand, and join several statements rather than awaiting them one by one. A failed
/// write aborts the transaction, and the COMMIT then rolls it back.
pub async fn transaction<T>(
    client: &tokio_postgres::Client,
    writes: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Error> {
    let (begin, written, commit) = tokio::join!(
        // In this order, always: the first poll sends the three requests.
        biased;
        client.batch_execute("BEGIN"),
        writes,
        client.batch_execute("COMMIT"),
    );
    begin?;
    let value = written?;
    commit?;
    Ok(value)
}

/// A statement on its way, as [`all_in_order`] takes it.
pub type Pending<'a> =
    Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// Runs statement futures on one connection, starting each in order on the first poll (so
/// tokio-postgres pipelines them), and returns the first error once all have finished.
pub async fn all_in_order(pending: Vec<Pending<'_>>) -> Result<(), tokio_postgres::Error> {
    in_order(pending)
        .await
        .into_iter()
        .try_for_each(|r| r.map(drop))
}

/// Polls `futures` in order until all have finished (each is first polled in order, so
/// statements they send on one connection are pipelined in that order), and returns their
/// outputs in the same order.
pub async fn in_order<F: Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match Pin::new(future).poll(cx) {
                    Poll::Ready(r) => *output = Some(r),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
