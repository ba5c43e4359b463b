//! A flag that blocking work polls, so a run past its deadline (or aborted by a
//! person) stops writing and can clean up its scratch folder.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>, Arc<Mutex<Option<String>>>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Cancels and says why, for the run's record (the first reason wins).
    pub fn cancel_because(&self, reason: &str) {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| reason.to_string());
        self.cancel();
    }

    /// The reason given to [`Cancel::cancel_because`], if any.
    pub fn reason(&self) -> Option<String> {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An I/O error to return from inside a reader or writer once cancelled.
    pub fn check(&self) -> io::Result<()> {
        if self.is_cancelled() { Err(io::Error::new(io::ErrorKind::Interrupted, "drill cancelled")) } else { Ok(()) }
    }
}
