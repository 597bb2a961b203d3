//! Events from email: originator policies find the device, event policies raise events.

pub mod evaluate;
pub mod model;
pub mod policies;
pub mod refresh;
pub mod simulate;

use std::sync::{Arc, RwLock};

use policies::Policies;

/// The policies in force, shared by every session; replaced whole when they change (empty
/// until first loaded).
#[derive(Debug, Clone, Default)]
pub struct Current(Arc<RwLock<Arc<Policies>>>);

impl Current {
    /// The policies now in force (a message keeps using these even if they are replaced).
    pub fn get(&self) -> Arc<Policies> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `policies` in force.
    pub fn replace(&self, policies: Policies) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policies);
    }
}
