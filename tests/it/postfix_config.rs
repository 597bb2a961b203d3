//! The generated Postfix configuration, checked and run by the real Postfix: `postfix check`
//! and `postconf` accept it without a warning, and a started instance answers SMTP as the
//! configuration says (no open relay, unknown recipients refused at RCPT, STARTTLS).
//!
//! Needs root and Postfix (scripts/test provides both); the RCPT test needs `DATABASE_URL`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support;
use crate::support::db::TestDb;
use crate::support::postfix::{describe, postfix, run, sbin, PostfixInstance, SmtpClient};
use crate::support::services::needs;
use mailops::config::Config;

/// A config like the shipped example, with `[postfix]` lines replaced or added.
fn config(postfix_extra: &str) -> Config {
    let text = support::config::text(
        "postgres://mailops@127.0.0.1:54329/mailops",
        "unix:/run/mailops/lmtp.sock",
        "",
        &["mon.example.com", "alerts.example.org"],
        &format!("[postfix]\n{postfix_extra}"),
    );
    Config::parse(&text, None).unwrap_or_else(|problems| panic!("{problems:?}"))
}

/// `postfix check`, `postconf -n` and `postconf -M` succeed and say nothing about problems.
fn assert_postfix_accepts(instance: &PostfixInstance) {
    let dir = &instance.config_dir;
    let check = postfix(dir, &["check"]);
    assert!(
        check.status.success(),
        "postfix check: {}",
        describe(&check)
    );
    // postfix-script reports through postlog, which writes to maillog_file.
    let log = instance.log();
    for word in ["warning", "error", "fatal", "panic"] {
        assert!(!log.contains(word), "postfix check logged a {word}:\n{log}");
    }
    assert_postconf_clean(dir);
}

