//! `[[alert]] kind = "ntfy"`: a message POSTed to an ntfy topic URL, with a
//! title, a priority by event (a failure wakes a phone, a recovery does not)
//! and tags; an access token, if any, from `secret_env` or `secret_file`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::http::Poster;
use super::{Channel, Event, Notice, Outgoing};
use crate::config::{AlertConfig, AlertKind, Config};

pub fn from_config(config: &Config) -> Vec<Arc<dyn Channel>> {
    super::http_channels(config, AlertKind::Ntfy, |c, poster| Arc::new(Ntfy { config: c, poster }))
}

struct Ntfy {
    config: AlertConfig,
    poster: Poster,
}

/// ntfy's priority (1 min .. 5 max) and tags of each event; documented in the README.
pub fn priority(event: &str) -> (u8, &'static str) {
    match Event::parse(event) {
        Some(Event::Failed) => (5, "rotating_light,drdrill,failed"),
        Some(Event::TargetMissed) => (4, "warning,drdrill,target-missed"),
        Some(Event::Aborted) => (3, "stop_sign,drdrill,aborted"),
        Some(Event::Overdue) => (4, "hourglass,drdrill,overdue"),
        Some(Event::StaleBackup) => (4, "floppy_disk,drdrill,stale-backup"),
        Some(Event::Recovered) => (2, "white_check_mark,drdrill,recovered"),
        Some(Event::Digest) => (1, "page_facing_up,drdrill,digest"),
        None => (3, "drdrill"),
    }
}

/// HTTP header values are visible ASCII: anything else becomes `?`.
fn header_text(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

impl Channel for Ntfy {
    fn name(&self) -> &str {
        self.config.name()
    }

    fn wants(&self, event: Event) -> bool {
        self.config.events().contains(&event)
    }

    fn render(&self, notice: &Notice) -> anyhow::Result<Outgoing> {
        Ok(Outgoing {
            event: notice.event.as_str().into(),
            subject: notice.title.clone(),
            body: notice.short_text(),
            attachment: None,
        })
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let url = self.config.resolve_url()?;
            let (prio, tags) = priority(&msg.event);
            let mut headers = vec![
                ("content-type", "text/plain; charset=utf-8".to_string()),
                ("title", header_text(&msg.subject)),
                ("priority", prio.to_string()),
                ("tags", tags.to_string()),
            ];
            if let Some(s) = self.config.secret() {
                headers.push(("authorization", format!("Bearer {}", s.read("ntfy access token")?)));
            }
            self.poster.post(&url, &headers, msg.body.clone().into_bytes()).await
        })
    }
}
