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
}

impl Summary {
    /// Whether anything was (or would be) written.
    pub fn changed(&self) -> bool {
        [self.devices, self.originators, self.event_policies]
            .iter()
            .any(|c| c.created + c.updated + c.deleted > 0)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, c) in [
            ("devices", self.devices),
            ("originators", self.originators),
            ("event policies", self.event_policies),
        ] {
            writeln!(
                f,
                "{name}: {} created, {} updated, {} unchanged, {} deleted",
                c.created, c.updated, c.unchanged, c.deleted
            )?;
        }
        Ok(())
    }
}
