//! `[[alert]] kind = "slack"`: a Slack-compatible incoming webhook (Slack,
//! Mattermost, Rocket.Chat, Zulip's Slack endpoint): `{"text": ...}`. The URL
//! is the credential, so it comes from `url_env` or `url_file`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::http::Poster;
use super::{Channel, Event, Notice, Outgoing};
use crate::config::{AlertConfig, AlertKind, Config};

pub fn from_config(config: &Config) -> Vec<Arc<dyn Channel>> {
    super::http_channels(config, AlertKind::Slack, |c, poster| Arc::new(Slack { config: c, poster }))
}

struct Slack {
    config: AlertConfig,
    poster: Poster,
}

/// Slack's mrkdwn treats these three as markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Channel for Slack {
    fn name(&self) -> &str {
        self.config.name()
    }

    fn wants(&self, event: Event) -> bool {
        self.config.events().contains(&event)
    }

    fn render(&self, notice: &Notice) -> anyhow::Result<Outgoing> {
        let mut text = format!("*{}*\n{}", escape(&notice.title), escape(&notice.short_text()));
        if let Some(link) = notice.links.get("run") {
            // <url|label> is a link in Slack's markup; the raw URL above stays for other receivers.
            text += &format!("\n<{link}|run {}>", notice.run_id.unwrap_or_default());
        }
        let body = serde_json::to_string(&serde_json::json!({ "text": text }))?;
        Ok(Outgoing { event: notice.event.as_str().into(), subject: notice.title.clone(), body, attachment: None })
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let url = self.config.resolve_url()?;
            let headers = [("content-type", "application/json".to_string())];
            self.poster.post(&url, &headers, msg.body.clone().into_bytes()).await
        })
    }
}
