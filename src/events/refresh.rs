//! Keeps the policies `serve` holds in memory current: loads them, LISTENs for changes on a
//! connection of its own, reloads; and clears events whose expiry has passed.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};

use super::policies::Policies;
use super::Current;
use crate::store;

/// The channel `sql/0002_events.sql` notifies on every policy change.
const CHANNEL: &str = "mailops_policies";
/// How often active events are checked for expiry.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// Loads and compiles the policies; a policy that does not compile is left out with a warning.
pub async fn load(pool: &Pool) -> Result<Policies, store::Error> {
    let model = store::policies::load(pool).await?;
    let (policies, problems) =
        Policies::new(model.devices, model.originators, model.event_policies);
    for problem in problems {
        tracing::warn!(%problem, "policy left out");
    }
    tracing::info!(
        devices = policies.device_count(),
        originators = policies.originators.len(),
        event_policies = policies.event_policies.len(),
        "policies loaded"
    );
    Ok(policies)
}

/// Loads the policies into `current` (then says so on `loaded`) and reloads them whenever they
/// change, for as long as it runs. A lost listening connection is reopened, and the policies
/// reloaded, since changes may have been missed meanwhile.
pub async fn watch(url: String, pool: Pool, current: Current, loaded: oneshot::Sender<()>) {
    let mut loaded = Some(loaded);
    let mut delay = Duration::from_millis(250);
    loop {
        match listen(&url, &pool, &current, &mut loaded).await {
            Ok(()) => delay = Duration::from_millis(250),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "policy listener");
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
        tokio::time::sleep(delay).await;
    }
}

/// One listening connection: LISTEN, load, then reload on each notification until it closes.
async fn listen(
    url: &str,
    pool: &Pool,
    current: &Current,
    loaded: &mut Option<oneshot::Sender<()>>,
) -> Result<(), store::Error> {
    let config = tokio_postgres::Config::from_str(url).map_err(store::Error::Url)?;
    let (client, mut connection) = config.connect(NoTls).await?;
    let (changed, mut changes) = mpsc::unbounded_channel();
    // The connection delivers notifications only to whoever polls it.
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if changed.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    // LISTEN first, then load: no change can fall between the two.
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    current.replace(load(pool).await?);
    if let Some(loaded) = loaded.take() {
        let _ = loaded.send(());
    }
    while changes.recv().await.is_some() {
        // One `policy apply` notifies once per table it changed: reload once for all.
        while changes.try_recv().is_ok() {}
        current.replace(load(pool).await?);
    }
    match driver.await {
        Ok(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Clears expired events every minute, for as long as it runs.
pub async fn expire_events(pool: Pool) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        tick.tick().await;
        let cleared = async {
            let client = pool.get().await?;
            Ok::<_, store::Error>(store::events::expire(&client).await?)
        };
        match cleared.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "expired events cleared"),
            Err(e) => tracing::warn!(error = %e, "clearing expired events"),
        }
    }
}
