//! Overdue drills: a plan with no passed run for longer than its `max_interval`
//! (or `[daemon] max_interval`) is `overdue`; one that never ran is `untested`
//! from the moment the daemon first loaded it, and overdue counted from then.
//!
//! An overdue plan raises one `overdue` alert per period: the first when it
//! becomes overdue, then one each `max_interval` later while it stays so. The
//! period last alerted is kept in the results database, so a restart neither
//! repeats an alert nor loses one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Daemon;
use crate::alert::{Event, Notice};
use crate::plan::Plan;

/// Checked at least this often; more often for short intervals.
const CHECK_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Due {
    /// A passed run within `max_interval` (or no `max_interval` and some run).
    Current,
    /// No passed run for longer than `max_interval`.
    Overdue,
    /// No run at all yet, and not overdue.
    Untested,
}

/// Where one plan stands, for `/api/plans`, `drdrill status` and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    pub state: Due,
    pub max_interval_ms: Option<u64>,
    pub last_passed: Option<DateTime<Utc>>,
    /// When the daemon first loaded the plan.
    pub first_loaded: DateTime<Utc>,
    /// When it became overdue.
    pub overdue_since: Option<DateTime<Utc>>,
}

impl Standing {
    /// The start of the overdue period `now` is in.
    fn period(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let since = self.overdue_since?;
        let step = chrono::Duration::milliseconds(self.max_interval_ms? as i64);
        if step <= chrono::Duration::zero() {
            return Some(since);
        }
        let n = ((now - since).num_milliseconds() / step.num_milliseconds()).max(0) as i32;
        Some(since + step * n)
    }
}

/// Where `plan` stands at `now`.
pub fn standing(daemon: &Daemon, plan: &Plan, now: DateTime<Utc>) -> anyhow::Result<Standing> {
    let db = &daemon.engine.db;
    let first_loaded = db.plan_first_loaded(&plan.name, now)?;
    let last_passed = db.last_passed(&plan.name)?;
    let max = plan.max_interval_in(&daemon.config);
    let overdue_since = max
        .and_then(|m| chrono::Duration::from_std(m).ok())
        .map(|m| last_passed.unwrap_or(first_loaded) + m)
        .filter(|t| *t <= now);
    let state = if overdue_since.is_some() {
        Due::Overdue
    } else if !db.has_run(&plan.name)? {
        Due::Untested
    } else {
        Due::Current
    };
    Ok(Standing { state, max_interval_ms: max.map(|m| m.as_millis() as u64), last_passed, first_loaded, overdue_since })
}

/// How often to look: a fifth of the shortest interval, from 1s to a minute.
fn check_every(daemon: &Daemon) -> Duration {
    let shortest = daemon.plans().plans.values().filter_map(|e| e.plan.max_interval_in(&daemon.config)).min();
    shortest.map_or(CHECK_EVERY, |s| (s / 5).clamp(Duration::from_secs(1), CHECK_EVERY))
}

/// Queues an overdue alert for each plan that entered a period not yet alerted.
pub fn check(daemon: &Daemon, now: DateTime<Utc>) {
    let plans: Vec<Arc<Plan>> = daemon.plans().plans.values().map(|e| e.plan.clone()).collect();
    let mut queued = false;
    for plan in plans {
        let s = match standing(daemon, &plan, now) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(plan = %plan.name, "cannot tell whether the plan is overdue: {e:#}");
                continue;
            }
        };
        let (Some(period), Some(since)) = (s.period(now), s.overdue_since) else { continue };
        let db = &daemon.engine.db;
        match db.overdue_alerted(&plan.name) {
            Ok(Some(last)) if last >= period => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(plan = %plan.name, "cannot read the plan's overdue alerts: {e:#}");
                continue;
            }
        }
        // As the plan writes it: "7days", "5s".
        let interval = humantime::format_duration(Duration::from_millis(s.max_interval_ms.unwrap_or_default()));
        let last = match s.last_passed {
            Some(t) => format!("its last passed run finished {}", t.to_rfc3339()),
            None => format!("it has not passed since the daemon first loaded it at {}", s.first_loaded.to_rfc3339()),
        };
        tracing::warn!(plan = %plan.name, "plan overdue: no passed run for over {interval}; {last}");
        let mut notice = Notice::about(
            &daemon.alerts,
            Event::Overdue,
            &plan.name,
            &format!("{} OVERDUE: no passed run for over {interval}", plan.name),
            &format!(
                "The drill `{}` is overdue: no passed run for over {interval} (max_interval); {last}.\n\
                 Run it (`drdrill trigger {}`) or find out why its runs fail or do not start (`drdrill status`).\n",
                plan.name, plan.name
            ),
        );
        notice.details = serde_json::json!({
            "overdue_since": since,
            "period_start": period,
            "max_interval_ms": s.max_interval_ms,
            "last_passed": s.last_passed,
        });
        // Remembered even without a channel: the log line above said it once.
        if crate::alert::queue(&daemon.alerts, db, &notice) {
            queued = true;
        }
        if let Err(e) = db.set_overdue_alerted(&plan.name, period) {
            tracing::error!(plan = %plan.name, "cannot record the overdue alert: {e:#}");
        }
    }
    if queued {
        daemon.mail.notify_one();
    }
}

/// Looks for overdue plans until the daemon stops.
pub async fn run(daemon: Arc<Daemon>) {
    loop {
        let d = daemon.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || check(&d, Utc::now())).await {
            tracing::error!("the overdue check panicked: {e}");
        }
        tokio::time::sleep(check_every(&daemon)).await;
    }
}
