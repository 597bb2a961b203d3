//! The probe scheduler inside `serve`: queues each enabled policy's probe once per interval
//! (the database decides which process does, see [`store::roundtrip::claim`]) and times out
//! probes that did not come back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::time::Instant;

use super::model::RoundtripPolicy;
use super::token::Key;
use crate::config::Outbound;
use crate::outbound::outbox::{self, Notice};
use crate::state::Current;
use crate::stop::Stop;
use crate::{metrics, store};

/// How often unanswered probes are checked, and the longest the scheduler sleeps.
const TICK: Duration = Duration::from_secs(1);
/// The pause before trying a policy again after a database error.
const RETRY: Duration = Duration::from_secs(10);

/// When each policy's probe is next due, in this process's clock.
#[derive(Debug, Default)]
pub struct Schedule {
    next: HashMap<i64, Instant>,
}

impl Schedule {
    /// The enabled policies of `policies` due at `now`: a policy seen for the first time is due
    /// at once. Disabled and removed policies are forgotten.
    pub fn due<'a>(
        &mut self,
        policies: &'a [RoundtripPolicy],
        now: Instant,
    ) -> Vec<&'a RoundtripPolicy> {
        self.next
            .retain(|id, _| policies.iter().any(|p| p.id == *id && p.enabled));
        policies
            .iter()
            .filter(|p| p.enabled && self.next.get(&p.id).is_none_or(|at| *at <= now))
            .collect()
    }

    /// Policy `id` is next due at `at`.
    pub fn set(&mut self, id: i64, at: Instant) {
        self.next.insert(id, at);
    }

    /// When to look again: the earliest next due, and at the latest one tick after `now`.
    pub fn wake(&self, now: Instant) -> Instant {
        self.next
            .values()
            .copied()
            .chain([now + TICK])
            .min()
            .unwrap_or(now + TICK)
    }
}

/// Queues `policy`'s probe if it is due (no other process queued it this interval), in one
/// transaction; returns how long until the policy's next probe is due.
async fn probe(
    pool: &Pool,
    policy: &RoundtripPolicy,
    key: &Key,
    o: &Outbound,
) -> Result<Duration, store::Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(id) = store::roundtrip::claim(&*tx, policy).await? {
        let token = key.token(id);
        let notice = Notice {
            from: Some(policy.from_address.clone()),
            to: policy.send_to.clone(),
            subject: format!("mailops round-trip probe {token}"),
            body: format!("{}\n\n{token}\n", policy.body),
            auto_submitted: "auto-generated",
            kind: "roundtrip_probe",
            ..Notice::default()
        };
        let outbox_id = outbox::enqueue(&*tx, o, &notice).await?;
        store::roundtrip::queued(&*tx, id, policy.id, &token, outbox_id).await?;
        tracing::info!(policy = %policy.name, probe = id, to = %policy.send_to, "round-trip probe queued");
    }
    let wait = store::roundtrip::next_due(&*tx, policy.id).await?;
    tx.commit().await?;
    Ok(wait)
}

/// Queues probes and times them out until told to stop (a round in progress is finished).
pub async fn run(pool: Pool, current: Current, o: Arc<Outbound>, mut stop: Stop) {
    let mut schedule = Schedule::default();
    loop {
        let state = current.get();
        let now = Instant::now();
        if let Some(key) = &state.key {
            for policy in schedule.due(&state.roundtrips, now) {
                let next = match probe(&pool, policy, key, &o).await {
                    Ok(wait) => now + wait,
                    Err(e) => {
                        tracing::warn!(policy = %policy.name, error = %e, "round-trip probe");
                        now + RETRY
                    }
                };
                schedule.set(policy.id, next);
            }
        }
        let sweep = async {
            if state.roundtrips.is_empty() {
                return Ok(0);
            }
            store::roundtrip::sweep(&pool).await
        };
        match sweep.await {
            Ok(0) => {}
            Ok(n) => {
                metrics::get().roundtrip_timeouts(n);
                tracing::warn!(probes = n, "round-trip probes timed out")
            }
            Err(e) => tracing::warn!(error = %e, "round-trip timeouts"),
        }
        if !stop.sleep_until(schedule.wake(Instant::now())).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::Severity;

    fn policy(id: i64, interval_s: i32, enabled: bool) -> RoundtripPolicy {
        RoundtripPolicy {
            id,
            name: format!("loop {id}"),
            device_id: 1,
            send_to: "rt@customer.example".into(),
            from_address: "rt@mon.example.com".into(),
            interval_s,
            timeout_s: 600,
            enabled,
            body: "probe".into(),
            severity: Severity::Major,
        }
    }

    /// Runs the scheduler's decisions the way `run` does, each probe due an interval after it
    /// was queued, for `total` of paused time; returns when each policy's probes went out.
    async fn simulate(policies: &[RoundtripPolicy], total: Duration) -> HashMap<i64, Vec<u64>> {
        let start = Instant::now();
        let mut schedule = Schedule::default();
        let mut sent: HashMap<i64, Vec<u64>> = HashMap::new();
        while start.elapsed() < total {
            let now = Instant::now();
            for p in schedule.due(policies, now) {
                sent.entry(p.id).or_default().push((now - start).as_secs());
                schedule.set(p.id, now + Duration::from_secs(p.interval_s as u64));
            }
            tokio::time::sleep_until(schedule.wake(Instant::now())).await;
        }
        sent
    }

    #[tokio::test(start_paused = true)]
    async fn each_enabled_policy_is_probed_once_per_interval() {
        let policies = [
            policy(1, 300, true),
            policy(2, 60, true),
            policy(3, 60, false),
        ];
        let sent = simulate(&policies, Duration::from_secs(900)).await;
        assert_eq!(sent[&1], [0, 300, 600]);
        assert_eq!(sent[&2], (0..15).map(|i| i * 60).collect::<Vec<u64>>());
        assert!(!sent.contains_key(&3));
    }

    #[tokio::test(start_paused = true)]
    async fn disabling_a_policy_stops_its_probes_and_enabling_starts_them_at_once() {
        let mut schedule = Schedule::default();
        let now = Instant::now();
        let mut p = policy(1, 300, true);
        assert_eq!(schedule.due(std::slice::from_ref(&p), now).len(), 1);
        schedule.set(1, now + Duration::from_secs(300));
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(schedule
            .due(std::slice::from_ref(&p), Instant::now())
            .is_empty());
        p.enabled = false;
        assert!(schedule
            .due(std::slice::from_ref(&p), Instant::now())
            .is_empty());
        p.enabled = true;
        assert_eq!(
            schedule.due(std::slice::from_ref(&p), Instant::now()).len(),
            1
        );
        // With nothing due the scheduler still wakes every tick, to time probes out.
        assert_eq!(schedule.wake(Instant::now()), Instant::now() + TICK);
    }
}
