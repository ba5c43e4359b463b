//! Starts each scheduled plan when it is due.
//!
//! The loop sleeps until the soonest due time (or a reload/stop wakes it). A
//! plan whose previous run is still active is not started twice: the firing is
//! recorded as a `skipped` run with the reason.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::plans::next_due;
use super::{Daemon, Declined};
use crate::plan::MissedPolicy;

/// The longest the loop sleeps without looking again, so a jump of the wall
/// clock (NTP, suspend) is noticed within this long.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// At start-up, applies each plan's `missed` policy to firings that passed
/// while no daemon was running (since the plan's newest recorded run).
pub fn catch_up(daemon: &Arc<Daemon>) {
    let tz = daemon.config.daemon.timezone.0;
    let now = Utc::now();
    let plans: Vec<_> = daemon.plans().plans.values().map(|e| e.plan.clone()).collect();
    for plan in plans {
        let Some(schedule) = &plan.schedule else { continue };
        let last = match daemon.engine.db.last_started(&plan.name) {
            Ok(Some(t)) => t,
            Ok(None) => continue, // never ran: nothing was missed
            Err(e) => {
                tracing::error!(plan = %plan.name, "cannot read the plan's last run: {e:#}");
                continue;
            }
        };
        const CAP: usize = 1000;
        let missed = schedule.next_after_in(last, tz, CAP).into_iter().filter(|t| *t < now).count();
        if missed == 0 {
            continue;
        }
        let count = if missed == CAP { format!("{CAP} or more") } else { missed.to_string() };
        match plan.missed {
            MissedPolicy::Skip => daemon.skip(
                &plan,
                "schedule",
                &format!(
                    "{count} scheduled run(s) missed while the daemon was down (since {}); plan says missed = \"skip\"",
                    last.to_rfc3339()
                ),
            ),
            MissedPolicy::RunOnce => {
                tracing::info!(plan = %plan.name, "{count} scheduled run(s) missed while the daemon was down: running once now");
                match daemon.start(plan.clone(), "catch-up") {
                    Ok(_) => {}
                    Err(paused @ Declined::Paused(_)) => {
                        daemon.skip(&plan, "catch-up", &format!("not started: {paused}"))
                    }
                    Err(why) => tracing::warn!(plan = %plan.name, "catch-up run not started: {why}"),
                }
            }
        }
    }
}

pub async fn run(daemon: Arc<Daemon>) {
    let tz = daemon.config.daemon.timezone.0;
    loop {
        if daemon.is_stopping() {
            return;
        }
        let now = Utc::now();
        let mut due = Vec::new();
        {
            let mut set = daemon.plans.write().unwrap_or_else(|p| p.into_inner());
            for entry in set.plans.values_mut() {
                if let Some(d) = entry.next
                    && d.at <= now
                {
                    // From now, not from the firing: after a long stall, firings in
                    // between are not run back to back.
                    entry.next = next_due(&entry.plan, tz, now);
                    due.push((entry.plan.clone(), d.at));
                }
            }
        }
        for (plan, at) in due {
            // In a fleet, the node that claims the firing runs it.
            if daemon.fleet.is_some() {
                super::fleet::fire(&daemon, plan, at);
                continue;
            }
            match daemon.start(plan.clone(), "schedule") {
                Ok(_) => {}
                Err(Declined::Stopping) => return,
                Err(why @ (Declined::Busy(_) | Declined::Paused(_))) => {
                    daemon.skip(&plan, "schedule", &format!("not started: {why}"))
                }
            }
        }
        let next = daemon.plans().next_due();
        let sleep = match next {
            // A due time already passed gives an error: look again at once.
            Some((_, at)) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = daemon.wake.notified() => {}
        }
    }
}
