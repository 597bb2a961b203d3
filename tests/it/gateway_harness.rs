//! The test gateway itself (tests/it/support/gateway.rs), before any outbound test relies on
//! it: each listener relays with the encryption and authentication it stands for, refuses
//! what a real gateway refuses, presents a certificate the clients can verify, and goes
//! down and comes back on the same ports, and takes an XOAUTH2 token only while its
//! authorization server says it is active. Mail is sent with swaks, with lettre (the client
//! mailops sends with) for the certificate, and by hand for XOAUTH2 (swaks has none).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::postfix::{describe, run, SmtpClient};
use crate::support::services::needs;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

const FROM: &str = "noreply@mon.example.com";
const WAIT: Duration = Duration::from_secs(30);

/// Sends one message with swaks to `to` through `addr`; returns whether swaks succeeded,
/// and its transcript.
fn swaks(addr: SocketAddr, to: &str, subject: &str, extra: &[&str]) -> (bool, String) {
    let out = run(std::process::Command::new("swaks")
        .args(["--server", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--from", FROM, "--to", to])
        .args(["--helo", "mon.example.com"])
        .args(["--header", &format!("Subject: {subject}")])
        .args(["--body", "A notice from mailops.\n"])
        .args(["--timeout", "30"])
        .args(extra));
    (out.status.success(), describe(&out))
}

/// swaks arguments authenticating as the gateway's user with `mechanism`.
fn auth<'a>(gateway: &'a Gateway, mechanism: &'a str) -> [&'a str; 6] {
    [
        "--auth",
        mechanism,
        "--auth-user",
        &gateway.username,
        "--auth-password",
        &gateway.password,
    ]
}

/// The value of the first header `name` in a raw message.
fn header(message: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(message);
    let prefix = format!("{name}: ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} header in:\n{text}"))
        .to_owned()
}

/// The first Received header, continuation lines joined: the gateway's own.
fn received(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let mut lines = text.lines().skip_while(|l| !l.starts_with("Received: "));
    let first = lines.next().expect("a Received header").to_owned();
    lines
        .take_while(|l| l.starts_with([' ', '\t']))
        .fold(first, |all, l| all + " " + l.trim())
}

#[test]
fn each_listener_relays_with_its_encryption_and_authentication() {
    needs!(Postfix, Dovecot);
    let gateway = Gateway::start();
    let ca = gateway.ca_cert.to_str().expect("a UTF-8 temporary path");
    let verify = ["--tls-verify", "--tls-ca-path", ca];
    // (listener, swaks arguments, recipient, how the gateway's Received header says it came)
    let ways: [(SocketAddr, Vec<&str>, &str, &str); 4] = [
        (
            gateway.submission,
            [&["--tls"][..], &verify, &auth(&gateway, "PLAIN")].concat(),
            "alice@customer.example",
            "with ESMTPSA",
        ),
        (
            gateway.smtps,
            [&["--tlsc"][..], &verify, &auth(&gateway, "LOGIN")].concat(),
            "bob@example.org",
            "with ESMTPSA",
        ),
        (
            gateway.plain,
            auth(&gateway, "CRAM-MD5").to_vec(),
            "carol@mailbox.test",
            "with ESMTPA",
        ),
        (
            gateway.open,
            Vec::new(),
            "dave@example.com",
            "with ESMTP id",
        ),
    ];
    for (i, (addr, extra, to, how)) in ways.iter().enumerate() {
        let subject = format!("Notice {i}");
        let (ok, transcript) = swaks(*addr, to, &subject, extra);
        assert!(ok, "sending through {addr}:\n{transcript}");
        if !extra.is_empty() {
            assert!(
                transcript.contains("235 2.7.0 Authentication successful"),
                "{transcript}"
            );
        }
        // One at a time, so the order of arrival is the order of sending.
        let messages = gateway.wait_for_messages(i + 1, WAIT);
        assert_eq!(messages.len(), i + 1, "{}", gateway.log());
        let message = &messages[i];
        assert_eq!(header(message, "Subject"), subject);
        assert_eq!(header(message, "Delivered-To"), *to);
        let received = received(message);
        assert!(received.contains(how), "{received}");
        let authenticated = format!("(Authenticated sender: {})", gateway.username);
        assert_eq!(
            received.contains(&authenticated),
            !extra.is_empty(),
            "{received}"
        );
        let tls = *addr == gateway.submission || *addr == gateway.smtps;
        assert_eq!(received.contains("using TLSv1."), tls, "{received}");
    }
    let subjects: Vec<String> = gateway
        .messages()
        .iter()
        .map(|m| header(m, "Subject"))
        .collect();
    assert_eq!(
        subjects,
        ["Notice 0", "Notice 1", "Notice 2", "Notice 3"],
        "messages() in order of arrival"
    );
}

