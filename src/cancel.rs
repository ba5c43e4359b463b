//! A flag that blocking work polls, so a run past its deadline (or aborted by a
//! person) stops writing and can clean up its scratch folder.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An I/O error to return from inside a reader or writer once cancelled.
    pub fn check(&self) -> io::Result<()> {
        if self.is_cancelled() { Err(io::Error::new(io::ErrorKind::Interrupted, "drill cancelled")) } else { Ok(()) }
    }
}
