//! `[[alert]]`: alert channels beside email (a signed JSON webhook, a
//! Slack-compatible incoming webhook, ntfy), each routed by event.
//!
//! No secret lives in this text: a webhook's HMAC key, an ntfy access token, or
//! a URL that is itself the secret (a Slack incoming webhook) is read from
//! `*_env` or `*_file` when a message is sent, and registered for redaction.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diag::{Bounded, limit};
use crate::duration::MINUTE;

limit!(
    /// One HTTP attempt; the outbox retries later what all attempts missed.
    pub AlertTimeout: Duration = "[[alert]] timeout", Duration::from_secs(1), Duration::from_secs(5 * MINUTE)
);
limit!(
    /// Quick retries within one delivery; more than a few only delays the queue behind it.
    pub AlertRetries: u32 = "[[alert]] retries", 0, 10
);

/// What a message is about. Channels are routed by these names (`events = [...]`).
///
/// A new event is one variant here and one line in [`Event::ALL`]; the name
/// is what configs, the outbox's `kind` column and webhook bodies say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// A run failed (a check, the restore, an error), or was refused when scheduled.
    Failed,
    /// Every check passed, but RTO or RPO exceeded its target.
    TargetMissed,
    /// The first passed run after one or more that did not pass.
    Recovered,
    /// No passed run for longer than the plan's `max_interval`.
    Overdue,
    /// The newest backup is older than the plan allows.
    StaleBackup,
    /// A run was aborted (by a person, a signal, or its timeout during shutdown).
    Aborted,
    /// The periodic digest.
    Digest,
}

impl Event {
    /// Every event, in the order docs list them.
    pub const ALL: &'static [Event] = &[
        Event::Failed,
        Event::TargetMissed,
        Event::Recovered,
        Event::Overdue,
        Event::StaleBackup,
        Event::Aborted,
        Event::Digest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failed => "failed",
            Event::TargetMissed => "target-missed",
            Event::Recovered => "recovered",
            Event::Overdue => "overdue",
            Event::StaleBackup => "stale-backup",
            Event::Aborted => "aborted",
            Event::Digest => "digest",
        }
    }

    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.iter().copied().find(|e| e.as_str() == name)
    }

    pub fn names() -> Vec<&'static str> {
        Event::ALL.iter().map(|e| e.as_str()).collect()
    }

    /// Something happened to one plan (everything but the digest).
    pub fn is_alert(self) -> bool {
        self != Event::Digest
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Event::parse(&name).ok_or_else(|| {
            let names = Event::names();
            let hint = crate::diag::closest(&name, &names).map(|c| format!("did you mean `{c}`? ")).unwrap_or_default();
            serde::de::Error::custom(format!(
                "unknown event {name:?}{}{hint}events are: {}",
                crate::diag::FIX,
                names.join(", ")
            ))
        })
    }
}

/// The events a channel takes when its `events` is not given: every alert, not the digest.
pub fn default_events() -> Vec<Event> {
    Event::ALL.iter().copied().filter(|e| e.is_alert()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// POST of drdrill's JSON body, signed with `X-Drdrill-Signature`.
    Webhook,
    /// A Slack-compatible incoming webhook (`{"text": ...}`): Slack, Mattermost, Rocket.Chat.
    Slack,
    /// A message to an ntfy topic URL, with a priority by event.
    Ntfy,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Webhook => "webhook",
            AlertKind::Slack => "slack",
            AlertKind::Ntfy => "ntfy",
        }
    }
}

/// Where a secret is read from at send time: never the config text.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    fn of(env: &Option<String>, file: &Option<PathBuf>) -> Option<SecretSource> {
        match (env, file) {
            (Some(e), _) => Some(SecretSource::Env(e.clone())),
            (None, Some(f)) => Some(SecretSource::File(f.clone())),
            (None, None) => None,
        }
    }

    /// The secret, registered so no log line or error ever shows it. A file's
    /// first line is the secret (a systemd credential, a Kubernetes secret).
    pub fn read(&self, what: &str) -> anyhow::Result<String> {
        let value = match self {
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| anyhow::anyhow!("environment variable {var} ({what}) is not set: export it"))?,
            SecretSource::File(f) => std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("cannot read {what} file {}: {e}", f.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        };
        let value = value.trim().to_string();
        anyhow::ensure!(!value.is_empty(), "{what} from {} is empty", self.describe());
        crate::redact::register(&value);
        Ok(value)
    }

    /// Where it comes from, for messages (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(v) => format!("${v}"),
            SecretSource::File(f) => f.display().to_string(),
        }
    }
}

/// One `[[alert]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    pub kind: AlertKind,
    /// What the outbox and messages call it (default: the kind). Unique.
    pub name: Option<String>,
    /// The endpoint, when it holds no secret (an ntfy topic on your server, your own receiver).
    pub url: Option<String>,
    /// A variable holding the URL, for URLs that are secrets (Slack's incoming webhooks).
    pub url_env: Option<String>,
    /// A file whose first line is the URL.
    pub url_file: Option<PathBuf>,
    /// The webhook's HMAC-SHA256 key, or ntfy's access token, from this variable.
    pub secret_env: Option<String>,
    /// ... or from this file's first line.
    pub secret_file: Option<PathBuf>,
    /// The events it takes (default: every alert, not the digest).
    pub events: Option<Vec<Event>>,
    /// One HTTP attempt (default 10s).
    pub timeout: Option<Bounded<AlertTimeout>>,
    /// Quick retries within one delivery after a 5xx, a 429 or no answer (default 2).
    pub retries: Option<Bounded<AlertRetries>>,
}

