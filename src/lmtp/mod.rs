//! The LMTP server Postfix delivers to (RFC 2033): protocol only; what happens to accepted
//! recipients and messages is up to a [`Backend`].
//!
//! `command` parses a command line, `codec` splits lines and DATA off the read buffer,
//! `reply` holds every reply, `session` runs one connection over any stream and
//! `server` owns the listener, the connection cap and shutdown.

mod codec;
mod command;
mod reply;
mod server;
mod session;

use crate::envelope::Envelope;

pub use codec::stuff;
pub use reply::Reply;
pub use server::{serve, Listener, SocketFile};
pub use session::{run, Limits};

/// Where the LMTP server hands accepted recipients and messages.
pub trait Backend: Send + Sync + 'static {
    /// Whether RCPT accepts this address (as given, without `<>`; the backend compares
    /// case-insensitively where it wants to).
    fn accepts(&self, recipient: &str) -> impl std::future::Future<Output = bool> + Send;

    /// Stores `message` (the dot-unstuffed DATA, CRLF line ends, without the final ".") for
    /// every recipient of `envelope`; returns exactly one reply per `envelope.recipients`
    /// entry, in order.
    fn deliver(
        &self,
        envelope: &Envelope,
        message: Vec<u8>,
    ) -> impl std::future::Future<Output = Vec<Reply>> + Send;

    /// Told when a session starts (`true`) and when it ends: a backend that stores several
    /// sessions' messages together can tell from it how many might still send.
    fn session(&self, _started: bool) {}
}
