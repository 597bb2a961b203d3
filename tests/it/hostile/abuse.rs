//! Protocol abuse through the real server: each item of the session-error list with the reply
//! it gets, smuggling sequences, slow and idle clients, the connection cap, and a client
//! vanishing mid-DATA. The session unit tests check the state machine over an in-memory stream;
//! these check what a client on TCP sees from the real binary.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{deliver, live, Server, NOTIFY};
use crate::support::lmtp::Client;
use crate::support::services::needs;

/// Sends `lines` one at a time; each reply must start with its expected prefix.
async fn expect_replies(c: &mut Client, lines: &[(&str, &str)]) {
    for (line, want) in lines {
        let reply = live(line, c.command(line)).await;
        assert!(
            reply.starts_with(want),
            "{line:?}: got {reply:?}, want {want}"
        );
    }
}

/// How many rows the server has stored.
async fn stored(server: &Server) -> i64 {
    server
        .count("SELECT count(*) FROM inbound_messages", &[])
        .await
}

#[tokio::test]
async fn session_errors_get_their_replies() {
    needs!(Database);
    let server = Server::start("").await;
    let long = |verb: &str, n: usize| format!("{verb}{}", "a".repeat(n));

    let mut c = server.connect().await;
    expect_replies(
        &mut c,
        &[
            ("HELO client.example", "500 5.5.1"),
            ("EHLO client.example", "500 5.5.1"),
            ("MAIL FROM:<a@example.com>", "503 5.5.1"),
            ("DATA", "503 5.5.1"),
            ("LHLO client.example", "250"),
            (&long("NOOP ", 600), "500 5.5.2"),
            (&long("MAIL FROM:<a@example.com> X=", 5000), "500 5.5.2"),
            ("MAIL FROM:a@example.com", "501 5.1.7"),
            (
                "MAIL FROM:<a@example.com> BODY=8BITMIME SIZE=abc",
                "501 5.5.4",
            ),
            ("MAIL FROM:<a@example.com> NO-SUCH-PARAM=1", "555 5.5.4"),
            ("MAIL FROM:<a@example.com>", "250 2.1.0"),
            ("MAIL FROM:<a@example.com>", "503 5.5.1"),
            ("RCPT TO:notify", "501 5.1.3"),
            ("RCPT TO:<>", "501 5.1.3"),
            ("RCPT TO:<nobody@mon.example.com>", "550 5.1.1"),
            ("RCPT TO:<ünicode@mon.example.com>", "553 5.6.7"),
            ("DATA", "503 5.5.1"),
            ("XFORWARD IDENT=x", "503 5.5.1"),
            ("BDAT 10 LAST", "500 5.5.1"),
            ("QUIT", "221 2.0.0"),
        ],
    )
    .await;

    // A megabyte without a line end is one overlong line, answered once.
    let mut c = server.connect().await;
    c.send(&vec![b'x'; 1 << 20]).await;
    c.send(b"\r\n").await;
    assert!(live("a 1 MB line", c.reply())
        .await
        .starts_with("500 5.5.2"));
    expect_replies(&mut c, &[("NOOP", "250 2.0.0")]).await;

    // Bad commands past the limit (20) close the session.
    let mut c = server.connect().await;
    c.send("HELO x\r\n".repeat(21).as_bytes()).await;
    for _ in 0..21 {
        assert!(live("HELO", c.reply()).await.starts_with("500 5.5.1"));
    }
    assert!(live("the 421", c.reply()).await.starts_with("421 4.7.0"));

    assert_eq!(stored(&server).await, 0);
    server.still_serves("session errors").await;
}

#[tokio::test]
async fn pipelined_data_without_a_valid_recipient_stores_nothing() {
    needs!(Database);
    let server = Server::start("").await;
    let mut c = server.connect().await;
    // A pipelining client sends the whole envelope and DATA at once, and a careless one the
    // message right after: without a valid recipient, DATA gets 503 and every line of the
    // message is a (bad) command.
    c.send(
        b"LHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<nobody@mon.example.com>\r\nDATA\r\n\
          Subject: never stored\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    )
    .await;
    let mut replies = Vec::new();
    for _ in 0..9 {
        replies.push(live("pipelined replies", c.reply()).await);
    }
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        ["250", "250", "550", "503", "500", "500", "500", "500", "221"],
        "{replies:#?}"
    );
    assert_eq!(stored(&server).await, 0);
    server.still_serves("pipelined DATA").await;
}

