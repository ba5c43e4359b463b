//! Runs one plan end to end and measures it. Knows nothing about SQL, tar or
//! HTTP: sources, stores, failures and checks do the work behind their traits.
//!
//! ```text
//! prepare -> backup -> failure (T_fail) -> restore -> verify (T_ok) -> record -> rollback + cleanup
//! ```
//!
//! RTO = T_ok - T_fail on the monotonic clock. RPO = T_fail - the newest data the
//! restored copy really holds (a canary marker, else the backup's consistency
//! point). A run passes only if every check passed and both were measured and met.

mod canary;
pub mod gates;
pub mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};

use crate::backup::{BackupOptions, restore_backup, take_backup};
use crate::cancel::Cancel;
use crate::check::CheckCtx;
use crate::config::Config;
use crate::db::{CheckRecord, Db, GateRecord, Measurement, NewRun, PhaseRecord, RunEnd, RunNote, ms};
use crate::duration::format_duration;
use crate::failure::guard::{Guard, Refused};
use crate::failure::{Failure, FailureCtx};
use crate::plan::{BackupMode, Plan};
use crate::scratch::{RunScratch, ScratchRoot};
use crate::source::Restored;
use crate::store::{Manifest, Store};
use canary::CanaryWriter;
pub use gates::{Approval, GateError, Gates, PendingGate};
pub use report::{RunReport, Status};

/// Sees a run as it goes: the CLI prints it, the daemon publishes it. Every
/// method has a no-op default, so an observer implements only what it shows.
pub trait Observer: Send + Sync {
    fn run_started(&self, _run_id: i64, _plan: &Plan) {}
    /// A phase begins (for live progress); `phase` follows when it ends.
    fn phase_started(&self, _run_id: i64, _name: &str) {}
    fn phase(&self, _run_id: i64, _phase: &PhaseRecord) {}
    /// The run now waits at an approval gate before phase `gate`.
    fn gate_waiting(&self, _run_id: i64, _gate: &str) {}
    /// The gate was approved, or the run was aborted while waiting.
    fn gate_decided(&self, _run_id: i64, _gate: &GateRecord) {}
}

/// An observer that shows nothing.
pub struct Quiet;
impl Observer for Quiet {}

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Why the run started: `manual`, `schedule`, `api`.
    pub trigger: String,
    /// Set by a person or the daemon to abort the run; rollbacks and cleanup still run.
    pub abort: Cancel,
    /// Where the run waits at `pause_before` gates; whoever holds a clone approves.
    pub gates: Gates,
    /// A note to record on the run as it starts (`drdrill run --note`); it is
    /// part of the run's evidence record like every note written before the end.
    pub notes: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { trigger: "manual".into(), abort: Cancel::new(), gates: Gates::new(), notes: None }
    }
}

pub struct Engine {
    pub config: Arc<Config>,
    pub db: Arc<Db>,
    pub scratch: ScratchRoot,
}

impl Engine {
    pub fn open(config: Arc<Config>) -> anyhow::Result<Engine> {
        let db = Arc::new(Db::open(&config.database)?);
        let scratch = ScratchRoot::new(&config.scratch);
        Ok(Engine { config, db, scratch })
    }

    pub fn open_store(&self, name: &str) -> anyhow::Result<Store> {
        let spec = self
            .config
            .stores
            .get(name)
            .with_context(|| format!("store `{name}` is not configured in {}", self.config.origin()))?;
        Store::open(name, spec.as_ref())
    }

    /// What the blast-radius guard says about every failure of `plan`.
    pub fn guard(&self) -> Guard {
        Guard::new(&self.config)
    }

    /// Adds a timestamped operator note to a run.
    pub fn add_note(&self, run_id: i64, author: &str, text: &str) -> anyhow::Result<RunNote> {
        let note = RunNote { at: Utc::now(), author: author.into(), text: text.into() };
        self.db.add_note(run_id, &note)?;
        Ok(note)
    }

