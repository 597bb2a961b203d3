//! The expected-mail watch inside `serve`: starts tracking each policy (its first deadline)
//! and records each report that did not come in time. Several `serve` processes record one
//! miss per deadline: whichever moves it on first ([`store::expect::missed`]).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;

use super::evaluate::Compiled;
use crate::state::Current;
use crate::stop::Stop;
use crate::store;

/// How often deadlines are checked.
const TICK: Duration = Duration::from_secs(1);
/// At most this many periods are stepped over at once (a `serve` down for longer records
/// them as this many).
const MAX_PERIODS: i32 = 100_000;

/// The deadline after `due` passed, stepped past `now`, and how many periods that is.
pub fn next_after_miss(
    c: &Compiled,
    due: jiff::Timestamp,
    now: jiff::Timestamp,
) -> (jiff::Timestamp, i32) {
    let grace = c.policy.grace_s;
    let mut next = c.schedule.due_after_miss(due, grace);
    let mut periods = 1;
    while next <= now && periods < MAX_PERIODS {
        next = c.schedule.due_after_miss(next, grace);
        periods += 1;
    }
    (next, periods)
}

/// One round: tracks the policies not tracked yet, records the misses.
async fn round(
    pool: &Pool,
    current: &Current,
    tracked: &mut HashSet<i64>,
) -> Result<(), store::Error> {
    let state = current.get();
    if state.expects.is_empty() {
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    let client = pool.get().await?;
    tracked.retain(|id| state.expects.all().iter().any(|c| c.policy.id == *id));
    for c in state.expects.all() {
        if tracked.insert(c.policy.id) {
            let due = c.schedule.first_due(now, c.policy.grace_s);
            store::expect::track(&**client, c.policy.id, SystemTime::from(due)).await?;
        }
    }
    for (id, due) in store::expect::overdue(&**client).await? {
        let Some(c) = state.expects.all().iter().find(|c| c.policy.id == id) else {
            continue;
        };
        let Ok(at) = jiff::Timestamp::try_from(due) else {
            continue;
        };
        let (next, periods) = next_after_miss(c, at, now);
        let message = format!(
            "Expected mail {}: no report by {} (%n missed in a row)",
            c.policy.name,
            at.round(jiff::Unit::Second).unwrap_or(at)
        );
        let miss = store::expect::Miss {
            id,
            device_id: c.policy.device_id,
            due,
            next: SystemTime::from(next),
            periods,
            severity: c.policy.severity.as_str(),
            message: &message,
        };
        if let Some(raised) = store::expect::missed(&**client, &miss).await? {
            tracing::warn!(
                policy = %c.policy.name,
                periods,
                raised,
                next = %next,
                "expected mail missed"
            );
        }
    }
    Ok(())
}

/// Watches the deadlines until told to stop (a round in progress is finished).
pub async fn run(pool: Pool, current: Current, mut stop: Stop) {
    let mut tracked = HashSet::new();
    loop {
        if let Err(e) = round(&pool, &current, &mut tracked).await {
            tracing::warn!(error = %e, "expected mail");
            // Tracked again next round: the insert may not have happened.
            tracked.clear();
        }
        if !stop.sleep(TICK).await {
            return;
        }
    }
}
