//! Events that mean what the alert means, through `mailops serve` into PostgreSQL: keys from
//! the mail, severity from the mail, scoped and suppress policies, the device from the sender
//! or a header, HTML-only tables and raw Latin-1 headers (issue 15).

use mailops::config::Inbound;
use mailops::policy::{self, PolicyFile};

use super::{serve, Serve};
use crate::support::db::TestDb;
use crate::support::lmtp::Client;
use crate::support::services::needs;

const POLICIES: &str = r#"
[[device]]
name = "db1.example.com"

[[device]]
name = "nas1.example.com"

[[device]]
name = "esx7.example.com"

# Nagios's service mails: the host is the device.
[[originator]]
name = "nagios"
address = "nagios@*"
regex_type = "body"
pattern_type = "advanced"
pattern = '(?m)^Host: (?P<device>\S+)'
alignment = "discard"

# Every host mails cron output as root@HOST: the device is the host of the From address.
[[originator]]
name = "cron"
address = "root@*"
regex_type = "from"
pattern_type = "advanced"
pattern = '@(?P<device>[\w.-]+)>?$'
alignment = "discard"

# A gateway that names the device in a header of its own.
[[originator]]
name = "gateway"
address = "*@gateway.example.com"
regex_type = "header:X-Device"
pattern_type = "advanced"
pattern = '^(\S+)$'
alignment = "discard"

# One policy for problems and recoveries, one event per service.
[[event_policy]]
name = "Nagios service"
originators = ["nagios"]
match_logic = "regex"
first_match = '(?m)^Service: (?P<service>.+)$'
second_match = '(?m)^State: (?P<state>\w+)'
severity = "major"
severity_from = "state"
severity_map = { CRITICAL = "critical", WARNING = "minor", OK = "healthy" }
key = "%{service}"
message = "%{service} is %{state} on %D"
expire_healthy_after_s = 86400

# A cron rule as loose as users write them, scoped to cron's mail.
[[event_policy]]
name = "Cron job failed"
originators = ["cron"]
severity = "minor"
match_logic = "regex"
first_match = '(?i)error|failed'
message = "%S"

# Nagios's test notifications are noise.
[[event_policy]]
name = "Test notifications"
originators = ["nagios"]
action = "suppress"
match_logic = "text"
first_match = "Notification Type: CUSTOM"

# An HTML-only report read by anchored patterns.
[[event_policy]]
name = "Datastore"
originators = ["gateway"]
match_logic = "regex"
first_match = '(?m)^Datastore:\t(?P<datastore>\S+)\t(?P<status>OK|Degraded)$'
severity = "major"
severity_from = "status"
severity_map = { Degraded = "major", OK = "healthy" }
key = "%{datastore}"
message = "%{datastore}: %{status}"
"#;

/// A fresh database holding [`POLICIES`] (applied as `policy apply` does), and serve on it.
async fn start() -> (TestDb, Serve) {
    let db = TestDb::new().await;
    let file = PolicyFile::parse(POLICIES).expect("policies");
    let inbound = Inbound {
        authorized_domains: vec!["mon.example.com".into()],
        notify_local_part: "notify".into(),
        strip_fqdn: false,
        alert_message: Default::default(),
        auth: Default::default(),
    };
    policy::apply(&db.pool, &file, &inbound, policy::Options::default())
        .await
        .expect("apply");
    let s = serve(&db, "body").await;
    (db, s)
}

/// Delivers `message` (LF line ends) from `from` to notify@; the DATA reply.
async fn deliver(s: &Serve, from: &str, message: impl AsRef<[u8]>) -> String {
    let mut c = Client::connect(&s.addr).await;
    let (_, data) = c
        .transaction(None, from, &["notify@mon.example.com"], message)
        .await;
    let reply = data.into_iter().next().expect("one reply");
    assert!(reply.starts_with("250"), "{reply}");
    reply
}

/// A Nagios service notification (the shape of notify-service-by-email).
fn nagios(n: u32, service: &str, state: &str) -> String {
    let kind = if state == "OK" { "RECOVERY" } else { "PROBLEM" };
    format!(
        "From: nagios@mon1.example.com\nMessage-ID: <n{n}@mon1.example.com>\n\
         Subject: ** {kind} Service Alert: db1/{service} is {state} **\n\n\
         ***** Nagios *****\n\nNotification Type: {kind}\n\nService: {service}\n\
         Host: db1.example.com\nAddress: 10.6.3.21\nState: {state}\n"
    )
}

