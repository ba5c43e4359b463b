//! Writes canary markers into the live source at an interval until T_fail.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::cancel::Cancel;
use crate::source::Canary;

/// Dropping the writer stops it too, so no error path can leave a thread
/// writing markers into a production database.
pub struct CanaryWriter {
    stop: Cancel,
    handle: Option<JoinHandle<CanaryLog>>,
}

/// What the writer managed to do, for the run record.
#[derive(Debug, Default)]
pub struct CanaryLog {
    pub written: u64,
    pub last: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl CanaryWriter {
    /// Writes the first marker before returning, so a backup taken next holds one.
    pub fn start(canary: Arc<dyn Canary>, interval: Duration) -> anyhow::Result<CanaryWriter> {
        let first = Utc::now();
        canary.write_marker(first).map_err(|e| e.context("the canary probe cannot write its first marker"))?;
        let stop = Cancel::new();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut log = CanaryLog { written: 1, last: Some(first), last_error: None };
            let mut next = Instant::now() + interval;
            loop {
                // Wakes at once on stop(), so no marker follows T_fail.
                if flag.sleep(next.saturating_duration_since(Instant::now())) {
                    return log;
                }
                next += interval;
                let at = Utc::now();
                match canary.write_marker(at) {
                    Ok(()) => {
                        log.written += 1;
                        log.last = Some(at);
                    }
                    Err(e) => log.last_error = Some(format!("{e:#}")),
                }
            }
        });
        Ok(CanaryWriter { stop, handle: Some(handle) })
    }

    /// Stops writing; no marker is written after this returns.
    pub fn stop(mut self) -> CanaryLog {
        self.stop.cancel();
        self.handle.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for CanaryWriter {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