    /// Runs `plan` once. Errors inside the drill become a failed run with the
    /// reason; `Err` is returned when the run could not even be recorded, or
    /// when the blast-radius guard refused it (a [`Refused`] inside the error:
    /// then nothing was touched and no run was recorded).
    pub async fn run(&self, plan: &Plan, opts: RunOptions, observer: &dyn Observer) -> anyhow::Result<RunReport> {
        let guard = Arc::new(self.guard());
        guard.check_plan(plan).map_err(anyhow::Error::new::<Refused>)?;
        let run_id = self.db.start_run(&NewRun {
            plan: &plan.name,
            plan_file: &plan.file.to_string_lossy(),
            plan_sha256: &plan.sha256,
            description: &plan.description,
            trigger: &opts.trigger,
            host: &hostname(),
            started_at: Utc::now(),
        })?;
        if let Some(text) = opts.notes.as_deref().filter(|t| !t.trim().is_empty()) {
            self.add_note(run_id, "operator (--note)", text)?;
        }
        observer.run_started(run_id, plan);

        // One flag stops every blocking loop, whether the deadline passed or a
        // person aborted; `timed_out` tells the two apart for the record.
        let cancel = opts.abort.clone();
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + plan.timeout;
        let timer = {
            let (cancel, timed_out) = (cancel.clone(), timed_out.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                timed_out.store(true, Ordering::SeqCst);
                cancel.cancel();
            })
        };

        let mut run = RunState {
            engine: self,
            plan,
            run_id,
            observer,
            cancel: cancel.clone(),
            deadline,
            phases: Vec::new(),
            checks: Vec::new(),
            measurements: Vec::new(),
            end: RunEnd {
                backup_mode: Some(plan.backup.mode.as_str().into()),
                store: Some(plan.store_name().into()),
                ..Default::default()
            },
            injected: Vec::new(),
            guard,
            gates: opts.gates.clone(),
            gate_wait_after_fail: Duration::ZERO,
            timed_out: timed_out.clone(),
        };

        let scratch = self.scratch.create_run(run_id);
        let outcome = match &scratch {
            Ok(s) => run.execute(s).await,
            Err(e) => Err(anyhow!("{e:#}")),
        };
        timer.abort();

        // Rollbacks and cleanup run whatever happened above.
        let mut problems = Vec::new();
        if let Ok(s) = &scratch
            && let Err(e) = run.rollback(s).await
        {
            problems.push(format!("rollback failed: {e:#}"));
        }
        let cleanup_started = (Instant::now(), Utc::now());
        let cleaned = match scratch {
            Ok(s) => {
                // Whatever the restore started (a throwaway server) stops before its
                // folder goes; the folder is removed even if stopping failed.
                let (src, dir) = (plan.source.clone(), s.path().to_path_buf());
                let stopped = blocking(move || src.cleanup(&dir)).await;
                let removed = s.cleanup().map(|_| "scratch removed".to_string());
                match (stopped, removed) {
                    (Ok(Some(what)), Ok(d)) => Ok(format!("{what}; {d}")),
                    (Ok(None), r) => r,
                    (Err(e), _) => Err(e.context("cannot stop what the restore started")),
                    (Ok(_), Err(e)) => Err(e),
                }
            }
            Err(_) => Ok("no scratch to remove".into()),
        };
        match cleaned {
            Ok(detail) => run.record("cleanup", cleanup_started, true, detail),
            Err(e) => {
                let msg = format!("{e:#}");
                run.record("cleanup", cleanup_started, false, msg.clone());
                problems.push(msg);
            }
        }

