//! Which expected-mail policies a mail reports to, and what it reports: pure, so `serve` and
//! `mailops policy test` decide alike.

use std::time::SystemTime;

use super::model::{ExpectPolicy, From, Outcome};
use super::schedule::Schedule;
use crate::events::evaluate::{Alert, Write};
use crate::events::model::MatchIn;
use crate::events::policies::{Matcher, Sender, Senders};

/// One expected-mail policy, ready to run.
#[derive(Debug)]
pub struct Compiled {
    /// The policy.
    pub policy: ExpectPolicy,
    /// When its reports are due.
    pub schedule: Schedule,
    senders: Option<Senders>,
    matches: Option<Matcher>,
    failure: Vec<Matcher>,
    success: Vec<Matcher>,
    start: Option<Matcher>,
}

/// The expected-mail policies in force.
#[derive(Debug, Default)]
pub struct Expects {
    compiled: Vec<Compiled>,
}

impl Expects {
    /// Compiles `policies`; one that does not compile is left out, with why.
    pub fn new(policies: Vec<ExpectPolicy>) -> (Expects, Vec<String>) {
        let mut problems = Vec::new();
        let compiled = policies
            .into_iter()
            .filter_map(|policy| {
                Compiled::new(policy)
                    .map_err(|(name, why)| problems.push(format!("expect {name:?}: {why}")))
                    .ok()
            })
            .collect();
        (Expects { compiled }, problems)
    }

    /// Every policy.
    pub fn all(&self) -> &[Compiled] {
        &self.compiled
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }
}

impl Compiled {
    fn new(policy: ExpectPolicy) -> Result<Compiled, (String, String)> {
        let fail = |why: String| (policy.name.clone(), why);
        let logic = policy.match_logic;
        // Compiled now, not when first used: a failure string that would never match must
        // leave the policy out (with a warning), not let failures pass as successes.
        let one = |pattern: &String| Matcher::compiled(logic, pattern);
        let many = |patterns: &[String]| patterns.iter().map(one).collect::<Result<Vec<_>, _>>();
        Ok(Compiled {
            schedule: Schedule::new(&policy.every).map_err(fail)?,
            senders: match &policy.from {
                From::Sender(address) => Some(Senders::new(address)),
                From::Originator(_) => None,
            },
            matches: policy.matches.as_ref().map(one).transpose().map_err(fail)?,
            failure: many(&policy.failure).map_err(fail)?,
            success: many(&policy.success).map_err(fail)?,
            start: policy.start.as_ref().map(one).transpose().map_err(fail)?,
            policy,
        })
    }
}

/// What a mail is to one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The job started (its start mail).
    Started,
    /// Its report, and why it is classified so.
    Report(Outcome, String),
}

/// A mail's part in one expected-mail policy.
#[derive(Debug)]
pub struct Report<'a> {
    /// The policy.
    pub compiled: &'a Compiled,
    /// What the mail is to it.
    pub kind: Kind,
}

/// What `alert`, aligned by the events pipeline to `aligned` (its device and the name of the
/// originator policy that yielded it, if any), is to each expected-mail policy: a mail counts
/// when its sender is the policy's (or its originator aligned it), it is about the policy's
/// device (when aligned to one) and its text matches the policy's `match`.
pub fn reports<'a>(
    expects: &'a Expects,
    alert: &Alert<'_>,
    aligned: Option<(i64, Option<&str>)>,
) -> Vec<Report<'a>> {
    let sender = Sender::new(alert.from);
    let mut out = Vec::new();
    for c in &expects.compiled {
        let p = &c.policy;
        let from = match (&p.from, &c.senders) {
            (From::Originator(name), _) => {
                aligned.is_some_and(|(_, by)| by.is_some_and(|by| by == name))
            }
            (From::Sender(_), Some(senders)) => senders.admit(&sender),
            (From::Sender(_), None) => false,
        };
        let device = aligned.is_none_or(|(device, _)| device == p.device_id);
        if !from || !device {
            continue;
        }
        let subject_and_body;
        let text = match p.match_in {
            MatchIn::Subject => alert.subject,
            MatchIn::Body => alert.body,
            MatchIn::SubjectAndBody => {
                subject_and_body = format!("{}\n{}", alert.subject, alert.body);
                &subject_and_body
            }
        };
        if c.matches.as_ref().is_some_and(|m| !m.is_match(text)) {
            continue;
        }
        let kind = if c.start.as_ref().is_some_and(|m| m.is_match(text)) {
            Kind::Started
        } else {
            classify(c, text)
        };
        out.push(Report { compiled: c, kind });
    }
    out
}

/// A report's outcome: failure if any failure string matches, else success if any success
/// string does, else the policy's default.
fn classify(c: &Compiled, text: &str) -> Kind {
    let p = &c.policy;
    let first = |matchers: &[Matcher], patterns: &[String]| {
        matchers
            .iter()
            .zip(patterns)
            .find(|(m, _)| m.is_match(text))
            .map(|(_, pattern)| pattern.clone())
    };
    if let Some(pattern) = first(&c.failure, &p.failure) {
        return Kind::Report(Outcome::Failure, format!("failure {pattern:?} matched"));
    }
    if let Some(pattern) = first(&c.success, &p.success) {
        return Kind::Report(Outcome::Success, format!("success {pattern:?} matched"));
    }
    Kind::Report(
        p.default_outcome,
        format!("neither list matched: default {}", p.default_outcome),
    )
}

impl Report<'_> {
    /// The row it writes with the mail, its next deadline counted from `now`.
    pub fn write(&self, now: jiff::Timestamp, subject: &str) -> Write {
        let p = &self.compiled.policy;
        let (outcome, message, due) = match &self.kind {
            Kind::Started => ("started", String::new(), None),
            Kind::Report(outcome, why) => (
                outcome.as_str(),
                format!(
                    "Expected mail {}: the report is a failure ({why}): {subject}",
                    p.name
                ),
                Some(SystemTime::from(
                    self.compiled.schedule.due_after_report(now, p.grace_s),
                )),
            ),
        };
        Write::Report {
            expect_policy_id: p.id,
            device_id: p.device_id,
            outcome,
            due,
            severity: p.severity,
            message,
        }
    }
}

/// What `mailops policy test` says of `reports`: a section naming each policy the mail reports
/// to and how it was classified, and the rows they write (`device` names a device).
pub fn describe(reports: &[Report<'_>], device: impl Fn(i64) -> String) -> (String, Vec<String>) {
    let mut text = "\nexpected mail:\n".to_owned();
    if reports.is_empty() {
        text += "  (none: the mail is no policy's report)\n";
    }
    let mut rows = Vec::new();
    for r in reports {
        let p = &r.compiled.policy;
        let on = device(p.device_id);
        match &r.kind {
            Kind::Started => {
                text += &format!("  {}: the job's start mail\n", p.name);
                rows.push(format!(
                    "expect_reports: {} started (the report after it records the duration)",
                    p.name
                ));
            }
            Kind::Report(outcome, why) => {
                text += &format!("  {}: a report, {outcome} ({why})\n", p.name);
                rows.push(format!("expect_reports: {} {outcome}", p.name));
                rows.push(match outcome {
                    Outcome::Failure => format!(
                        "events: {} {} on {on} (or count a repeat of the active one)",
                        p.name, p.severity
                    ),
                    Outcome::Success => {
                        format!("events: clear the active {} event on {on}", p.name)
                    }
                });
            }
        }
    }
    (text, rows)
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
