//! One LMTP session (RFC 2033) over any byte stream: the command state machine, pipelined
//! reading and writing, DATA, and one reply per recipient.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, error, trace, Instrument};

use super::codec::{DataDecoder, DataError, Line, LineDecoder};
use super::command::{self, Attribute, Command};
use super::{Backend, Reply};
use crate::envelope::Envelope;
use crate::metrics;

/// Octets asked of the stream per read.
const READ_CHUNK: usize = 16 * 1024;
/// The slowest DATA kept up, in octets per second: Postfix's `smtpd_min_data_rate` default.
const MIN_DATA_RATE: f64 = 500.0;

/// The limits one session and the server enforce.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message, in octets after dot-unstuffing.
    pub max_message_size: usize,
    /// Recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// How long the client may take to send a complete command or the next DATA octets.
    pub idle_timeout: Duration,
    /// Bad commands allowed; one more closes the session with `421 4.7.0`.
    pub max_errors: usize,
    /// Sessions served at once; more connections get `421 4.3.2`.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: 26_214_400,
            max_recipients: 1000,
            idle_timeout: Duration::from_secs(300),
            max_errors: 20,
            max_connections: 256,
        }
    }
}

/// Runs one session on `stream` until QUIT, a `421`, or the client goes away. Once `shutdown`
/// completes, the session answers `421 4.3.2` when it next waits for a command (a DATA or
/// delivery in flight finishes first). Returns the stream's I/O error, if one ended it.
pub async fn run<S, B>(
    stream: S,
    backend: Arc<B>,
    limits: &Limits,
    hostname: &str,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    let mut conn = Connection {
        stream,
        buf: Vec::with_capacity(READ_CHUNK),
        pos: 0,
        out: Vec::new(),
        idle: limits.idle_timeout,
    };
    let mut session = Session {
        backend,
        limits,
        hostname,
        greeted: false,
        transaction: None,
        forwarded: Envelope::default(),
        errors: 0,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let mut lines = LineDecoder::default();
    let mut deadline = Instant::now() + limits.idle_timeout;
    conn.reply(&Reply::greeting(hostname));
    loop {
        let (consumed, input) = {
            let (n, line) = lines.decode(&conn.buf[conn.pos..]);
            let input = match line {
                Line::Complete(text) => {
                    trace!(line = %String::from_utf8_lossy(text), "<");
                    Some(command::parse(text))
                }
                Line::TooLong => Some(Err(command::Error::LineTooLong)),
                Line::Incomplete => None,
            };
            (n, input)
        };
        conn.pos += consumed;
        let Some(input) = input else {
            // RFC 2920 §3.1: replies go out once no complete command is left to answer.
            conn.flush().await?;
            tokio::select! {
                biased;
                () = &mut shutdown => return conn.close(&Reply::shutting_down()).await,
                read = tokio::time::timeout_at(deadline, conn.fill()) => match read {
                    Err(_) => return conn.close(&Reply::idle_timeout()).await,
                    Ok(read) => if read? == 0 {
                        debug!("client closed the connection");
                        return Ok(());
                    },
                },
            }
            continue;
        };
        deadline = Instant::now() + limits.idle_timeout;
        match session.command(input).await {
            Step::Reply(reply) => conn.reply(&reply),
            Step::Close(reply) => return conn.close(&reply).await,
            Step::Data(reply, size_hint) => {
                conn.reply(&reply);
                let data = DataDecoder::new(limits.max_message_size, size_hint);
                let Some(message) = conn.receive_data(data).await? else {
                    return conn.close(&Reply::idle_timeout()).await;
                };
                let received = Instant::now();
                for reply in session.deliver(message).await {
                    conn.reply(&reply);
                }
                // The client is waiting on these replies: send them now.
                conn.flush().await?;
                metrics::get().data_replied(received.elapsed());
                deadline = Instant::now() + limits.idle_timeout;
            }
        }
        if session.errors > limits.max_errors {
            return conn.close(&Reply::too_many_errors()).await;
        }
    }
}

/// What a command leads to.
enum Step {
    /// Send the reply and read the next command.
    Reply(Reply),
    /// Send `354` and read DATA; carries MAIL's SIZE.
    Data(Reply, Option<u64>),
    /// Send the reply and close.
    Close(Reply),
}

/// A transaction in progress: MAIL accepted.
struct Transaction {
    envelope: Envelope,
    size_hint: Option<u64>,
}

/// The command state machine, apart from the stream.
struct Session<'a, B> {
    backend: Arc<B>,
    limits: &'a Limits,
    hostname: &'a str,
    /// LHLO was accepted.
    greeted: bool,
    transaction: Option<Transaction>,
    /// XFORWARD attributes for the next transaction (only the XFORWARD fields are used).
    forwarded: Envelope,
    /// Bad commands so far.
    errors: usize,
}

