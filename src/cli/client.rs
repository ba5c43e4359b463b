//! The HTTP client the CLI uses to talk to a running daemon.

use anyhow::Context;
use drdrill::config::Config;
use reqwest::{Response, StatusCode};
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token_file: std::path::PathBuf,
}

impl Client {
    pub fn new(config: &Config) -> anyhow::Result<Client> {
        // The daemon is on loopback: an operator's HTTP(S)_PROXY must not carry the token elsewhere.
        let http = reqwest::Client::builder().no_proxy().timeout(drdrill::daemon::api::CLIENT_TIMEOUT).build()?;
        Ok(Client { http, base: format!("http://{}", config.api.listen), token_file: config.api.token_file.clone() })
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach the daemon at {}: {e}; is it running (`drdrill daemon`, or `systemctl status drdrill`), and does [api] listen match?",
            self.base
        )
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| self.unreachable(e))?;
        answer(r).await
    }

    /// A streaming GET: one JSON value per line, handed to `each` as it arrives.
    /// Stops when the body ends or `each` returns false.
    pub async fn get_lines(&self, path: &str, mut each: impl FnMut(Value) -> bool) -> anyhow::Result<()> {
        let mut r = self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| self.unreachable(e))?;
        if !r.status().is_success() {
            answer(r).await?;
            return Ok(());
        }
        let mut pending = Vec::new();
        while let Some(chunk) = r.chunk().await.context("the daemon's event stream broke off")? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let value = serde_json::from_slice(&line).context("the daemon sent an event that is not JSON")?;
                if !each(value) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// A mutating call, with the bearer token from the config's token file.
    pub async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.post_json(path, None).await
    }

    /// A mutating call with an optional JSON body.
    pub async fn post_json(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let token = drdrill::daemon::token::read(&self.token_file)?;
        let mut req = self.http.post(format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(|e| self.unreachable(e))?;
        answer(r).await
    }
}

async fn answer(r: Response) -> anyhow::Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.context("the daemon sent a reply that is not JSON")?;
    if status.is_success() {
        return Ok(body);
    }
    let msg = body.get("error").and_then(Value::as_str).unwrap_or("no detail").to_string();
    let hint = match status {
        StatusCode::UNAUTHORIZED => "; the token in [api] token_file does not match the daemon's",
        _ => "",
    };
    anyhow::bail!("daemon answered {status}: {msg}{hint}")
}
