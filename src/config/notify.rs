//! `[notify]`: email alert and digest settings. The password never lives here:
//! it is read from `password_env` or `password_file` at send time.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::diag::{Bounded, limit};
use crate::duration::{MINUTE, YEAR};
use crate::schedule::Schedule;

limit!(pub DigestPeriod: Duration = "[notify] digest_period", Duration::from_secs(3600), Duration::from_secs(YEAR));
limit!(
    /// One delivery attempt; the mail worker retries queued mail later.
    pub SendTimeout: Duration = "[notify] timeout", Duration::from_secs(1), Duration::from_secs(5 * MINUTE)
);

/// The `[notify]` section of the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub smtp_host: String,
    /// Default: 587 for starttls, 465 for tls, 25 for plain.
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    pub from: String,
    pub to: Vec<String>,
    /// SMTP user name; the password comes from `password_env` or `password_file`.
    pub username: Option<String>,
    /// Environment variable holding the SMTP password (default `DRDRILL_SMTP_PASSWORD`).
    pub password_env: Option<String>,
    /// File holding the SMTP password (first line), e.g. a systemd credential.
    pub password_file: Option<PathBuf>,
    /// Extra PEM root certificate for a server with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Alert on failed, aborted and recovered runs, missed targets, overdue
    /// plans and stale backups (default true).
    #[serde(default = "yes")]
    pub on_failure: bool,
    /// The events mailed, instead of `on_failure` (the digest is one of them).
    pub events: Option<Vec<super::Event>>,
    /// When the daemon sends the digest, in crontab syntax.
    pub digest: Option<Schedule>,
    /// How far back the digest's report reaches (default 7d).
    pub digest_period: Option<Bounded<DigestPeriod>>,
    /// Longest time one delivery attempt may take (default 10s).
    pub timeout: Option<Bounded<SendTimeout>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS; the upgrade is required.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption: only for a relay on the loopback interface.
    Plain,
}

pub const DEFAULT_PASSWORD_ENV: &str = "DRDRILL_SMTP_PASSWORD";

impl NotifyConfig {
    /// Problems that a config file must not get past, with the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.security == Security::Plain && !crate::net::is_loopback(&self.smtp_host) {
            return Err(format!(
                "security = \"plain\" sends mail unencrypted, so it is only allowed to a loopback relay, not {:?}: use \"starttls\" or \"tls\", or relay through a local MTA on 127.0.0.1",
                self.smtp_host
            ));
        }
        if self.to.is_empty() {
            return Err("`to` is empty: list at least one recipient".into());
        }
        for a in std::iter::once(&self.from).chain(&self.to) {
            a.parse::<lettre::message::Mailbox>().map_err(|e| {
                format!("{a:?} is not an email address ({e}): write it like \"DR drills <dr@example.com>\"")
            })?;
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err("set only one of `password_env` and `password_file`".into());
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::Plain => 25,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.map(|t| t.0).unwrap_or(Duration::from_secs(10))
    }

    /// How far back the digest's report reaches.
    pub fn digest_period(&self) -> Duration {
        self.digest_period.map(|d| d.0).unwrap_or(Duration::from_secs(7 * 86400))
    }

    /// The next time the digest is due after `t`, if a digest is configured.
    pub fn next_digest_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.digest.as_ref().and_then(|s| s.next_after(t, 1).into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(host: &str, security: &str) -> NotifyConfig {
        toml::from_str(&format!(
            "smtp_host = {host:?}\nsecurity = {security:?}\nfrom = \"dr@example.com\"\nto = [\"ops@example.com\"]\n"
        ))
        .unwrap()
    }

    #[test]
    fn plain_is_only_for_loopback() {
        assert!(cfg("127.0.0.1", "plain").validate().is_ok());
        assert!(cfg("localhost", "plain").validate().is_ok());
        let e = cfg("mail.example.com", "plain").validate().unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(cfg("mail.example.com", "starttls").validate().is_ok());
        assert_eq!(cfg("mail.example.com", "tls").port(), 465);
    }

    #[test]
    fn bad_addresses_are_named() {
        let mut c = cfg("127.0.0.1", "plain");
        c.to = vec!["not an address".into()];
        assert!(c.validate().unwrap_err().contains("not an address"));
    }
}
