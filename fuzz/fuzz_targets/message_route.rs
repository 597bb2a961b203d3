//! Arbitrary bytes as a delivered message, through everything mailops decides without I/O:
//! parsing, the recipient's route, the round-trip token search, sender verification (the
//! message's Authentication-Results fields, and the whole input as one), the events decision
//! under a fixed policy set (classic and regex patterns), the tickets helpers, and the notice
//! that would answer it.
//!
//! Besides "no panic, no hang" it checks:
//! - parsing with and without attachments agrees on everything else;
//! - routes ignore ASCII case;
//! - a verified domain is the From domain, and mynetworks is decided by the client alone;
//! - a token found is a genuine one present in the text, and a genuine token is always found;
//! - an events decision is either exactly the E701 log or a device log followed by one event
//!   per key of each raising policy (none when a suppress policy matched), within the size
//!   limits;
//! - a notice's subject always names its ticket, and a reply's text is empty only for an
//!   empty body;
//! - the notice composed from the message's subject, sender and Message-IDs has no header the
//!   message could have injected: every header line is one mailops writes, or a folded
//!   continuation, and no CR, LF or NUL stands alone.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mailops::auth::{self, results, Verification};
use mailops::config::{parse_cidr, AlertMessage, Config, Method, Outbound};
use mailops::envelope::Envelope;
use mailops::events::evaluate::{
    self, Alert, Outcome, Settings, Write, MAX_EVENT_MESSAGE, MAX_KEY, MAX_LOG_MESSAGE,
};
use mailops::events::policies::Policies;
use mailops::message::Message;
use mailops::outbound::outbox::{self, Notice};
use mailops::policy::PolicyFile;
use mailops::roundtrip::token::Key;
use mailops::route::{Route, Router};
use mailops::tickets::mail;

/// The test suite's sample policy file, the nagios pack, and patterns of the kinds operators
/// write: keys, severity from the mail, a header, a suppress policy.
static POLICIES: LazyLock<Policies> = LazyLock::new(|| {
    let text = format!(
        "include = [\"pack:nagios\"]\n{}{}",
        include_str!("../../tests/fixtures/policies.toml"),
        r#"
[[device]]
name = "ups1.example.com"
ip = "10.6.1.30"

[[originator]]
address = "*@example.com"
regex_type = "body"
pattern_type = "advanced"
pattern = '(?i)(?:host|device)[:=]\s*([\w.-]+)'
alignment = "default_if_unmatched"
default_device = "backup-virtual"

[[event_policy]]
name = "Disk degraded"
severity = "critical"
message = "%D: %S (%M)"
match_logic = "regex"
first_match = '(?i)disk\s+\d+\s+(degraded|failed)'
second_match = '(?m)^Array:'

[[originator]]
name = "relay"
address = "*@*"
regex_type = "header:X-Device"
pattern_type = "advanced"
pattern = '(?P<device>\S+)'
alignment = "discard"

[[event_policy]]
name = "Keyed state"
originators = ["relay"]
match_logic = "regex"
first_match = '(?m)^(?P<check>[\w /]+): (?P<state>OK|WARN|CRIT)'
severity = "major"
severity_from = "state"
severity_map = { OK = "healthy", WARN = "minor", CRIT = "critical" }
key = "%D/%{check}"
key_map = { check = { "Disk" = "disk" } }
message = "%{check} is %{state}"
clears = ["Disk degraded"]

[[event_policy]]
name = "Noise"
action = "suppress"
match_logic = "text"
first_match = "TestMessage"
"#
    );
    let model = PolicyFile::parse(&text)
        .and_then(|file| file.to_model())
        .expect("the fuzzing policies are valid");
    let (policies, problems) =
        Policies::new(model.devices, model.originators, model.event_policies);
    assert!(problems.is_empty(), "{problems:?}");
    policies
});

static ROUTER: LazyLock<Router> = LazyLock::new(|| {
    Router::new([
        ("notify@mon.example.com".to_owned(), Route::Event),
        ("Help@Mon.Example.com".to_owned(), Route::Ticket),
    ])
});

