//! Unit tests of planning a policy file against the database's state, by topic: the offline
//! model (`offline`), changes against what is there (`changes`), references to what only the
//! database has (`references`), `--prune` (`prune`), the events entries of issue 15 (`keys`),
//! expected mail (`expect`). Here: what they share.

// Loaded with #[path] from plan.rs, so its modules are named by path too.
#[path = "plan_tests/changes.rs"]
mod changes;
#[path = "plan_tests/expect.rs"]
mod expect;
#[path = "plan_tests/keys.rs"]
mod keys;
#[path = "plan_tests/offline.rs"]
mod offline;
#[path = "plan_tests/prune.rs"]
mod prune;
#[path = "plan_tests/references.rs"]
mod references;

use super::*;
use crate::events::model::{Alignment, MatchLogic, PatternType, RegexType, Severity};
use crate::policy::file::DEFAULT_BODY;
use crate::policy::Counts;
use crate::tickets::model::{Access, Messages, Status};

/// The sample shared with the other policy tests: every kind of entry.
const FILE: &str = include_str!("../../tests/fixtures/policies.toml");

/// `FILE` without the entries holding any of these lines (each entry is a paragraph).
fn without(lines: &[&str]) -> String {
    let drop = |entry: &&str| entry.lines().any(|l| lines.contains(&l));
    FILE.split_inclusive("\n\n").filter(|e| !drop(e)).collect()
}

fn file(text: &str) -> PolicyFile {
    PolicyFile::parse(text).expect("valid file")
}

/// The state after applying `text` to an empty database, as the in-memory writes leave it.
fn applied(text: &str) -> Existing {
    let mut state = Existing::default();
    plan(&file(text), Some(&state), false)
        .expect("plans")
        .execute_in_memory(&mut state);
    state
}
