//! Alerts: a message when something happens to a plan (a run failed, missed a
//! target, was aborted, recovered; the plan is overdue; its backup is stale),
//! and a periodic digest, delivered through every configured channel that
//! takes that [`Event`]. One file per channel kind behind [`Channel`]: email
//! (`[notify]`), and `[[alert]]` webhooks, Slack-compatible webhooks and ntfy.
//!
//! Alerts never fail or delay a drill. What happened is one [`Notice`]; each
//! channel renders it into its own message, written to the `outbox` table
//! (after the run is recorded), then sent with the channel's timeout. A
//! message that cannot be sent stays queued, its error logged, and is retried
//! with backoff by the next [`flush_outbox`] (after any run, each digest, the
//! daemon's mail worker every minute, or `drdrill notify flush`), on the
//! channel it was queued for and with the same bytes.

mod email;
mod http;
mod ntfy;
mod outbox;
mod slack;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
pub use crate::config::{Event, NotifyConfig};
use crate::db::Db;
use crate::duration::fmt_ms;
use crate::record::{RunReport, Status};
use crate::report::{Format, Report, ReportOptions};

pub use outbox::{OutboxEntry, Outgoing, make_all_due};

/// One way messages reach people.
///
/// Contract: `render` turns a [`Notice`] into what this channel sends (stored
/// in the outbox, so a retry sends the same bytes); `deliver` sends one
/// message or fails, bounded by the channel's own timeout (the outbox retries
/// later); neither logs a secret. Secrets come from the environment or files
/// at send time, never from the config text.
pub trait Channel: Send + Sync {
    /// Its name in the outbox (`email`, or the `[[alert]]`'s name): a message is
    /// retried on the channel it was queued for.
    fn name(&self) -> &str;
    /// Whether it takes messages about this event.
    fn wants(&self, event: Event) -> bool;
    /// The message this channel sends for `notice`; plain text by default.
    fn render(&self, notice: &Notice) -> anyhow::Result<Outgoing> {
        Ok(notice.as_text())
    }
    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// The channel kinds: each builds its channels from the config (none when it
/// is not configured). A new kind is one file and one line here.
type Build = fn(&Config) -> Vec<Arc<dyn Channel>>;

const CHANNELS: &[Build] = &[email::from_config, webhook::from_config, slack::from_config, ntfy::from_config];

/// The channels a config sets up.
#[derive(Clone, Default)]
pub struct Channels {
    list: Vec<Arc<dyn Channel>>,
    /// The base of the links notices carry (`[api] public_url`, else the API).
    links: String,
}

impl Channels {
    pub fn from_config(config: &Config) -> Channels {
        Channels { list: CHANNELS.iter().flat_map(|build| build(config)).collect(), links: config.link_base() }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The channels' names, for messages.
    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|c| c.name().to_string()).collect()
    }

    fn get(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.list.iter().find(|c| c.name() == name)
    }

    /// Queues `notice` on every channel that takes its event; how many took it.
    /// A channel that cannot render it is skipped with an error in the log.
    fn enqueue(&self, db: &Db, notice: &Notice) -> anyhow::Result<usize> {
        let mut n = 0;
        for c in self.list.iter().filter(|c| c.wants(notice.event)) {
            match c.render(notice) {
                Ok(msg) => {
                    outbox::enqueue(db, notice.event.as_str(), c.name(), &msg)?;
                    n += 1;
                }
                Err(e) => tracing::error!(channel = c.name(), "cannot write the {} message: {e:#}", notice.event),
            }
        }
        Ok(n)
    }

    /// `/api/runs/ID`-style links of a notice.
    fn links_for(&self, plan: Option<&str>, run_id: Option<i64>) -> BTreeMap<String, String> {
        let mut links = BTreeMap::new();
        if let Some(id) = run_id {
            links.insert("run".into(), format!("{}/api/runs/{id}", self.links));
        }
        if let Some(p) = plan {
            links.insert("plan_runs".into(), format!("{}/api/runs?plan={p}", self.links));
        }
        links.insert("metrics".into(), format!("{}/metrics", self.links));
        links
    }
}

/// The `[[alert]]` channels of one kind, each with its HTTP client. A channel
/// whose client cannot be set up is left out with an error in the log.
fn http_channels(
    config: &Config,
    kind: crate::config::AlertKind,
    build: impl Fn(crate::config::AlertConfig, http::Poster) -> Arc<dyn Channel>,
) -> Vec<Arc<dyn Channel>> {
    let mut out = Vec::new();
    for a in config.alerts.iter().filter(|a| a.kind == kind) {
        match http::Poster::new(a) {
            Ok(p) => out.push(build(a.clone(), p)),
            Err(e) => tracing::error!(channel = a.name(), "alert channel not set up: {e:#}"),
        }
    }
    out
}

