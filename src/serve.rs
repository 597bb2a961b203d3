//! `mailops serve`: wait for the database, load the recipients, run the LMTP server until shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::oneshot;

use crate::config::{redact_password, Config, Retention};
use crate::delivery::{self, Delivery};
use crate::events::expire;
use crate::outbound::outbox;
use crate::outbound::smtp::Settings;
use crate::state::{self, Current};
use crate::stop::{Stop, Stopper};
use crate::{expect, roundtrip, route};
use crate::{lmtp, postfix, store};

mod endpoint;

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database is unusable in a way waiting will not fix.
    #[error("database {url}: {source}")]
    Database {
        /// The config's URL, its password hidden.
        url: String,
        /// Why.
        source: store::Error,
    },
    /// The `[outbound]` settings cannot be used (a password or CA file).
    #[error(transparent)]
    Outbound(#[from] crate::outbound::smtp::SettingsError),
    /// The listener could not be bound or failed.
    #[error("lmtp listener {listen}: {source}")]
    Listen {
        /// The configured address.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The LMTP limits the config asks for.
pub fn limits(config: &Config) -> lmtp::Limits {
    let c = &config.lmtp;
    lmtp::Limits {
        max_message_size: usize::try_from(c.max_message_size).unwrap_or(usize::MAX),
        max_recipients: c.max_recipients,
        idle_timeout: Duration::from_secs(c.idle_timeout_s),
        max_connections: c.max_connections,
        ..lmtp::Limits::default()
    }
}

/// Writes the config's own recipients into `config_recipients` (what Postfix looks up).
pub async fn sync_recipients(config: &Config, pool: &Pool) -> Result<(), store::Error> {
    store::migrate::check(pool).await?;
    store::recipients::sync(pool, &route::config_recipients(&config.inbound)).await
}

/// Runs the service until `shutdown` completes, then lets transactions in flight finish.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let in_database = |source| Error::Database {
        url: redact_password(&config.database.url),
        source,
    };
    let pool = store::pool(&config.database.url, config.database.pool_size).map_err(in_database)?;
    let outbound = match &config.outbound {
        Some(o) => Some((Arc::new(o.clone()), Arc::new(Settings::new(o)?))),
        None => None,
    };
    let current = Current::default();
    // Background jobs: each finishes its unit of work when told to stop, never aborted.
    let mut background = Stopper::new();
    // The endpoint first, so that /healthz answers while the database is awaited.
    if let Some(m) = &config.metrics {
        let listener = tokio::net::TcpListener::bind(m.listen)
            .await
            .map_err(|source| Error::Listen {
                listen: format!("metrics {}", m.listen),
                source,
            })?;
        tracing::info!(listen = %m.listen, "metrics listening");
        let (p, c) = (pool.clone(), current.clone());
        background.spawn("metrics endpoint", move |stop| {
            endpoint::run(listener, p, c, stop)
        });
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let waited = tokio::select! {
        synced = wait_for_database(&config, &pool) => synced.map(Some).map_err(in_database),
        () = &mut shutdown => Ok(None),
    };
    if !matches!(waited, Ok(Some(()))) {
        background.stop().await;
        return waited.map(drop);
    }
    let (loaded, policies_loaded) = oneshot::channel();
    let (url, p, c) = (config.database.url.clone(), pool.clone(), current.clone());
    background.spawn("policy watcher", move |stop| {
        state::watch(url, p, c, loaded, stop)
    });
    let p = pool.clone();
    background.spawn("event expiry", move |stop| expire::expire_events(p, stop));
    let p = pool.clone();
    let r = &config.retention;
    let (raw, rows) = (Retention::age(r.raw_days), Retention::age(r.rows_days));
    background.spawn("retention", move |stop| retention(p, raw, rows, stop));
    let (p, c) = (pool.clone(), current.clone());
    background.spawn("expected mail", move |stop| expect::misses::run(p, c, stop));
    // No mail is taken before the policies are in memory.
    tokio::select! {
        _ = policies_loaded => {}
        () = &mut shutdown => {
            background.stop().await;
            return Ok(());
        }
    }
    match &outbound {
        Some((o, settings)) => {
            let (p, o2, s) = (pool.clone(), Arc::clone(o), Arc::clone(settings));
            background.spawn("outbox", move |stop| outbox::work(p, o2, s, stop));
            let (p, c, o2) = (pool.clone(), current.clone(), Arc::clone(o));
            background.spawn("round-trip scheduler", move |stop| {
                roundtrip::schedule::run(p, c, o2, stop)
            });
        }
        None if !current.get().roundtrips.is_empty() => {
            tracing::warn!("round-trip policies need [outbound]: no probes are sent");
        }
        None => {}
    }
    let listener = lmtp::Listener::bind(&config.lmtp.listen, &config.lmtp.socket_group)
        .await
        .map_err(|source| Error::Listen {
            listen: config.lmtp.listen.to_string(),
            source,
        })?;
    tracing::info!(listen = %listener.local_addr_string(), "lmtp listening");
    let backend = Arc::new(Delivery::new(
        pool.clone(),
        current,
        delivery::Settings::from(&config),
        outbound.map(|(o, _)| o),
    ));
    let (queue, deferrals) = (config.postfix.queue_directory.clone(), backend.deferrals());
    background.spawn("postfix retries", move |stop| {
        retry_deferred(queue, pool, deferrals, stop)
    });
    let served = lmtp::serve(
        listener,
        backend,
        limits(&config),
        config.myhostname().to_string(),
        shutdown,
    )
    .await
    .map_err(|source| Error::Listen {
        listen: config.lmtp.listen.to_string(),
        source,
    });
    // Mail has stopped: the background jobs finish what they are doing, then serve ends.
    background.stop().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// How often serve ages out what `[retention]` says and makes the coming months' partitions.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Ages out raw messages older than `raw` and rows older than `rows` (`[retention]`) now (serve
/// may have been stopped a while) and then every [`RETENTION_INTERVAL`], until told to stop.
async fn retention(pool: Pool, raw: Option<Duration>, rows: Option<Duration>, mut stop: Stop) {
    loop {
        match store::retention::run(&pool, raw, rows).await {
            Ok(removed) if removed == store::retention::Removed::default() => {}
            Ok(removed) => tracing::info!(
                raw_months = ?removed.raw_months,
                log_months = ?removed.log_months,
                rows = removed.rows,
                "retention: stored mail aged out"
            ),
            Err(e) => tracing::warn!(error = %e, "retention"),
        }
        if !stop.sleep(RETENTION_INTERVAL).await {
            return;
        }
    }
}

/// How often, after a delivery was deferred, serve looks whether the database is back.
const RECOVERY_CHECK: Duration = Duration::from_secs(2);

/// Has Postfix retry what it deferred as soon as mail can be stored again: now (serve is
/// listening, perhaps after a crash or an upgrade) and once more a moment later, and whenever
/// deliveries were answered `451` and the database answers again. Without this, deferred mail
/// waits out Postfix's back-off (`minimal_backoff_time`, 300 s, doubling up to
/// `maximal_backoff_time`, 4,000 s).
///
/// The second request at start is for deliveries Postfix tried while serve was down whose
/// failure reaches its queue manager after the first request: the queue manager then marks
/// serve's destination dead again and defers everything for it for the back-off time.
async fn retry_deferred(queue: PathBuf, pool: Pool, deferrals: Arc<AtomicBool>, mut stop: Stop) {
    let mut reached = true;
    let mut starting = true;
    loop {
        match postfix::qmgr::flush_deferred(&queue).await {
            Ok(()) => {
                reached = true;
                tracing::debug!(queue = %queue.display(), "asked Postfix to retry deferred mail");
            }
            // Said once: a Postfix elsewhere (another host or container) retries on its own.
            Err(e) if reached => {
                reached = false;
                tracing::warn!(
                    queue = %queue.display(), error = %e,
                    "cannot ask Postfix's queue manager to retry deferred mail: it will retry on its own schedule"
                );
            }
            Err(_) => {}
        }
        // Until a deferral happened and the database answers again.
        loop {
            if !stop.sleep(RECOVERY_CHECK).await {
                return;
            }
            if std::mem::take(&mut starting) {
                break;
            }
            if deferrals.load(Ordering::Relaxed) && store::ping(&pool).await.is_ok() {
                deferrals.store(false, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// Retries until the database answers and has the config's recipients: mail waits in
/// Postfix's queue meanwhile. A schema that needs `mailops migrate`, and what retrying cannot
/// mend ([`store::Error::is_permanent`]), are errors at once.
async fn wait_for_database(config: &Config, pool: &Pool) -> Result<(), store::Error> {
    let mut delay = Duration::from_millis(250);
    loop {
        match sync_recipients(config, pool).await {
            Ok(()) => return Ok(()),
            Err(e @ store::Error::SchemaBehind { .. }) => return Err(e),
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, database = %redact_password(&config.database.url), retry_in_ms = delay.as_millis() as u64, "database not ready");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
