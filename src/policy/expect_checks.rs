//! The checks of the `[[expect]]` entries that need nothing but the file, and the entry's keys
//! read into the model's terms (the device and the originator they name are resolved by the
//! plan, against the file and the database).

use super::check::{check_address, indent, unique_name, Kind, Problems, Seen};
use super::file::{Entries, ExpectEntry, DEFAULT_TIMEZONE};
use crate::events::model::{compile_regex, MatchLogic, Severity};
use crate::expect::model::{self, Every};
use crate::expect::schedule::{check, parse_duration};
use crate::route::address_key;

/// The value checks of expected-mail policies.
pub(crate) fn check_expects(entries: &Entries, problems: &mut Problems) {
    let mut names = Seen::new(Kind::Expect);
    for (i, e) in &entries.expects {
        let mut at = |text: String| problems.entry(Kind::Expect, *i, text);
        unique_name(&e.name, &mut names, *i, &mut at);
        if e.device.trim().is_empty() {
            at("device: must not be empty".into());
        }
        for why in [e.from().err(), e.every().err(), e.grace_s().err()]
            .into_iter()
            .flatten()
        {
            at(why);
        }
        if e.timezone.is_some() && e.cron.is_none() {
            at("timezone: only with cron (every counts seconds, in no time zone)".into());
        }
        if e.severity == Severity::Healthy {
            at("severity: \"healthy\" raises nothing; a miss or a failure needs notice, minor, major or critical".into());
        }
        check_match_strings(e, &mut at);
    }
}

/// `match`, `failure`, `success` and `start`: none empty, and each a regex that compiles (with
/// the limits of every policy regex) when `match_logic` is `regex`.
fn check_match_strings(e: &ExpectEntry, at: &mut impl FnMut(String)) {
    let regex = e.match_logic == MatchLogic::Regex;
    let mut one = |key: &str, text: &str, empty: &str| {
        if text.is_empty() {
            at(format!("{key}: {empty}"));
        } else if regex {
            if let Err(why) = compile_regex(text) {
                at(format!("{key}: invalid regex: {}", indent(&why)));
            }
        }
    };
    if let Some(text) = &e.matches {
        one(
            "match",
            text,
            "must not be empty (leave it out for any mail from the sender)",
        );
    }
    for (key, list) in [("failure", &e.failure), ("success", &e.success)] {
        for text in list {
            one(key, text, "a match string must not be empty");
        }
    }
    if let Some(text) = &e.start {
        one(
            "start",
            text,
            "must not be empty (leave it out for no start mail)",
        );
    }
}

impl ExpectEntry {
    /// Which mail is a report: `sender` (lower case) or `originator`, exactly one of them;
    /// `Err` is a problem naming the key.
    pub(super) fn from(&self) -> Result<model::From, String> {
        match (&self.sender, &self.originator) {
            (Some(_), Some(_)) => Err("originator: give sender or originator, not both".into()),
            (None, None) => Err("sender: missing (give sender, or originator)".into()),
            (Some(sender), None) => match check_address(sender) {
                Ok(()) => Ok(model::From::Sender(address_key(sender))),
                Err(why) => Err(format!("sender: {why}")),
            },
            (None, Some(name)) if name.trim().is_empty() => {
                Err("originator: must not be empty".into())
            }
            (None, Some(name)) => Ok(model::From::Originator(name.clone())),
        }
    }

    /// When reports are expected: `every`, or `cron` in `timezone`, exactly one of them and
    /// one that can be scheduled; `Err` is a problem naming the key.
    pub(super) fn every(&self) -> Result<Every, String> {
        match (&self.every, &self.cron) {
            (Some(_), Some(_)) => Err("cron: give every or cron, not both".into()),
            (None, None) => Err("every: missing (give every, or cron)".into()),
            (Some(text), None) => {
                let every =
                    Every::Seconds(parse_duration(text).map_err(|why| format!("every: {why}"))?);
                check(&every).map_err(|why| format!("every: {why}"))?;
                Ok(every)
            }
            (None, Some(expr)) => {
                let cron = |timezone: &str| Every::Cron {
                    expr: expr.clone(),
                    timezone: timezone.to_owned(),
                };
                // The expression on its own first, so that a problem names the key it is in.
                check(&cron(DEFAULT_TIMEZONE)).map_err(|why| format!("cron: {why}"))?;
                let every = cron(self.timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE));
                check(&every).map_err(|why| format!("timezone: {why}"))?;
                Ok(every)
            }
        }
    }

    /// Seconds a report may be late (none when `grace` is absent); `Err` is a problem naming
    /// the key.
    pub(super) fn grace_s(&self) -> Result<i32, String> {
        self.grace
            .as_deref()
            .map_or(Ok(0), parse_duration)
            .map_err(|why| format!("grace: {why}"))
    }
}

#[cfg(test)]
#[path = "expect_checks_tests.rs"]
mod tests;
