//! Readiness as `/readyz` reports it: ready until the gateway starts draining.
//!
//! The admin listener owns it, as linkerd's admin crate owns `Readiness`; the server
//! holds a clone and marks the gateway draining once every accept loop has closed its
//! listener, so a 503 always means the proxy port refuses new connections.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the gateway accepts traffic.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    /// True while the gateway accepts traffic, false once draining begins.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }

    /// Marks the gateway as draining: `/readyz` answers 503 from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
