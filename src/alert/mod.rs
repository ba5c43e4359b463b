//! Email: an alert when a run fails or misses a target, and a periodic digest
//! with the HTML report attached.
//!
//! Mail never fails or delays a drill. Messages are first written to the
//! `outbox` table (after the run is recorded), then sent with a timeout; a
//! message that cannot be sent stays queued, its error logged, and is retried by
//! the next [`flush_outbox`] (after any run, each digest, or `drdrill notify flush`).

mod email;
mod outbox;

use std::time::Duration;

use chrono::Utc;

pub use crate::config::NotifyConfig;
use crate::db::Db;
use crate::record::RunReport;
use crate::report::{Format, Report, ReportOptions};

pub use outbox::{OutboxEntry, Outgoing, make_all_due};

/// Whether a finished run deserves an alert: it failed, or a target was missed.
pub fn needs_alert(report: &RunReport) -> bool {
    !report.passed() || report.measurements.iter().any(|m| m.met == Some(false))
}

/// The engine's caller hands every finished run here. Queues an alert if the run
/// failed or missed a target, then tries to deliver the outbox. Never returns an
/// error: mail trouble is logged and retried later, the drill's result stands.
pub async fn after_run(config: Option<&NotifyConfig>, db: &Db, report: &RunReport) {
    let Some(config) = config else { return };
    if queue_alert(config, db, report) {
        flush_outbox(config, db).await;
    }
}

/// The first half of [`after_run`]: queues the alert (if the run deserves one)
/// without delivering it, for a caller that delivers from its own worker (the
/// daemon). Returns whether a message was queued. Never fails: trouble is logged.
pub fn queue_alert(config: &NotifyConfig, db: &Db, report: &RunReport) -> bool {
    if !config.on_failure || !needs_alert(report) {
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
    match outbox::enqueue(db, "alert", &msg) {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(run = report.run_id, "cannot queue the failure alert: {e:#}");
            false
        }
    }
}

/// Builds the HTML report over the digest period and sends it. This is the entry
/// point the daemon calls when [`NotifyConfig::next_digest_after`] comes due.
/// Returns an error only if the report could not be built or queued; delivery
/// failures stay queued for retry and are returned in the summary.
pub async fn send_digest(config: &NotifyConfig, db: &Db) -> anyhow::Result<FlushSummary> {
    let now = Utc::now();
    let period = config.digest_period.map(|d| d.0).unwrap_or(Duration::from_secs(7 * 86400));
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
    outbox::enqueue(db, "digest", &msg)?;
    Ok(flush_outbox(config, db).await)
}

/// Sends one test message now, without the outbox, and returns the error if any:
/// for `drdrill notify test`, to check the settings.
pub async fn send_test(config: &NotifyConfig) -> anyhow::Result<()> {
    let msg = Outgoing {
        subject: "[drdrill] test message".into(),
        body: format!("This is a test message from drdrill {}; mail settings work.\n", crate::VERSION),
        attachment: None,
    };
    email::send(config, &msg).await
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushSummary {
    pub sent: usize,
    pub failed: usize,
    pub waiting: usize,
}

/// Tries every queued message whose retry time has come, oldest first, until
/// one fails. Each attempt is bounded by the configured timeout, so one flush
/// waits at most about one timeout on a dead server; failures are logged and
/// rescheduled with backoff. Never returns an error.
pub async fn flush_outbox(config: &NotifyConfig, db: &Db) -> FlushSummary {
    let mut summary = FlushSummary::default();
    let due = match outbox::due(db, Utc::now()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("cannot read the mail outbox: {e:#}");
            return summary;
        }
    };
    for entry in due {
        match email::send(config, &entry.message).await {
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
                // The server is down or refusing: the rest would each wait out
                // the timeout too. They stay due for the next flush.
                break;
            }
        }
    }
    summary.waiting = outbox::pending(db).unwrap_or(0);
    summary
}

pub use outbox::pending as pending_count;
