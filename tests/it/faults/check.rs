//! What the faults must not have done: lose or double a row, or leave mail in Postfix.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::load::{device, message_id, recipients, Sent, TICKETS};
use crate::support::postfix::PostfixInstance;

/// Mail Postfix gave up on (bounced or expired) is lost mail; a full queue directory is mail not
/// delivered.
pub fn postfix_problems(postfix: &PostfixInstance) -> Vec<String> {
    let log = postfix.log();
    let mut problems: Vec<String> = log
        .lines()
        .filter(|l| l.contains("status=bounced") || l.contains("status=expired"))
        .map(|l| format!("Postfix gave up: {l}"))
        .collect();
    for queue in ["incoming", "active", "deferred", "hold"] {
        let dir = postfix.config.postfix.queue_directory.join(queue);
        let files = count_files(&dir);
        if files > 0 {
            problems.push(format!("{files} files left in {}", dir.display()));
        }
    }
    problems
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Every row the messages should have made, once each, and nothing else.
pub async fn rows(url: &str, sent: &BTreeMap<usize, Sent>) -> Vec<String> {
    let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(conn);
    let per_message = |sql: &'static str| {
        let db = &db;
        async move {
            let mut counts: HashMap<String, Vec<(String, i64)>> = HashMap::new();
            for row in db.query(sql, &[]).await.expect(sql) {
                counts
                    .entry(row.get(0))
                    .or_default()
                    .push((row.get(1), row.get(2)));
            }
            counts
        }
    };
    let mut rows =
        per_message("SELECT message_id, recipient, count(*) FROM inbound_messages GROUP BY 1, 2")
            .await;
    let mut logs = per_message(
        "SELECT i.message_id, '', count(*) FROM device_logs l
         JOIN inbound_messages i ON i.id = l.inbound_message_id GROUP BY 1",
    )
    .await;
    let mut tickets = per_message(
        "SELECT i.message_id, '', count(*) FROM tickets t
         JOIN inbound_messages i ON i.id = t.inbound_message_id GROUP BY 1",
    )
    .await;
    let mut problems = Vec::new();
    let mut stored_per_device: HashMap<String, i64> = HashMap::new();
    let (mut stored, mut ticket_messages) = (0i64, 0i64);
    for (&n, outcome) in sent {
        let id = message_id(n);
        let mut got = rows.remove(&id).unwrap_or_default();
        got.sort();
        let mut want: Vec<(String, i64)> = recipients(n)
            .into_iter()
            .map(|r| (r.to_owned(), 1))
            .collect();
        want.sort();
        let ok = match outcome {
            Sent::Accepted => got == want,
            Sent::Refused => got.is_empty(),
            Sent::Unknown => got.is_empty() || got == want,
            Sent::Rejected(why) => {
                problems.push(format!("message {n} rejected by Postfix: {why}"));
                true
            }
        };
        if !ok {
            problems.push(format!(
                "message {n} ({outcome:?}): rows per recipient {got:?}"
            ));
        }
        let once = |counts: &mut HashMap<String, Vec<(String, i64)>>, expected: bool| {
            let got = counts.remove(&id).map_or(0, |c| c[0].1);
            (got != i64::from(expected)).then_some(got)
        };
        let delivered = !got.is_empty();
        if delivered {
            stored += 1;
            *stored_per_device.entry(device(n)).or_default() += 1;
        }
        if let Some(got) = once(&mut logs, delivered) {
            problems.push(format!("message {n} ({outcome:?}): {got} device logs"));
        }
        let is_ticket = delivered && recipients(n).contains(&TICKETS);
        ticket_messages += i64::from(is_ticket);
        if let Some(got) = once(&mut tickets, is_ticket) {
            problems.push(format!("message {n} ({outcome:?}): {got} tickets"));
        }
    }
    for (what, left) in [("rows", rows), ("device logs", logs), ("tickets", tickets)] {
        for id in left.keys() {
            problems.push(format!("{what} for a message never sent: {id}"));
        }
    }
    // Each device's event is raised once and counted once per stored message.
    let events = db
        .query(
            "SELECT d.name, e.state, e.count FROM events e JOIN devices d ON d.id = e.device_id",
            &[],
        )
        .await
        .expect("events");
    for row in &events {
        let (name, state, count): (String, String, i32) = (row.get(0), row.get(1), row.get(2));
        let want = stored_per_device.remove(&name).unwrap_or(0);
        if state != "active" || i64::from(count) != want {
            problems.push(format!(
                "event on {name}: {state}, count {count}, {want} messages"
            ));
        }
    }
    for (name, n) in stored_per_device {
        problems.push(format!("no event on {name} for its {n} messages"));
    }
    let scalar = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0) }
    };
    let checks = [
        (
            "alert keys",
            scalar("SELECT count(*) FROM alert_keys").await,
            stored,
        ),
        (
            "system log rows",
            scalar("SELECT count(*) FROM system_log").await,
            0,
        ),
        (
            "ticket notes",
            scalar("SELECT count(*) FROM ticket_notes").await,
            ticket_messages,
        ),
        (
            "ignored mails",
            scalar("SELECT count(*) FROM inbound_messages WHERE ignored_reason IS NOT NULL").await,
            0,
        ),
    ];
    for (what, got, want) in checks {
        if got != want {
            problems.push(format!("{got} {what}, want {want}"));
        }
    }
    problems
}
