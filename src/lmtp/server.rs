//! Binds the LMTP listener (unix socket or TCP), accepts connections up to a cap, and shuts
//! down gracefully: no new connections, transactions in flight finish, then return.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::{session, Backend, Limits, Reply};
use crate::config::Listen;

/// Socket-file mode: owner and group (Postfix's `mail_owner` is in the group) may connect.
const SOCKET_MODE: u32 = 0o660;
/// Longest pause after a failed accept (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// A unix domain socket; its file is removed when the listener is dropped.
    Unix(UnixListener, SocketFile),
    /// A TCP socket.
    Tcp(TcpListener),
}

/// A socket file this process created; dropping it removes the file if it is still the same.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Where the socket file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Another process may have replaced the file since: leave that one alone.
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warn!(path = %self.path.display(), error = %e, "could not remove the lmtp socket");
            }
        }
    }
}

impl Listener {
    /// Binds a TCP address, or a unix socket: the parent directory is created if missing, a
    /// stale socket nobody listens on is replaced, and the socket gets mode 0660 and group
    /// `socket_group` (an empty name keeps the process's group). A group that does not exist
    /// is an error naming it.
    pub async fn bind(listen: &Listen, socket_group: &str) -> io::Result<Listener> {
        match listen {
            Listen::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            Listen::Unix(path) => bind_unix(path, socket_group),
        }
    }

    /// `unix:/path` or the bound `ip:port`, for logs and tests.
    pub fn local_addr_string(&self) -> String {
        match self {
            Listener::Unix(_, file) => format!("unix:{}", file.path.display()),
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => addr.to_string(),
                Err(e) => format!("tcp (address unknown: {e})"),
            },
        }
    }

    async fn accept(&self) -> io::Result<(Connection, String)> {
        match self {
            Listener::Unix(listener, _) => {
                let (stream, _) = listener.accept().await?;
                Ok((Connection::Unix(stream), "unix".to_string()))
            }
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                // Replies are written in batches, once per flush: Nagle would only delay them.
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(error = %e, "could not set TCP_NODELAY");
                }
                Ok((Connection::Tcp(stream), peer.to_string()))
            }
        }
    }
}

fn bind_unix(path: &Path, socket_group: &str) -> io::Result<Listener> {
    // Look the group up first so a bad name leaves nothing behind.
    let gid = match socket_group {
        "" => None,
        name => Some(crate::group::id(name)?),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path)?;
    let meta = std::fs::symlink_metadata(path)?;
    // From here on, an error drops `file`, which removes the socket again.
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot give {} to group {socket_group:?}: {e}",
                    path.display()
                ),
            )
        })?;
    }
    Ok(Listener::Unix(listener, file))
}

/// Removes `path` if it is a socket nobody listens on; anything else there is an error.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by another process", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

/// An accepted connection of either kind.
enum Connection {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Connection {
    /// Answers `421` without waiting (a fresh socket's send buffer is empty) and closes.
    fn refuse(self) {
        let reply = Reply::too_many_connections().to_string();
        let written = match &self {
            Connection::Unix(stream) => stream.try_write(reply.as_bytes()),
            Connection::Tcp(stream) => stream.try_write(reply.as_bytes()),
        };
        if let Err(e) = written {
            debug!(error = %e, "could not send 421 to a refused connection");
        }
    }
}

/// What every session shares.
struct Shared<B> {
    backend: Arc<B>,
    limits: Limits,
    hostname: String,
    stopping: watch::Receiver<bool>,
}

/// Accepts connections until `shutdown` completes, then stops accepting, lets every session
/// finish the transaction in flight (sessions waiting for a command get `421 4.3.2` and are
/// closed), and returns once all sessions have ended.
pub async fn serve<B: Backend>(
    listener: Listener,
    backend: Arc<B>,
    limits: Limits,
    hostname: String,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let shared = Arc::new(Shared {
        backend,
        limits,
        hostname,
        stopping,
    });
    let mut sessions = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(ended) = sessions.join_next(), if !sessions.is_empty() => {
                log_panic(ended);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (connection, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: wait for sessions to end, keep serving.
                warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "lmtp accept failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            warn!(%peer, limit = shared.limits.max_connections, "lmtp connection refused: too many connections");
            connection.refuse();
            continue;
        };
        let span = info_span!("lmtp", peer = %peer);
        let shared = Arc::clone(&shared);
        let session = async move {
            let _permit = permit;
            let _counted = Counted::new(&*shared.backend);
            match connection {
                Connection::Unix(stream) => run_session(stream, &shared).await,
                Connection::Tcp(stream) => run_session(stream, &shared).await,
            }
        };
        sessions.spawn(session.instrument(span));
    }
    // Stop accepting (this also removes the socket file), then tell the sessions.
    drop(listener);
    info!(
        sessions = sessions.len(),
        "lmtp stopping, waiting for sessions"
    );
    let _ = stop.send(true);
    while let Some(ended) = sessions.join_next().await {
        log_panic(ended);
    }
    Ok(())
}

async fn run_session<S, B>(stream: S, shared: &Shared<B>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    let mut stopping = shared.stopping.clone();
    let shutdown = async move {
        // An error means the sender is gone, which also means stop.
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let backend = Arc::clone(&shared.backend);
    match session::run(stream, backend, &shared.limits, &shared.hostname, shutdown).await {
        Ok(()) => debug!("session ended"),
        Err(e) => debug!(error = %e, "session ended by an I/O error"),
    }
}

/// Tells the backend a session started and, once dropped (also by a panic), that it ended.
struct Counted<'a, B: Backend>(&'a B);

impl<'a, B: Backend> Counted<'a, B> {
    fn new(backend: &'a B) -> Self {
        backend.session(true);
        Counted(backend)
    }
}

impl<B: Backend> Drop for Counted<'_, B> {
    fn drop(&mut self) {
        self.0.session(false);
    }
}

