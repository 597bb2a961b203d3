//! Policies as operators declare them: the policy file, `policy apply` and `policy export`.
//!
//! [`file`](mod@file) reads and writes the TOML format and `check` (events), `ticket_checks`
//! (tickets), `roundtrip_checks` (round trips) and `expect_checks` (expected mail) check its
//! values; `plan` (with `ticket_plan`, `roundtrip_plan` and `expect_plan`) decides, without I/O,
//! what applying a file changes, and `offline` makes those changes in memory (the [`Model`] a
//! file declares on its own, for the simulator); [`apply()`] makes them in one transaction;
//! [`export()`] writes the database's policies back out in the same format.
//! `serve` reads the policies with [`load`] (that is [`crate::store::policies::load`]).

pub mod apply;
mod check;
mod expect_checks;
mod expect_plan;
pub mod export;
pub mod file;
mod offline;
pub mod packs;
mod plan;
mod read;
mod roundtrip_checks;
mod roundtrip_plan;
mod summary;
mod ticket_checks;
mod ticket_plan;

pub use crate::store::policies::{load, Model};
pub use apply::{apply, Options};
pub use export::export;
pub use file::PolicyFile;
pub use summary::{Counts, Summary};

use crate::store;

/// Why policies could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file, or what it refers to, is wrong; nothing was written. One line per problem.
    #[error("{} problem{}, nothing was written:\n  {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n  "))]
    Invalid(Vec<String>),
    /// The database failed; nothing was written.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Error {
        Error::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Error {
        Error::Store(e.into())
    }
}
