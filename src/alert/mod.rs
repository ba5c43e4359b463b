//! Alerts: a message when a run fails or misses a target, and a periodic digest
//! with the HTML report attached, delivered through every configured channel.
//! One file per channel kind behind [`Channel`] (email today).
//!
//! Alerts never fail or delay a drill. Messages are first written to the
//! `outbox` table, one row per channel (after the run is recorded), then sent
//! with the channel's timeout; a message that cannot be sent stays queued, its
//! error logged, and is retried with backoff by the next [`flush_outbox`] (after
//! any run, each digest, or `drdrill notify flush`).

mod email;
mod outbox;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;

use crate::config::Config;
pub use crate::config::NotifyConfig;
use crate::db::Db;
use crate::record::RunReport;
use crate::report::{Format, Report, ReportOptions};

pub use outbox::{OutboxEntry, Outgoing, make_all_due};

/// What a message is, for channels that take only some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A run failed or missed a target.
    Alert,
    /// The periodic digest.
    Digest,
    /// A plan's newest backup became older than its RPO target (once per episode).
    StaleBackup,
}

/// One way messages reach people.
///
/// Contract: `deliver` sends one message or fails, bounded by the channel's own
/// timeout (the outbox retries later); it never logs a secret. Secrets come from
/// the environment or files at send time, never from the config text.
pub trait Channel: Send + Sync {
    /// Its name in the outbox (`email`): a message is retried on the channel it was queued for.
    fn name(&self) -> &'static str;
    /// Whether it takes messages of this kind.
    fn wants(&self, event: Event) -> bool;
    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// The channel kinds: each builds itself from the config when configured.
/// A new kind is one file and one line here.
/// Builds a channel from the config, `None` when it is not configured.
type Build = fn(&Config) -> Option<Arc<dyn Channel>>;

const CHANNELS: &[Build] = &[email::from_config];

/// The channels a config sets up.
#[derive(Clone, Default)]
pub struct Channels(Vec<Arc<dyn Channel>>);

impl Channels {
    pub fn from_config(config: &Config) -> Channels {
        Channels(CHANNELS.iter().filter_map(|build| build(config)).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.0.iter().find(|c| c.name() == name)
    }

    /// Queues `msg` on every channel that takes `event`; how many took it.
    /// Whoever queues wakes the deliverer (the daemon's mail worker) itself.
    pub fn enqueue(&self, db: &Db, event: Event, msg: &Outgoing) -> anyhow::Result<usize> {
        let kind = match event {
            Event::Alert => "alert",
            Event::Digest => "digest",
            Event::StaleBackup => "stale-backup",
        };
        let mut n = 0;
        for c in self.0.iter().filter(|c| c.wants(event)) {
            outbox::enqueue(db, kind, c.name(), msg)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Whether a finished run deserves an alert: it failed, or a target was missed.
pub fn needs_alert(report: &RunReport) -> bool {
    !report.passed() || report.measurements.iter().any(|m| m.met == Some(false))
}

/// The engine's caller hands every finished run here. Queues an alert if the run
/// failed or missed a target, then tries to deliver the outbox. Never returns an
/// error: mail trouble is logged and retried later, the drill's result stands.
pub async fn after_run(channels: &Channels, db: &Db, report: &RunReport) {
    if queue_alert(channels, db, report) {
        flush_outbox(channels, db).await;
    }
}

/// The first half of [`after_run`]: queues the alert (if the run deserves one)
/// without delivering it, for a caller that delivers from its own worker (the
/// daemon). Returns whether a message was queued. Never fails: trouble is logged.
pub fn queue_alert(channels: &Channels, db: &Db, report: &RunReport) -> bool {
    if channels.is_empty() || !needs_alert(report) {
        return false;
    }
    let verdict = if report.passed() { "target missed" } else { report.status.as_str() };
    let msg = Outgoing {
        subject: format!("[drdrill] {} {}: run {}", report.plan, verdict.to_uppercase(), report.run_id),
        body: format!(
            "The drill `{}` did not pass (run {}).\n\n{}\nSee `drdrill show {}` for the full timeline.\n",
            report.plan,
            report.run_id,
            report.render(),
            report.run_id
        ),
        attachment: None,
    };
    match channels.enqueue(db, Event::Alert, &msg) {
        Ok(n) => n > 0,
        Err(e) => {
            tracing::error!(run = report.run_id, "cannot queue the failure alert: {e:#}");
            false
        }
    }
}

/// Builds the HTML report over `period` back from now and sends it. This is the
/// entry point the daemon calls when [`NotifyConfig::next_digest_after`] comes
/// due. Returns an error only if the report could not be built or queued;
/// delivery failures stay queued for retry and are returned in the summary.
pub async fn send_digest(channels: &Channels, period: Duration, db: &Db) -> anyhow::Result<FlushSummary> {
    let now = Utc::now();
    let since = now - chrono::Duration::from_std(period)?;
    let report = Report::build(db, &ReportOptions { since: Some(since), plan: None, now })?;
    let html = report.render(Format::Html)?;
    let healthy = report.plans.len() - report.unhealthy();
    let mut body = format!(
        "drdrill digest for {}: {healthy} of {} plan(s) healthy.\nEvidence chain head: {}\n{}\n\n",
        report.period_text(),
        report.plans.len(),
        report.head_text(),
        report.chain_text()
    );
    for p in &report.plans {
        body += &format!(
            "- {}: {} — {} run(s), pass rate {}, last success {}\n",
            p.plan,
            p.health.as_str().to_uppercase(),
            p.runs,
            crate::report::percent(p.pass_rate),
            p.last_success.as_deref().unwrap_or("never in period")
        );
    }
    body += "\nThe full report is attached (one self-contained HTML file).\n";
    let msg = Outgoing {
        subject: format!("[drdrill] digest {}: {healthy}/{} plans healthy", report.period_text(), report.plans.len()),
        body,
        attachment: Some((format!("drdrill-report-{}.html", now.format("%Y-%m-%d")), html.into_bytes())),
    };
    channels.enqueue(db, Event::Digest, &msg)?;
    Ok(flush_outbox(channels, db).await)
}

/// Sends one test message now through every channel, without the outbox, and
/// returns each channel's result: for `drdrill notify test`, to check the settings.
pub async fn send_test(channels: &Channels) -> Vec<(&'static str, anyhow::Result<()>)> {
    let msg = Outgoing {
        subject: "[drdrill] test message".into(),
        body: format!("This is a test message from drdrill {}; alert settings work.\n", crate::VERSION),
        attachment: None,
    };
    let mut out = Vec::new();
    for c in &channels.0 {
        out.push((c.name(), c.deliver(&msg).await));
    }
    out
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushSummary {
    pub sent: usize,
    pub failed: usize,
    pub waiting: usize,
}

/// Tries every queued message whose retry time has come, oldest first, until
/// one fails on its channel. Each attempt is bounded by the channel's timeout,
/// so one flush waits at most about one timeout per dead channel; failures are
/// logged and rescheduled with backoff. Never returns an error.
pub async fn flush_outbox(channels: &Channels, db: &Db) -> FlushSummary {
    let mut summary = FlushSummary::default();
    let due = match outbox::due(db, Utc::now()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("cannot read the mail outbox: {e:#}");
            return summary;
        }
    };
    let mut down: Vec<String> = Vec::new();
    for entry in due {
        if down.contains(&entry.channel) {
            continue;
        }
        let Some(channel) = channels.get(&entry.channel) else {
            // Queued for a channel no longer configured: kept, not lost.
            continue;
        };
        match channel.deliver(&entry.message).await {
            Ok(()) => {
                summary.sent += 1;
                if let Err(e) = outbox::mark_sent(db, entry.id) {
                    tracing::error!(id = entry.id, "mail sent but not marked sent: {e:#}");
                }
            }
            Err(e) => {
                summary.failed += 1;
                let err = format!("{e:#}");
                tracing::warn!(id = entry.id, attempts = entry.attempts + 1, "mail not delivered, will retry: {err}");
                if let Err(e) = outbox::mark_failed(db, entry.id, &err, Utc::now()) {
                    tracing::error!(id = entry.id, "cannot reschedule mail: {e:#}");
                }
                // The channel is down or refusing: its other messages would each
                // wait out the timeout too. They stay due for the next flush.
                down.push(entry.channel.clone());
            }
        }
    }
    summary.waiting = outbox::pending(db).unwrap_or(0);
    summary
}

pub use outbox::pending as pending_count;