impl<B: Backend> Session<'_, B> {
    /// Answers one command line; bad commands count towards `max_errors`.
    async fn command(&mut self, input: Result<Command, command::Error>) -> Step {
        let answer = match input {
            Ok(command) => self.answer(command).await,
            Err(error) => Err(Reply::from(&error)),
        };
        answer.unwrap_or_else(|reply| {
            self.errors += 1;
            Step::Reply(reply)
        })
    }

    /// Checks each command's preconditions first (RFC 5321 §4.1.4), then carries it out.
    /// `Err` is a bad command.
    async fn answer(&mut self, command: Command) -> Result<Step, Reply> {
        let reply = match command {
            Command::Lhlo(_) => {
                // RFC 5321 §4.1.4: a repeated greeting resets the transaction like RSET.
                self.reset();
                self.greeted = true;
                Reply::lhlo(self.hostname, self.limits.max_message_size)
            }
            Command::Mail(mail) => {
                if !self.greeted {
                    return Err(Reply::bad_sequence("Send LHLO first"));
                }
                if self.transaction.is_some() {
                    return Err(Reply::bad_sequence("Nested MAIL command"));
                }
                let max = u64::try_from(self.limits.max_message_size).unwrap_or(u64::MAX);
                // RFC 1870 §6.1: refuse a declared size over the limit at MAIL.
                if mail.size.is_some_and(|size| size > max) {
                    return Ok(Step::Reply(Reply::size_exceeded()));
                }
                let mut envelope = std::mem::take(&mut self.forwarded);
                envelope.mail_from = mail.address;
                envelope.smtputf8 = mail.smtputf8;
                self.transaction = Some(Transaction {
                    envelope,
                    size_hint: mail.size,
                });
                Reply::sender_ok()
            }
            Command::Rcpt(address) => {
                let Some(transaction) = &mut self.transaction else {
                    return Err(Reply::bad_sequence("Need MAIL command"));
                };
                let envelope = &mut transaction.envelope;
                if !envelope.smtputf8 && !address.is_ascii() {
                    return Err(Reply::needs_smtputf8());
                }
                if envelope.recipients.len() >= self.limits.max_recipients {
                    // RFC 5321 §4.5.3.1.10: 452, and the client sends the rest later.
                    Reply::too_many_recipients()
                } else if self.backend.accepts(&address).await {
                    envelope.recipients.push(address);
                    Reply::recipient_ok()
                } else {
                    Reply::recipient_unknown(&address)
                }
            }
            Command::Data => {
                let Some(transaction) = &self.transaction else {
                    return Err(Reply::bad_sequence("Need MAIL command"));
                };
                if transaction.envelope.recipients.is_empty() {
                    // RFC 2920 §3.1: a pipelining client sends DATA even when every RCPT
                    // failed, so this is not counted as a client error.
                    return Ok(Step::Reply(Reply::bad_sequence("No valid recipients")));
                }
                return Ok(Step::Data(Reply::start_data(), transaction.size_hint));
            }
            Command::Rset => {
                self.reset();
                Reply::ok()
            }
            Command::Noop => Reply::ok(),
            Command::Vrfy => Reply::cannot_verify(),
            Command::Quit => return Ok(Step::Close(Reply::bye())),
            Command::Xforward(attributes) => {
                if !self.greeted {
                    return Err(Reply::bad_sequence("Send LHLO first"));
                }
                // XFORWARD_README: not between MAIL and the end of the transaction.
                if self.transaction.is_some() {
                    return Err(Reply::bad_sequence("Mail transaction in progress"));
                }
                for (attribute, value) in attributes {
                    let field = match attribute {
                        Attribute::Ident => &mut self.forwarded.queue_id,
                        Attribute::Addr => &mut self.forwarded.client_addr,
                        Attribute::Name => &mut self.forwarded.client_name,
                        Attribute::Helo => &mut self.forwarded.client_helo,
                        Attribute::Proto => &mut self.forwarded.protocol,
                        Attribute::Port | Attribute::Source => continue,
                    };
                    *field = value;
                }
                Reply::ok()
            }
        };
        Ok(Step::Reply(reply))
    }

    /// Ends the transaction; XFORWARD attributes last until then (XFORWARD_README).
    fn reset(&mut self) {
        self.transaction = None;
        self.forwarded = Envelope::default();
    }

    /// Ends the transaction with DATA's outcome: exactly one reply per accepted recipient,
    /// in RCPT order (RFC 2033 §4.2).
    async fn deliver(&mut self, data: Result<Vec<u8>, DataError>) -> Vec<Reply> {
        let Some(Transaction { envelope, .. }) = self.transaction.take() else {
            return Vec::new();
        };
        let count = envelope.recipients.len();
        let message = match data {
            Ok(message) => message,
            Err(error) => {
                debug!(%error, recipients = count, "message refused");
                let reply = match error {
                    DataError::TooBig => Reply::message_too_big(),
                    DataError::LineTooLong => Reply::message_line_too_long(),
                };
                return vec![reply; count];
            }
        };
        let (size, started) = (message.len(), Instant::now());
        let queue_id = envelope.queue_id.clone();
        let backend = Arc::clone(&self.backend);
        // A panic in the backend ends its own task, not this session or the server.
        let task = tokio::spawn(
            async move { backend.deliver(&envelope, message).await }
                .instrument(tracing::Span::current()),
        );
        match task.await {
            Ok(replies) if replies.len() == count => {
                debug!(
                    ?queue_id,
                    size,
                    recipients = count,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "message handed to backend"
                );
                replies
            }
            Ok(replies) => {
                error!(
                    ?queue_id,
                    expected = count,
                    got = replies.len(),
                    "backend returned the wrong number of replies"
                );
                vec![Reply::local_error(); count]
            }
            Err(join) => {
                error!(?queue_id, error = %join, "backend failed delivering a message");
                vec![Reply::local_error(); count]
            }
        }
    }
}

