//! `[[alert]] kind = "webhook"`: a POST of the notice as JSON (docs/json.md,
//! "Webhook body"), signed with `X-Drdrill-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the exact body bytes under the key from `secret_env` or
//! `secret_file`.

use std::sync::Arc;

use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::http::Poster;
use super::{Channel, Event, Notice, Outgoing};
use crate::config::{AlertConfig, AlertKind, Config};

/// The webhook body's format; bumped only when a field changes meaning or goes away.
pub const BODY_VERSION: u32 = 1;

pub fn from_config(config: &Config) -> Vec<Arc<dyn Channel>> {
    super::http_channels(config, AlertKind::Webhook, |c, poster| Arc::new(Webhook { config: c, poster }))
}

struct Webhook {
    config: AlertConfig,
    poster: Poster,
}

#[derive(Serialize)]
struct Body<'a> {
    version: u32,
    #[serde(flatten)]
    notice: &'a Notice,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Channel for Webhook {
    fn name(&self) -> &str {
        self.config.name()
    }

    fn wants(&self, event: Event) -> bool {
        self.config.events().contains(&event)
    }

    fn render(&self, notice: &Notice) -> anyhow::Result<Outgoing> {
        let body = serde_json::to_string(&Body { version: BODY_VERSION, notice })?;
        Ok(Outgoing { event: notice.event.as_str().into(), subject: notice.title.clone(), body, attachment: None })
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let url = self.config.resolve_url()?;
            let key = match self.config.secret() {
                Some(s) => s.read("webhook signing key")?,
                None => anyhow::bail!("[[alert]] {} has no signing key", self.name()),
            };
            let headers = [
                ("content-type", "application/json".to_string()),
                ("x-drdrill-event", msg.event.clone()),
                ("x-drdrill-signature", signature(key.as_bytes(), msg.body.as_bytes())),
            ];
            self.poster.post(&url, &headers, msg.body.clone().into_bytes()).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
