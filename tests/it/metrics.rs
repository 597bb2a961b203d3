//! The metrics endpoint of a real `mailops serve`: what it counts after real mail through the
//! generated Postfix (events, a ticket and its notice), the exposition checked by Prometheus's
//! own `promtool`, and `/healthz` and `/readyz`, also while the database is unreachable.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::config::{text, write};
use crate::support::postfix::{free_port, unique_temp_dir};
use crate::support::serve::{mailops, run_mailops};
use crate::support::services::needs;
use crate::support::stack::{mail, Stack};

const WAIT: Duration = Duration::from_secs(30);

/// The body and status of `GET http://addr/path` (or `method`).
async fn get(addr: &str, method: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .request(
            method.parse().expect("method"),
            format!("http://{addr}{path}"),
        )
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The value of the sample `name{labels}` in `exposition` (`name` alone: no labels).
fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

/// Scrapes until `ready` holds for the exposition (serve counts as it goes), and returns it.
async fn scrape_until(addr: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, text) = get(addr, "GET", "/metrics").await;
        assert_eq!(status, 200, "{text}");
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never got there:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What `promtool check metrics` says of `exposition`; it must pass.
fn promtool_check(exposition: &str) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_real_mail_and_pass_promtool() {
    needs!(Database, Postfix, Dovecot);
    let addr = format!("127.0.0.1:{}", free_port());
    let stack = Stack::start("", &format!("\n[metrics]\nlisten = \"{addr}\"\n")).await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies.example.toml");
    run_mailops(
        &stack.dir.join("mailops.toml"),
        &["policy", "apply", examples.to_str().expect("path")],
    );
    // serve reloads what was applied.
    scrape_until(&addr, |t| {
        sample(t, "mailops_policies{kind=\"ticket_policies\"}") == Some(1.0)
    })
    .await;

    // The example's UPS alert, twice (an event and its repeat), and a helpdesk request.
    let ups = "ups1.example.com: UPS: On battery power in response to an input power problem.";
    for n in 0..2 {
        let raw = mail(
            "apc-nmc@example.com",
            "notify@mon.example.com",
            ups,
            &format!("ups-{n}@example.com"),
            &[],
            "Warning - UPS: On battery power in response to an input power problem.",
        );
        stack.send("apc-nmc@example.com", "notify@mon.example.com", &raw);
    }
    let raw = mail(
        "someone@example.org",
        "help@mon.example.com",
        "Printer on floor 2 is jammed",
        "printer@example.org",
        &[],
        "Tray 1 again.",
    );
    stack.send("someone@example.org", "help@mon.example.com", &raw);

    let text = scrape_until(&addr, |t| {
        sample(t, "mailops_outbox_attempts_total{outcome=\"sent\"}") == Some(1.0)
    })
    .await;
    let client = stack.db.client().await;
    let (severity, count): (String, i32) = {
        let row = client
            .query_one("SELECT severity, count FROM events", &[])
            .await
            .expect("one event");
        (row.get(0), row.get(1))
    };
    assert_eq!((severity.as_str(), count), ("critical", 2));
    for (name, value) in [
        (
            "mailops_messages_total{route=\"event\",outcome=\"stored\"}",
            2.0,
        ),
        (
            "mailops_messages_total{route=\"ticket\",outcome=\"stored\"}",
            1.0,
        ),
        ("mailops_events_raised_total{severity=\"critical\"}", 2.0),
        ("mailops_tickets_opened_total", 1.0),
        ("mailops_lmtp_data_reply_seconds_count", 3.0),
        ("mailops_policies{kind=\"devices\"}", 4.0),
        ("mailops_outbox_attempts_total{outcome=\"sent\"}", 1.0),
    ] {
        assert_eq!(sample(&text, name), Some(value), "{name} in:\n{text}");
    }
    // Every reply to Postfix was a 2xx; every transaction timed (events grouped or not).
    assert!(sample(&text, "mailops_lmtp_replies_total{class=\"2xx\"}") >= Some(10.0));
    assert_eq!(
        sample(&text, "mailops_lmtp_replies_total{class=\"4xx\"}"),
        None
    );
    assert!(sample(&text, "mailops_database_transaction_seconds_count") >= Some(3.0));
    assert!(sample(&text, "mailops_group_commit_batch_size_count") >= Some(2.0));
    assert!(text.contains("mailops_build_info{version=\""), "{text}");
    promtool_check(&text);
    // The alerting rules the docs offer load in Prometheus.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mailops-alerts.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(get(&addr, "GET", "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(&addr, "GET", "/readyz").await, (200, "ready\n".into()));
    assert_eq!(get(&addr, "POST", "/metrics").await.0, 405);
    assert_eq!(get(&addr, "GET", "/nothing").await.0, 404);
}

/// While the database cannot be reached serve is alive but not ready, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_says_not_ready_while_the_database_is_away() {
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = unique_temp_dir("mailops-readyz");
    let config = text(
        &format!("postgres://mailops@127.0.0.1:{}/mailops", free_port()),
        &format!("127.0.0.1:{}", free_port()),
        "",
        &["mon.example.com"],
        &format!("[metrics]\nlisten = \"{addr}\"\n"),
    );
    let (file, _) = write(&dir, &config);
    let mut serve = mailops(&file)
        .arg("serve")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mailops serve");
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the endpoint never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&addr, "GET", "/healthz").await, (200, "ok\n".into()));
    let (status, why) = get(&addr, "GET", "/readyz").await;
    assert_eq!(
        (status, why.as_str()),
        (503, "not ready: the policies are not loaded yet\n")
    );
    // The metrics answer too, with what a process that has taken no mail knows.
    let (status, metrics) = get(&addr, "GET", "/metrics").await;
    assert!(
        status == 200 && metrics.contains("mailops_build_info"),
        "{metrics}"
    );
    // SIGTERM: it stops while still waiting for the database.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let status = serve.wait().expect("serve exits");
    assert!(status.success(), "{status}");
}
