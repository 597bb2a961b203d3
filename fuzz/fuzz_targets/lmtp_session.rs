//! Arbitrary bytes as the client's side of an LMTP session, run through the real session code
//! (command parsing, pipelining, DATA's end and dot-unstuffing) over an in-memory stream.
//!
//! Beyond "no panic, no hang" it checks what a client relies on:
//! - every reply line is `ddd SP text CRLF` or `ddd - text CRLF`, a multi-line reply keeps its
//!   code, and nothing follows a `221` or `421`;
//! - the session does the same whether the input arrives at once or in small pieces;
//! - every message handed to the backend is within the limits, for accepted recipients only,
//!   and ends with CRLF (or is empty);
//! - a delivered message, dot-stuffed again and sent in a fresh session, arrives unchanged.

#![no_main]

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mailops::envelope::Envelope;
use mailops::lmtp::{self, Backend, Limits, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Small limits, so that the fuzzer reaches them.
static LIMITS: LazyLock<Limits> = LazyLock::new(|| Limits {
    max_message_size: 2048,
    max_recipients: 3,
    idle_timeout: Duration::from_secs(3600),
    ..Limits::default()
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
});

/// Accepts `*@known.test`; records every delivery and answers `250` for each recipient.
#[derive(Default)]
struct Recorder {
    deliveries: Mutex<Vec<(Envelope, Vec<u8>)>>,
}

fn known(recipient: &str) -> bool {
    recipient.to_ascii_lowercase().ends_with("@known.test")
}

impl Backend for Recorder {
    async fn accepts(&self, recipient: &str) -> bool {
        known(recipient)
    }

    async fn deliver(&self, envelope: &Envelope, message: Vec<u8>) -> Vec<Reply> {
        let replies = vec![Reply::new(250, "2.0.0", "stored"); envelope.recipients.len()];
        self.deliveries
            .lock()
            .expect("not poisoned")
            .push((envelope.clone(), message));
        replies
    }
}

/// What one session did: the server's bytes and the deliveries.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    replies: Vec<u8>,
    deliveries: Vec<(Vec<String>, String, Vec<u8>)>,
}

/// Runs a session fed `input` in pieces of `piece` octets, then the end of the stream.
fn session(input: &[u8], piece: usize) -> Transcript {
    let backend = Arc::new(Recorder::default());
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut rd, mut wr) = tokio::io::split(client);
    let replies = RUNTIME.block_on(async {
        let run = lmtp::run(
            server,
            Arc::clone(&backend),
            &LIMITS,
            "mx.test",
            std::future::pending(),
        );
        let write = async move {
            for chunk in input.chunks(piece.max(1)) {
                // The session may close first (421, QUIT): the rest is not read.
                if wr.write_all(chunk).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        };
        let read = async move {
            let mut replies = Vec::new();
            let _ = rd.read_to_end(&mut replies).await;
            replies
        };
        let (_, (), replies) = tokio::join!(run, write, read);
        replies
    });
    let deliveries = std::mem::take(&mut *backend.deliveries.lock().expect("not poisoned"))
        .into_iter()
        .map(|(envelope, message)| (envelope.recipients, envelope.mail_from, message))
        .collect();
    Transcript {
        replies,
        deliveries,
    }
}

/// Checks the reply stream's shape.
fn check_replies(replies: &[u8]) {
    let mut continued: Option<&[u8]> = None;
    let mut closed = false;
    let mut rest = replies;
    while !rest.is_empty() {
        assert!(
            !closed,
            "a reply after 221/421: {:?}",
            String::from_utf8_lossy(replies)
        );
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("reply without CRLF: {:?}", String::from_utf8_lossy(rest)));
        let line = &rest[..end];
        rest = &rest[end + 2..];
        assert!(
            line.len() >= 4
                && line[..3].iter().all(u8::is_ascii_digit)
                && (b'2'..=b'5').contains(&line[0])
                && (line[3] == b' ' || line[3] == b'-'),
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(
            !line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "control octet in reply line {:?}",
            String::from_utf8_lossy(line)
        );
        let code = &line[..3];
        if let Some(previous) = continued {
            assert_eq!(previous, code, "a multi-line reply changed its code");
        }
        continued = (line[3] == b'-').then_some(code);
        closed = line[3] == b' ' && (code == b"221" || code == b"421");
    }
    assert!(
        continued.is_none(),
        "a multi-line reply without its last line"
    );
}

fuzz_target!(|data: &[u8]| {
    // The first octet picks how the rest arrives: all at once is the reference.
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let whole = session(input, input.len());
    check_replies(&whole.replies);
    let pieces = session(input, usize::from(split % 16) + 1);
    assert_eq!(
        whole, pieces,
        "the session depends on how its input is split"
    );

    for (recipients, _, message) in &whole.deliveries {
        assert!(!recipients.is_empty() && recipients.len() <= LIMITS.max_recipients);
        assert!(recipients.iter().all(|r| known(r)), "{recipients:?}");
        assert!(message.len() <= LIMITS.max_message_size);
        assert!(message.is_empty() || message.ends_with(b"\r\n"));

        let mut again =
            b"LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<r@known.test>\r\nDATA\r\n".to_vec();
        again.extend_from_slice(&lmtp::stuff(message));
        again.extend_from_slice(b".\r\nQUIT\r\n");
        let resent = session(&again, again.len());
        let delivered: Vec<&[u8]> = resent.deliveries.iter().map(|d| d.2.as_slice()).collect();
        assert_eq!(
            delivered,
            [message.as_slice()],
            "re-stuffed message did not arrive unchanged: {:?}",
            String::from_utf8_lossy(&resent.replies)
        );
    }
});