/// A measured figure with its target, as notices carry RTO and RPO.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Figure {
    pub value_ms: Option<f64>,
    pub target_ms: Option<f64>,
    pub met: Option<bool>,
}

impl Figure {
    fn text(&self) -> String {
        let verdict = match self.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        format!("{} (target {}, {verdict})", fmt_ms(self.value_ms), fmt_ms(self.target_ms))
    }
}

/// What happened, once, before any channel words it. Its JSON form is the
/// webhook body (docs/json.md, "Webhook body").
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// Stable for one happening, so a receiver can drop a retried delivery it already has.
    pub id: String,
    pub event: Event,
    pub at: DateTime<Utc>,
    pub host: String,
    pub plan: Option<String>,
    pub run_id: Option<i64>,
    /// `passed`, `failed` or `aborted`, for notices about a run.
    pub result: Option<String>,
    pub reason: Option<String>,
    pub rto: Option<Figure>,
    pub rpo: Option<Figure>,
    /// One line: the mail subject, the ntfy title.
    pub title: String,
    /// The human body.
    pub text: String,
    pub links: BTreeMap<String, String>,
    /// Event-specific fields (overdue: since and max_interval; digest: the plans).
    pub details: serde_json::Value,
    #[serde(skip)]
    pub attachment: Option<(String, Vec<u8>)>,
}

impl Notice {
    /// A notice about `plan` that is not a run's (overdue, stale backup): the
    /// other fields are filled in, secrets scrubbed from the text.
    pub fn about(channels: &Channels, event: Event, plan: &str, title: &str, text: &str) -> Notice {
        let at = Utc::now();
        Notice {
            id: notice_id(event, Some(plan), None, at),
            event,
            at,
            host: crate::net::hostname(),
            plan: Some(plan.to_string()),
            run_id: None,
            result: None,
            reason: None,
            rto: None,
            rpo: None,
            title: crate::redact::scrub(&format!("[drdrill] {title}")).into_owned(),
            text: crate::redact::scrub(text).into_owned(),
            links: channels.links_for(Some(plan), None),
            details: serde_json::Value::Null,
            attachment: None,
        }
    }

    /// A notice about a finished run.
    fn of_run(channels: &Channels, event: Event, report: &RunReport, after_failures: usize) -> Notice {
        let figure = |name: &str| {
            report.measurement(name).map(|m| Figure { value_ms: m.value_ms, target_ms: m.target_ms, met: m.met })
        };
        let (plan, id) = (&report.plan, report.run_id);
        let (title, head) = match event {
            Event::Recovered => (
                format!("{plan} RECOVERED: run {id}"),
                format!("The drill `{plan}` passed again (run {id}) after {after_failures} run(s) that did not."),
            ),
            Event::Aborted => {
                (format!("{plan} ABORTED: run {id}"), format!("The drill `{plan}` was aborted (run {id})."))
            }
            Event::TargetMissed => (
                format!("{plan} FAILED: run {id} (target missed)"),
                format!("The drill `{plan}` restored and verified, but missed a target (run {id})."),
            ),
            _ => (
                format!("{plan} {}: run {id}", report.status.as_str().to_uppercase()),
                format!("The drill `{plan}` did not pass (run {id})."),
            ),
        };
        let text = format!("{head}\n\n{}\nSee `drdrill show {id}` for the full timeline.\n", report.render());
        let at = Utc::now();
        Notice {
            id: notice_id(event, Some(plan), Some(id), at),
            event,
            at,
            host: crate::net::hostname(),
            plan: Some(plan.clone()),
            run_id: Some(id),
            result: Some(report.status.as_str().to_string()),
            reason: report.reason.as_deref().map(|r| crate::redact::scrub(r).into_owned()),
            rto: figure("rto"),
            rpo: figure("rpo"),
            title: crate::redact::scrub(&format!("[drdrill] {title}")).into_owned(),
            text: crate::redact::scrub(&text).into_owned(),
            links: channels.links_for(Some(plan), Some(id)),
            details: serde_json::Value::Null,
            attachment: None,
        }
    }

    /// Subject, body and attachment as they are: what email and any plain-text channel send.
    pub fn as_text(&self) -> Outgoing {
        Outgoing {
            event: self.event.as_str().to_string(),
            subject: self.title.clone(),
            body: self.text.clone(),
            attachment: self.attachment.clone(),
        }
    }