#[test]
fn refuses_what_a_real_gateway_refuses() {
    needs!(Postfix, Dovecot);
    let gateway = Gateway::start();

    // A wrong password: 535 after STARTTLS, and Dovecot's log says why.
    let wrong = [
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        &gateway.username,
        "--auth-password",
        "not-the-password",
    ];
    let (ok, transcript) = swaks(gateway.submission, "alice@customer.example", "x", &wrong);
    assert!(!ok, "{transcript}");
    assert!(
        transcript.contains("535 5.7.8 Error: authentication failed"),
        "{transcript}"
    );
    assert!(
        gateway.log().contains("Password mismatch"),
        "{}",
        gateway.log()
    );

    // Submission offers STARTTLS and, before it, no AUTH (smtpd_tls_auth_only).
    let mut client = SmtpClient::connect(gateway.submission);
    let ehlo = client.command("EHLO mon.example.com");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");

    // The plain listener offers every mechanism in the clear, but relays for no one who
    // has not used one.
    let mut client = SmtpClient::connect(gateway.plain);
    let ehlo = client.command("EHLO mon.example.com");
    assert!(
        ehlo.contains("250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(client
        .command(&format!("MAIL FROM:<{FROM}>"))
        .starts_with("250"));
    let rcpt = client.command("RCPT TO:<alice@customer.example>");
    assert!(rcpt.starts_with("554 5.7.1"), "{rcpt}");

    // The open listener offers neither TLS nor AUTH.
    let mut client = SmtpClient::connect(gateway.open);
    let ehlo = client.command("EHLO mon.example.com");
    assert!(
        !ehlo.contains("AUTH") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );

    assert!(gateway.messages().is_empty(), "nothing was accepted");
}

/// lettre (rustls) over STARTTLS or implicit TLS, trusting `ca_cert` only when `trust`.
fn lettre(gateway: &Gateway, addr: SocketAddr, name: &str, trust: bool) -> Result<(), String> {
    let mut tls = TlsParameters::builder(name.to_owned()).certificate_store(CertificateStore::None);
    if trust {
        let pem = std::fs::read(&gateway.ca_cert).expect("reading ca_cert");
        tls = tls.add_root_certificate(Certificate::from_pem(&pem).expect("a PEM certificate"));
    }
    let tls = tls.build_rustls().expect("TLS parameters");
    let tls = if addr == gateway.smtps {
        Tls::Wrapper(tls)
    } else {
        Tls::Required(tls)
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(addr.port())
        .tls(tls)
        .credentials(Credentials::new(
            gateway.username.clone(),
            gateway.password.clone(),
        ))
        .authentication(vec![Mechanism::Plain])
        .timeout(Some(WAIT))
        .build();
    let message = Message::builder()
        .from(FROM.parse().expect("an address"))
        .to("erin@customer.example".parse().expect("an address"))
        .subject(format!("lettre {name}"))
        .body("A notice from mailops.\n".to_owned())
        .expect("a message");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime
        .block_on(transport.send(message))
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn the_certificate_verifies_for_localhost_and_127_0_0_1() {
    needs!(Postfix, Dovecot);
    let gateway = Gateway::start();
    for (addr, name) in [
        (gateway.submission, "localhost"),
        (gateway.submission, "127.0.0.1"),
        (gateway.smtps, "localhost"),
        (gateway.smtps, "127.0.0.1"),
    ] {
        lettre(&gateway, addr, name, true)
            .unwrap_or_else(|e| panic!("{addr} as {name}: {e}\n{}", gateway.log()));
    }
    gateway.wait_for_messages(4, WAIT);
    // Not a certificate lettre would take without being told to trust it, nor for
    // another name.
    let untrusted = lettre(&gateway, gateway.submission, "localhost", false);
    assert!(untrusted.is_err(), "accepted without ca_cert");
    let other_name = lettre(&gateway, gateway.smtps, "gateway.example.com", true);
    assert!(other_name.is_err(), "accepted for another name");
    assert_eq!(gateway.messages().len(), 4);
}

#[test]
fn goes_down_and_comes_back_on_the_same_ports() {
    needs!(Postfix, Dovecot);
    let mut gateway = Gateway::start();
    let addrs = [
        gateway.submission,
        gateway.smtps,
        gateway.plain,
        gateway.open,
    ];

    gateway.stop_smtp();
    for addr in addrs {
        let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused),
            "{addr} while down"
        );
    }

    gateway.start_smtp();
    for addr in addrs {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{addr} after start_smtp: {e}"));
    }
    let (ok, transcript) = swaks(gateway.open, "alice@customer.example", "Back", &[]);
    assert!(ok, "{transcript}");
    let messages = gateway.wait_for_messages(1, WAIT);
    assert_eq!(header(&messages[0], "Subject"), "Back");
}

/// AUTH XOAUTH2's initial response: `user=…^Aauth=Bearer …^A^A`, base64.
fn xoauth2(user: &str, token: &str) -> String {
    BASE64.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

#[test]
fn xoauth2_tokens_are_checked_at_the_authorization_server() {
    needs!(Postfix, Dovecot);
    let gateway = Gateway::start();
    let token = gateway.oauth.issue();

    // An active token: accepted, and the client may relay.
    let mut client = SmtpClient::connect(gateway.plain);
    client.command("EHLO mon.example.com");
    let reply = client.command(&format!(
        "AUTH XOAUTH2 {}",
        xoauth2(&gateway.username, &token)
    ));
    assert!(reply.starts_with("235 2.7.0"), "{reply}\n{}", gateway.log());
    for (line, code) in [
        (format!("MAIL FROM:<{FROM}>"), "250"),
        ("RCPT TO:<alice@customer.example>".to_owned(), "250"),
        ("DATA".to_owned(), "354"),
        (
            "Subject: by XOAUTH2\r\n\r\nA notice.\r\n.".to_owned(),
            "250",
        ),
    ] {
        let reply = client.command(&line);
        assert!(reply.starts_with(code), "{line}: {reply}");
    }
    let messages = gateway.wait_for_messages(1, WAIT);
    assert_eq!(header(&messages[0], "Subject"), "by XOAUTH2");
    let authenticated = format!("(Authenticated sender: {})", gateway.username);
    assert!(received(&messages[0]).contains(&authenticated));

    // Revoked: Dovecot's error comes as a 334 challenge (a base64 JSON status), and the
    // 535 after the client's empty answer. A token never issued fares the same.
    gateway.oauth.revoke_all();
    for token in [token.as_str(), "tok_at_never-issued"] {
        let mut client = SmtpClient::connect(gateway.plain);
        client.command("EHLO mon.example.com");
        let challenge = client.command(&format!(
            "AUTH XOAUTH2 {}",
            xoauth2(&gateway.username, token)
        ));
        let status = challenge
            .strip_prefix("334 ")
            .and_then(|b| BASE64.decode(b).ok())
            .map(|json| String::from_utf8_lossy(&json).into_owned())
            .unwrap_or_else(|| panic!("{challenge}\n{}", gateway.log()));
        assert!(status.contains(r#""status":"401""#), "{status}");
        let reply = client.command("");
        assert!(reply.starts_with("535 5.7.8"), "{reply}\n{}", gateway.log());
    }
    // Each AUTH was one introspection; the last two were answered inactive.
    assert_eq!(gateway.oauth.introspections(), (3, 2));
    assert_eq!(gateway.messages().len(), 1);
}
