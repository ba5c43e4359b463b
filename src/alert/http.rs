//! One HTTP POST with quick retries, shared by the webhook-style channels.
//!
//! Each attempt is bounded by the channel's timeout; a 5xx, a 429 or no
//! answer is tried again after a short backoff (up to `retries` times), any
//! other answer is final. What all attempts miss stays in the outbox, which
//! retries it later with its own, longer backoff.

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;

use crate::backoff::Backoff;
use crate::config::AlertConfig;

/// The first quick retry waits this long, doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub struct Poster {
    client: reqwest::Client,
    retries: u32,
    name: String,
}

impl Poster {
    pub fn new(config: &AlertConfig) -> anyhow::Result<Poster> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            // A redirect would carry a signed body (or a token) somewhere the config never named.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("drdrill/{}", crate::VERSION))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Poster { client, retries: config.retries(), name: config.name().to_string() })
    }

    /// POSTs `body` with `headers` to `url`; `Ok` on a 2xx.
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> anyhow::Result<()> {
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.client.post(url).body(body.clone());
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            let (retry, error) = match req.send().await {
                Ok(r) if r.status().is_success() => {
                    tracing::debug!(channel = %self.name, status = r.status().as_u16(), attempt, "alert accepted");
                    return Ok(());
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    (retry, format!("answered {status}: {}", snippet(&text)))
                }
                // The URL may be the secret (Slack): errors never quote it.
                Err(e) if e.is_timeout() => (true, "no answer within the timeout".to_string()),
                Err(e) => (true, format!("{}", e.without_url())),
            };
            if !retry || attempt > self.retries {
                let url = crate::redact::url(url);
                anyhow::bail!("{} ({}): {error} (attempt {attempt})", self.name, crate::redact::scrub(&url));
            }
            let wait = backoff.next_delay();
            tracing::debug!(channel = %self.name, attempt, "alert not accepted ({error}); again in {wait:?}");
            tokio::time::sleep(wait).await;
        }
    }
}

/// The start of a receiver's answer, on one line, for the error.
fn snippet(text: &str) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = one.chars().take(200).collect();
    if cut.len() < one.len() { format!("{cut}...") } else { cut }
}