    /// A few lines for chat and phones: the verdict, the figures, the reason, the link.
    pub fn short_text(&self) -> String {
        let mut t = String::new();
        if let Some(r) = &self.result {
            t += &format!("result: {r}\n");
        }
        if let Some(f) = &self.rto {
            t += &format!("RTO {}\n", f.text());
        }
        if let Some(f) = &self.rpo {
            t += &format!("RPO {}\n", f.text());
        }
        if let Some(r) = &self.reason {
            t += &format!("reason: {r}\n");
        }
        if self.run_id.is_none() {
            // Overdue, stale backup, digest: the text is all there is.
            t += self.text.trim_end();
            t.push('\n');
        }
        if let Some(l) = self.links.get("run") {
            t += &format!("{l}\n");
        }
        t.trim_end().to_string()
    }
}

/// Which event a finished run is, given how many runs before it (newest
/// first, skipped ones left out) did not pass. `None`: nothing to say.
pub fn event_of(report: &RunReport, failures_before: usize) -> Option<Event> {
    match report.status {
        Status::Aborted => Some(Event::Aborted),
        Status::Failed => {
            let only_targets = !report.checks.is_empty()
                && report.checks.iter().all(|c| c.passed)
                && report.phases.iter().all(|p| p.status != "failed")
                && report.measurements.iter().any(|m| m.met == Some(false));
            Some(if only_targets { Event::TargetMissed } else { Event::Failed })
        }
        Status::Passed if report.measurements.iter().any(|m| m.met == Some(false)) => Some(Event::TargetMissed),
        Status::Passed if failures_before > 0 => Some(Event::Recovered),
        Status::Passed => None,
    }
}

/// How many finished runs of `plan` right before `run_id` did not pass.
fn failures_before(db: &Db, plan: &str, run_id: i64) -> usize {
    match db.runs(Some(plan), 50) {
        Ok(runs) => runs
            .iter()
            .filter(|r| r.id < run_id && r.status != "skipped" && r.status != "running")
            .take_while(|r| r.status != "passed")
            .count(),
        Err(e) => {
            tracing::warn!(plan, "cannot read the plan's previous runs, so a recovery may go unannounced: {e:#}");
            0
        }
    }
}

fn notice_id(event: Event, plan: Option<&str>, run: Option<i64>, at: DateTime<Utc>) -> String {
    let key = format!("{event}|{}|{}|{}", plan.unwrap_or(""), run.unwrap_or(0), at.timestamp_millis());
    crate::hashing::sha256_hex(key.as_bytes())[..24].to_string()
}

/// The engine's caller hands every finished run here: queues the run's alert
/// (if it deserves one), then tries to deliver the outbox. Never returns an
/// error: delivery trouble is logged and retried later, the drill's result stands.
pub async fn after_run(channels: &Channels, db: &Db, report: &RunReport) {
    if queue_alert(channels, db, report) {
        flush_outbox(channels, db).await;
    }
}

/// The first half of [`after_run`]: queues the run's alert (failed,
/// target-missed, aborted, recovered) without delivering it, for a caller
/// that delivers from its own worker (the daemon). Returns whether a message
/// was queued. Never fails: trouble is logged.
pub fn queue_alert(channels: &Channels, db: &Db, report: &RunReport) -> bool {
    if channels.is_empty() {
        return false;
    }
    let before = failures_before(db, &report.plan, report.run_id);
    let Some(event) = event_of(report, before) else { return false };
    queue(channels, db, &Notice::of_run(channels, event, report, before))
}

/// Queues any notice (overdue, stale backup, ...) on the channels that take
/// its event, without delivering it. Returns whether a channel took it.
/// Never fails: trouble is logged.
pub fn queue(channels: &Channels, db: &Db, notice: &Notice) -> bool {
    match channels.enqueue(db, notice) {
        Ok(n) => n > 0,
        Err(e) => {
            tracing::error!(plan = notice.plan.as_deref(), "cannot queue the {} alert: {e:#}", notice.event);
            false
        }
    }
}

