//! Session tests over an in-memory duplex stream, by topic: commands (`commands`), a whole
//! Postfix session pipelined (`pipelining`), limits (`limits`), idle clients and data rates
//! (`timeouts`), and sessions interrupted (`interruptions`). Here: the backend, the client and
//! the transcript helpers they share.

// Loaded with #[path] from session.rs, so its modules are named by path too.
#[path = "session_tests/commands.rs"]
mod commands;
#[path = "session_tests/interruptions.rs"]
mod interruptions;
#[path = "session_tests/limits.rs"]
mod limits;
#[path = "session_tests/pipelining.rs"]
mod pipelining;
#[path = "session_tests/timeouts.rs"]
mod timeouts;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::{duplex, DuplexStream, ReadBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

/// Accepts `*@known.test`, records deliveries, panics on a message containing `PANIC` and
/// returns one reply too few for a message containing `SHORT`.
#[derive(Default)]
pub(crate) struct TestBackend {
    pub(crate) deliveries: Mutex<Vec<(Envelope, Vec<u8>)>>,
    /// Sessions started and not yet ended, as the server reports them.
    pub(crate) sessions: AtomicUsize,
}

impl TestBackend {
    pub(crate) fn delivered(&self) -> Vec<(Envelope, Vec<u8>)> {
        self.deliveries.lock().expect("not poisoned").clone()
    }
}

impl Backend for TestBackend {
    async fn accepts(&self, recipient: &str) -> bool {
        recipient.to_ascii_lowercase().ends_with("@known.test")
    }

    async fn deliver(&self, envelope: &Envelope, message: Vec<u8>) -> Vec<Reply> {
        let contains = |needle: &[u8]| message.windows(needle.len()).any(|w| w == needle);
        if contains(b"PANIC") {
            panic!("test backend asked to panic");
        }
        let mut replies: Vec<Reply> = envelope
            .recipients
            .iter()
            .map(|r| Reply::new(250, "2.0.0", format!("<{r}> delivered")))
            .collect();
        if contains(b"SHORT") {
            replies.pop();
        }
        self.deliveries
            .lock()
            .expect("not poisoned")
            .push((envelope.clone(), message));
        replies
    }

    fn session(&self, started: bool) {
        match started {
            true => self.sessions.fetch_add(1, Ordering::SeqCst),
            false => self.sessions.fetch_sub(1, Ordering::SeqCst),
        };
    }
}

/// The LHLO reply lines for the default limits.
const LHLO: [&str; 7] = [
    "250-mx.test",
    "250-PIPELINING",
    "250-ENHANCEDSTATUSCODES",
    "250-8BITMIME",
    "250-SIZE 26214400",
    "250-SMTPUTF8",
    "250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE",
];

/// Counts the writes that reach the stream, to see replies being batched.
struct CountWrites {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for CountWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if polled.is_ready() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        polled
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Runs a session fed `chunks` (then end of input); returns its reply lines, the session's
/// result and how many writes it made.
async fn transcript(
    backend: Arc<TestBackend>,
    limits: Limits,
    chunks: Vec<Vec<u8>>,
) -> (Vec<String>, io::Result<()>, usize) {
    let (client, server) = duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let server = CountWrites {
        inner: server,
        writes: Arc::clone(&writes),
    };
    let session = tokio::spawn(async move {
        run(server, backend, &limits, "mx.test", std::future::pending()).await
    });
    let (mut rd, mut wr) = tokio::io::split(client);
    let writer = async move {
        for chunk in chunks {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        let _ = wr.shutdown().await;
    };
    let mut out = Vec::new();
    let (_, read) = tokio::join!(writer, rd.read_to_end(&mut out));
    read.expect("read replies");
    let result = session.await.expect("session task");
    let text = String::from_utf8(out).expect("replies are UTF-8");
    let lines = text.split_terminator("\r\n").map(str::to_string).collect();
    (lines, result, writes.load(Ordering::SeqCst))
}

/// A whole conversation sent in one write.
async fn replies(backend: &Arc<TestBackend>, limits: Limits, input: &str) -> Vec<String> {
    let (lines, _, _) =
        transcript(Arc::clone(backend), limits, vec![input.as_bytes().to_vec()]).await;
    lines
}

/// A client that talks step by step.
struct Client {
    stream: DuplexStream,
    buf: Vec<u8>,
    shutdown: Option<oneshot::Sender<()>>,
    session: JoinHandle<io::Result<()>>,
}

impl Client {
    fn start(backend: &Arc<TestBackend>, limits: Limits) -> Client {
        let (client, server) = duplex(1 << 20);
        let (tx, rx) = oneshot::channel::<()>();
        let backend = Arc::clone(backend);
        let session = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            run(server, backend, &limits, "mx.test", shutdown).await
        });
        Client {
            stream: client,
            buf: Vec::new(),
            shutdown: Some(tx),
            session,
        }
    }

    async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.expect("send");
    }

    /// The next complete reply, its lines joined with `|`; `None` at end of stream.
    async fn reply(&mut self) -> Option<String> {
        let mut lines = Vec::new();
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                let line = String::from_utf8(line).expect("UTF-8 reply");
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return Some(lines.join("|"));
                }
            }
            let mut chunk = [0; 4096];
            let n = self.stream.read(&mut chunk).await.expect("read");
            if n == 0 {
                assert!(
                    self.buf.is_empty() && lines.is_empty(),
                    "partial reply at close"
                );
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

const GREETING: &str = "220 mx.test LMTP mailops ready";

fn expect(lines: &[String], want: &[&str]) {
    let got: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(got, want);
}
