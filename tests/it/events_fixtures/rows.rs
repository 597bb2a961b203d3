//! The rows one fixture's delivery wrote, compared with what its expectation says.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::corpus::{ExpectedClear, Fixture};
use crate::support::db::TestDb;

/// One event row, as the runner compares it.
#[derive(Debug)]
pub struct EventRow {
    id: i64,
    device: String,
    policy: Option<String>,
    key: String,
    severity: String,
    message: String,
    count: i32,
    state: String,
}

/// What one message produced in the database.
#[derive(Debug, Default)]
pub struct Actual {
    route: String,
    device_logs: Vec<(String, String)>,
    system_log: Vec<(String, String)>,
    events: Vec<EventRow>,
    cleared: Vec<ExpectedClear>,
}

/// Active events before a delivery: id → (policy, device, key).
pub async fn active_events(db: &TestDb) -> BTreeMap<i64, ExpectedClear> {
    db.client()
        .await
        .query(
            "SELECT e.id, d.name AS device, coalesce(p.name, '') AS policy, e.key
             FROM events e JOIN devices d ON d.id = e.device_id
             LEFT JOIN event_policies p ON p.id = e.event_policy_id
             WHERE e.state = 'active'",
            &[],
        )
        .await
        .expect("querying active events")
        .iter()
        .map(|r| {
            (
                r.get("id"),
                ExpectedClear {
                    policy: r.get("policy"),
                    device: r.get("device"),
                    key: r.get("key"),
                },
            )
        })
        .collect()
}