/// Builds the HTML report over `period` back from now and sends it. This is the
/// entry point the daemon calls when [`NotifyConfig::next_digest_after`] comes
/// due. Returns an error only if the report could not be built or queued;
/// delivery failures stay queued for retry and are returned in the summary.
/// `max_interval` is the config's default for plans that set none (`[daemon] max_interval`).
pub async fn send_digest(
    channels: &Channels,
    period: Duration,
    max_interval: Option<Duration>,
    db: &Db,
) -> anyhow::Result<FlushSummary> {
    let now = Utc::now();
    let since = now - chrono::Duration::from_std(period)?;
    let report = Report::build_html(db, &ReportOptions { since: Some(since), plan: None, now, max_interval })?;
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
    let plans: Vec<serde_json::Value> = report
        .plans
        .iter()
        .map(|p| {
            serde_json::json!({
                "plan": p.plan, "health": p.health, "runs": p.runs, "pass_rate": p.pass_rate,
                "last_success": p.last_success,
            })
        })
        .collect();
    let notice = Notice {
        id: notice_id(Event::Digest, None, None, now),
        event: Event::Digest,
        at: now,
        host: crate::net::hostname(),
        plan: None,
        run_id: None,
        result: None,
        reason: None,
        rto: None,
        rpo: None,
        title: format!("[drdrill] digest {}: {healthy}/{} plans healthy", report.period_text(), report.plans.len()),
        text: body,
        links: channels.links_for(None, None),
        details: serde_json::json!({
            "period": report.period_text(), "healthy": healthy, "plans": plans,
            "evidence_head": report.head_text(),
        }),
        attachment: Some((format!("drdrill-report-{}.html", now.format("%Y-%m-%d")), html.into_bytes())),
    };
    channels.enqueue(db, &notice)?;
    Ok(flush_outbox(channels, db).await)
}

/// Sends one test message now through every channel, without the outbox, and
/// returns each channel's result: for `drdrill notify test`, to check the settings.
pub async fn send_test(channels: &Channels) -> Vec<(String, anyhow::Result<()>)> {
    let mut notice = Notice::about(
        channels,
        Event::Digest,
        "test",
        "test message",
        &format!("This is a test message from drdrill {}; alert settings work.\n", crate::VERSION),
    );
    notice.plan = None;
    // Sent as the digest's kind of message, marked so a receiver can tell.
    notice.details = serde_json::json!({ "test": true });
    let mut out = Vec::new();
    for c in &channels.list {
        let result = match c.render(&notice) {
            Ok(msg) => c.deliver(&msg).await,
            Err(e) => Err(e),
        };
        out.push((c.name().to_string(), result));
    }
    out
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
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
            tracing::error!("cannot read the alert outbox: {e:#}");
            return summary;
        }
    };
    tracing::debug!(due = due.len(), channels = ?channels.names(), "alert outbox: delivering what is due");
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
                tracing::debug!(id = entry.id, channel = %entry.channel, "alert delivered");
                if let Err(e) = outbox::mark_sent(db, entry.id) {
                    tracing::error!(id = entry.id, "alert sent but not marked sent: {e:#}");
                }
            }
            Err(e) => {
                summary.failed += 1;
                // Kept in the database: no secret (a URL that is one) goes there.
                let err = crate::redact::scrub(&format!("{e:#}")).into_owned();
                tracing::warn!(
                    id = entry.id,
                    channel = %entry.channel,
                    attempts = entry.attempts + 1,
                    "alert not delivered, will retry: {err}"
                );
                if let Err(e) = outbox::mark_failed(db, entry.id, &err, Utc::now()) {
                    tracing::error!(id = entry.id, "cannot reschedule the alert: {e:#}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CheckRecord, Measurement, PhaseRecord};

    fn report(status: Status, check_passed: bool, met: bool) -> RunReport {
        RunReport {
            run_id: 7,
            plan: "p".into(),
            status,
            reason: None,
            phases: vec![PhaseRecord {
                name: "verify".into(),
                started_at: Utc::now(),
                duration_ms: 1.0,
                status: if check_passed { "ok" } else { "failed" }.into(),
                detail: String::new(),
            }],
            checks: vec![CheckRecord {
                kind: "command".into(),
                description: String::new(),
                passed: check_passed,
                attempts: 1,
                duration_ms: 1.0,
                output: String::new(),
            }],
            measurements: vec![Measurement {
                name: "rto".into(),
                value_ms: Some(5.0),
                target_ms: Some(1.0),
                method: "monotonic".into(),
                met: Some(met),
            }],
            backup_id: None,
        }
    }

    #[test]
    fn each_run_is_one_event() {
        assert_eq!(event_of(&report(Status::Failed, true, false), 0), Some(Event::TargetMissed));
        assert_eq!(event_of(&report(Status::Failed, false, false), 0), Some(Event::Failed));
        assert_eq!(event_of(&report(Status::Aborted, true, true), 3), Some(Event::Aborted));
        assert_eq!(event_of(&report(Status::Passed, true, true), 2), Some(Event::Recovered));
        assert_eq!(event_of(&report(Status::Passed, true, true), 0), None);
    }
}
