//! Expected mail through the real `serve` and PostgreSQL. Time is injected by moving a
//! policy's deadline into the past (as if the period had ended), which is all `serve` reads
//! of the clock for a miss: a missed report raises one event, the next report clears it, a
//! mixed report is a failure, two `serve`s record one miss per period, and a cron schedule in
//! a time zone steps over day boundaries and a daylight-saving change to the next fire time.

use std::time::{Duration, Instant};

use crate::support;
use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::services::needs;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(20);

/// A nightly backup's reports (start mail, failure before success, failure by default), and a
/// cron-scheduled report in Europe/Berlin with 10 minutes' grace.
const POLICIES: &str = "
INSERT INTO devices (name) VALUES ('nas1.example.com');
INSERT INTO expect_policies (name, device_id, sender, match, every_s, grace_s, severity,
        failure, success, default_outcome, start_match)
    SELECT 'nas1 backup', id, 'backup@example.com', 'Backup job nas1', 3600, 0, 'major',
           '{Failed,Error}', '{Success,Successful}', 'failure', 'started'
    FROM devices;
INSERT INTO expect_policies (name, device_id, sender, cron, timezone, grace_s, severity)
    SELECT 'nas1 nightly', id, 'nightly@example.com', '30 23 * * *', 'Europe/Berlin', 600,
           'minor'
    FROM devices;
";

/// `mailops serve` in this process, until `stop` is sent.
async fn serve(db: &TestDb) -> (String, oneshot::Sender<()>) {
    support::serve::in_process(&db.url, &["mon.example.com"], "").await
}

async fn send(addr: &str, from: &str, subject: &str, id: &str) {
    let message =
        format!("From: {from}\nMessage-ID: <{id}@example.com>\nSubject: {subject}\n\nSee above.\n");
    let mut c = Client::connect(addr).await;
    let (_, data) = c
        .transaction(Some(id), from, &["notify@mon.example.com"], message)
        .await;
    assert!(data[0].starts_with("250"), "{data:?}");
}

