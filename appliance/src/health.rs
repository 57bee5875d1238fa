//! What the components report about themselves, for the status document.
//!
//! The portal checks a relay from outside; the device adds what only it knows (is Maddy
//! running, is the account store readable, which certificate is served). Components set
//! these flags; the web server reads them when asked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared health flags. Cheap to clone.
#[derive(Clone, Default)]
pub struct Health(Arc<Flags>);

#[derive(Default)]
struct Flags {
    maddy_running: AtomicBool,
}

impl Health {
    /// Sets whether Maddy is running.
    pub fn set_maddy_running(&self, running: bool) {
        self.0.maddy_running.store(running, Ordering::Relaxed);
    }

    /// Whether Maddy is running.
    pub fn maddy_running(&self) -> bool {
        self.0.maddy_running.load(Ordering::Relaxed)
    }
}
