//! Events from email: originator policies find the device, event policies raise events.

pub mod evaluate;
pub mod expire;
pub mod model;
pub mod policies;
mod prefilter;
pub mod simulate;
pub mod template;
