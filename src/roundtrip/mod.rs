//! Email round-trip monitoring: probes mailed out through the gateway to a mailbox that
//! forwards them back to `notify@`, timed, and an event when one does not come back in time.

pub mod model;
pub mod schedule;
pub mod token;