/// The rows of the message `message_id`, and the events of `before` that are no longer active.
pub async fn actual_rows(
    db: &TestDb,
    message_id: &str,
    before: &BTreeMap<i64, ExpectedClear>,
) -> Result<Actual, String> {
    let client = db.client().await;
    let inbound = client
        .query(
            "SELECT id, route FROM inbound_messages WHERE message_id = $1",
            &[&message_id],
        )
        .await
        .map_err(|e| format!("querying inbound_messages: {e}"))?;
    let [row] = inbound.as_slice() else {
        return Err(format!(
            "{} inbound_messages rows with message_id {message_id:?}, expected 1",
            inbound.len()
        ));
    };
    let id: i64 = row.get("id");
    let mut actual = Actual {
        route: row.get("route"),
        ..Actual::default()
    };
    let query = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[&id])
                .await
                .map_err(|e| format!("{sql}: {e}"))
        }
    };
    actual.device_logs = query(
        "SELECT d.name, l.message FROM device_logs l JOIN devices d ON d.id = l.device_id
         WHERE l.inbound_message_id = $1 ORDER BY l.id",
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    actual.system_log =
        query("SELECT code, message FROM system_log WHERE inbound_message_id = $1 ORDER BY id")
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let was_active: Vec<i64> = before.keys().copied().collect();
    let now_cleared: BTreeSet<i64> = client
        .query(
            "SELECT id FROM events WHERE id = ANY($1) AND state <> 'active'",
            &[&was_active],
        )
        .await
        .map_err(|e| format!("querying cleared events: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    actual.cleared = now_cleared.iter().map(|id| before[id].clone()).collect();
    actual.cleared.sort();
    // A cleared event may or may not carry the clearing message's id; either way it is checked
    // as [[cleared]], not as [[event]].
    actual.events = query(
        "SELECT e.id, d.name AS device, p.name AS policy, e.key, e.severity, e.message, e.count,
                e.state
         FROM events e JOIN devices d ON d.id = e.device_id
         LEFT JOIN event_policies p ON p.id = e.event_policy_id
         WHERE e.inbound_message_id = $1 ORDER BY e.id",
    )
    .await?
    .iter()
    .map(|r| EventRow {
        id: r.get("id"),
        device: r.get("device"),
        policy: r.get("policy"),
        key: r.get("key"),
        severity: r.get("severity"),
        message: r.get("message"),
        count: r.get("count"),
        state: r.get("state"),
    })
    .filter(|e| !now_cleared.contains(&e.id))
    .collect();
    Ok(actual)
}

/// Every way `actual` differs from what `fixture` expects.
pub fn compare(fixture: &Fixture, actual: &Actual) -> Vec<String> {
    let e = &fixture.expected;
    let mut problems = Vec::new();
    if actual.route != "event" {
        problems.push(format!("route {:?}, expected \"event\"", actual.route));
    }
    match &e.device {
        Some(device) => {
            match actual.device_logs.as_slice() {
                [(name, message)] => {
                    if name != device {
                        problems.push(format!("device log on {name:?}, expected {device:?}"));
                    }
                    for needle in &e.device_log_contains {
                        if !message.contains(needle.as_str()) {
                            problems.push(format!(
                                "device log message lacks {needle:?}; it is {message:?}"
                            ));
                        }
                    }
                }
                rows => problems.push(format!(
                    "{} device_logs rows, expected 1 on {device:?}",
                    rows.len()
                )),
            }
            if !actual.system_log.is_empty() {
                problems.push(format!(
                    "system_log rows {:?}, expected none",
                    actual.system_log
                ));
            }
        }
        None => {
            match actual.system_log.as_slice() {
                [(code, message)] => {
                    if code != "E701" {
                        problems.push(format!("system_log code {code:?}, expected \"E701\""));
                    }
                    if !message.starts_with("Could not match device to email") {
                        problems.push(format!(
                            "system_log message {message:?} does not start with \
                             \"Could not match device to email\""
                        ));
                    }
                    for (what, needle) in [
                        ("sender", &fixture.from_header),
                        ("subject", &fixture.subject),
                    ] {
                        if !message.contains(needle.as_str()) {
                            problems.push(format!(
                                "system_log message {message:?} lacks the {what} {needle:?}"
                            ));
                        }
                    }
                }
                rows => problems.push(format!("system_log rows {rows:?}, expected one E701 row")),
            }
            if !actual.device_logs.is_empty() {
                problems.push(format!(
                    "device_logs rows {:?}, expected none",
                    actual.device_logs
                ));
            }
        }
    }

    let mut unmatched: Vec<&EventRow> = actual.events.iter().collect();
    for want in &e.event {
        let Some(pos) = unmatched.iter().position(|row| {
            row.policy.as_deref() == Some(want.policy.as_str()) && row.key == want.key
        }) else {
            problems.push(format!(
                "no event of policy {:?} with key {:?}",
                want.policy, want.key
            ));
            continue;
        };
        let row = unmatched.remove(pos);
        let mut differs = |what: &str, got: String, wanted: String| {
            if got != wanted {
                problems.push(format!(
                    "event {:?}: {what} {got}, expected {wanted}",
                    want.policy
                ));
            }
        };
        if let Some(device) = &e.device {
            differs("device", format!("{:?}", row.device), format!("{device:?}"));
        }
        differs(
            "severity",
            format!("{:?}", row.severity),
            format!("{:?}", want.severity),
        );
        differs("count", row.count.to_string(), want.count.to_string());
        differs(
            "state",
            format!("{:?}", row.state),
            format!("{:?}", want.state),
        );
        if let Some(message) = &want.message {
            differs(
                "message",
                format!("{:?}", row.message),
                format!("{message:?}"),
            );
        }
        for needle in &want.message_contains {
            if !row.message.contains(needle.as_str()) {
                problems.push(format!(
                    "event {:?}: message {:?} lacks {needle:?}",
                    want.policy, row.message
                ));
            }
        }
    }
    for row in unmatched {
        problems.push(format!(
            "unexpected event of policy {:?} with key {:?} on {:?}: {:?}",
            row.policy, row.key, row.device, row.message
        ));
    }

    let mut wanted_clears = e.cleared.clone();
    wanted_clears.sort();
    if actual.cleared != wanted_clears {
        let list = |clears: &[ExpectedClear]| -> String {
            let all: Vec<String> = clears
                .iter()
                .map(|c| format!("{:?} key {:?} on {:?}", c.policy, c.key, c.device))
                .collect();
            format!("[{}]", all.join(", "))
        };
        problems.push(format!(
            "cleared {}, expected {}",
            list(&actual.cleared),
            list(&wanted_clears)
        ));
    }
    problems
}

/// `actual` in the expectation format, to compare with (or paste over) the `.toml`.
pub fn render(actual: &Actual) -> String {
    let mut out = String::new();
    for (device, message) in &actual.device_logs {
        let _ = writeln!(out, "device = {device:?}    # log: {message:?}");
    }
    for (code, message) in &actual.system_log {
        let _ = writeln!(out, "system_log = {code:?}    # {message:?}");
    }
    for ev in &actual.events {
        let _ = writeln!(
            out,
            "[[event]]\npolicy = {:?}\nkey = {:?}\nseverity = {:?}\nmessage = {:?}\ncount = {}\nstate = {:?}",
            ev.policy.as_deref().unwrap_or("<policy deleted>"),
            ev.key,
            ev.severity,
            ev.message,
            ev.count,
            ev.state
        );
    }
    for c in &actual.cleared {
        let _ = writeln!(
            out,
            "[[cleared]]\npolicy = {:?}\ndevice = {:?}\nkey = {:?}",
            c.policy, c.device, c.key
        );
    }
    out
}
