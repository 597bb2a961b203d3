//! One mail transaction's envelope, as the LMTP server received it and the store records it.

/// One mail transaction: sender, recipients and what Postfix forwarded about its client.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The reverse-path without `<>`; `""` for the null sender `<>`.
    pub mail_from: String,
    /// Accepted RCPT addresses in RCPT order, repeats kept.
    pub recipients: Vec<String>,
    /// XFORWARD IDENT: Postfix's queue id; `None` when not sent or `[UNAVAILABLE]`.
    pub queue_id: Option<String>,
    /// XFORWARD ADDR.
    pub client_addr: Option<String>,
    /// XFORWARD NAME.
    pub client_name: Option<String>,
    /// XFORWARD HELO.
    pub client_helo: Option<String>,
    /// XFORWARD PROTO.
    pub protocol: Option<String>,
    /// MAIL ... SMTPUTF8 was given.
    pub smtputf8: bool,
}
