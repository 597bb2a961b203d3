//! The expected-mail policies as mailops holds them.

use crate::events::model::{names, MatchIn, MatchLogic, Severity};

names!(
    /// What a report says, or that it did not come.
    Outcome {
        /// The job went well.
        Success = "success",
        /// The job failed.
        Failure = "failure",
    }
);

/// When reports are expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Every {
    /// Every so many seconds.
    Seconds(i32),
    /// At each time of a cron expression (minute hour day-of-month month day-of-week) in a
    /// time zone (an IANA name such as `Europe/Berlin`).
    Cron {
        /// The expression.
        expr: String,
        /// The time zone.
        timezone: String,
    },
}

/// Which mail is a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    /// Mail from this address or pattern (`*@domain`, `local@*`, `*@*`), lower case.
    Sender(String),
    /// Mail the originator policy of this name aligned (to the policy's device).
    Originator(String),
}

/// An `expect_policies` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectPolicy {
    /// Its id.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// The device the reports are about, where a miss or a failure raises its event.
    pub device_id: i64,
    /// Which mail is a report.
    pub from: From,
    /// What the match strings are tried on.
    pub match_in: MatchIn,
    /// Text or regex, for `matches`, `failure`, `success` and `start`.
    pub match_logic: MatchLogic,
    /// What a report's text must match; `None`: any mail from `from`.
    pub matches: Option<String>,
    /// When reports are expected.
    pub every: Every,
    /// Seconds a report may be late.
    pub grace_s: i32,
    /// The severity of the event a miss or a failure raises.
    pub severity: Severity,
    /// A report matching any of these is a failure (tried first).
    pub failure: Vec<String>,
    /// A report matching any of these (and no failure) is a success.
    pub success: Vec<String>,
    /// What a report matching neither list is.
    pub default_outcome: Outcome,
    /// A mail matching this (from `from`) says the job started: the report after it records
    /// the job's duration.
    pub start: Option<String>,
}
