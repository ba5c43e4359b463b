//! The dead-man's switch: scheduled runs ping the plan's `ping_url`
//! (Healthchecks-style: `/start` when the run starts, the URL itself when it
//! passed, `/fail` when it did not), so a monitor outside this machine notices
//! when drills stop running at all, which no alert from drdrill can report.
//!
//! Pings are sent from their own tasks, bounded by a timeout and retried a
//! few times with backoff; a dead monitor never delays a drill.

use std::time::Duration;

use crate::backoff::Backoff;

const TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 3;

/// Which ping: the path Healthchecks (and compatible monitors) expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Pass,
    Fail,
}

impl Ping {
    pub fn url(self, base: &str) -> String {
        let base = base.trim_end_matches('/');
        match self {
            Ping::Start => format!("{base}/start"),
            Ping::Pass => base.to_string(),
            Ping::Fail => format!("{base}/fail"),
        }
    }
}

#[derive(Clone)]
pub struct Pinger {
    client: reqwest::Client,
}

impl Pinger {
    pub fn new() -> anyhow::Result<Pinger> {
        let client =
            reqwest::Client::builder().timeout(TIMEOUT).user_agent(format!("drdrill/{}", crate::VERSION)).build()?;
        Ok(Pinger { client })
    }

    /// Sends `ping` for `plan` with `body` (monitors keep it as the ping's log).
    /// Never fails: what cannot be sent is logged.
    pub async fn send(&self, plan: &str, base: &str, ping: Ping, body: String) {
        let url = ping.url(base);
        let shown = crate::redact::url(&url);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        for attempt in 1..=ATTEMPTS {
            let error = match self.client.post(&url).body(body.clone()).send().await {
                Ok(r) if r.status().is_success() => {
                    tracing::debug!(plan, "dead-man ping {shown} answered {}", r.status());
                    return;
                }
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => format!("{}", e.without_url()),
            };
            if attempt == ATTEMPTS {
                tracing::warn!(plan, "dead-man ping {shown} not delivered after {ATTEMPTS} attempts: {error}");
                return;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthchecks_paths() {
        assert_eq!(Ping::Start.url("https://hc-ping.com/abc/"), "https://hc-ping.com/abc/start");
        assert_eq!(Ping::Pass.url("https://hc-ping.com/abc"), "https://hc-ping.com/abc");
        assert_eq!(Ping::Fail.url("https://hc-ping.com/abc"), "https://hc-ping.com/abc/fail");
    }
}
