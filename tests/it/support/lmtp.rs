//! A line-at-a-time LMTP client for tests.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// An LMTP connection.
pub struct Client {
    stream: BufReader<TcpStream>,
    /// Sent as XFORWARD ADDR in each transaction, as Postfix sends its SMTP client's.
    client_addr: Option<String>,
}

impl Client {
    /// Connects and reads the greeting.
    pub async fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut c = Client {
            stream: BufReader::new(stream),
            client_addr: None,
        };
        let greeting = c.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        c
    }

    /// Says in each transaction that its mail came from the SMTP client at `addr`.
    pub fn with_client(mut self, addr: &str) -> Client {
        self.client_addr = Some(addr.to_owned());
        self
    }

    /// Reads one (possibly multi-line) reply, lines joined with '\n'.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.stream.read_line(&mut line).await.expect("read");
            assert!(n > 0, "connection closed; read so far: {all:?}");
            let done = line.as_bytes().get(3) == Some(&b' ');
            all.push_str(line.trim_end());
            if done {
                return all;
            }
            all.push('\n');
        }
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
    }

    /// Sends one command line and returns its reply.
    pub async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Runs LHLO, MAIL, the RCPTs and DATA with `message` (LF line ends, sent as CRLF; any
    /// octets, 8-bit ones too); returns the RCPT replies and the per-recipient DATA replies.
    pub async fn transaction(
        &mut self,
        xforward_ident: Option<&str>,
        from: &str,
        rcpts: &[&str],
        message: impl AsRef<[u8]>,
    ) -> (Vec<String>, Vec<String>) {
        let lhlo = self.command("LHLO test.example").await;
        assert!(lhlo.starts_with("250"), "{lhlo}");
        if let Some(ident) = xforward_ident {
            let r = self.command(&format!("XFORWARD IDENT={ident}")).await;
            assert!(r.starts_with("250"), "{r}");
        }
        if let Some(addr) = self.client_addr.clone() {
            let r = self.command(&format!("XFORWARD ADDR={addr}")).await;
            assert!(r.starts_with("250"), "{r}");
        }
        let r = self.command(&format!("MAIL FROM:<{from}>")).await;
        assert!(r.starts_with("250"), "{r}");
        let mut rcpt_replies = Vec::new();
        let mut accepted = 0;
        for rcpt in rcpts {
            let r = self.command(&format!("RCPT TO:<{rcpt}>")).await;
            if r.starts_with("250") {
                accepted += 1;
            }
            rcpt_replies.push(r);
        }
        let r = self.command("DATA").await;
        assert!(r.starts_with("354"), "{r}");
        let mut wire = Vec::with_capacity(message.as_ref().len() + 64);
        for &b in message.as_ref() {
            if b == b'\n' {
                wire.push(b'\r');
            }
            wire.push(b);
        }
        self.send(&wire).await;
        self.send(b".\r\n").await;
        let mut data_replies = Vec::new();
        for _ in 0..accepted {
            data_replies.push(self.reply().await);
        }
        (rcpt_replies, data_replies)
    }
}
