//! A gateway slow to say `250`: the policy service its `held` listener waits for.

use std::net::SocketAddr;
use std::time::Duration;

/// The Postfix policy service (the SMTPD access policy delegation protocol) that the gateway's
/// `held` listener asks at the end of DATA: it answers the first request only once the test
/// releases it, so the client waits for its `250`; later requests at once.
pub struct HeldPolicy {
    arrived: Option<tokio::sync::oneshot::Receiver<()>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HeldPolicy {
    /// Listens on `addr` (the gateway's `held_policy`).
    pub async fn start(addr: SocketAddr) -> HeldPolicy {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("binding the policy service on {addr}: {e}"));
        let (arrived_tx, arrived) = tokio::sync::oneshot::channel();
        let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut first = Some((arrived_tx, release_rx));
            while let Ok((stream, _)) = listener.accept().await {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                // Requests are `name=value` lines ending with an empty line.
                while matches!(stream.read_line(&mut line).await, Ok(n) if n > 0) {
                    if line.trim_end().is_empty() {
                        if let Some((arrived, release)) = first.take() {
                            let _ = arrived.send(());
                            let _ = release.await;
                        }
                        if stream
                            .get_mut()
                            .write_all(b"action=DUNNO\n\n")
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    line.clear();
                }
            }
        });
        HeldPolicy {
            arrived: Some(arrived),
            release: Some(release),
        }
    }

    /// Waits until the first end of DATA is being held; panics after `timeout`.
    pub async fn wait_until_held(&mut self, timeout: Duration) {
        let arrived = self.arrived.take().expect("waited for once");
        tokio::time::timeout(timeout, arrived)
            .await
            .expect("no end of DATA reached the held listener")
            .expect("the policy service ended");
    }

    /// Lets the held end of DATA be answered.
    pub fn release(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}
