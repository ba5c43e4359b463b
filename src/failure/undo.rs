//! The run's undo log: what every injected failure must put back, newest last,
//! owned by the engine for that one run.
//!
//! A failure writes its entry *before* it changes anything that needs undoing
//! (or, for an atomic rename, right after it), so a failure that fails halfway
//! is still rolled back. Live data it moves aside or copies goes to the run's
//! quarantine through [`UndoLog::keep`], whose index names every item on disk:
//! if drdrill dies before the rollback, a person can still put things back.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::FailureCtx;
use crate::quarantine::Quarantine;

/// One thing to put back.
pub trait Undo: Debug + Send + Sync {
    /// Puts it back. `ctx` carries a token of its own: an abort must not cut a
    /// rollback short. Returns what it did, for the record.
    fn rollback(&self, ctx: &FailureCtx) -> anyhow::Result<Option<String>>;
}

#[derive(Debug)]
pub struct UndoLog {
    quarantine: Quarantine,
    entries: Mutex<Vec<(&'static str, Box<dyn Undo>)>>,
}

impl UndoLog {
    pub fn new(quarantine: Quarantine) -> UndoLog {
        UndoLog { quarantine, entries: Mutex::new(Vec::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, Box<dyn Undo>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records what failure `kind` must undo.
    pub fn push(&self, kind: &'static str, undo: impl Undo + 'static) {
        self.lock().push((kind, Box::new(undo)));
    }

    /// A place in the run's quarantine for data kept from `live`, listed in its
    /// index with how to put it back by hand.
    pub fn keep(&self, live: &Path, what: &str, how: &str) -> anyhow::Result<PathBuf> {
        self.quarantine.keep(live, what, how)
    }

    pub fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every entry, newest first, leaving the log empty.
    pub fn take(&self) -> Vec<(&'static str, Box<dyn Undo>)> {
        let mut all = std::mem::take(&mut *self.lock());
        all.reverse();
        all
    }
}
