//! The one way a phase or step is timed: a monotonic instant for the duration
//! (RTO must not jump with the wall clock) and the wall time for the record.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub mono: Instant,
    pub wall: DateTime<Utc>,
}

impl Started {
    pub fn now() -> Started {
        Started { mono: Instant::now(), wall: Utc::now() }
    }

    pub fn elapsed(&self) -> Duration {
        self.mono.elapsed()
    }
}
