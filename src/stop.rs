//! One shutdown signal for `serve`'s background jobs: each finishes the unit of work it is in
//! (a send and its COMMIT, a sweep, a reload) and returns, rather than being aborted in the
//! middle of a transaction.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Tells the jobs to stop, and waits for them.
#[derive(Debug)]
pub struct Stopper {
    signal: watch::Sender<bool>,
    jobs: Vec<(&'static str, JoinHandle<()>)>,
}

/// What a job watches: whether it is time to stop.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stopper {
    /// A signal no job has seen yet.
    pub fn new() -> Stopper {
        Stopper {
            signal: watch::channel(false).0,
            jobs: Vec::new(),
        }
    }

    /// Spawns `job`, which is given the signal to watch.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(
        &mut self,
        name: &'static str,
        job: impl FnOnce(Stop) -> F,
    ) {
        let stop = Stop(self.signal.subscribe());
        self.jobs.push((name, tokio::spawn(job(stop))));
    }

    /// Tells every job to stop and waits until each has finished its unit of work.
    pub async fn stop(self) {
        let _ = self.signal.send(true);
        for (name, job) in self.jobs {
            if let Err(e) = job.await {
                tracing::error!(job = name, error = %e, "background job failed");
            }
        }
    }
}

impl Default for Stopper {
    fn default() -> Stopper {
        Stopper::new()
    }
}

impl Stop {
    /// Whether it is time to stop.
    pub fn stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when it is time to stop (or nobody can say so any more).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `pause`; `false` when it is time to stop instead.
    pub async fn sleep(&mut self, pause: Duration) -> bool {
        self.sleep_until(tokio::time::Instant::now() + pause).await
    }

    /// Sleeps until `deadline`; `false` when it is time to stop instead.
    pub async fn sleep_until(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.stopping() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => !self.stopping(),
            () = self.requested() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_job_finishes_its_unit_of_work_then_stops() {
        let done = Arc::new(AtomicUsize::new(0));
        let mut stopper = Stopper::new();
        let units = Arc::clone(&done);
        stopper.spawn("counting", move |mut stop| async move {
            loop {
                // A unit of work that takes a while and is never cut short.
                tokio::time::sleep(Duration::from_secs(5)).await;
                units.fetch_add(1, Ordering::SeqCst);
                if !stop.sleep(Duration::from_secs(60)).await {
                    return;
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        stopper.stop().await;
        assert_eq!(
            done.load(Ordering::SeqCst),
            1,
            "the unit in progress finished"
        );
    }
}
