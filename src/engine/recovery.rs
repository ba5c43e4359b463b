//! Runs that did not end normally: recording the end of a run whose results
//! database filled up while it ran, and, at start-up (of the daemon and of
//! `drdrill run` alike), recording runs whose process died, removing their
//! scratch and naming live data they left in quarantine.
//!
//! A run is judged by its owner (see [`crate::db::owner`]): one that another
//! process on this host still runs, or that another host runs, is left alone,
//! with its scratch and quarantine.

use std::path::PathBuf;

use anyhow::anyhow;

use super::Engine;
use crate::db::{Recovered, RunEnd};
use crate::errors::{explain, is_disk_full};
use crate::quarantine::Leftover;
use crate::record::{CheckRecord, Measurement, PhaseRecord, Status};

/// What start-up recovery found and did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Runs of dead processes, now recorded `aborted`.
    pub aborted: Vec<Recovered>,
    /// Scratch folders of runs that are over, removed.
    pub swept: Vec<PathBuf>,
    /// Live data kept by runs that are over: never removed, only named.
    pub quarantine: Vec<Leftover>,
    /// Throwaway servers those runs' restores left running, now stopped.
    pub stopped: Vec<String>,
}

impl Engine {
    /// Records runs left `running` by processes that died as `aborted` (with
    /// the cause, when the dead process left one), removes the scratch folders
    /// of runs that are over, and lists quarantine folders they left.
    /// `found_by` names the caller in the recorded reason.
    pub fn recover(&self, found_by: &str) -> anyhow::Result<Recovery> {
        let aborted = self.db.recover_stale_runs(found_by, |id| self.scratch.cause(id))?;
        // After the above, `running` means a live owner (or another host's).
        let stopped = self.stop_leftover_servers(|id| self.db.is_running(id));
        let swept = self.scratch.sweep(|id| self.db.is_running(id))?;
        let quarantine = crate::quarantine::find(self.scratch.path(), |id| self.db.is_running(id));
        Ok(Recovery { aborted, swept, quarantine, stopped })
    }

    /// A run killed outright never ran its cleanup: the servers its restore
    /// started are stopped from their pid files before its folder goes.
    fn stop_leftover_servers(&self, active: impl Fn(i64) -> bool) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.scratch.path()) else { return Vec::new() };
        let mut stopped = Vec::new();
        for entry in entries.flatten() {
            let folder = entry.path();
            if crate::scratch::run_id_of(&folder).is_some_and(|id| !active(id)) {
                let ctx = crate::context::RunCtx::detached(folder.clone(), std::time::Duration::from_secs(60));
                for what in crate::source::stop_leftovers(&ctx) {
                    stopped.push(format!("{}: {what}", folder.display()));
                }
            }
        }
        stopped
    }

    /// Called when `finish_run` failed with `error`. On a full disk, the end
    /// is recorded in the space kept in reserve, as a failure that names the
    /// disk (a passed drill whose history cannot grow still needs someone to
    /// act). When even that cannot be written, the cause is left in scratch
    /// for the next start-up to record, and the error says so. Returns the
    /// status as recorded; `end` holds the reason as recorded.
    pub(super) fn finish_despite(
        &self,
        run_id: i64,
        end: &mut RunEnd,
        status: Status,
        timeline: (&[PhaseRecord], &[CheckRecord], &[Measurement]),
        error: anyhow::Error,
    ) -> anyhow::Result<Status> {
        let db = self.db.path().display().to_string();
        if !is_disk_full(&error) {
            let cause = explain(&error);
            let _ = self.scratch.leave_cause(run_id, &cause);
            return Err(anyhow!(
                "cannot record the result of run {run_id} in the results database {db}: {cause}; the next `drdrill run` or daemon start records it aborted"
            ));
        }
        let full = format!(
            "the disk holding the results database {db} is full (no space left on device): free space there, or move `database` to a larger disk"
        );
        let status = if status == Status::Passed { Status::Failed } else { status };
        end.status = status.as_str().into();
        end.reason = Some(match end.reason.take() {
            None => format!("the drill passed its checks and targets, but {full}"),
            Some(r) => format!("{r}; and {full}"),
        });
        let (phases, checks, measurements) = timeline;
        let mut error = error;
        if self.db.release_reserve() {
            match self.db.finish_run(run_id, end, phases, checks, measurements) {
                Ok(()) => {
                    self.db.restore_reserve();
                    return Ok(status);
                }
                Err(e) => error = e,
            }
        }
        let cause = format!("{full} ({})", crate::redact::scrub(&format!("{error:#}")));
        let left = match self.scratch.leave_cause(run_id, &cause) {
            Ok(_) => "the next `drdrill run` or daemon start records it aborted with this cause",
            Err(_) => "the next `drdrill run` or daemon start records it aborted",
        };
        Err(anyhow!("cannot record the result of run {run_id}: {full}; the run stays `running` until {left}"))
    }
}
