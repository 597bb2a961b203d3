//! Expected mail (issue 19): reports that must arrive on a schedule, classified by what they
//! say; a miss or a failure raises an event on the device, a success clears it.

pub mod evaluate;
pub mod misses;
pub mod model;
pub mod schedule;
