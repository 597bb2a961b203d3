//! Group commit for the events pipeline. Every COMMIT waits for PostgreSQL to flush its WAL,
//! and with one transaction per copy that flush, not the work, is what limits a busy server:
//! Postfix's sessions sit idle waiting for it. So the copies that sessions hand over while
//! another batch is being stored are stored together, in one transaction sent in one round trip,
//! and share one flush. Each session is still answered only after the COMMIT that holds its
//! copy.
//!
//! Through Postfix, copies seldom coincide by themselves: each of its deliveries spends most
//! of its time in Postfix, so they arrive a millisecond or more apart and most batches would
//! hold one. So while copies keep arriving often (the mean gap between them under half of
//! [`LINGER`]) and some connected session is not already waiting for an answer, the
//! collecting writer waits up to [`LINGER`] for more, until it has [`FILL`]. Fewer flushes
//! leave more of the machine to Postfix; when every session is waiting, or mail is sparse,
//! nothing waits.
//!
//! A batch is all or nothing, so one copy that cannot be stored (a redelivery, whose
//! idempotency key is already there, or a failing write) would take the others down with it:
//! when a batch fails, each of its copies is stored again on its own, and gets its own answer.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::Instant;

use super::Outcome;
use crate::events::evaluate::Write;
use crate::metrics;
use crate::store::{self, events, inbound};

/// Most copies stored in one transaction.
const MAX_BATCH: usize = 64;

/// The longest a writer waits for more copies to store with the ones it has.
const LINGER: Duration = Duration::from_millis(8);
/// How many copies a writer waits for. Eight already share one flush among eight; waiting
/// for every session instead would make them all wait for the slowest, and send in lockstep.
const FILL: usize = 8;

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
    load: Arc<Load>,
}

/// Who could still hand over a copy, which tells a collecting writer whether to wait.
#[derive(Default)]
struct Load {
    /// LMTP sessions connected.
    sessions: AtomicUsize,
    /// Copies handed over and not yet answered.
    in_flight: AtomicUsize,
}

impl Load {
    /// Whether some connected session is not waiting for a copy's answer (a message with
    /// several events recipients counts once for each, which only stops the wait sooner).
    fn others_may_send(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) < self.sessions.load(Ordering::Relaxed)
    }
}

