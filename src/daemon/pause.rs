//! The emergency stop: every running drill aborted with its rollbacks, and the
//! scheduler paused until someone resumes it. The pause is the database's
//! (see [`crate::db::pause`]), so it outlives a restart; the daemon keeps a copy
//! so that deciding whether a run may start never waits on SQLite.

use chrono::Utc;
use serde::Serialize;

use super::Daemon;
use crate::db::pause::Pause;

/// What an emergency stop did.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    pub pause: Pause,
    /// False when the scheduler was already paused (that pause is kept).
    pub newly_paused: bool,
    /// Runs asked to abort: they roll back, clean up and are recorded `aborted`.
    pub aborted: Vec<AbortedRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AbortedRun {
    pub plan: String,
    /// `None` for a run still queued for a concurrency slot.
    pub run_id: Option<i64>,
}

impl Daemon {
    /// The pause in force.
    pub fn pause(&self) -> Option<Pause> {
        self.paused.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Pauses the scheduler (recorded first, so nothing new starts from here
    /// on), then aborts every active run, queued ones included.
    pub fn emergency_stop(&self, by: &str, reason: &str) -> anyhow::Result<Stopped> {
        let (pause, newly_paused) = self.engine.db.pause_scheduler(by, reason, Utc::now())?;
        let why = format!("emergency stop by {by}: {reason}");
        let aborted: Vec<AbortedRun> = {
            // Under the lock that `start_with` checks the pause under: a run
            // either saw the pause or is in this list.
            let active = self.active();
            *self.paused.lock().unwrap_or_else(|p| p.into_inner()) = Some(pause.clone());
            active
                .values()
                .map(|a| {
                    a.abort.cancel_because(&why);
                    AbortedRun { plan: a.plan.clone(), run_id: a.run_id }
                })
                .collect()
        };
        let ids: Vec<i64> = aborted.iter().filter_map(|a| a.run_id).collect();
        let pause = match self.engine.db.add_aborted(pause.id, &ids) {
            Ok(p) => {
                let mut cached = self.paused.lock().unwrap_or_else(|p| p.into_inner());
                // Unless a resume came in between.
                if cached.as_ref().is_some_and(|c| c.id == p.id) {
                    *cached = Some(p.clone());
                }
                p
            }
            Err(e) => {
                // The runs are aborted all the same, and say so in their own records.
                tracing::error!("cannot record the runs emergency stop {} aborted: {e:#}", pause.id);
                pause
            }
        };
        tracing::error!(
            "EMERGENCY STOP by {by}: {reason}; {} run(s) aborting with rollbacks; the scheduler is paused until `drdrill resume`",
            aborted.len()
        );
        self.wake.notify_one();
        self.publish_status();
        Ok(Stopped { pause, newly_paused, aborted })
    }

    /// Lifts the pause in force; `None` when the scheduler was not paused.
    pub fn resume(&self, by: &str) -> anyhow::Result<Option<Pause>> {
        let resumed = self.engine.db.resume_scheduler(by, Utc::now())?;
        *self.paused.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(p) = &resumed {
            tracing::warn!("scheduler resumed by {by} (paused since {} by {})", p.paused_at.to_rfc3339(), p.paused_by);
        }
        self.wake.notify_one();
        self.publish_status();
        Ok(resumed)
    }
}

/// The line `drdrill status` shows while the scheduler is paused.
pub fn status(p: &Pause) -> String {
    format!(
        "PAUSED: emergency stop by {} at {}: {}; no drill starts until `drdrill resume`",
        p.paused_by,
        p.paused_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        p.reason
    )
}

/// Why a run was declined while paused, as its skipped record says.
pub fn refusal(p: &Pause) -> String {
    format!(
        "the scheduler is paused by an emergency stop ({} at {}: {}); `drdrill resume` (or POST /api/resume) lets drills start again",
        p.paused_by,
        p.paused_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        p.reason
    )
}
