//! What `serve` holds in memory: the addresses mail is accepted for and every policy, loaded
//! in one snapshot, kept current by LISTENing for changes, and replaced whole.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::AsyncMessage;

use crate::events::policies::Devices;
use crate::expect::evaluate::Expects;
use crate::roundtrip::model::RoundtripPolicy;
use crate::roundtrip::token::Key;
use crate::route::Router;
use crate::stop::Stop;
use crate::{events, metrics, store, tickets};

/// The channel the policy tables' triggers notify on every change (see `sql/`).
const CHANNEL: &str = "mailops_policies";

/// One consistent snapshot of the recipients and the policies.
#[derive(Debug, Default)]
pub struct State {
    /// The addresses mail is accepted for (`valid_recipients`).
    pub router: Router,
    /// The events policies, compiled.
    pub events: events::policies::Policies,
    /// The ticket policies.
    pub tickets: tickets::policies::Policies,
    /// The round-trip policies.
    pub roundtrips: Vec<RoundtripPolicy>,
    /// The expected-mail policies.
    pub expects: Expects,
    /// The key probe tokens are signed with (`None` until first loaded).
    pub key: Option<Key>,
    /// The `devices_version` the devices in `events` were read at.
    pub devices_version: i64,
}

/// The state in force, shared by every session; replaced whole when it changes (empty until
/// first loaded).
#[derive(Debug, Clone, Default)]
pub struct Current(Arc<RwLock<Arc<State>>>);

impl Current {
    /// The state now in force (a message keeps using it even if it is replaced meanwhile).
    pub fn get(&self) -> Arc<State> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `state` in force.
    pub fn replace(&self, state: State) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
    }
}

/// Devices in memory and the `devices_version` they were read at.
pub type HeldDevices = (i64, Arc<Devices>);

/// Loads the recipients and the policies in one snapshot, keeping the devices `held` when no
/// statement has changed them since they were read; a policy that does not compile is left out
/// with a warning. Compiling runs on a blocking thread: the sessions go on meanwhile.
pub async fn load(pool: &Pool, held: Option<HeldDevices>) -> Result<State, store::Error> {
    let started = std::time::Instant::now();
    let read = store::policies::load_serving(pool, held.as_ref().map(|(v, _)| *v)).await?;
    let kept = held
        .filter(|(version, _)| *version == read.devices_version)
        .map(|(_, devices)| devices);
    match tokio::task::spawn_blocking(move || compile(read, kept, started)).await {
        Ok(state) => Ok(state),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(store::Error::Stale(format!("compiling the policies: {e}"))),
    }
}

/// The state made of what [`load`] read, with the devices `kept` when they are still current.
fn compile(
    read: store::policies::Serving,
    kept: Option<Arc<Devices>>,
    started: std::time::Instant,
) -> State {
    let store::policies::Serving {
        router,
        model,
        key,
        devices_version,
    } = read;
    let devices_read = kept.is_none();
    let devices = kept.unwrap_or_else(|| Arc::new(Devices::new(model.devices)));
    let (events, problems) =
        events::policies::Policies::with_devices(devices, model.originators, model.event_policies);
    for problem in problems {
        tracing::warn!(%problem, "policy left out");
    }
    let tickets = tickets::policies::Policies::new(
        model.users,
        model.queues,
        model.templates,
        model.ticket_policies,
    );
    let (expects, problems) = Expects::new(model.expects);
    for problem in problems {
        tracing::warn!(%problem, "policy left out");
    }
    tracing::info!(
        addresses = router.len(),
        devices = events.device_count(),
        originators = events.originators.len(),
        event_policies = events.event_policies().len(),
        ticket_policies = tickets.len(),
        roundtrip_policies = model.roundtrips.len(),
        expect_policies = expects.len(),
        devices_read,
        seconds = started.elapsed().as_secs_f64(),
        "policies loaded"
    );
    metrics::get().policies_loaded(&[
        ("addresses", router.len()),
        ("devices", events.device_count()),
        ("originators", events.originators.len()),
        ("event_policies", events.event_policies().len()),
        ("ticket_policies", tickets.len()),
        ("roundtrip_policies", model.roundtrips.len()),
        ("expect_policies", expects.len()),
    ]);
    State {
        router,
        events,
        tickets,
        roundtrips: model.roundtrips,
        expects,
        key: Some(key),
        devices_version,
    }
}

/// Loads the state into `current` (then says so on `loaded`) and reloads it whenever the
/// policies change, until told to stop (a load is only a read: stopping drops it). A lost
/// listening connection is reopened, and the state reloaded, since changes may have been
/// missed meanwhile.
pub async fn watch(
    url: String,
    pool: Pool,
    current: Current,
    loaded: oneshot::Sender<()>,
    mut stop: Stop,
) {
    let mut loaded = Some(loaded);
    let mut delay = Duration::from_millis(250);
    loop {
        let listened = tokio::select! {
            listened = listen(&url, &pool, &current, &mut loaded) => listened,
            () = stop.requested() => return,
        };
        match listened {
            Ok(()) => delay = Duration::from_millis(250),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "policy listener");
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
        if !stop.sleep(delay).await {
            return;
        }
    }
}

/// One listening connection: LISTEN, load, then reload on each notification until it closes.
async fn listen(
    url: &str,
    pool: &Pool,
    current: &Current,
    loaded: &mut Option<oneshot::Sender<()>>,
) -> Result<(), store::Error> {
    let target = store::connect::Target::parse(url).map_err(store::Error::Url)?;
    let (client, mut connection) = target.pg.connect(target.tls()).await?;
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
    current.replace(load(pool, None).await?);
    if let Some(loaded) = loaded.take() {
        let _ = loaded.send(());
    }
    while changes.recv().await.is_some() {
        // One `policy apply` notifies once per table it changed: reload once for all. The
        // devices, the bulk of a large site's policies, are read again only when they changed.
        while changes.try_recv().is_ok() {}
        let now = current.get();
        let held = (now.devices_version, Arc::clone(now.events.devices()));
        current.replace(load(pool, Some(held)).await?);
    }
    match driver.await {
        Ok(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}
