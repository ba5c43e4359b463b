//! The email channel: `[notify]` in the config; one SMTP delivery per message
//! with lettre, bounded by the configured timeout.

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Channel, Event, Outgoing};
use crate::config::{Config, DEFAULT_PASSWORD_ENV, NotifyConfig, Security};

/// Email, when the config has a `[notify]` section.
pub fn from_config(config: &Config) -> Vec<Arc<dyn Channel>> {
    config.notify.clone().map(|n| Arc::new(Email(n)) as Arc<dyn Channel>).into_iter().collect()
}

struct Email(NotifyConfig);

impl Channel for Email {
    fn name(&self) -> &str {
        "email"
    }

    fn wants(&self, event: Event) -> bool {
        match &self.0.events {
            Some(events) => events.contains(&event),
            // The digest goes out when it is scheduled or asked for.
            None => event == Event::Digest || self.0.on_failure,
        }
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(send(&self.0, msg))
    }
}

pub async fn send(config: &NotifyConfig, msg: &Outgoing) -> anyhow::Result<()> {
    let email = build(config, msg)?;
    let transport = transport(config)?;
    let timeout = config.timeout();
    match tokio::time::timeout(timeout, transport.send(email)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("{}:{}: {e}", config.smtp_host, config.port())),
        Err(_) => Err(anyhow::anyhow!(
            "{}:{}: no answer within {}",
            config.smtp_host,
            config.port(),
            crate::duration::format_duration(timeout)
        )),
    }
}

fn build(config: &NotifyConfig, msg: &Outgoing) -> anyhow::Result<Message> {
    let mut b = Message::builder()
        .from(config.from.parse::<Mailbox>().with_context(|| format!("`from` {:?} is not an address", config.from))?)
        .subject(&msg.subject);
    for to in &config.to {
        b = b.to(to.parse::<Mailbox>().with_context(|| format!("`to` {to:?} is not an address"))?);
    }
    let text = SinglePart::plain(msg.body.clone());
    Ok(match &msg.attachment {
        None => b.singlepart(text)?,
        Some((name, bytes)) => {
            let kind = if name.ends_with(".html") { "text/html; charset=utf-8" } else { "application/octet-stream" };
            let part = Attachment::new(name.clone()).body(bytes.clone(), ContentType::parse(kind)?);
            b.multipart(MultiPart::mixed().singlepart(text).singlepart(part))?
        }
    })
}

/// Reads the password at send time so it never sits in the config struct,
/// and never in an error message.
fn password(config: &NotifyConfig) -> anyhow::Result<Option<String>> {
    if let Some(file) = &config.password_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the SMTP password file {}", file.display()))?;
        let p = text.lines().next().unwrap_or("").to_string();
        crate::redact::register(&p);
        return Ok(Some(p));
    }
    let var = config.password_env.as_deref().unwrap_or(DEFAULT_PASSWORD_ENV);
    match std::env::var(var) {
        Ok(p) => {
            crate::redact::register(&p);
            Ok(Some(p))
        }
        Err(_) if config.password_env.is_some() => {
            anyhow::bail!("environment variable {var} (password_env) is not set: export it with the SMTP password")
        }
        Err(_) => Ok(None),
    }
}

fn transport(config: &NotifyConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let host = config.smtp_host.as_str();
    let tls_params = || -> anyhow::Result<TlsParameters> {
        let mut b = TlsParameters::builder(host.to_string());
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read ca_file {}", ca.display()))?;
            b = b.add_root_certificate(
                Certificate::from_pem(&pem)
                    .with_context(|| format!("ca_file {} is not a PEM certificate", ca.display()))?,
            );
        }
        Ok(b.build_rustls()?)
    };
    let tls = match config.security {
        Security::Starttls => Tls::Required(tls_params()?),
        Security::Tls => Tls::Wrapper(tls_params()?),
        Security::Plain => Tls::None,
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(config.port())
        .tls(tls)
        .timeout(Some(config.timeout()));
    if let Some(user) = &config.username {
        let pass = password(config)?.with_context(|| {
            format!(
                "`username` is set but no password: export {DEFAULT_PASSWORD_ENV}, or set password_env or password_file"
            )
        })?;
        b = b.credentials(Credentials::new(user.clone(), pass));
    }
    Ok(b.build())
}