/// The stream with its read buffer and pending replies.
struct Connection<S> {
    stream: S,
    /// Octets read; those before `pos` are consumed.
    buf: Vec<u8>,
    pos: usize,
    /// Replies not yet written.
    out: Vec<u8>,
    /// How long one read or one flush may take.
    idle: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Queues a reply; it is written on the next flush.
    fn reply(&mut self, reply: &Reply) {
        metrics::get().lmtp_reply(reply.code());
        let text = reply.to_string();
        trace!(reply = %text.trim_end(), ">");
        self.out.extend_from_slice(text.as_bytes());
    }

    /// Writes the queued replies; a client that stops reading them is cut off after the idle
    /// timeout.
    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        let late = |_| io::Error::new(io::ErrorKind::TimedOut, "client not reading replies");
        tokio::time::timeout(self.idle, write)
            .await
            .map_err(late)??;
        self.out.clear();
        Ok(())
    }

    /// Sends `reply` after the queued ones and closes the stream.
    async fn close(&mut self, reply: &Reply) -> io::Result<()> {
        self.reply(reply);
        self.flush().await?;
        self.stream.shutdown().await
    }

    /// Reads once more into the buffer; `Ok(0)` at end of stream. Cancel-safe.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads DATA to its end; `Ok(None)` on idle timeout. The end of the stream before the
    /// end of DATA is an error: nothing is delivered.
    ///
    /// The deadline is not per read: it starts an idle timeout away and each octet received
    /// moves it on by `1 / MIN_DATA_RATE` s, never past an idle timeout from now (as Postfix's
    /// `smtpd_min_data_rate`). A client trickling a byte now and then is cut off after about
    /// an idle timeout instead of holding the session for ever; one sending at least
    /// `MIN_DATA_RATE` octets a second is never hurried.
    async fn receive_data(
        &mut self,
        mut data: DataDecoder,
    ) -> io::Result<Option<Result<Vec<u8>, DataError>>> {
        let mut deadline = Instant::now() + self.idle;
        loop {
            let (n, done) = data.decode(&self.buf[self.pos..]);
            self.pos += n;
            if done {
                return Ok(Some(data.finish()));
            }
            self.flush().await?;
            let Ok(read) = tokio::time::timeout_at(deadline, self.fill()).await else {
                return Ok(None);
            };
            let read = read?;
            if read == 0 {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "end of stream in DATA");
                return Err(eof);
            }
            let earned = Duration::from_secs_f64(read as f64 / MIN_DATA_RATE);
            deadline = (deadline + earned).min(Instant::now() + self.idle);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
pub(crate) mod tests;
