//! Session tests over an in-memory duplex stream.

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

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let backend = Arc::new(TestBackend::default());
    let lines = replies(
        &backend,
        Limits::default(),
        "MAIL FROM:<a@b.test>\r\nXFORWARD NAME=x\r\nRCPT TO:<x@known.test>\r\nDATA\r\n\
         LHLO c.test\r\nRCPT TO:<x@known.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\n\
         MAIL FROM:<a@b.test>\r\nXFORWARD NAME=x\r\nDATA\r\nRSET\r\nDATA\r\nQUIT\r\n",
    )
    .await;
    let mut want = vec![
        GREETING,
        "503 5.5.1 Send LHLO first",
        "503 5.5.1 Send LHLO first",
        "503 5.5.1 Need MAIL command",
        "503 5.5.1 Need MAIL command",
    ];
    want.extend(LHLO);
    want.extend([
        "503 5.5.1 Need MAIL command",
        "503 5.5.1 Need MAIL command",
        "250 2.1.0 OK",
        "503 5.5.1 Nested MAIL command",
        "503 5.5.1 Mail transaction in progress",
        "503 5.5.1 No valid recipients",
        "250 2.0.0 OK",
        "503 5.5.1 Need MAIL command",
        "221 2.0.0 Bye",
    ]);
    expect(&lines, &want);
    assert!(backend.delivered().is_empty());
}

#[tokio::test]
async fn unknown_and_malformed_commands() {
    let backend = Arc::new(TestBackend::default());
    let long = format!("NOOP {}\r\n", "x".repeat(600));
    let input = format!(
        "HELO c.test\r\nEHLO c.test\r\nLHLO c.test\r\nSTARTTLS\r\nMAIL FROM:a@b.test\r\n\
         MAIL FROM:<a@b.test> RET=HDRS\r\nMAIL FROM:<a@b.test> SIZE=ten\r\nMAIL FROM:<jö@b.test>\r\n\
         {long}MAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<nobody>\r\nRCPT TO:<jö@known.test>\r\n\
         RCPT TO:<x@known.test> NOTIFY=NEVER\r\nVRFY x\r\nNOOP hello\r\nDATA now\r\nQUIT\r\n"
    );
    let lines = replies(&backend, Limits::default(), &input).await;
    let mut want = vec![
        GREETING,
        "500 5.5.1 This is LMTP: use LHLO",
        "500 5.5.1 This is LMTP: use LHLO",
    ];
    want.extend(LHLO);
    want.extend([
        "500 5.5.1 Command unrecognized",
        "501 5.1.7 Bad sender address syntax",
        "555 5.5.4 Unsupported parameter RET",
        "501 5.5.4 Bad SIZE parameter",
        "553 5.6.7 Non-ASCII address needs SMTPUTF8",
        "500 5.5.2 Line too long",
        "250 2.1.0 OK",
        "501 5.1.3 Bad recipient address syntax",
        "553 5.6.7 Non-ASCII address needs SMTPUTF8",
        "555 5.5.4 Unsupported parameter NOTIFY",
        "252 2.5.0 Cannot VRFY user, but will accept message",
        "250 2.0.0 OK",
        "501 5.5.4 Syntax: DATA",
        "221 2.0.0 Bye",
    ]);
    expect(&lines, &want);
}

#[tokio::test]
async fn one_reply_per_accepted_recipient_in_order() {
    let backend = Arc::new(TestBackend::default());
    let lines = replies(
        &backend,
        Limits::default(),
        "LHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<nobody@else.test>\r\n\
         RCPT TO:<X@Known.Test>\r\nRCPT TO:<y@known.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n\
         Subject: hi\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n",
    )
    .await;
    expect(
        &lines[8..],
        &[
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "550 5.1.1 <nobody@else.test>: recipient unknown",
            "250 2.1.5 OK",
            "250 2.1.5 OK",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 <x@known.test> delivered",
            "250 2.0.0 <X@Known.Test> delivered",
            "250 2.0.0 <y@known.test> delivered",
            "250 2.0.0 <x@known.test> delivered",
            "221 2.0.0 Bye",
        ],
    );
    let delivered = backend.delivered();
    assert_eq!(delivered.len(), 1);
    let (envelope, message) = &delivered[0];
    assert_eq!(envelope.mail_from, "");
    assert_eq!(
        envelope.recipients,
        [
            "x@known.test",
            "X@Known.Test",
            "y@known.test",
            "x@known.test"
        ]
    );
    assert_eq!(message, b"Subject: hi\r\n\r\n.leading dot\r\n");
}