impl AlertConfig {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.as_str())
    }

    pub fn url_source(&self) -> Option<SecretSource> {
        SecretSource::of(&self.url_env, &self.url_file)
    }

    pub fn secret(&self) -> Option<SecretSource> {
        SecretSource::of(&self.secret_env, &self.secret_file)
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.clone().unwrap_or_else(default_events)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.map(|t| t.0).unwrap_or(Duration::from_secs(10))
    }

    pub fn retries(&self) -> u32 {
        self.retries.map(|r| r.0).unwrap_or(2)
    }

    /// The URL to send to: the inline one, or read from its variable or file
    /// (then checked like an inline one).
    pub fn resolve_url(&self) -> anyhow::Result<String> {
        match (&self.url, self.url_source()) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(src)) => {
                let u = src.read("alert URL")?;
                check_url(&u).map_err(|e| anyhow::anyhow!("the URL in {}: {e}", src.describe()))?;
                Ok(u)
            }
            (None, None) => anyhow::bail!("[[alert]] {} has no url", self.name()),
        }
    }

    /// Problems a config file must not get past, with the fix.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("name {name:?} is not allowed: use letters, digits, `-` and `_`"));
        }
        if name == "email" {
            return Err("name \"email\" is the [notify] channel's: choose another name".into());
        }
        let urls = [self.url.is_some(), self.url_env.is_some(), self.url_file.is_some()];
        match urls.iter().filter(|b| **b).count() {
            0 => return Err("no URL: set `url`, or `url_env`/`url_file` when the URL is a secret".into()),
            1 => {}
            _ => return Err("set only one of `url`, `url_env` and `url_file`".into()),
        }
        if let Some(u) = &self.url {
            check_url(u)?;
            // A Slack incoming-webhook URL is its own credential.
            if self.kind == AlertKind::Slack && !crate::net::url_host(u).is_some_and(crate::net::is_loopback) {
                return Err(
                    "a Slack incoming-webhook URL is a secret, so it does not go in the config: put it in `url_env` or `url_file`"
                        .into(),
                );
            }
        }
        if self.secret_env.is_some() && self.secret_file.is_some() {
            return Err("set only one of `secret_env` and `secret_file`".into());
        }
        match self.kind {
            AlertKind::Webhook if self.secret().is_none() => {
                return Err("a webhook signs every body (X-Drdrill-Signature): set `secret_env` or `secret_file` with the HMAC key".into());
            }
            AlertKind::Slack if self.secret().is_some() => {
                return Err(
                    "a Slack-compatible webhook takes no secret: its URL is the secret (`url_env` or `url_file`)"
                        .into(),
                );
            }
            _ => {}
        }
        if self.events.as_ref().is_some_and(|e| e.is_empty()) {
            return Err(format!(
                "`events` is empty, so nothing would be sent: list some of {}, or remove the table",
                Event::names().join(", ")
            ));
        }
        Ok(())
    }
}

/// An alert endpoint: http(s), and plain http only to this machine, where
/// nobody on the way can read a body or a token in the URL.
pub fn check_url(u: &str) -> Result<(), String> {
    let shown = crate::redact::url(u);
    let Some(host) = crate::net::url_host(u) else {
        return Err(format!("{shown:?} is not an http:// or https:// URL"));
    };
    if host.is_empty() {
        return Err(format!("{shown:?} has no host"));
    }
    if u.starts_with("http://") && !crate::net::is_loopback(host) {
        return Err(format!(
            "{shown:?} is plain HTTP to another host: alerts and their signatures would cross the network unencrypted; use https://"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AlertConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn events_have_one_name_each() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(*e));
        }
        assert!(!default_events().contains(&Event::Digest));
        let err = toml::from_str::<AlertConfig>("kind = \"ntfy\"\nurl = \"https://n\"\nevents = [\"faild\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `failed`"), "{err}");
    }

    #[test]
    fn secrets_stay_out_of_the_text() {
        let e = parse("kind = \"webhook\"\nurl = \"https://hooks.example.com/x\"\n").validate().unwrap_err();
        assert!(e.contains("secret_env"), "{e}");
        let e = parse("kind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n").validate().unwrap_err();
        assert!(e.contains("url_env"), "{e}");
        assert!(parse("kind = \"slack\"\nurl_env = \"SLACK_URL\"\n").validate().is_ok());
        let e = parse("kind = \"ntfy\"\nurl = \"http://ntfy.example.com/t\"\n").validate().unwrap_err();
        assert!(e.contains("use https://"), "{e}");
        assert!(parse("kind = \"ntfy\"\nurl = \"http://127.0.0.1:80/t\"\n").validate().is_ok());
        let e = parse("kind = \"ntfy\"\nname = \"email\"\nurl = \"https://n/t\"\n").validate().unwrap_err();
        assert!(e.contains("email"), "{e}");
    }
}
