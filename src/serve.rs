//! `mailops serve`: wait for the database, load the recipients, run the LMTP server until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::delivery::Delivery;
use crate::events::evaluate::Settings as EventSettings;
use crate::events::expire;
use crate::outbound::outbox;
use crate::outbound::smtp::Settings;
use crate::state::{self, Current};
use crate::{lmtp, store};
use crate::{roundtrip, route};

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database is unusable in a way waiting will not fix.
    #[error(transparent)]
    Store(#[from] store::Error),
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
    let pool = store::pool(&config.database.url, config.database.pool_size)?;
    let outbound = match &config.outbound {
        Some(o) => Some((Arc::new(o.clone()), Arc::new(Settings::new(o)?))),
        None => None,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        synced = wait_for_database(&config, &pool) => synced?,
        () = &mut shutdown => return Ok(()),
    };
    let current = Current::default();
    let (loaded, policies_loaded) = oneshot::channel();
    let mut background = vec![
        tokio::spawn(state::watch(
            config.database.url.clone(),
            pool.clone(),
            current.clone(),
            loaded,
        )),
        tokio::spawn(expire::expire_events(pool.clone())),
    ];
    // No mail is taken before the policies are in memory.
    tokio::select! {
        _ = policies_loaded => {}
        () = &mut shutdown => {
            background.iter().for_each(|task| task.abort());
            return Ok(());
        }
    }
    match &outbound {
        Some((o, settings)) => {
            background.push(tokio::spawn(outbox::work(
                pool.clone(),
                Arc::clone(o),
                Arc::clone(settings),
            )));
            background.push(tokio::spawn(roundtrip::schedule::run(
                pool.clone(),
                current.clone(),
                Arc::clone(o),
            )));
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
        pool,
        current,
        EventSettings::from(&config.inbound),
        outbound.map(|(o, _)| o),
    ));
    lmtp::serve(
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
    })?;
    for task in background {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Retries until the database answers and has the config's recipients: mail waits in
/// Postfix's queue meanwhile. A schema that needs `mailops migrate` is an error at once.
async fn wait_for_database(config: &Config, pool: &Pool) -> Result<(), store::Error> {
    let mut delay = Duration::from_millis(250);
    loop {
        match sync_recipients(config, pool).await {
            Ok(()) => return Ok(()),
            Err(e @ store::Error::SchemaBehind { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not ready");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
