//! The daemon's mail worker: delivers queued alerts, sends the digest when its
//! schedule (`[notify] digest`) comes due, and retries what could not be sent.
//!
//! Runs never send mail themselves: they only queue it (a quick database write)
//! and wake this worker. A slow or dead mail server therefore holds up only this
//! task, never a drill or the scheduler.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Daemon;
use crate::alert;

/// How often queued mail is retried when nothing else wakes the worker.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

pub async fn run(daemon: Arc<Daemon>) {
    let db = daemon.engine.db.clone();
    let channels = daemon.alerts.clone();
    let notify = daemon.config.notify.clone();
    let next_digest_after = |t| notify.as_ref().and_then(|n| n.next_digest_after(t));
    let mut next_digest = next_digest_after(Utc::now());
    match next_digest {
        Some(t) => tracing::info!("mail: next digest at {}", t.to_rfc3339()),
        None => tracing::info!("mail: alerts only ([notify] has no digest schedule)"),
    }
    loop {
        // First round: mail left queued by a previous daemon or a dead server.
        let s = alert::flush_outbox(&channels, &db).await;
        if s.sent > 0 || s.failed > 0 {
            tracing::info!(sent = s.sent, failed = s.failed, waiting = s.waiting, "mail outbox flushed");
        }
        let mut wait = FLUSH_EVERY;
        if let Some(t) = next_digest {
            wait = wait.min((t - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = daemon.mail.notified() => {}
        }
        if next_digest.is_some_and(|t| t <= Utc::now()) {
            let period = notify.as_ref().map(|n| n.digest_period()).unwrap_or_default();
            match alert::send_digest(&channels, period, daemon.config.daemon.max_interval.map(|m| m.0), &db).await {
                Ok(s) if s.failed == 0 => tracing::info!(sent = s.sent, "digest sent"),
                Ok(s) => tracing::warn!(waiting = s.waiting, "digest queued; the mail server did not take it yet"),
                Err(e) => tracing::error!("digest not built: {e:#}"),
            }
            next_digest = next_digest_after(Utc::now());
        }
    }
}