/// One value `sql` selects, as text ("-" for NULL).
async fn value(db: &TestDb, sql: &str) -> String {
    let rows = db
        .client()
        .await
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("-").to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// Waits until `sql` selects `want`.
async fn until(db: &TestDb, sql: &str, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = value(db, sql).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {got}, waited for {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const BACKUP: &str = "(SELECT id FROM expect_policies WHERE name = 'nas1 backup')";
const NIGHTLY: &str = "(SELECT id FROM expect_policies WHERE name = 'nas1 nightly')";

/// The backup policy's state and its event, as one line.
async fn backup(db: &TestDb) -> String {
    value(
        db,
        &format!(
            "SELECT s.last_outcome || ' ' || s.consecutive_misses || ' ' ||
                    coalesce((SELECT e.state || ' ' || e.count FROM events e
                              WHERE e.expect_policy_id = {BACKUP} ORDER BY e.id DESC LIMIT 1),
                             'no event')
             FROM expect_state s WHERE s.expect_policy_id = {BACKUP}"
        ),
    )
    .await
}

/// Makes the backup policy's period end now.
async fn end_period(db: &TestDb) {
    db.client()
        .await
        .execute(
            &format!(
                "UPDATE expect_state SET due_at = now() - interval '1 second'
                 WHERE expect_policy_id = {BACKUP}"
            ),
            &[],
        )
        .await
        .expect("moving the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_failed_and_successful_reports_raise_and_clear_one_event() {
    needs!(Database);
    let db = TestDb::with_setup(POLICIES).await;
    let (addr, stop) = serve(&db).await;
    // Tracked from the start: the first report due an interval (plus grace) from now.
    until(&db, "SELECT count(*) FROM expect_state", "2").await;
    let ahead = value(
        &db,
        &format!(
            "SELECT round(extract(epoch FROM due_at - now()) / 60) FROM expect_state
             WHERE expect_policy_id = {BACKUP}"
        ),
    )
    .await;
    assert_eq!(ahead, "60");

    // The period ends without a report: one event, however long serve keeps looking.
    end_period(&db).await;
    until(&db, "SELECT count(*) FROM events", "1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(backup(&db).await, "missed 1 active 1");
    let message = value(&db, "SELECT severity || ': ' || message FROM events").await;
    assert!(
        message.starts_with("major: Expected mail nas1 backup: no report by ")
            && message.ends_with("(1 missed in a row)"),
        "{message}"
    );

    // The job starts, then reports success: the event clears, its duration is recorded.
    send(&addr, "backup@example.com", "Backup job nas1 started", "b1").await;
    until(
        &db,
        &format!(
            "SELECT started_at IS NOT NULL FROM expect_state WHERE expect_policy_id = {BACKUP}"
        ),
        "t",
    )
    .await;
    send(
        &addr,
        "backup@example.com",
        "Backup job nas1: Success",
        "b2",
    )
    .await;
    until(&db, "SELECT state FROM events", "cleared").await;
    assert_eq!(backup(&db).await, "success 0 cleared 1");
    assert_eq!(
        value(
            &db,
            "SELECT outcome || ' ' || (duration_ms IS NOT NULL) FROM expect_reports
             ORDER BY id DESC LIMIT 1"
        )
        .await,
        "success true"
    );
    // The next deadline is an interval from the report.
    assert_eq!(
        value(
            &db,
            &format!(
                "SELECT round(extract(epoch FROM due_at - now()) / 60) FROM expect_state
                 WHERE expect_policy_id = {BACKUP}"
            )
        )
        .await,
        "60"
    );

    // A mixed report is a failure: failure strings are tried first. Mail from elsewhere, or
    // about another job, is no report.
    send(
        &addr,
        "someone@example.com",
        "Backup job nas1: Failed",
        "x1",
    )
    .await;
    send(&addr, "backup@example.com", "Backup job nas2: Failed", "x2").await;
    send(
        &addr,
        "backup@example.com",
        "Backup job nas1: 1 Successful, 1 Failed",
        "b3",
    )
    .await;
    until(
        &db,
        "SELECT count(*) FROM events WHERE state = 'active'",
        "1",
    )
    .await;
    assert_eq!(backup(&db).await, "failure 0 active 1");
    assert_eq!(
        value(&db, "SELECT count(*) FROM expect_reports").await,
        "4",
        "the miss, the start, the success and the failure"
    );

    // Two serve processes: one miss recorded per period.
    let (_, stop2) = serve(&db).await;
    end_period(&db).await;
    until(
        &db,
        "SELECT count(*) FROM expect_reports WHERE outcome = 'missed'",
        "2",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(backup(&db).await, "missed 1 active 2");
    assert_eq!(
        value(
            &db,
            "SELECT count(*) FROM expect_reports WHERE outcome = 'missed'"
        )
        .await,
        "2"
    );

    // The nightly report was last due on 24 October (23:30 in Berlin, summer time, plus 10
    // minutes' grace): serve steps over every night since, the change to winter time
    // included, records the misses at once, and waits for the next 23:30 in Berlin.
    db.client()
        .await
        .execute(
            &format!(
                "UPDATE expect_state SET due_at = '2026-10-24 23:40:00 Europe/Berlin'
                 WHERE expect_policy_id = {NIGHTLY}"
            ),
            &[],
        )
        .await
        .expect("moving the deadline");
    until(
        &db,
        &format!("SELECT last_outcome FROM expect_state WHERE expect_policy_id = {NIGHTLY}"),
        "missed",
    )
    .await;
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").expect("the tz database");
    let now = jiff::Timestamp::now().to_zoned(berlin.clone());
    let grace = jiff::SignedDuration::from_mins(10);
    let at_half_past_eleven = |day: jiff::civil::Date| {
        day.at(23, 30, 0, 0)
            .to_zoned(berlin.clone())
            .expect("a time")
    };
    let mut fire = at_half_past_eleven(now.date());
    if fire.timestamp() + grace <= now.timestamp() {
        fire = at_half_past_eleven(now.date().tomorrow().expect("a day"));
    }
    let want = fire.timestamp() + grace;
    // Every night from 24 October to the one before the next fire time.
    let nights = (fire.date() - jiff::civil::date(2026, 10, 24)).get_days();
    let state = value(
        &db,
        &format!(
            "SELECT extract(epoch FROM due_at)::bigint || ' ' || consecutive_misses
             FROM expect_state WHERE expect_policy_id = {NIGHTLY}"
        ),
    )
    .await;
    assert_eq!(state, format!("{} {nights}", want.as_second()));
    assert_eq!(
        value(
            &db,
            &format!("SELECT count(*) FROM expect_reports WHERE expect_policy_id = {NIGHTLY}")
        )
        .await,
        "1",
        "the nights missed while serve was away are recorded at once"
    );

    let _ = stop.send(());
    let _ = stop2.send(());
}

#[test]
fn policy_test_shows_which_expectation_a_mail_reports_to_and_how() {
    let dir = support::postfix::unique_temp_dir("mailops-expect-policy-test");
    let policies = dir.join("policies.toml");
    std::fs::write(
        &policies,
        r#"
[[device]]
name = "nas1.example.com"

[[expect]]
name = "nas1 backup"
device = "nas1.example.com"
sender = "backup@example.com"
match = "Backup job nas1"
cron = "0 2 * * *"
timezone = "Europe/Berlin"
grace = "2h"
severity = "major"
failure = ["Failed", "Error"]
success = ["Success"]
default = "failure"
start = "started"
"#,
    )
    .expect("policies");
    let test = |from: &str, subject: &str, lines: &[&str]| {
        let mail = dir.join("mail.eml");
        std::fs::write(
            &mail,
            format!("From: {from}\nSubject: {subject}\n\nDone.\n"),
        )
        .expect("mail");
        crate::events::assert_policy_test(&mail, &policies, lines);
    };
    test(
        "backup@example.com",
        "Backup job nas1: 1 Successful, 1 Failed",
        &[
            "nas1 backup: a report, failure (failure \"Failed\" matched)",
            "expect_reports: nas1 backup failure",
            "events: nas1 backup major on nas1.example.com (or count a repeat of the active one)",
        ],
    );
    test(
        "Backup@Example.com",
        "Backup job nas1: Success",
        &[
            "nas1 backup: a report, success (success \"Success\" matched)",
            "events: clear the active nas1 backup event on nas1.example.com",
        ],
    );
    test(
        "backup@example.com",
        "Backup job nas1 started",
        &["nas1 backup: the job's start mail"],
    );
    test(
        "someone@example.com",
        "Backup job nas1: Failed",
        &["expected mail:\n  (none: the mail is no policy's report)"],
    );
}