/// Counts a copy as in flight until dropped (answered, or its session gone).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Writers {
    /// Starts `count` writers storing through `pool` (within a Tokio runtime). While one stores
    /// a batch, the next collects what arrives meanwhile, so a few keep the flushes overlapping.
    pub fn start(pool: Pool, count: usize) -> Writers {
        // Unbounded, yet bounded by the sessions: each waits for its copies' outcomes.
        let (queue, waiting) = mpsc::unbounded_channel();
        let load = Arc::new(Load::default());
        let waiting = Arc::new(Mutex::new(Queue {
            waiting,
            last: Instant::now(),
            gap: LINGER,
        }));
        for _ in 0..count {
            tokio::spawn(write(pool.clone(), Arc::clone(&waiting), Arc::clone(&load)));
        }
        Writers { queue, load }
    }

    /// An LMTP session started (`true`) or ended.
    pub fn session(&self, started: bool) {
        match started {
            true => self.load.sessions.fetch_add(1, Ordering::Relaxed),
            false => self.load.sessions.fetch_sub(1, Ordering::Relaxed),
        };
    }

    /// Stores `copy` with whatever else is waiting, and says what became of it once its
    /// transaction has committed (or failed).
    pub async fn store(&self, copy: Copy) -> Result<Outcome, Arc<store::Error>> {
        let _in_flight = InFlight::new(&self.load.in_flight);
        let (done, outcome) = oneshot::channel();
        let stopped = || Arc::new(store::Error::Stopped);
        self.queue
            .send(Waiting { copy, done })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// The copies (`T`: [`Waiting`]) waiting for a writer, and how often they arrive.
struct Queue<T> {
    waiting: mpsc::UnboundedReceiver<T>,
    /// When copies last arrived.
    last: Instant,
    /// The mean gap between copies arriving (weighted towards the recent ones).
    gap: Duration,
}

impl<T> Queue<T> {
    /// Takes into `batch` what is waiting, waiting for at least one copy, and then more while
    /// more are expected soon; false once the channel is closed and empty.
    async fn collect(&mut self, batch: &mut Vec<T>, load: &Load) -> bool {
        if self.take(batch).await == 0 {
            return false;
        }
        let deadline = Instant::now() + LINGER;
        while batch.len() < FILL && self.gap < LINGER / 2 && load.others_may_send() {
            match tokio::time::timeout_at(deadline, self.take(batch)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        true
    }

    /// Waits for copies and takes what has arrived into `batch`; 0 once the channel is
    /// closed and empty.
    async fn take(&mut self, batch: &mut Vec<T>) -> usize {
        let taken = self.waiting.recv_many(batch, MAX_BATCH - batch.len()).await;
        if taken > 0 {
            let now = Instant::now();
            // A quiet spell counts as one long gap, not as many: the rate recovers quickly.
            let gap = (now - self.last).min(LINGER) / taken as u32;
            self.gap = (self.gap * 7 + gap) / 8;
            self.last = now;
        }
        taken
    }
}

/// One writer: takes what is waiting (up to [`MAX_BATCH`]), stores it, answers, repeats.
async fn write(pool: Pool, queue: Arc<Mutex<Queue<Waiting>>>, load: Arc<Load>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if !queue.lock().await.collect(&mut batch, &load).await {
            return;
        }
        // The same order in every batch, so two batches raising the same events lock them in
        // the same order rather than deadlocking.
        batch.sort_by(|a, b| lock_order(&a.copy).cmp(&lock_order(&b.copy)));
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

/// The first event a copy raises or clears, which its transaction locks: (device, policy, key).
fn lock_order(copy: &Copy) -> Option<(i64, i64, &str)> {
    copy.writes.iter().find_map(|w| match w {
        Write::Raise {
            device_id,
            event_policy_id,
            key,
            ..
        } => Some((*device_id, *event_policy_id, key.as_str())),
        Write::Clear {
            device_id,
            event_policy_id,
            key,
            ..
        } => Some((*device_id, *event_policy_id, key.as_deref().unwrap_or(""))),
        Write::Take {
            device_id,
            event_policy_id,
            ..
        } => Some((*device_id, *event_policy_id, "")),
        Write::DeviceLog { .. } | Write::SystemLog { .. } | Write::Report { .. } => None,
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
/// `None` if one was already stored (which rolled the transaction back). A committed
/// transaction is counted in the metrics, with the events it raised and cleared.
async fn together(pool: &Pool, copies: &[Copy]) -> Result<Option<Vec<i64>>, store::Error> {
    let client = pool.get().await?;
    let insert = inbound::prepare(&client).await?;
    let statements = events::Statements::prepare(&client).await?;
    let tally = events::Tally::default();
    let (client, insert, statements, tally_ref) = (&client, &insert, &statements, &tally);
    let started = Instant::now();
    let stored = store::transaction(client, async move {
        let pending: Vec<Pin<Box<_>>> = copies
            .iter()
            .map(|copy| {
                Box::pin(async move {
                    let writes = events::pending(
                        client,
                        statements,
                        &copy.message_key,
                        &copy.writes,
                        tally_ref,
                    );
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
    .await?;
    if stored.is_some() {
        metrics::get().transaction(started.elapsed(), Some(copies.len()));
        metrics::get().events(tally.counts());
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue whose copies have been arriving `gap` apart, and the sender feeding it.
    fn queue(gap: Duration) -> (mpsc::UnboundedSender<u32>, Queue<u32>) {
        let (send, waiting) = mpsc::unbounded_channel();
        let last = Instant::now();
        (send, Queue { waiting, last, gap })
    }

    /// `sessions` connected, `in_flight` of them waiting for an answer.
    fn load(sessions: usize, in_flight: usize) -> Load {
        Load {
            sessions: sessions.into(),
            in_flight: in_flight.into(),
        }
    }

    /// Sends one copy now and `more` after it, a millisecond apart, and keeps the queue open.
    fn arriving(send: mpsc::UnboundedSender<u32>, more: u32) {
        send.send(0).expect("open");
        tokio::spawn(async move {
            for i in 1..=more {
                tokio::time::sleep(Duration::from_millis(1)).await;
                send.send(i).expect("open");
            }
            std::future::pending::<()>().await;
        });
    }

    /// One batch collected under `load` from copies that have been arriving a millisecond
    /// apart and go on for `more`; and how long collecting it took.
    async fn one_batch(more: u32, load: Load) -> (Vec<u32>, Duration) {
        let (send, mut queue) = queue(Duration::from_millis(1));
        arriving(send, more);
        let started = Instant::now();
        let mut batch = Vec::new();
        assert!(queue.collect(&mut batch, &load).await);
        (batch, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_more_while_they_come_often() {
        let (batch, took) = one_batch(20, load(20, 1)).await;
        assert_eq!(batch, (0..FILL as u32).collect::<Vec<_>>());
        assert_eq!(took, Duration::from_millis(FILL as u64 - 1));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_no_longer_than_linger() {
        let (batch, took) = one_batch(2, load(20, 1)).await;
        assert_eq!(batch, [0, 1, 2]);
        assert_eq!(took, LINGER);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_wait_when_every_session_waits() {
        let (batch, took) = one_batch(20, load(3, 3)).await;
        assert_eq!(batch, [0]);
        assert_eq!(took, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_wait_when_mail_is_sparse() {
        let (send, mut queue) = queue(LINGER);
        arriving(send, 20);
        let mut batch = Vec::new();
        assert!(queue.collect(&mut batch, &load(20, 1)).await);
        assert_eq!(batch, [0]);
        // Copies arriving often bring the mean gap down, and then it waits.
        let mut singles = 0;
        while batch.len() == 1 {
            singles += 1;
            batch.clear();
            queue.collect(&mut batch, &load(20, 1)).await;
        }
        assert_eq!(batch.len(), FILL, "after {singles} single copies");
    }

    #[tokio::test(start_paused = true)]
    async fn ends_when_the_queue_is_closed_and_empty() {
        let (send, mut queue) = queue(Duration::from_millis(1));
        send.send(7).expect("open");
        drop(send);
        let mut batch = Vec::new();
        assert!(queue.collect(&mut batch, &load(20, 1)).await);
        assert_eq!(batch, [7]);
        assert!(!queue.collect(&mut batch, &load(20, 1)).await);
    }
}
