//! What an apply changed (or, in a dry run, would change), per table.

use std::fmt;

/// How many rows of one table an apply created, updated, left alone and deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows added.
    pub created: usize,
    /// Rows the file changed.
    pub updated: usize,
    /// Rows the file has that were already as it says.
    pub unchanged: usize,
    /// Rows `--prune` removed.
    pub deleted: usize,
}

/// What an apply changed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// `devices`
    pub devices: Counts,
    /// `originator_policies`
    pub originators: Counts,
    /// `event_policies`
    pub event_policies: Counts,
    /// `users`
    pub users: Counts,
    /// `queues`; a queue whose members change counts as updated.
    pub queues: Counts,
    /// `ticket_templates`
    pub ticket_templates: Counts,
    /// `ticket_policies`
    pub ticket_policies: Counts,
    /// `roundtrip_policies`
    pub roundtrips: Counts,
    /// `expect_policies`
    pub expects: Counts,
}

impl Summary {
    /// Whether anything was (or would be) written.
    pub fn changed(&self) -> bool {
        self.tables()
            .iter()
            .any(|(_, c)| c.created + c.updated + c.deleted > 0)
    }

    /// Each table's counts, with the name the summary gives it.
    fn tables(&self) -> [(&'static str, Counts); 9] {
        [
            ("devices", self.devices),
            ("originators", self.originators),
            ("event policies", self.event_policies),
            ("users", self.users),
            ("queues", self.queues),
            ("ticket templates", self.ticket_templates),
            ("ticket policies", self.ticket_policies),
            ("round-trip policies", self.roundtrips),
            ("expected-mail policies", self.expects),
        ]
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, c) in self.tables() {
            writeln!(
                f,
                "{name}: {} created, {} updated, {} unchanged, {} deleted",
                c.created, c.updated, c.unchanged, c.deleted
            )?;
        }
        Ok(())
    }
}