#[tokio::test]
async fn smuggling_sequences_do_not_end_data() {
    needs!(Database);
    let server = Server::start("").await;
    let smuggled = "MAIL FROM:<evil@example.com>\r\nRCPT TO:<notify@mon.example.com>\r\nDATA\r\n\
                    From: evil@example.com\r\nSubject: smuggled\r\n\r\nsmuggled body";
    for (i, end) in [
        "\n.\n",
        "\r.\n",
        "\n.\r\n",
        "\r\n.\n",
        "\r\n.\r",
        "\r\n.\rx\r\n",
    ]
    .iter()
    .enumerate()
    {
        let raw = format!(
            "From: Veeam <Veeam@Example.com>\r\nSubject: carrier {i}\r\n\r\nFailed{end}{smuggled}\r\n"
        );
        let ident = format!("smuggle-{i}");
        let mut c = server.connect().await;
        let replies = live(end, deliver(&mut c, &ident, raw.as_bytes())).await;
        assert!(
            replies.iter().all(|r| r.starts_with("250 2.0.0")),
            "{end:?}: {replies:?}"
        );
        // Nothing else was answered: the smuggled commands were message text.
        assert_eq!(
            live("QUIT", c.command("QUIT")).await,
            "221 2.0.0 Bye",
            "{end:?}"
        );
        let rows = server.rows(&ident).await;
        assert_eq!(rows.len(), 2, "{end:?}");
        // The carrier is stored as sent, the would-be commands as its text.
        for (_, _, row) in &rows {
            assert!(
                row.raw == raw.as_bytes(),
                "{end:?}: {:?}",
                String::from_utf8_lossy(&row.raw)
            );
        }
    }
    let smuggled_rows = server
        .count(
            "SELECT count(*) FROM inbound_messages
             WHERE subject = 'smuggled' OR envelope_from = 'evil@example.com'",
            &[],
        )
        .await;
    assert_eq!(smuggled_rows, 0);
}

/// Sends `prefix`, then one byte of `trickle` every 300 ms until the server gives up; returns
/// the reply line after the greeting and `skip` more lines.
async fn trickle(server: &Server, prefix: &[u8], skip: usize, trickle: u8) -> String {
    let stream = TcpStream::connect(&server.addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    write.write_all(prefix).await.expect("write");
    let writer = tokio::spawn(async move {
        // Stops when the server closes the connection.
        while write.write_all(&[trickle]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let reply = live("a reply to the trickle", async {
        for _ in 0..=skip + 1 {
            line.clear();
            read.read_line(&mut line).await.expect("read");
        }
        line.trim_end().to_owned()
    })
    .await;
    writer.abort();
    reply
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    needs!(Database);
    let server = Server::start("idle_timeout_s = 2").await;
    // A command trickled a byte at a time never completes in time.
    assert_eq!(
        trickle(&server, b"", 0, b'N').await,
        "421 4.4.2 Idle timeout, closing"
    );
    // Neither does DATA trickled a byte at a time, though each byte comes well within the
    // idle timeout.
    let envelope = format!("LHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<{NOTIFY}>\r\nDATA\r\n");
    assert_eq!(
        trickle(&server, envelope.as_bytes(), 10, b'x').await,
        "421 4.4.2 Idle timeout, closing"
    );
    // A silent client too.
    let mut c = server.connect().await;
    assert!(live("the idle 421", c.reply())
        .await
        .starts_with("421 4.4.2"));
    assert_eq!(stored(&server).await, 0);
    server.still_serves("slow clients").await;
}

#[tokio::test]
async fn idle_connections_past_the_cap_get_421_and_free_their_slots() {
    needs!(Database);
    // The idle timeout must outlast opening 500 connections and reading their greetings, which
    // took over 2 s on a loaded machine (the first 20 then timed out and 20 more got in).
    let server = Server::start("idle_timeout_s = 10\nmax_connections = 20").await;
    let mut clients = Vec::new();
    for _ in 0..500 {
        clients.push(TcpStream::connect(&server.addr).await.expect("connect"));
    }
    let (mut greeted, mut refused) = (Vec::new(), 0);
    for stream in clients {
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        live("a greeting or 421", stream.read_line(&mut line))
            .await
            .expect("read");
        if line.starts_with("220 ") {
            greeted.push(stream);
        } else {
            assert_eq!(line, "421 4.3.2 Too many connections\r\n");
            refused += 1;
        }
    }
    assert_eq!((greeted.len(), refused), (20, 480));
    // The idle ones are dropped after the idle timeout, and their slots serve mail again.
    for mut stream in greeted {
        let mut line = String::new();
        live("the idle 421", stream.read_line(&mut line))
            .await
            .expect("read");
        assert_eq!(line, "421 4.4.2 Idle timeout, closing\r\n");
    }
    live("a free slot", async {
        loop {
            let mut stream =
                BufReader::new(TcpStream::connect(&server.addr).await.expect("connect"));
            let mut line = String::new();
            stream.read_line(&mut line).await.expect("read");
            if line.starts_with("220 ") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    server.still_serves("500 idle connections").await;
}

#[tokio::test]
async fn closing_mid_data_stores_nothing() {
    needs!(Database);
    let server = Server::start("").await;
    let mut c = server.connect().await;
    let envelope = format!("LHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<{NOTIFY}>\r\nDATA\r\n");
    c.send(envelope.as_bytes()).await;
    for _ in 0..4 {
        live("envelope replies", c.reply()).await;
    }
    c.send(b"From: a@example.com\r\nSubject: cut\r\n\r\nhalf a mess")
        .await;
    drop(c);
    server.still_serves("closing mid-DATA").await;
    // Only the normal message is there.
    assert_eq!(stored(&server).await, 2);
}