        // An abort during verify makes the checks fail instead of erroring out;
        // it is still an abort, not a drill that failed its checks. (A timeout
        // there stays a failure whose reason names the check cut off.)
        let outcome = match outcome {
            Ok(()) if cancel.is_cancelled() && !timed_out.load(Ordering::SeqCst) => {
                Err(anyhow!("cancelled while the checks ran"))
            }
            o => o,
        };
        let (status, reason) = match outcome {
            Ok(()) => run.verdict(problems),
            Err(e) => {
                let aborted = cancel.is_cancelled() && !timed_out.load(Ordering::SeqCst);
                let reason = if timed_out.load(Ordering::SeqCst) {
                    format!("run exceeded its timeout of {}: {}", format_duration(plan.timeout), explain(&e))
                } else if aborted {
                    match cancel.reason() {
                        Some(why) => format!("aborted ({why}): {}", explain(&e)),
                        None => format!("aborted: {}", explain(&e)),
                    }
                } else {
                    explain(&e)
                };
                (if aborted { Status::Aborted } else { Status::Failed }, Some(reason))
            }
        };
        if status == Status::Passed && plan.backup.retention().is_set() {
            run.apply_retention().await;
        }
        run.end.status = status.as_str().into();
        run.end.reason = reason.clone();
        run.end.finished_at = Some(Utc::now());
        self.db.finish_run(run_id, &run.end, &run.checks, &run.measurements)?;
        Ok(RunReport {
            run_id,
            plan: plan.name.clone(),
            status,
            reason,
            phases: run.phases,
            checks: run.checks,
            measurements: run.measurements,
            backup_id: run.end.backup_id,
        })
    }
}

struct RunState<'a> {
    engine: &'a Engine,
    plan: &'a Plan,
    run_id: i64,
    observer: &'a dyn Observer,
    cancel: Cancel,
    deadline: Instant,
    phases: Vec<PhaseRecord>,
    checks: Vec<CheckRecord>,
    measurements: Vec<Measurement>,
    end: RunEnd,
    /// Failures that were injected, in order, for rollback.
    injected: Vec<Arc<dyn Failure>>,
    guard: Arc<Guard>,
    gates: Gates,
    /// Time spent at gates after T_fail: a person deciding, not the restore, so
    /// it is recorded on its own and left out of RTO.
    gate_wait_after_fail: Duration,
    timed_out: Arc<AtomicBool>,
}

