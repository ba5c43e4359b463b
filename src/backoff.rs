//! The one retry delay: exponential, capped. Check retries, the mail outbox and
//! waits for a busy database all use it.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { next: initial.min(max), max }
    }

    /// The delay before the next attempt; each call doubles it, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// The delay after `failures` failed attempts, without keeping state (for
    /// retries scheduled in the database).
    pub fn after(initial: Duration, max: Duration, failures: u32) -> Duration {
        initial.saturating_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX)).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        let m = Duration::from_secs(60);
        assert_eq!(Backoff::after(m, Duration::from_secs(3600), 0), m);
        assert_eq!(Backoff::after(m, Duration::from_secs(3600), 3), m * 8);
        assert_eq!(Backoff::after(m, Duration::from_secs(3600), 40), Duration::from_secs(3600));
    }
}
