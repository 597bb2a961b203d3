//! `mailops serve`: wait for the database, load the recipients, run the LMTP server until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::delivery::Delivery;
use crate::events::evaluate::Settings as EventSettings;
use crate::events::{refresh, Current};
use crate::outbound::outbox;
use crate::outbound::smtp::Settings;
use crate::route::{self, Router};
use crate::{lmtp, store};

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
    let router = tokio::select! {
        router = wait_for_database(&config, &pool) => router?,
        () = &mut shutdown => return Ok(()),
    };
    tracing::info!(addresses = router.len(), "recipients loaded");
    let current = Current::default();
    let (loaded, policies_loaded) = oneshot::channel();
    let mut background = vec![
        tokio::spawn(refresh::watch(
            config.database.url.clone(),
            pool.clone(),
            current.clone(),
            loaded,
        )),
        tokio::spawn(refresh::expire_events(pool.clone())),
    ];
    // No mail is taken before the policies are in memory.
    tokio::select! {
        _ = policies_loaded => {}
        () = &mut shutdown => {
            background.iter().for_each(|task| task.abort());
            return Ok(());
        }
    }
    if let Some((o, settings)) = outbound {
        background.push(tokio::spawn(outbox::work(pool.clone(), o, settings)));
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
        router,
        current,
        EventSettings::from(&config.inbound),
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

/// Retries until the database answers: mail waits in Postfix's queue meanwhile. A schema that
/// needs `mailops migrate` is an error at once.
async fn wait_for_database(config: &Config, pool: &Pool) -> Result<Router, store::Error> {
    let mut delay = Duration::from_millis(250);
    loop {
        let attempt = async {
            sync_recipients(config, pool).await?;
            store::recipients::load(pool).await
        };
        match attempt.await {
            Ok(loaded) => return Ok(loaded),
            Err(e @ store::Error::SchemaBehind { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not ready");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
