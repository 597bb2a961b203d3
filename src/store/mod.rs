//! PostgreSQL: the connection pool, migrations, and one file per table group.

pub mod events;
pub mod inbound;
pub mod migrate;
pub mod outbox;
pub mod policies;
pub mod recipients;
pub mod roundtrip;
pub mod tickets;

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// How long a caller waits for a pooled connection, or for a new one to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL cannot be used.
    #[error("invalid database url: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// No connection could be had (down, refusing, pool exhausted).
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("database: {}", detail(.0))]
    Db(#[from] tokio_postgres::Error),
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

/// What went wrong, with the server's own message when it sent one ("db error" alone says
/// nothing).
fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Opens a pool of `size` connections to `url`; connections are made on first use.
/// Whether the database answers through `pool`.
pub async fn ping(pool: &Pool) -> Result<(), Error> {
    pool.get().await?.simple_query("").await?;
    Ok(())
}

pub fn pool(url: &str, size: usize) -> Result<Pool, Error> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(Error::Url)?;
    config.connect_timeout(CONNECT_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("mailops");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
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
