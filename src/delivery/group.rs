//! Group commit for the events pipeline. Every COMMIT waits for PostgreSQL to flush its WAL,
//! and with one transaction per copy that flush, not the work, is what limits a busy server:
//! Postfix's sessions sit idle waiting for it. So the copies that sessions hand over while
//! another batch is being stored are stored together, in one transaction sent in one round trip,
//! and share one flush. Each session is still answered only after the COMMIT that holds its
//! copy.
//!
//! A batch is all or nothing, so one copy that cannot be stored (a redelivery, whose
//! idempotency key is already there, or a failing write) would take the others down with it:
//! when a batch fails, each of its copies is stored again on its own, and gets its own answer.

use std::pin::Pin;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::Outcome;
use crate::events::evaluate::Write;
use crate::store::{self, events, inbound};

/// Most copies stored in one transaction.
const MAX_BATCH: usize = 64;

/// One events recipient's copy and what the message writes.
pub struct Copy {
    /// The `inbound_messages` row.
    pub row: inbound::Inbound,
    /// [`inbound::message_key`]: the alert key that lets only one recipient's copy write.
    pub message_key: Arc<str>,
    /// What the events pipeline decided to write for the message.
    pub writes: Arc<Vec<Write>>,
}

/// A copy waiting to be stored, and where its outcome goes.
struct Waiting {
    copy: Copy,
    done: oneshot::Sender<Result<Outcome, Arc<store::Error>>>,
}

/// The tasks storing events copies; they stop once this is dropped and the queue is empty.
pub struct Writers {
    queue: mpsc::UnboundedSender<Waiting>,
}

impl Writers {
    /// Starts `count` writers storing through `pool` (within a Tokio runtime). While one stores
    /// a batch, the next collects what arrives meanwhile, so a few keep the flushes overlapping.
    pub fn start(pool: Pool, count: usize) -> Writers {
        // Unbounded, yet bounded by the sessions: each waits for its copies' outcomes.
        let (queue, waiting) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..count {
            tokio::spawn(write(pool.clone(), Arc::clone(&waiting)));
        }
        Writers { queue }
    }

    /// Stores `copy` with whatever else is waiting, and says what became of it once its
    /// transaction has committed (or failed).
    pub async fn store(&self, copy: Copy) -> Result<Outcome, Arc<store::Error>> {
        let (done, outcome) = oneshot::channel();
        let stopped = || Arc::new(store::Error::Stopped);
        self.queue
            .send(Waiting { copy, done })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// One writer: takes everything waiting (up to [`MAX_BATCH`]), stores it, answers, repeats.
async fn write(pool: Pool, queue: Arc<Mutex<mpsc::UnboundedReceiver<Waiting>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if queue.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        // The same order in every batch, so two batches raising the same events lock them in
        // the same order rather than deadlocking.
        batch.sort_by_key(|w| lock_order(&w.copy));
        let (copies, done): (Vec<Copy>, Vec<_>) = batch.drain(..).map(|w| (w.copy, w.done)).unzip();
        let pool = pool.clone();
        // A panic storing ends that task only: its copies are answered with an error.
        let outcomes = match tokio::spawn(async move { store_all(&pool, &copies).await }).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, "storing a batch of events deliveries failed");
                let stopped = Arc::new(store::Error::Stopped);
                done.iter().map(|_| Err(Arc::clone(&stopped))).collect()
            }
        };
        for (done, outcome) in done.into_iter().zip(outcomes) {
            // The session gave up waiting only if it is gone; Postfix will try again.
            let _ = done.send(outcome);
        }
    }
}

/// The first event a copy raises or clears, which its transaction locks.
fn lock_order(copy: &Copy) -> Option<(i64, i64)> {
    copy.writes.iter().find_map(|w| match w {
        Write::Raise {
            device_id,
            event_policy_id,
            ..
        }
        | Write::Clear {
            device_id,
            event_policy_id,
            ..
        } => Some((*device_id, *event_policy_id)),
        Write::DeviceLog { .. } | Write::SystemLog { .. } => None,
    })
}

/// Stores `copies` in one transaction, or each in its own when that fails for one of them.
async fn store_all(pool: &Pool, copies: &[Copy]) -> Vec<Result<Outcome, Arc<store::Error>>> {
    if copies.len() > 1 {
        match together(pool, copies).await {
            Ok(Some(ids)) => {
                return ids
                    .into_iter()
                    .map(|id| Ok(Outcome::Stored(id, None)))
                    .collect()
            }
            // No connection: none of them can be stored now, each would only wait again.
            Err(e @ store::Error::Pool(_)) => {
                let e = Arc::new(e);
                return copies.iter().map(|_| Err(Arc::clone(&e))).collect();
            }
            Ok(None) => tracing::debug!(
                copies = copies.len(),
                "a redelivery in the batch: storing each copy on its own"
            ),
            Err(e) => tracing::debug!(
                copies = copies.len(),
                error = %e,
                "storing the batch failed: storing each copy on its own"
            ),
        }
    }
    let mut outcomes = Vec::with_capacity(copies.len());
    for copy in copies {
        outcomes.push(match together(pool, std::slice::from_ref(copy)).await {
            Ok(Some(ids)) => Ok(Outcome::Stored(ids[0], None)),
            Ok(None) => Ok(Outcome::Duplicate),
            Err(e) => Err(Arc::new(e)),
        });
    }
    outcomes
}

/// Stores `copies` and their writes in one transaction, in one round trip: their ids, or
/// `None` if one was already stored (which rolled the transaction back).
async fn together(pool: &Pool, copies: &[Copy]) -> Result<Option<Vec<i64>>, store::Error> {
    let client = pool.get().await?;
    let insert = inbound::prepare(&client).await?;
    let statements = events::Statements::prepare(&client).await?;
    let (client, insert, statements) = (&client, &insert, &statements);
    store::transaction(client, async move {
        let pending: Vec<Pin<Box<_>>> = copies
            .iter()
            .map(|copy| {
                Box::pin(async move {
                    let writes =
                        events::pending(client, statements, &copy.message_key, &copy.writes);
                    let (inserted, written) = tokio::join!(
                        biased;
                        inbound::insert(&***client, insert, &copy.row),
                        store::all_in_order(writes),
                    );
                    // A redelivery aborts the transaction at its INSERT; what follows fails
                    // with it.
                    let Some(id) = inserted? else {
                        return Ok(None);
                    };
                    written?;
                    Ok(Some(id))
                })
            })
            .collect();
        let mut ids = Vec::with_capacity(copies.len());
        for stored in store::in_order(pending).await {
            match stored? {
                Some(id) => ids.push(id),
                None => return Ok(None),
            }
        }
        Ok(Some(ids))
    })
    .await
}
