//! The heartbeat: for every loaded plan with `[probe] kind = "heartbeat"`, the
//! daemon writes a timestamped marker into the live source every `interval`,
//! all the time and whether or not a drill runs, so that backups made by any
//! tool hold markers. A drill then reads the newest marker in its restore: the
//! measured RPO of the backup regime as it really runs.
//!
//! One task sleeps until the next marker is due and wakes early on a reload or
//! stop. Writing a marker blocks (psql, SQLite, a file) and runs on a blocking
//! thread, one at a time per plan: a source that hangs delays only its own
//! markers, never the scheduler or another plan's heartbeat.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Daemon;
use super::plans::PlanSet;
use crate::plan::ProbeKind;
use crate::source::Canary;

/// What `drdrill status` and `GET /api/plans` show of one plan's heartbeat.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BeatView {
    pub interval_ms: u64,
    /// Where the markers go, for people.
    pub target: String,
    /// Markers written since the plan was (re)loaded.
    pub written: u64,
    pub last_marker: Option<DateTime<Utc>>,
    /// The newest failure, until a marker is written again.
    pub last_error: Option<String>,
    /// When the current run of failures began.
    pub failing_since: Option<DateTime<Utc>>,
    /// A write that has not returned yet, since when (a hanging source shows here).
    pub writing_since: Option<DateTime<Utc>>,
}

struct Beat {
    /// The plan file's sha256: a changed plan starts its heartbeat over.
    plan_sha256: String,
    canary: Arc<dyn Canary>,
    interval: Duration,
    next: Instant,
    view: BeatView,
}

/// Every plan's heartbeat, shared by the writer task and the API.
#[derive(Default)]
pub struct Heartbeats {
    beats: Mutex<BTreeMap<String, Beat>>,
    wake: Notify,
}

impl Heartbeats {
    /// Makes the task look at the plans again (after a reload) or at `stopping`.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn beats(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Beat>> {
        self.beats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The heartbeat of `plan`, if it has one.
    pub fn view(&self, plan: &str) -> Option<BeatView> {
        self.beats().get(plan).map(|b| b.view.clone())
    }

    /// Every heartbeat's view, by plan name.
    pub fn views(&self) -> BTreeMap<String, BeatView> {
        self.beats().iter().map(|(n, b)| (n.clone(), b.view.clone())).collect()
    }

    /// Follows the plan set: new heartbeat plans start with a marker now,
    /// changed ones start over, removed ones stop.
    fn sync(&self, set: &PlanSet, now: Instant) {
        let mut beats = self.beats();
        beats.retain(|name, b| {
            set.plans.get(name).is_some_and(|e| e.plan.sha256 == b.plan_sha256 && heartbeat_of(&e.plan).is_some())
        });
        for (name, entry) in &set.plans {
            if beats.contains_key(name) {
                continue;
            }
            let Some((canary, interval)) = heartbeat_of(&entry.plan) else { continue };
            let plan = &entry.plan;
            let marker = plan.probe.as_ref().and_then(|p| p.marker.as_ref());
            let target = match marker {
                Some(m) => format!("{} (marker {})", plan.source.describe(), m.display()),
                None => plan.source.describe(),
            };
            tracing::info!(plan = %name, "heartbeat: a marker every {} into {target}", crate::duration::format_duration(interval));
            let view = BeatView {
                interval_ms: interval.as_millis() as u64,
                target,
                written: 0,
                last_marker: None,
                last_error: None,
                failing_since: None,
                writing_since: None,
            };
            beats.insert(name.clone(), Beat { plan_sha256: plan.sha256.clone(), canary, interval, next: now, view });
        }
    }

    /// The markers due at `now`, each marked as being written; their next
    /// time moves on by one interval (from now after a stall, so missed beats
    /// are not written back to back). A plan whose previous write has not
    /// returned skips this one.
    fn take_due(&self, now: Instant) -> Vec<(String, String, Arc<dyn Canary>)> {
        let mut due = Vec::new();
        for (name, b) in self.beats().iter_mut().filter(|(_, b)| b.next <= now) {
            b.next += b.interval;
            if b.next <= now {
                b.next = now + b.interval;
            }
            if b.view.writing_since.is_none() {
                b.view.writing_since = Some(Utc::now());
                due.push((name.clone(), b.plan_sha256.clone(), b.canary.clone()));
            }
        }
        due
    }

    fn next_due(&self) -> Option<Instant> {
        self.beats().values().map(|b| b.next).min()
    }