impl RunState<'_> {
    fn record(&mut self, name: &str, started: (Instant, DateTime<Utc>), ok: bool, detail: String) {
        let p = PhaseRecord {
            name: name.into(),
            started_at: started.1,
            duration_ms: ms(started.0.elapsed()),
            status: if ok { "ok" } else { "failed" }.into(),
            detail,
        };
        if let Err(e) = self.engine.db.add_phase(self.run_id, &p) {
            tracing::warn!(run = self.run_id, "cannot record phase: {e:#}");
        }
        self.observer.phase(self.run_id, &p);
        self.phases.push(p);
    }

    /// Runs a phase, recording its time and outcome; errors carry the phase name.
    async fn phase<T>(
        &mut self,
        name: &str,
        work: impl std::future::Future<Output = anyhow::Result<(T, String)>>,
    ) -> anyhow::Result<T> {
        self.observer.phase_started(self.run_id, name);
        let started = (Instant::now(), Utc::now());
        let result = work.await;
        match result {
            Ok((value, detail)) if !self.cancel.is_cancelled() => {
                self.record(name, started, true, detail);
                Ok(value)
            }
            Ok(_) => {
                self.record(name, started, false, "cancelled".into());
                Err(anyhow!("{name} was cancelled"))
            }
            Err(e) => {
                self.record(name, started, false, explain(&e));
                Err(e.context(format!("{name} failed")))
            }
        }
    }

    fn failure_ctx(&self, scratch: &RunScratch, cancel: Cancel) -> FailureCtx {
        FailureCtx {
            source: self.plan.source.clone(),
            scratch: scratch.path().join("failure"),
            quarantine: quarantine_dir(self.engine.scratch.path(), self.run_id),
            run_id: self.run_id,
            guard: self.guard.clone(),
            cancel,
        }
    }

    /// Waits at the approval gate before `phase`, if the plan has one there.
    /// Returns how long it waited.
    async fn gate(&mut self, phase: &str) -> anyhow::Result<Duration> {
        if !self.plan.pause_before.iter().any(|g| g == phase) {
            return Ok(Duration::ZERO);
        }
        let started = (Instant::now(), Utc::now());
        let rx = self.gates.open(self.run_id, phase, started.1);
        self.observer.gate_waiting(self.run_id, phase);
        let approval = self.gates.wait(self.run_id, rx, &self.cancel).await;
        let waited = started.0.elapsed();
        let record = GateRecord {
            gate: phase.into(),
            waiting_since: started.1,
            decided_at: Utc::now(),
            outcome: if approval.is_some() { "approved" } else { "aborted" }.into(),
            decided_by: match &approval {
                Some(a) => a.by.clone(),
                None if self.timed_out.load(Ordering::SeqCst) => "timeout".into(),
                None => "abort".into(),
            },
            note: approval.as_ref().and_then(|a| a.note.clone()),
        };
        if let Err(e) = self.engine.db.add_gate(self.run_id, &record) {
            tracing::warn!(run = self.run_id, "cannot record gate: {e:#}");
        }
        self.observer.gate_decided(self.run_id, &record);
        let detail = match &approval {
            Some(a) => format!(
                "before {phase}: approved by {} after {}{}",
                a.by,
                format_duration(waited),
                a.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
            ),
            None => format!("before {phase}: aborted while waiting for approval"),
        };
        self.record("gate", started, approval.is_some(), detail);
        if approval.is_none() {
            return Err(anyhow!("aborted at the gate before {phase}"));
        }
        Ok(waited)
    }

    async fn execute(&mut self, scratch: &RunScratch) -> anyhow::Result<()> {
        let plan = self.plan;
        let source = plan.source.clone();

        // prepare: everything that can be refused is refused before T_fail.
        let store = self.engine.open_store(plan.store_name());
        scratch.subdir("failure")?;
        let prepare_ctx = self.failure_ctx(scratch, self.cancel.clone());
        let canary_writer = self
            .phase("prepare", async {
                let store = store?;
                if plan.backup.mode == BackupMode::Fresh {
                    store.check_writable().await?;
                }
                let src = source.clone();
                blocking(move || src.preflight()).await?;
                for f in &plan.failures {
                    let (f, ctx) = (f.clone(), prepare_ctx.clone());
                    blocking(move || f.prepare(&ctx)).await?;
                }
                let writer = match (&plan.probe, source.canary()) {
                    (Some(p), Some(c)) => Some(CanaryWriter::start(c, p.interval.0)?),
                    _ => None,
                };
                let detail = format!("{}; store `{}` ({})", source.describe(), store.name, store.describe);
                Ok(((store, writer), detail))
            })
            .await?;
        let (store, mut canary_writer) = canary_writer;

        // backup
        self.gate("backup").await.inspect_err(|_| {
            if let Some(w) = canary_writer.take() {
                w.stop();
            }
        })?;
        let staging = scratch.subdir("staging")?;
        let cancel = self.cancel.clone();
        // Shared, not cloned: a large tree's manifest lists every file.
        let manifest: Arc<Manifest> = self
            .phase("backup", async {
                match plan.backup.mode {
                    BackupMode::Fresh => {
                        let options = BackupOptions { compression_level: plan.backup.compression_level };
                        let m = take_backup(source.clone(), &store, &plan.name, staging, options, cancel).await?;
                        let detail = format!(
                            "fresh backup {} ({} entries, {} -> {} bytes)",
                            m.backup_id,
                            m.files.len(),
                            m.payload.raw_size,
                            m.payload.size
                        );
                        Ok((Arc::new(m), detail))
                    }
                    BackupMode::Latest => {
                        let m = store.newest_complete(&plan.name).await?.with_context(|| {
                            format!(
                                "store `{}` holds no complete backup of plan `{}`: run it once with `mode = \"fresh\"`, or check the store",
                                store.name, plan.name
                            )
                        })?;
                        let detail = format!("newest backup {} from {}", m.backup_id, m.created_at.to_rfc3339());
                        Ok((Arc::new(m), detail))
                    }
                }
            })
            .await?;
        self.end.backup_id = Some(manifest.backup_id.clone());
        self.end.backup_sha256 = Some(manifest.payload.sha256.clone());
        self.end.backup_created_at = Some(manifest.created_at);

        // failure: T_fail. The canary stops first, so no marker is newer than T_fail.
        // A gate here waits after the backup: data written meanwhile is not in
        // it, so the wait counts into measured RPO, as it would in a real incident.
        self.gate("failure").await.inspect_err(|_| {
            if let Some(w) = canary_writer.take() {
                w.stop();
            }
        })?;
        let canary_log = canary_writer.take().map(CanaryWriter::stop);
        self.observer.phase_started(self.run_id, "failure");
        let t_fail = Instant::now();
        let t_fail_wall = Utc::now();
        self.end.t_fail = Some(t_fail_wall);
        let started = (t_fail, t_fail_wall);
        let mut details = Vec::new();
        let mut error = None;
        for (i, f) in plan.failures.iter().enumerate() {
            if self.cancel.is_cancelled() {
                error = Some(anyhow!("cancelled before failure #{} ({})", i + 1, f.kind()));
                break;
            }
            // Kept before inject: a half-applied failure still gets its rollback.
            self.injected.push(f.clone());
            let (f2, ctx) = (f.clone(), self.failure_ctx(scratch, self.cancel.clone()));
            match blocking(move || f2.inject(&ctx)).await {
                Ok(d) => details.push(format!("{}: {d}", f.kind())),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            self.record("failure", started, false, explain(&e));
            return Err(e.context("failure injection failed"));
        }
        self.record("failure", started, true, details.join("; "));

        // restore: fetch and unpack are pipelined; the fetch share is the time
        // spent waiting on the store.
        let waited = self.gate("restore").await?;
        self.gate_wait_after_fail += waited;
        let restore_dir = scratch.subdir("restore")?;
        let cancel = self.cancel.clone();
        let restore_started = Instant::now();
        let outcome = self
            .phase("restore", async {
                let o = restore_backup(source.clone(), &store, &manifest, restore_dir, cancel).await?;
                let detail = format!(
                    "{} files, {} bytes verified against the manifest into {}",
                    o.restored.files,
                    o.restored.bytes,
                    o.restored.path.display()
                );
                Ok((o, detail))
            })
            .await?;
        let restore_elapsed = restore_started.elapsed();
        let waited = self.gate("verify").await?;
        self.gate_wait_after_fail += waited;
        let restore_done = Instant::now();

        // verify: T_ok is when the last check passed.
        let t_ok = self.verify(&outcome.restored, scratch).await?;

        // Measurements. RTO and its shares.
        let targets = self.plan.targets;
        let gates = self.gate_wait_after_fail;
        let rto = t_ok.map(|t| t.duration_since(t_fail).saturating_sub(gates));
        if gates.is_zero() {
            self.measure("rto", rto, Some(targets.rto.0), "monotonic clock, T_ok - T_fail");
        } else {
            self.measure("rto", rto, Some(targets.rto.0), "monotonic clock, T_ok - T_fail - time waiting at gates");
            self.measure("gates", Some(gates), None, "waiting for approval after T_fail, not counted in RTO");
        }
        self.measure("fetch", Some(outcome.fetch_wait), None, "waiting on the store");
        self.measure(
            "restore",
            Some(restore_elapsed.saturating_sub(outcome.fetch_wait)),
            None,
            "decompress, unpack, verify files",
        );
        self.measure("verify", t_ok.map(|t| t.duration_since(restore_done)), None, "checks until the last passed");

        // RPO: from the canary's newest marker in the restore, else the backup's
        // consistency point.
        let (newest, method, why_not) = match (&self.plan.probe, plan.source.canary()) {
            (Some(_), Some(c)) => {
                let path = outcome.restored.path.clone();
                match blocking(move || c.newest_marker(&path)).await {
                    Ok(Some(t)) => (Some(t), "canary marker in the restored copy".to_string(), None),
                    Ok(None) => (
                        None,
                        "canary".to_string(),
                        Some(match canary_log.and_then(|l| l.last_error) {
                            Some(e) => format!("no canary marker in the restored copy; the probe reported: {e}"),
                            None => {
                                "no canary marker in the restored copy (the backup predates the probe?)".to_string()
                            }
                        }),
                    ),
                    Err(e) => {
                        (None, "canary".to_string(), Some(format!("cannot read the canary from the restore: {e:#}")))
                    }
                }
            }
            _ => (Some(manifest.consistency_point), "backup consistency point".to_string(), None),
        };
        let rpo = newest.map(|t| (t_fail_wall - t).to_std().unwrap_or(Duration::ZERO));
        self.measure("rpo", rpo, Some(targets.rpo.0), &method);
        if let Some(why) = why_not {
            return Err(anyhow!("RPO could not be measured: {why}"));
        }
        Ok(())
    }

    /// Runs every check, retrying each until it passes or the deadline passes.
    /// Returns T_ok, or `None` if a check never passed.
    async fn verify(&mut self, restored: &Restored, scratch: &RunScratch) -> anyhow::Result<Option<Instant>> {
        let started = (Instant::now(), Utc::now());
        let ctx = Arc::new(CheckCtx {
            restored: restored.path.clone(),
            scratch: scratch.path().to_path_buf(),
            run_id: self.run_id,
            source: self.plan.source.clone(),
            deadline: self.deadline,
            cancel: self.cancel.clone(),
        });
        let mut all_passed = true;
        for check in &self.plan.checks {
            if !all_passed {
                self.checks.push(CheckRecord {
                    kind: check.kind().into(),
                    description: check.describe(),
                    passed: false,
                    attempts: 0,
                    duration_ms: 0.0,
                    output: "not run: an earlier check failed".into(),
                });
                continue;
            }
            let check_started = Instant::now();
            let mut attempts = 0;
            let mut backoff = Duration::from_millis(100);
            let (passed, output) = loop {
                attempts += 1;
                let (c, cx) = (check.clone(), ctx.clone());
                let result = tokio::task::spawn_blocking(move || c.run(&cx))
                    .await
                    .unwrap_or_else(|e| Err(format!("check panicked: {e}")));
                match result {
                    Ok(out) => break (true, out),
                    Err(why) if self.cancel.is_cancelled() || Instant::now() + backoff >= self.deadline => {
                        break (false, why);
                    }
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            };
            all_passed &= passed;
            self.checks.push(CheckRecord {
                kind: check.kind().into(),
                description: check.describe(),
                passed,
                attempts,
                duration_ms: ms(check_started.elapsed()),
                output,
            });
        }
        let t_ok = all_passed.then(Instant::now);
        let passed = self.checks.iter().filter(|c| c.passed).count();
        let detail = format!("{passed}/{} checks passed", self.checks.len());
        self.record("verify", started, all_passed, detail);
        Ok(t_ok)
    }

    fn measure(&mut self, name: &str, value: Option<Duration>, target: Option<Duration>, method: &str) {
        let met = match (value, target) {
            (Some(v), Some(t)) => Some(v <= t),
            (None, Some(_)) => Some(false),
            _ => None,
        };
        let met = if value.is_none() { None } else { met };
        self.measurements.push(Measurement {
            name: name.into(),
            value_ms: value.map(ms),
            target_ms: target.map(ms),
            method: method.into(),
            met,
        });
    }

    async fn rollback(&mut self, scratch: &RunScratch) -> anyhow::Result<()> {
        if self.injected.is_empty() {
            return Ok(());
        }
        let started = (Instant::now(), Utc::now());
        let mut details = Vec::new();
        let mut first_error = None;
        self.observer.phase_started(self.run_id, "rollback");
        for f in std::mem::take(&mut self.injected).into_iter().rev() {
            // A fresh flag: an abort must not cut a rollback short.
            let ctx = self.failure_ctx(scratch, Cancel::new());
            let kind = f.kind();
            match blocking(move || f.rollback(&ctx)).await {
                Ok(Some(d)) => details.push(format!("{kind}: {d}")),
                Ok(None) => {}
                Err(e) => {
                    details.push(format!("{kind}: {e:#}"));
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_none() {
            // Empty once every failure put back what it moved aside; anything
            // left there is data a rollback could not return, so it stays.
            let dir = quarantine_dir(self.engine.scratch.path(), self.run_id);
            let _ = std::fs::remove_file(dir.join(crate::failure::QUARANTINE_INDEX));
            if std::fs::remove_dir(&dir).is_ok()
                && let Some(parent) = dir.parent()
            {
                let _ = std::fs::remove_dir(parent);
            }
        }
        if details.is_empty() && first_error.is_none() {
            return Ok(());
        }
        self.record("rollback", started, first_error.is_none(), details.join("; "));
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes the plan's backups that its retention rules expire. A failure is
    /// recorded but does not fail a drill that passed: the restore was proven.
    async fn apply_retention(&mut self) {
        let started = (Instant::now(), Utc::now());
        let result = async {
            let store = self.engine.open_store(self.plan.store_name())?;
            let listing = store.list(Some(&self.plan.name)).await?;
            let expired = self.plan.backup.retention().expired(&listing, Utc::now());
            for id in &expired {
                store.delete_backup(&self.plan.name, id).await?;
            }
            anyhow::Ok(expired)
        }
        .await;
        match result {
            Ok(ids) if ids.is_empty() => self.record("retention", started, true, "nothing expired".into()),
            Ok(ids) => self.record("retention", started, true, format!("deleted {}", ids.join(", "))),
            Err(e) => self.record("retention", started, false, explain(&e)),
        }
    }

    /// Pass only if every check passed and RTO and RPO were measured and met.
    fn verdict(&self, problems: Vec<String>) -> (Status, Option<String>) {
        let mut reasons = problems;
        for c in self.checks.iter().filter(|c| !c.passed && c.attempts > 0) {
            reasons.push(format!("check {} failed: {}", c.kind, c.output.lines().last().unwrap_or("")));
        }
        if self.checks.is_empty() {
            reasons.push("no check ran".into());
        }
        for m in self.measurements.iter().filter(|m| m.target_ms.is_some()) {
            match (m.value_ms, m.met) {
                (None, _) => reasons.push(format!("{} was not measured", m.name.to_uppercase())),
                (Some(v), Some(false)) => reasons.push(format!(
                    "{} {} exceeded its target {}",
                    m.name.to_uppercase(),
                    report::fmt_ms(Some(v)),
                    report::fmt_ms(m.target_ms)
                )),
                _ => {}
            }
        }
        if reasons.is_empty() { (Status::Passed, None) } else { (Status::Failed, Some(reasons.join("; "))) }
    }
}

/// Where run `run_id` keeps live data it moved aside. Outside the run's scratch
/// folder, which is removed after the run even when a rollback failed.
pub fn quarantine_dir(scratch_root: &std::path::Path, run_id: i64) -> std::path::PathBuf {
    scratch_root.join("quarantine").join(format!("run-{run_id}"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await.context("worker thread panicked")?
}

/// The error chain in one line, with the fix for the common operational causes.
pub fn explain(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(libc::ENOSPC))
    }) || text.contains("No space left on device");
    if full {
        format!("no space left on device: free space, or point `scratch` (or the store) at a larger disk; {text}")
    } else {
        text
    }
}

/// This machine's name, recorded with every run.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