/// `postconf -hx NAME` (expanded) in the instance's directory.
fn postconf_value(instance: &PostfixInstance, name: &str) -> String {
    let out = run(Command::new(sbin("postconf"))
        .arg("-c")
        .arg(&instance.config_dir)
        .args(["-hx", name]));
    assert!(
        out.status.success(),
        "postconf -h {name}: {}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_example_configuration_passes_postfix_check_without_warnings() {
    needs!(Postfix);
    let text = std::fs::read_to_string("mailops.example.toml").expect("the example config");
    let example = Config::parse(&text, None).expect("the example is valid");
    let instance = PostfixInstance::configure(&example);
    assert_postfix_accepts(&instance);
    assert_eq!(
        postconf_value(&instance, "virtual_transport"),
        "mailops:unix:/run/mailops/lmtp.sock"
    );
    assert_eq!(
        postconf_value(&instance, "virtual_mailbox_maps"),
        format!(
            "proxy:pgsql:{}/pgsql-recipients.cf",
            instance.config_dir.display()
        )
    );
}

#[test]
fn every_option_passes_postfix_check_without_warnings() {
    needs!(Postfix);
    let instance = PostfixInstance::configure(&config(
        r#"mynetworks = ["127.0.0.0/8", "::1/128", "[2001:db8::]/32", "192.0.2.0/24"]
tls_cert_file = "/etc/mailops/tls/fullchain.pem"
tls_key_file = "/etc/mailops/tls/privkey.pem"
myhostname = "mx.mon.example.com""#,
    ));
    assert_postfix_accepts(&instance);
    assert_eq!(postconf_value(&instance, "smtpd_tls_security_level"), "may");
    assert_eq!(
        postconf_value(&instance, "mynetworks"),
        "127.0.0.0/8, [::1]/128, [2001:db8::]/32, 192.0.2.0/24"
    );

    let mut tcp = config("");
    tcp.lmtp.listen = "127.0.0.1:2424".parse().expect("listen address");
    let instance = PostfixInstance::configure(&tcp);
    assert_postfix_accepts(&instance);
    assert_eq!(
        postconf_value(&instance, "virtual_transport"),
        "mailops:inet:127.0.0.1:2424"
    );
}

#[test]
fn the_docker_configuration_passes_postconf_without_warnings() {
    needs!(Postfix);
    let text = std::fs::read_to_string("docker/mailops.toml").expect("the compose config");
    let docker = Config::parse(&text, None).expect("the compose config is valid");
    let dir = support::postfix::unique_temp_dir("mailops-docker-config");
    mailops::postfix::write(&docker, &dir).expect("written");
    assert_postconf_clean(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mail_for_other_domains_is_not_relayed() {
    needs!(Postfix);
    // 127.0.0.1 must not be in mynetworks, or Postfix would relay for it.
    let instance = PostfixInstance::start(&config(r#"mynetworks = ["192.0.2.0/24"]"#));
    let mut smtp = SmtpClient::connect(instance.smtp_addr);
    assert!(
        smtp.banner.starts_with("220 mon.example.com ESMTP"),
        "{}",
        smtp.banner
    );
    let ehlo = smtp.command("EHLO client.example.net");
    assert!(ehlo.starts_with("250-mon.example.com"), "{ehlo}");
    assert!(
        !ehlo.contains("STARTTLS"),
        "no certificate, no STARTTLS: {ehlo}"
    );
    assert!(
        ehlo.contains("250-SMTPUTF8") || ehlo.contains("250 SMTPUTF8"),
        "{ehlo}"
    );
    assert!(ehlo.contains("SIZE 26214400"), "{ehlo}");
    assert!(smtp
        .command("MAIL FROM:<someone@client.example.net>")
        .starts_with("250 "));
    assert_eq!(
        smtp.command("RCPT TO:<victim@elsewhere.example>"),
        "554 5.7.1 <victim@elsewhere.example>: Relay access denied"
    );
    assert!(smtp.command("QUIT").starts_with("221 "));
    assert!(instance.wait_for_log("Relay access denied", Duration::from_secs(5)));
    assert!(instance.queue_is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_recipients_are_refused_at_rcpt_time() {
    needs!(Database, Postfix);
    let db = TestDb::new().await;
    let mut cfg = config(r#"mynetworks = ["192.0.2.0/24"]"#);
    cfg.database.url = db.url.clone();
    // What `mailops migrate` does: notify@ at each authorized domain becomes valid.
    mailops::serve::sync_recipients(&cfg, &db.pool)
        .await
        .expect("config recipients stored");

    let instance = tokio::task::spawn_blocking(move || PostfixInstance::start(&cfg))
        .await
        .expect("Postfix started");
    let addr = instance.smtp_addr;
    let replies = tokio::task::spawn_blocking(move || {
        let mut smtp = SmtpClient::connect(addr);
        smtp.command("EHLO client.example.net");
        smtp.command("MAIL FROM:<ups@client.example.net>");
        let replies: Vec<String> = [
            "notify@mon.example.com",
            "Notify@Alerts.Example.ORG",
            "nobody@mon.example.com",
        ]
        .iter()
        .map(|rcpt| smtp.command(&format!("RCPT TO:<{rcpt}>")))
        .collect();
        smtp.command("QUIT");
        replies
    })
    .await
    .expect("SMTP session");

    assert_eq!(replies[0], "250 2.1.5 Ok");
    assert_eq!(
        replies[1], "250 2.1.5 Ok",
        "addresses are compared case-insensitively"
    );
    assert_eq!(
        replies[2],
        "550 5.1.1 <nobody@mon.example.com>: Recipient address rejected: \
         User unknown in virtual mailbox table"
    );
    // Nothing was accepted, so nothing waits in the queue or can bounce.
    assert!(instance.queue_is_empty());
    drop(instance);
    drop(db);
}

#[test]
fn starttls_is_offered_with_a_certificate() {
    needs!(Postfix);
    let dir = support::postfix::unique_temp_dir("mailops-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=mon.example.com",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    assert!(made.status.success(), "openssl req: {}", describe(&made));
    let instance = PostfixInstance::start(&config(&format!(
        "mynetworks = [\"192.0.2.0/24\"]\ntls_cert_file = {:?}\ntls_key_file = {:?}",
        path(&cert),
        path(&key)
    )));
    let mut smtp = SmtpClient::connect(instance.smtp_addr);
    let ehlo = smtp.command("EHLO client.example.net");
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    smtp.command("QUIT");

    // A real handshake: swaks reports the protocol it negotiated.
    let out = run(Command::new("swaks")
        .args([
            "--server",
            &instance.smtp_addr.to_string(),
            "--tls",
            "--quit-after",
            "EHLO",
        ])
        .args(["--helo", "client.example.net"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swaks --tls: {}", describe(&out));
    assert!(text.contains("TLS started"), "{text}");
    assert!(
        text.contains("TLSv1.2") || text.contains("TLSv1.3"),
        "{text}"
    );
    drop(instance);
    let _ = std::fs::remove_dir_all(&dir);
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// `postconf -n` and `postconf -M` succeed on `dir` and print no warning.
fn assert_postconf_clean(dir: &std::path::Path) {
    for args in [["-n"], ["-M"]] {
        let out = run(Command::new(sbin("postconf")).arg("-c").arg(dir).args(args));
        assert!(
            out.status.success(),
            "postconf {args:?}: {}",
            describe(&out)
        );
        assert!(
            out.stderr.is_empty(),
            "postconf {args:?} warned: {}",
            describe(&out)
        );
    }
}