static KEY: LazyLock<Key> = LazyLock::new(|| Key::new(b"fuzzing key".to_vec()));

static OUTBOUND: LazyLock<Outbound> = LazyLock::new(|| {
    let text = "[database]\nurl = \"postgres://fuzz@127.0.0.1/fuzz\"\n\
                [lmtp]\nlisten = \"127.0.0.1:2424\"\n\
                [inbound]\nauthorized_domains = [\"mon.example.com\"]\n\
                [outbound]\nfrom_address = \"noreply@mon.example.com\"\ngateway = \"127.0.0.1\"\n";
    Config::parse(text, None)
        .expect("the fuzzing config is valid")
        .outbound
        .expect("it has [outbound]")
});

/// The headers `compose` writes: any other header name in a notice was injected.
const HEADERS: [&str; 11] = [
    "from:",
    "to:",
    "subject:",
    "message-id:",
    "in-reply-to:",
    "references:",
    "content-type:",
    "content-transfer-encoding:",
    "auto-submitted:",
    "mime-version:",
    "date:",
];

/// Checks a composed notice's header section for injected headers and stray line ends.
fn check_headers(bytes: &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header section");
    let head = &bytes[..end + 2];
    let text = String::from_utf8_lossy(head);
    for (i, &b) in head.iter().enumerate() {
        assert_ne!(b, 0, "NUL in the headers:\n{text}");
        if b == b'\r' {
            assert_eq!(
                head.get(i + 1),
                Some(&b'\n'),
                "bare CR in the headers:\n{text}"
            );
        }
        if b == b'\n' {
            assert!(
                i > 0 && head[i - 1] == b'\r',
                "bare LF in the headers:\n{text}"
            );
        }
    }
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let folded = line.starts_with(' ') || line.starts_with('\t');
        let lower = line.to_ascii_lowercase();
        assert!(
            folded || HEADERS.iter().any(|h| lower.starts_with(h)),
            "unexpected header line {line:?} in:\n{text}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The last octet picks the envelope and settings, so that any mail is a useful seed.
    let Some((&flags, raw)) = data.split_last() else {
        return;
    };
    let envelope_from = if flags & 1 == 0 {
        "sender@example.com"
    } else {
        ""
    };
    let settings = Settings {
        strip_fqdn: flags & 2 != 0,
        alert_message: if flags & 4 == 0 {
            AlertMessage::Body
        } else {
            AlertMessage::SubjectAndBody
        },
    };

    let message = Message::parse_with_attachments(raw);
    let plain = Message::parse(raw);
    assert_eq!(
        Message {
            attachments: Vec::new(),
            ..message.clone()
        },
        plain,
        "parsing with attachments changed something else"
    );
    if !message.parsed {
        assert_eq!(message, Message::default());
    }
    let subject = message.subject.as_deref().unwrap_or("");
    let from = message.from_address.as_deref().unwrap_or(envelope_from);

    // Routes: the sender as a recipient, in any case.
    assert_eq!(ROUTER.route(from), ROUTER.route(&from.to_ascii_uppercase()));

    // Round-trip tokens: whatever is found is genuine and there.
    if let Some(id) = KEY.find_in(&message, raw) {
        let token = KEY.token(id);
        assert!(
            raw.windows(token.len()).any(|w| w == token.as_bytes())
                || subject.contains(&token)
                || message.body.contains(&token)
                || message.forwarded.contains(&token),
            "found {id} without its token"
        );
    }
    let id = i64::from(u32::from_le_bytes([flags, flags, 0, 1]));
    let hidden = format!("{subject}{}{subject}", KEY.token(id));
    let found = KEY
        .find(hidden.as_bytes())
        .expect("a genuine token is found");
    assert!(hidden.contains(&KEY.token(found)));

    // Sender verification: only this instance's results count, for the From domain only.
    let _ = results::parse(&String::from_utf8_lossy(raw));
    let verify = auth::Settings {
        authserv_id: Some("mon.example.com".into()),
        mynetworks: vec![parse_cidr("127.0.0.0/8").expect("a network")],
    };
    let trusted = flags & 8 == 0;
    let envelope = Envelope {
        mail_from: envelope_from.into(),
        client_addr: Some(if trusted { "127.0.0.1" } else { "192.0.2.1" }.into()),
        ..Envelope::default()
    };
    let sender = Verification::of(&message, &envelope, &verify);
    if let Some(domain) = sender.verified_domain() {
        assert_eq!(Some(domain), sender.from_domain.as_deref());
    }
    assert_eq!(sender.passes(Method::Mynetworks), trusted);

    // Events.
    let alert = Alert::new(&message, envelope_from).verified(&sender);
    let decision = evaluate::evaluate(&POLICIES, &alert, settings);
    match decision.device {
        None => {
            assert!(decision.tried.is_empty());
            assert!(matches!(
                decision.writes.as_slice(),
                [Write::SystemLog {
                    code: evaluate::E701,
                    ..
                }]
            ));
        }
        Some(device) => {
            let Some((
                Write::DeviceLog {
                    device_id, message, ..
                },
                rest,
            )) = decision.writes.split_first()
            else {
                panic!("no device log first: {:?}", decision.writes);
            };
            assert_eq!(*device_id, device.id);
            assert!(message.len() <= MAX_LOG_MESSAGE);
            let raised = rest
                .iter()
                .filter(|w| match w {
                    Write::Raise {
                        device_id,
                        message,
                        key,
                        ..
                    } => {
                        assert_eq!(*device_id, device.id);
                        assert!(message.len() <= MAX_EVENT_MESSAGE);
                        assert!(key.len() <= MAX_KEY);
                        true
                    }
                    Write::Clear { device_id, .. } => {
                        assert_eq!(*device_id, device.id);
                        false
                    }
                    other => panic!("unexpected write {other:?}"),
                })
                .count();
            let keys: usize = decision
                .tried
                .iter()
                .map(|t| match &t.outcome {
                    Outcome::Raise(raised) => raised.len(),
                    _ => 0,
                })
                .sum();
            match decision.suppressed_by {
                Some(_) => assert_eq!(rest.len(), 0, "a suppressed mail writes its log only"),
                None => assert_eq!(raised, keys),
            }
        }
    }
    for step in &decision.steps {
        let _ = step.to_string();
    }

    // Tickets.
    let own = |address: &str| address.eq_ignore_ascii_case("help@mon.example.com");
    let noise = mail::noise(envelope_from, &message, own);
    if envelope_from.is_empty() {
        assert!(noise.is_some());
    }
    let ticket = mail::subject_ticket(subject).unwrap_or(id);
    let notice_subject = mail::notice_subject(ticket, subject);
    assert_eq!(mail::subject_ticket(&notice_subject), Some(ticket));
    let _ = mail::description("Email: %", subject);
    let reply = mail::reply_text(&message.body);
    assert_eq!(reply.is_empty(), message.body.trim().is_empty());

    // The notice that would answer it, built from its text.
    let mut references = message.references.clone();
    references.extend(message.message_id.clone());
    let notice = Notice {
        from: Some("help@mon.example.com".into()),
        to: from.to_owned(),
        subject: if flags & 8 == 0 {
            notice_subject
        } else {
            format!("Re: {}", mail::clean_subject(subject))
        },
        body: mail::expand("Ticket %t: %W", Some(ticket), Some("https://t.example/%t")),
        in_reply_to: message.message_id.clone(),
        references,
        auto_submitted: "auto-replied",
        kind: "ticket_created",
        ticket_id: Some(ticket),
    };
    // An unusable recipient address is an error the caller logs; a composed notice is checked.
    if let Ok(composed) = outbox::compose(&OUTBOUND, &notice) {
        check_headers(&composed.bytes);
    }
});