    /// Records a write's outcome, if the plan was not changed meanwhile. Logs
    /// the first failure of a run of them (and a new kind of failure), and the
    /// recovery, not every beat.
    fn finished(&self, plan: &str, sha256: &str, at: DateTime<Utc>, result: anyhow::Result<()>) {
        let mut beats = self.beats();
        let Some(b) = beats.get_mut(plan).filter(|b| b.plan_sha256 == sha256) else { return };
        let v = &mut b.view;
        v.writing_since = None;
        match result {
            Ok(()) => {
                if let Some(since) = v.failing_since.take() {
                    tracing::info!(plan, "heartbeat: markers are written again (failing since {})", since.to_rfc3339());
                }
                v.last_error = None;
                v.written += 1;
                v.last_marker = Some(at);
            }
            Err(e) => {
                let text = crate::redact::scrub(&format!("{e:#}")).into_owned();
                if v.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(plan, "heartbeat: cannot write a marker: {text}");
                }
                v.failing_since.get_or_insert(at);
                v.last_error = Some(text);
            }
        }
    }
}

/// The marker writer and interval of a plan with a heartbeat probe.
fn heartbeat_of(plan: &crate::plan::Plan) -> Option<(Arc<dyn Canary>, Duration)> {
    let probe = plan.probe.as_ref().filter(|p| p.kind == ProbeKind::Heartbeat)?;
    Some((plan.canary()?, probe.interval.0))
}

/// How long the task sleeps when no plan has a heartbeat: a reload wakes it anyway.
const IDLE: Duration = Duration::from_secs(3600);

pub async fn run(daemon: Arc<Daemon>) {
    let beats = &daemon.heartbeats;
    let mut look = true;
    loop {
        if daemon.is_stopping() {
            return;
        }
        let now = Instant::now();
        if look {
            beats.sync(&daemon.plans(), now);
        }
        for (plan, sha256, canary) in beats.take_due(now) {
            let d = daemon.clone();
            tokio::spawn(async move {
                let at = Utc::now();
                let result = tokio::task::spawn_blocking(move || canary.write_marker(at))
                    .await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("the marker writer panicked: {e}")));
                d.heartbeats.finished(&plan, &sha256, at, result);
            });
        }
        let until = beats.next_due().unwrap_or(now + IDLE);
        look = tokio::select! {
            _ = tokio::time::sleep_until(until) => false,
            _ = beats.wake.notified() => true,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::plan::Plan;

    fn set(dir: &std::path::Path, probe: &str) -> PlanSet {
        let text = format!(
            "[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n{probe}[[check]]\nkind = \"tree-matches-source\"\n",
            dir.display()
        );
        let plan = Plan::parse(&dir.join("p.toml"), &text, &Config::defaults()).unwrap();
        let mut s = PlanSet::default();
        s.plans.insert(plan.name.clone(), super::super::plans::PlanEntry { plan: Arc::new(plan), next: None });
        s
    }

    #[test]
    fn beats_are_due_once_per_interval_and_follow_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let hb = Heartbeats::default();
        let t0 = Instant::now();
        hb.sync(&set(dir.path(), "[probe]\nkind = \"heartbeat\"\ninterval = \"10s\"\nmarker = \"hb\"\n"), t0);
        assert_eq!(hb.take_due(t0).len(), 1, "a new plan beats at once");
        assert!(hb.take_due(t0).is_empty());
        assert_eq!(hb.next_due(), Some(t0 + Duration::from_secs(10)));
        // Its write has not returned: the next beat is skipped, not stacked.
        assert!(hb.take_due(t0 + Duration::from_secs(10)).is_empty());
        let sha = hb.beats()["p"].plan_sha256.clone();
        hb.finished("p", &sha, Utc::now(), Err(anyhow::anyhow!("disk full")));
        let v = hb.view("p").unwrap();
        assert_eq!((v.written, v.last_error.as_deref()), (0, Some("disk full")));
        assert!(v.failing_since.is_some() && v.writing_since.is_none());
        // After a long stall the next beat is one interval from now, not a burst.
        let late = t0 + Duration::from_secs(95);
        assert_eq!(hb.take_due(late).len(), 1);
        assert_eq!(hb.next_due(), Some(late + Duration::from_secs(10)));
        hb.finished("p", &sha, Utc::now(), Ok(()));
        let v = hb.view("p").unwrap();
        assert_eq!((v.written, v.last_error.clone(), v.failing_since), (1, None, None));
        // A changed plan starts over; a plan without a heartbeat has none.
        hb.sync(&set(dir.path(), "[probe]\nkind = \"heartbeat\"\ninterval = \"20s\"\nmarker = \"hb\"\n"), late);
        assert_eq!(hb.view("p").unwrap().interval_ms, 20_000);
        assert_eq!(hb.view("p").unwrap().written, 0);
        hb.sync(&set(dir.path(), ""), late);
        assert!(hb.view("p").is_none() && hb.next_due().is_none());
    }
}