/// (device, policy, key, severity, state, count, cleared_reason) of every event, oldest first.
async fn events(db: &TestDb) -> Vec<(String, String, String, String, String, i32, String)> {
    db.client()
        .await
        .query(
            "SELECT d.name, p.name, e.key, e.severity, e.state, e.count,
                    coalesce(e.cleared_reason, '')
             FROM events e JOIN devices d ON d.id = e.device_id
             JOIN event_policies p ON p.id = e.event_policy_id ORDER BY e.id",
            &[],
        )
        .await
        .expect("events")
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

fn ev(
    device: &str,
    policy: &str,
    key: &str,
    severity: &str,
    state: &str,
    count: i32,
    reason: &str,
) -> (String, String, String, String, String, i32, String) {
    (
        device.into(),
        policy.into(),
        key.into(),
        severity.into(),
        state.into(),
        count,
        reason.into(),
    )
}

#[tokio::test]
async fn each_service_is_its_own_event_and_a_recovery_clears_only_its_own() {
    needs!(Database);
    let (db, s) = start().await;
    let from = "nagios@mon1.example.com";
    deliver(&s, from, nagios(1, "Disk /var", "WARNING")).await;
    deliver(&s, from, nagios(2, "HTTP", "CRITICAL")).await;
    // The same service worse: the same event, counted, at the new severity.
    deliver(&s, from, nagios(3, "Disk /var", "CRITICAL")).await;
    let db1 = "db1.example.com";
    let svc = "Nagios service";
    assert_eq!(
        events(&db).await,
        [
            ev(db1, svc, "Disk /var", "critical", "active", 2, ""),
            ev(db1, svc, "HTTP", "critical", "active", 1, ""),
        ]
    );
    // Disk /var recovers: its event clears; HTTP stays; the recovery is on record once.
    deliver(&s, from, nagios(4, "Disk /var", "OK")).await;
    deliver(&s, from, nagios(5, "Disk /var", "OK")).await;
    assert_eq!(
        events(&db).await,
        [
            ev(
                db1,
                svc,
                "Disk /var",
                "critical",
                "cleared",
                2,
                "cleared by Nagios service"
            ),
            ev(db1, svc, "HTTP", "critical", "active", 1, ""),
            ev(db1, svc, "Disk /var", "healthy", "active", 2, ""),
        ]
    );
    // The next problem opens a new event; the recovery's record does not absorb it.
    deliver(&s, from, nagios(6, "Disk /var", "WARNING")).await;
    let all = events(&db).await;
    assert_eq!(
        all[2..],
        [
            ev(
                db1,
                svc,
                "Disk /var",
                "healthy",
                "cleared",
                2,
                "superseded by Nagios service"
            ),
            ev(db1, svc, "Disk /var", "minor", "active", 1, ""),
        ]
    );
    // Healthy records expire after a day; the problem does not.
    db.client()
        .await
        .batch_execute(
            "UPDATE events SET last_seen = last_seen - interval '2 days';
             INSERT INTO events (device_id, event_policy_id, key, severity, message)
             SELECT device_id, event_policy_id, 'SSH', 'healthy', 'SSH is OK' FROM events LIMIT 1;
             UPDATE events SET last_seen = last_seen - interval '2 days' WHERE key = 'SSH'",
        )
        .await
        .expect("age");
    assert_eq!(super::sweep(&db).await, 1);
    let active: Vec<(String, String)> = events(&db)
        .await
        .into_iter()
        .filter(|e| e.4 == "active")
        .map(|e| (e.2, e.3))
        .collect();
    assert_eq!(
        active,
        [
            ("HTTP".into(), "critical".into()),
            ("Disk /var".into(), "minor".into()),
        ]
    );
}

#[tokio::test]
async fn scoped_and_suppress_policies_keep_to_their_mail() {
    needs!(Database);
    let (db, s) = start().await;
    // Nagios mail saying "failed" is no cron failure: the cron policy is scoped.
    let mut failed = nagios(1, "Backup", "CRITICAL");
    failed.push_str("\nCHECK_BACKUP CRITICAL - last run failed\n");
    deliver(&s, "nagios@mon1.example.com", failed).await;
    // Cron output from root@nas1.example.com: its own device, the cron policy raises.
    let cron = "From: root@nas1.example.com (Cron Daemon)\nMessage-ID: <c1@nas1.example.com>\n\
                Subject: Cron <root@nas1> /usr/local/bin/backup.sh\n\n\
                rsync error: some files could not be transferred (code 23)\n";
    deliver(&s, "root@nas1.example.com", cron).await;
    // A CUSTOM (test) notification is suppressed: logged on the device, no event.
    let custom = nagios(3, "HTTP", "CRITICAL").replace("Type: PROBLEM", "Type: CUSTOM");
    deliver(&s, "nagios@mon1.example.com", custom).await;
    assert_eq!(
        events(&db).await,
        [
            ev(
                "db1.example.com",
                "Nagios service",
                "Backup",
                "critical",
                "active",
                1,
                ""
            ),
            ev(
                "nas1.example.com",
                "Cron job failed",
                "",
                "minor",
                "active",
                1,
                ""
            ),
        ]
    );
    let logs: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM device_logs", &[])
        .await
        .expect("logs")
        .get(0);
    assert_eq!(logs, 3);
}

#[tokio::test]
async fn the_device_comes_from_a_header_and_html_tables_are_read_by_line() {
    needs!(Database);
    let (db, s) = start().await;
    let report = |n: u32, status: &str| {
        format!(
            "From: Storage Gateway <alerts@gateway.example.com>\nMessage-ID: <g{n}@gateway.example.com>\n\
             Subject: Datastore report\nX-Device: esx7.example.com\nMIME-Version: 1.0\n\
             Content-Type: text/html; charset=utf-8\n\n\
             <html><head><style>td {{ color: red }}</style></head><body><table>\
             <tr><td class=\"k\">Datastore:</td><td><b>ds-01</b></td><td style=\"x\">{status}</td></tr>\
             <tr><td>Datastore:</td><td>ds-02</td><td>OK</td></tr></table></body></html>\n"
        )
    };
    deliver(&s, "alerts@gateway.example.com", report(1, "Degraded")).await;
    deliver(&s, "alerts@gateway.example.com", report(2, "OK")).await;
    let esx7 = "esx7.example.com";
    assert_eq!(
        events(&db).await,
        [
            ev(
                esx7,
                "Datastore",
                "ds-01",
                "major",
                "cleared",
                1,
                "cleared by Datastore"
            ),
            ev(esx7, "Datastore", "ds-02", "healthy", "active", 2, ""),
            ev(esx7, "Datastore", "ds-01", "healthy", "active", 1, ""),
        ]
    );
}

#[tokio::test]
async fn raw_latin1_headers_and_bodies_are_stored_and_matched_as_windows_1252() {
    needs!(Database);
    let (db, s) = start().await;
    let mut mail = b"From: root@nas1.example.com\nMessage-ID: <l1@nas1.example.com>\n".to_vec();
    mail.extend_from_slice(b"Subject: Sauvegarde \xe9chou\xe9e \x96 erreur 23\n\n");
    mail.extend_from_slice(b"rsync error: disque plein \xe0 95%\n");
    deliver(&s, "root@nas1.example.com", &mail).await;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT m.subject, e.message, l.message FROM inbound_messages m
             JOIN events e ON e.inbound_message_id = m.id
             JOIN device_logs l ON l.inbound_message_id = m.id",
            &[],
        )
        .await
        .expect("stored");
    let subject = "Sauvegarde \u{e9}chou\u{e9}e \u{2013} erreur 23";
    assert_eq!(row.get::<_, &str>(0), subject);
    assert_eq!(row.get::<_, &str>(1), subject);
    assert_eq!(
        row.get::<_, &str>(2),
        "rsync error: disque plein \u{e0} 95%"
    );
}

#[test]
fn policy_test_shows_keys_scopes_and_the_severity_mapping() {
    let dir = crate::support::postfix::unique_temp_dir("mailops-policy-test");
    std::fs::write(dir.join("policies.toml"), POLICIES).expect("policies");
    let mut mail = nagios(1, "Backup", "CRITICAL");
    mail.push_str("CHECK_BACKUP CRITICAL - last run failed\n");
    std::fs::write(dir.join("alert.eml"), &mail).expect("mail");
    super::assert_policy_test(
        &dir.join("alert.eml"),
        &dir.join("policies.toml"),
        &[
            "  originator nagios: identifier \"db1.example.com\", device \"db1.example.com\" (alignment discard)\n",
            "captures: device = \"db1.example.com\"\n",
            "event policies matched:\n  Nagios service\n    key \"Backup\", severity critical (state = \"CRITICAL\" in severity_map); \
             captures: device = \"db1.example.com\", service = \"Backup\", state = \"CRITICAL\"\n",
            "event policies whose first match string matched, not used:\n  Cron job failed: out of scope (originators: cron)\n",
            "  events: Nagios service critical on db1.example.com with key \"Backup\" (or count a repeat of the active one): \
             \"Backup is CRITICAL on db1.example.com\"\n",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
