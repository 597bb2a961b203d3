//! The round-trip policies as mailops holds them.

use crate::events::model::Severity;

/// A `roundtrip_policies` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundtripPolicy {
    /// Its id.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// The device its timings and events belong to.
    pub device_id: i64,
    /// The external mailbox the probe goes to (it forwards it back to `notify@`).
    pub send_to: String,
    /// The probe's From and envelope sender.
    pub from_address: String,
    /// Seconds between probes.
    pub interval_s: i32,
    /// Seconds a probe may take to come back.
    pub timeout_s: i32,
    /// Whether probes are sent.
    pub enabled: bool,
    /// The probe's text (the token is added to it).
    pub body: String,
    /// The severity of the timeout event.
    pub severity: Severity,
}