/// Two transactions with XFORWARD, as Postfix's LMTP client sends them.
const POSTFIX_SESSION: &str = "LHLO postfix.test\r\n\
    XFORWARD NAME=spike.example ADDR=192.0.2.1 PORT=25 HELO=[UNAVAILABLE] IDENT=4Xy+2BQ1 PROTO=ESMTP SOURCE=REMOTE\r\n\
    MAIL FROM:<a@b.test> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<y@known.test>\r\nDATA\r\n\
    line 1\r\n.\r\nRSET\r\nMAIL FROM:<c@d.test> SMTPUTF8\r\nRCPT TO:<jö@known.test>\r\nDATA\r\n\
    \r\n..\r\n.\r\nQUIT\r\n";

fn postfix_transcript() -> Vec<&'static str> {
    let mut want = vec![GREETING];
    want.extend(LHLO);
    want.extend([
        "250 2.0.0 OK",
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "250 2.1.5 OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 <x@known.test> delivered",
        "250 2.0.0 <y@known.test> delivered",
        "250 2.0.0 OK",
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 <jö@known.test> delivered",
        "221 2.0.0 Bye",
    ]);
    want
}

fn check_postfix_deliveries(backend: &TestBackend) {
    let delivered = backend.delivered();
    assert_eq!(delivered.len(), 2);
    let (first, message) = &delivered[0];
    assert_eq!(first.mail_from, "a@b.test");
    assert_eq!(first.queue_id.as_deref(), Some("4Xy+Q1"));
    assert_eq!(first.client_addr.as_deref(), Some("192.0.2.1"));
    assert_eq!(first.client_name.as_deref(), Some("spike.example"));
    assert_eq!(first.client_helo, None);
    assert_eq!(first.protocol.as_deref(), Some("ESMTP"));
    assert!(!first.smtputf8);
    assert_eq!(message, b"line 1\r\n");
    // XFORWARD lasts one transaction (XFORWARD_README).
    let (second, message) = &delivered[1];
    assert_eq!(second.queue_id, None);
    assert_eq!(second.client_addr, None);
    assert!(second.smtputf8);
    assert_eq!(second.recipients, ["jö@known.test"]);
    assert_eq!(message, b"\r\n.\r\n");
}

#[tokio::test]
async fn whole_session_pipelined_in_one_write() {
    let backend = Arc::new(TestBackend::default());
    let (lines, result, writes) = transcript(
        Arc::clone(&backend),
        Limits::default(),
        vec![POSTFIX_SESSION.as_bytes().to_vec()],
    )
    .await;
    expect(&lines, &postfix_transcript());
    result.expect("session ends cleanly");
    check_postfix_deliveries(&backend);
    // RFC 2920: greeting, replies up to the first DATA's, the second DATA's, and 221.
    assert!(writes <= 4, "{writes} writes");
}

#[tokio::test]
async fn whole_session_byte_by_byte() {
    let backend = Arc::new(TestBackend::default());
    let chunks = POSTFIX_SESSION.bytes().map(|b| vec![b]).collect();
    let (lines, result, _) = transcript(Arc::clone(&backend), Limits::default(), chunks).await;
    expect(&lines, &postfix_transcript());
    result.expect("session ends cleanly");
    check_postfix_deliveries(&backend);
}

#[tokio::test]
async fn declared_size_over_limit_is_refused_at_mail() {
    let backend = Arc::new(TestBackend::default());
    let limits = Limits {
        max_message_size: 100,
        ..Limits::default()
    };
    let lines = replies(
        &backend,
        limits,
        "LHLO c\r\nMAIL FROM:<a@b.test> SIZE=101\r\nMAIL FROM:<a@b.test> SIZE=100\r\nQUIT\r\n",
    )
    .await;
    expect(
        &lines[1..],
        &[
            "250-mx.test",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-SIZE 100",
            "250-SMTPUTF8",
            "250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            "250 2.1.0 OK",
            "221 2.0.0 Bye",
        ],
    );
}