fn log_panic(ended: Result<(), JoinError>) {
    if let Err(e) = ended {
        error!(error = %e, "lmtp session task failed");
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{SystemTime, UNIX_EPOCH};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::lmtp::session::tests::TestBackend;

    /// A line-reading client over any stream.
    struct Client<S> {
        stream: BufReader<S>,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
        /// The next reply line, without CRLF; `None` at end of stream.
        async fn line(&mut self) -> Option<String> {
            let mut line = String::new();
            match self.stream.read_line(&mut line).await.expect("read") {
                0 => None,
                _ => Some(line.trim_end().to_string()),
            }
        }

        /// Sends `text` and returns the next `replies` reply lines.
        async fn send(&mut self, text: &str, replies: usize) -> Vec<String> {
            self.stream
                .get_mut()
                .write_all(text.as_bytes())
                .await
                .expect("write");
            let mut lines = Vec::new();
            for _ in 0..replies {
                lines.push(self.line().await.expect("a reply"));
            }
            lines
        }
    }

    async fn tcp_client(addr: &str) -> Client<TcpStream> {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client {
            stream: BufReader::new(stream),
        }
    }

    /// Starts `serve`; returns the server task and the switch that shuts it down.
    fn start(
        listener: Listener,
        limits: Limits,
    ) -> (
        Arc<TestBackend>,
        JoinHandle<io::Result<()>>,
        oneshot::Sender<()>,
    ) {
        let backend = Arc::new(TestBackend::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&backend),
            limits,
            "mx.test".into(),
            shutdown,
        ));
        (backend, server, stop)
    }

    async fn bind_tcp() -> (Listener, String) {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let listener = Listener::bind(&Listen::Tcp(addr), "").await.expect("bind");
        let local = listener.local_addr_string();
        (listener, local)
    }

    /// LHLO through QUIT for one message to x@known.test, checking each reply code.
    async fn one_message<S: AsyncRead + AsyncWrite + Unpin>(client: &mut Client<S>) {
        assert_eq!(
            client.line().await.as_deref(),
            Some("220 mx.test LMTP mailops ready")
        );
        let lhlo = client.send("LHLO c.test\r\n", 7).await;
        assert_eq!(
            lhlo[6],
            "250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"
        );
        let replies = client
            .send(
                "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n",
                3,
            )
            .await;
        assert_eq!(replies[2], "354 End data with <CR><LF>.<CR><LF>");
        let replies = client.send("hello\r\n.\r\nQUIT\r\n", 2).await;
        assert_eq!(
            replies,
            ["250 2.0.0 <x@known.test> delivered", "221 2.0.0 Bye"]
        );
        assert_eq!(client.line().await, None);
    }

    #[tokio::test]
    async fn serves_tcp() {
        let (listener, addr) = bind_tcp().await;
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        let (backend, server, stop) = start(listener, Limits::default());
        one_message(&mut tcp_client(&addr).await).await;
        assert_eq!(backend.delivered()[0].1, b"hello\r\n");
        let _ = stop.send(());
        server.await.expect("server task").expect("serve");
    }

    #[tokio::test]
    async fn tells_the_backend_when_sessions_start_and_end() {
        let (listener, addr) = bind_tcp().await;
        let (backend, server, stop) = start(listener, Limits::default());
        let sessions = || backend.sessions.load(std::sync::atomic::Ordering::SeqCst);
        let mut first = tcp_client(&addr).await;
        let mut second = tcp_client(&addr).await;
        // Greeted: both sessions have started.
        assert!(first.line().await.is_some() && second.line().await.is_some());
        assert_eq!(sessions(), 2);
        assert_eq!(first.send("QUIT\r\n", 1).await, ["221 2.0.0 Bye"]);
        assert_eq!(first.line().await, None);
        // The second one ends when the server stops.
        let _ = stop.send(());
        assert!(second.line().await.is_some_and(|l| l.starts_with("421 ")));
        assert_eq!(second.line().await, None);
        server.await.expect("server task").expect("serve");
        assert_eq!(sessions(), 0);
    }

    /// A fresh path under the temp dir, in a directory that does not exist yet.
    fn socket_path(name: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::env::temp_dir()
            .join(format!("mailops-lmtp-{}-{nanos}", std::process::id()))
            .join(name)
    }

    /// The name of this process's group, from /etc/group, if it is listed there.
    fn own_group() -> Option<(String, u32)> {
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        let groups = std::fs::read_to_string("/etc/group").ok()?;
        groups.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.get(2)?.parse::<u32>().ok()? == gid).then(|| (fields[0].to_string(), gid))
        })
    }

    #[tokio::test]
    async fn serves_a_unix_socket_and_removes_it() {
        let path = socket_path("lmtp.sock");
        let listen = Listen::Unix(path.clone());
        let (group, gid) = own_group().unwrap_or_default();
        // A stale socket nobody listens on is replaced.
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
        let listener = Listener::bind(&listen, &group).await.expect("bind");
        assert_eq!(
            listener.local_addr_string(),
            format!("unix:{}", path.display())
        );
        let meta = std::fs::metadata(&path).expect("socket exists");
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        if !group.is_empty() {
            assert_eq!(meta.gid(), gid);
        }
        // A socket someone listens on is left alone.
        let busy = Listener::bind(&listen, "").await.expect_err("in use");
        assert_eq!(busy.kind(), io::ErrorKind::AddrInUse);

        let (backend, server, stop) = start(listener, Limits::default());
        let stream = UnixStream::connect(&path).await.expect("connect");
        one_message(&mut Client {
            stream: BufReader::new(stream),
        })
        .await;
        assert_eq!(backend.delivered().len(), 1);
        let _ = stop.send(());
        server.await.expect("server task").expect("serve");
        assert!(!path.exists(), "socket file removed at shutdown");
        let _ = std::fs::remove_dir_all(path.parent().expect("parent"));
    }

    #[tokio::test]
    async fn unix_bind_errors_name_the_problem() {
        let path = socket_path("lmtp.sock");
        let listen = Listen::Unix(path.clone());
        let error = Listener::bind(&listen, "no-such-group-mailops")
            .await
            .expect_err("no group");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(
            error.to_string().contains("no-such-group-mailops"),
            "{error}"
        );
        assert!(!path.exists());

        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"not a socket").expect("file");
        let error = Listener::bind(&listen, "").await.expect_err("a plain file");
        assert!(error.to_string().contains("not a socket"), "{error}");
        assert!(path.exists(), "the file is left alone");
        let _ = std::fs::remove_dir_all(path.parent().expect("parent"));
    }

    #[tokio::test]
    async fn connections_past_the_cap_get_421() {
        let (listener, addr) = bind_tcp().await;
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let (_backend, server, stop) = start(listener, limits);
        let mut first = tcp_client(&addr).await;
        assert_eq!(
            first.line().await.as_deref(),
            Some("220 mx.test LMTP mailops ready")
        );
        let mut second = tcp_client(&addr).await;
        assert_eq!(
            second.line().await.as_deref(),
            Some("421 4.3.2 Too many connections")
        );
        assert_eq!(second.line().await, None);
        // Once the first session ends, its slot is free again.
        assert_eq!(first.send("QUIT\r\n", 1).await, ["221 2.0.0 Bye"]);
        assert_eq!(first.line().await, None);
        let mut third = loop {
            let mut client = tcp_client(&addr).await;
            match client.line().await.as_deref() {
                Some("220 mx.test LMTP mailops ready") => break client,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        assert_eq!(third.send("QUIT\r\n", 1).await, ["221 2.0.0 Bye"]);
        let _ = stop.send(());
        server.await.expect("server task").expect("serve");
    }

    #[tokio::test]
    async fn shutdown_lets_the_transaction_in_flight_finish() {
        let (listener, addr) = bind_tcp().await;
        let (backend, server, stop) = start(listener, Limits::default());
        let mut busy = tcp_client(&addr).await;
        let mut idle = tcp_client(&addr).await;
        assert!(busy.line().await.is_some() && idle.line().await.is_some());
        busy.send(
            "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\npart one\r\n",
            10,
        )
        .await;
        let _ = stop.send(());
        // The idle session is told at once; the one in DATA is not.
        assert_eq!(
            idle.line().await.as_deref(),
            Some("421 4.3.2 Service shutting down")
        );
        assert_eq!(idle.line().await, None);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !server.is_finished(),
            "serve waits for the transaction in flight"
        );
        assert!(
            TcpStream::connect(&addr).await.is_err(),
            "no longer accepting"
        );
        let replies = busy.send("part two\r\n.\r\n", 2).await;
        assert_eq!(
            replies,
            [
                "250 2.0.0 <x@known.test> delivered",
                "421 4.3.2 Service shutting down"
            ]
        );
        assert_eq!(busy.line().await, None);
        server.await.expect("server task").expect("serve");
        assert_eq!(backend.delivered()[0].1, b"part one\r\npart two\r\n");
    }
}
