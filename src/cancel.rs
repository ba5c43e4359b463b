//! One cancellation token per run, set when its deadline passes or a person
//! aborts it, that every kind of work can wait on without polling.
//!
//! - async code awaits [`Cancel::cancelled`] (a `tokio_util` token inside);
//! - blocking code calls [`Cancel::is_cancelled`] between steps, sleeps with
//!   [`Cancel::sleep`] (which returns at once on cancel), or registers a hook with
//!   [`Cancel::on_cancel`] that interrupts what it is blocked in (a process group
//!   is killed, a SQLite statement is interrupted);
//! - readers and writers return [`Cancel::check`]'s error, whose kind is not
//!   `Interrupted`: `io::copy` and zstd retry `Interrupted` forever, which once
//!   made a cancelled backup spin at 100 % CPU instead of stopping.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Default)]
struct Inner {
    token: CancellationToken,
    state: Mutex<State>,
}

type HookFn = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    reason: Option<String>,
    hooks: Vec<(u64, HookFn)>,
    next_hook: u64,
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancel").field("cancelled", &self.is_cancelled()).field("reason", &self.reason()).finish()
    }
}

/// The error that cancelled work returns, so callers can tell an abort from a
/// real failure anywhere in an error chain ([`is_cancelled_error`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the drill was cancelled")]
pub struct Cancelled;

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.cancel_because("cancelled");
    }

    /// Cancels and says why, for the run's record (the first reason wins), and
    /// runs every registered hook once, on this thread. Returns whether this
    /// call cancelled it, so a caller knows its reason is the one recorded.
    pub fn cancel_because(&self, reason: &str) -> bool {
        let hooks = {
            let mut s = self.lock();
            if self.0.token.is_cancelled() {
                return false;
            }
            s.reason = Some(reason.to_string());
            // Cancelled under the lock, so a hook registered after this sees it.
            self.0.token.cancel();
            std::mem::take(&mut s.hooks)
        };
        for (_, hook) in hooks {
            hook();
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reason given to [`Cancel::cancel_because`], if any.
    pub fn reason(&self) -> Option<String> {
        self.lock().reason.clone()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.token.is_cancelled()
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        self.0.token.cancelled().await
    }

    /// An I/O error to return from inside a reader or writer once cancelled.
    pub fn check(&self) -> io::Result<()> {
        if self.is_cancelled() { Err(cancelled_io_error()) } else { Ok(()) }
    }

    /// Runs `hook` when the token is cancelled (at once if it already is). The
    /// hook is dropped unrun when the returned guard is dropped first.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) -> Hook {
        let mut s = self.lock();
        if self.0.token.is_cancelled() {
            drop(s);
            hook();
            return Hook { cancel: None, id: 0 };
        }
        let id = s.next_hook;
        s.next_hook += 1;
        s.hooks.push((id, Box::new(hook)));
        Hook { cancel: Some(self.clone()), id }
    }

    /// Blocks this (non-async) thread for `d`, or less if cancelled first.
    /// Returns whether it was cancelled.
    pub fn sleep(&self, d: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let _hook = self.on_cancel(move || {
            let _ = tx.try_send(());
        });
        rx.recv_timeout(d).is_ok() || self.is_cancelled()
    }
}

/// Removes its hook when dropped.
#[must_use = "dropping the hook unregisters it at once"]
pub struct Hook {
    cancel: Option<Cancel>,
    id: u64,
}

impl Drop for Hook {
    fn drop(&mut self) {
        if let Some(c) = self.cancel.take() {
            c.lock().hooks.retain(|(id, _)| *id != self.id);
        }
    }
}

pub fn cancelled_io_error() -> io::Error {
    io::Error::other(Cancelled)
}

/// Whether `e`, or anything in its chain, is cancellation.
pub fn is_cancelled_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Cancelled>()
            || c.downcast_ref::<io::Error>().and_then(|io| io.get_ref()).is_some_and(|inner| inner.is::<Cancelled>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[test]
    fn hooks_run_once_and_dropped_hooks_never() {
        let c = Cancel::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let _kept = c.on_cancel(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let r = ran.clone();
        drop(c.on_cancel(move || {
            r.fetch_add(100, Ordering::SeqCst);
        }));
        assert!(c.cancel_because("first"));
        assert!(!c.cancel_because("second"));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(c.reason().as_deref(), Some("first"));
        // Registered after the fact: runs at once.
        let r = ran.clone();
        let _late = c.on_cancel(move || {
            r.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 11);
    }

    #[test]
    fn sleep_returns_at_cancel_and_the_io_error_is_not_retried() {
        let c = Cancel::new();
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            c2.cancel();
        });
        let started = Instant::now();
        assert!(c.sleep(Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
        let e = c.check().unwrap_err();
        assert_ne!(e.kind(), io::ErrorKind::Interrupted);
        assert!(is_cancelled_error(&anyhow::Error::new(e).context("reading")));
    }
}