#[tokio::test]
async fn data_over_limits_gets_552_per_recipient() {
    let backend = Arc::new(TestBackend::default());
    let limits = Limits {
        max_message_size: 2000,
        ..Limits::default()
    };
    let big = format!("{}\r\n", "x".repeat(60)).repeat(20);
    let long = "y".repeat(1000);
    let input = format!(
        "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<y@known.test>\r\nDATA\r\n\
         {big}{big}.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n{long}\r\n.\r\n\
         MAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n"
    );
    let lines = replies(&backend, limits, &input).await;
    expect(
        &lines[8..],
        &[
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "552 5.3.4 Message too big",
            "552 5.3.4 Message too big",
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "552 5.3.4 Message line too long",
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 <x@known.test> delivered",
            "221 2.0.0 Bye",
        ],
    );
    let delivered = backend.delivered();
    assert_eq!(delivered.len(), 1, "only the small message is delivered");
    assert_eq!(delivered[0].1, b"small\r\n");
}

#[tokio::test]
async fn recipients_past_the_limit_get_452() {
    let backend = Arc::new(TestBackend::default());
    let limits = Limits {
        max_recipients: 2,
        ..Limits::default()
    };
    let lines = replies(
        &backend,
        limits,
        "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<a@known.test>\r\nRCPT TO:<b@known.test>\r\n\
         RCPT TO:<c@known.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    )
    .await;
    expect(
        &lines[8..],
        &[
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "250 2.1.5 OK",
            "452 4.5.3 Too many recipients",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 <a@known.test> delivered",
            "250 2.0.0 <b@known.test> delivered",
            "221 2.0.0 Bye",
        ],
    );
}

#[tokio::test]
async fn too_many_errors_close_with_421() {
    let backend = Arc::new(TestBackend::default());
    let limits = Limits {
        max_errors: 3,
        ..Limits::default()
    };
    // Unknown recipients and a 503 for DATA after them are not counted as bad commands.
    let (lines, result, _) = transcript(
        backend,
        limits,
        vec![
            b"LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<n1@x.test>\r\nRCPT TO:<n2@x.test>\r\n\
               RCPT TO:<n3@x.test>\r\nRCPT TO:<n4@x.test>\r\nDATA\r\nRSET\r\n\
               FOO\r\nBAR\r\nHELO x\r\nBAZ\r\nNOOP\r\n"
                .to_vec(),
        ],
    )
    .await;
    result.expect("session ends cleanly");
    expect(
        &lines[lines.len() - 5..],
        &[
            "500 5.5.1 Command unrecognized",
            "500 5.5.1 Command unrecognized",
            "500 5.5.1 This is LMTP: use LHLO",
            "500 5.5.1 Command unrecognized",
            "421 4.7.0 Too many errors, closing",
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn idle_client_gets_421() {
    let backend = Arc::new(TestBackend::default());
    let mut client = Client::start(&backend, Limits::default());
    assert_eq!(client.reply().await.as_deref(), Some(GREETING));
    client.send("LHLO c\r\nNOO").await;
    assert!(client.reply().await.is_some());
    let started = tokio::time::Instant::now();
    assert_eq!(
        client.reply().await.as_deref(),
        Some("421 4.4.2 Idle timeout, closing")
    );
    assert_eq!(client.reply().await, None);
    assert!(started.elapsed() >= Duration::from_secs(299));
    client
        .session
        .await
        .expect("session task")
        .expect("clean end");
}

#[tokio::test(start_paused = true)]
async fn idle_client_in_data_gets_421_and_nothing_is_delivered() {
    let backend = Arc::new(TestBackend::default());
    let mut client = Client::start(&backend, Limits::default());
    client
        .send("LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nhalf")
        .await;
    for _ in 0..5 {
        assert!(client.reply().await.is_some());
    }
    assert_eq!(
        client.reply().await.as_deref(),
        Some("421 4.4.2 Idle timeout, closing")
    );
    assert!(backend.delivered().is_empty());
}

/// Starts a session and sends the envelope and DATA for x@known.test.
async fn in_data(backend: &Arc<TestBackend>) -> Client {
    let mut client = Client::start(backend, Limits::default());
    client
        .send("LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n")
        .await;
    for _ in 0..5 {
        assert!(client.reply().await.is_some());
    }
    client
}

#[tokio::test(start_paused = true)]
async fn data_trickled_a_byte_every_ten_seconds_gets_421_after_the_idle_timeout() {
    let backend = Arc::new(TestBackend::default());
    let mut client = in_data(&backend).await;
    let started = tokio::time::Instant::now();
    // Each byte comes well within the idle timeout; the message as a whole does not.
    let reply = loop {
        client.send("x").await;
        if let Ok(reply) = tokio::time::timeout(Duration::from_secs(10), client.reply()).await {
            break reply;
        }
    };
    assert_eq!(reply.as_deref(), Some("421 4.4.2 Idle timeout, closing"));
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(299)..Duration::from_secs(311)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(backend.delivered().is_empty());
}

#[tokio::test(start_paused = true)]
async fn data_at_the_minimum_rate_is_never_cut_off() {
    let backend = Arc::new(TestBackend::default());
    let mut client = in_data(&backend).await;
    // 500 octets a second for 20 minutes: four idle timeouts.
    let line = format!("{}\r\n", "x".repeat(498));
    for _ in 0..1200 {
        client.send(&line).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    client.send(".\r\n").await;
    assert_eq!(
        client.reply().await.as_deref(),
        Some("250 2.0.0 <x@known.test> delivered")
    );
    assert_eq!(backend.delivered()[0].1.len(), 1200 * 500);
}

#[tokio::test]
async fn panicking_backend_gets_451_and_the_session_goes_on() {
    let backend = Arc::new(TestBackend::default());
    let lines = replies(
        &backend,
        Limits::default(),
        "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<y@known.test>\r\nDATA\r\n\
         PANIC\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<y@known.test>\r\nDATA\r\n\
         SHORT\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nfine\r\n.\r\nQUIT\r\n",
    )
    .await;
    let data_replies: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("451") || l.contains("delivered"))
        .collect();
    let local_error = "451 4.3.0 Local error in processing, try again later";
    assert_eq!(
        data_replies,
        [
            local_error,
            local_error,
            local_error,
            local_error,
            "250 2.0.0 <x@known.test> delivered"
        ]
    );
    assert_eq!(lines.last().map(String::as_str), Some("221 2.0.0 Bye"));
}

#[tokio::test]
async fn lhlo_again_resets_the_transaction() {
    let backend = Arc::new(TestBackend::default());
    let lines = replies(
        &backend,
        Limits::default(),
        "LHLO c\r\nXFORWARD IDENT=Q1\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nLHLO c\r\nDATA\r\n\
         MAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert!(lines.contains(&"503 5.5.1 Need MAIL command".to_string()));
    let delivered = backend.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].0.queue_id, None,
        "LHLO dropped the XFORWARD attributes"
    );
}

#[tokio::test]
async fn shutdown_while_idle_gets_421() {
    let backend = Arc::new(TestBackend::default());
    let mut client = Client::start(&backend, Limits::default());
    assert_eq!(client.reply().await.as_deref(), Some(GREETING));
    client.send("LHLO c\r\n").await;
    assert!(client.reply().await.is_some());
    client.shut_down();
    assert_eq!(
        client.reply().await.as_deref(),
        Some("421 4.3.2 Service shutting down")
    );
    assert_eq!(client.reply().await, None);
    client
        .session
        .await
        .expect("session task")
        .expect("clean end");
}

#[tokio::test]
async fn shutdown_during_data_finishes_the_transaction_first() {
    let backend = Arc::new(TestBackend::default());
    let mut client = Client::start(&backend, Limits::default());
    client
        .send("LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n")
        .await;
    for _ in 0..5 {
        assert!(client.reply().await.is_some());
    }
    client.send("first half\r\n").await;
    tokio::task::yield_now().await;
    client.shut_down();
    tokio::task::yield_now().await;
    client.send("second half\r\n.\r\n").await;
    assert_eq!(
        client.reply().await.as_deref(),
        Some("250 2.0.0 <x@known.test> delivered")
    );
    assert_eq!(
        client.reply().await.as_deref(),
        Some("421 4.3.2 Service shutting down")
    );
    assert_eq!(client.reply().await, None);
    assert_eq!(backend.delivered()[0].1, b"first half\r\nsecond half\r\n");
}

#[tokio::test]
async fn client_closing_mid_data_delivers_nothing() {
    let backend = Arc::new(TestBackend::default());
    let (_, result, _) = transcript(
        Arc::clone(&backend),
        Limits::default(),
        vec![
            b"LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nno end\r\n"
                .to_vec(),
        ],
    )
    .await;
    let error = result.expect_err("end of stream in DATA is an I/O error");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    assert!(backend.delivered().is_empty());
}
