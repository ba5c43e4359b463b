//! Runs one plan end to end and measures it. Knows nothing about SQL, tar or
//! HTTP: sources, stores, failures and checks do the work behind their traits.
//!
//! The steps come from [`crate::plan::timeline`], the one list `--dry-run` and
//! the progress bar read too:
//!
//! ```text
//! prepare -> backup -> failure (T_fail) -> restore -> [service] -> verify (T_ok) -> record -> rollback + cleanup
//! ```
//!
//! RTO = T_ok - T_fail on the monotonic clock. RPO = T_fail - the newest data the
//! restored copy really holds (a canary marker, else the backup's consistency
//! point); for a restore to a point in time, the recovery target instead of
//! T_fail, and the markers prove that target was met. A run passes only if
//! every check passed and both were measured and met.
//!
//! One [`Cancel`] per run stops every step within about a second: the deadline
//! and an abort set it; async work awaits it, blocking work checks it, processes
//! are killed as a group by it. Rollback and cleanup run afterwards with a token
//! and a time budget of their own, so they are neither cut short nor endless.

mod canary;
pub mod gates;
mod inventory;
mod recovery;
mod safeguards;
mod service;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};

use crate::backoff::Backoff;
use crate::backup::{BackupOptions, RestoreOutcome, backup_notes, restore_backup, sweep_partial_uploads, take_backup};
use crate::cancel::Cancel;
use crate::check::CheckCtx;
use crate::clock::Started;
use crate::config::Config;
use crate::context::RunCtx;
use crate::db::{Db, NewRun, RunEnd, ms};
use crate::duration::{fmt_ms, format_duration};
use crate::errors::explain;
use crate::existing::{self, Access, Existing, Found, Select};
use crate::failure::{FailureCtx, Guard, Refused, UndoLog};
use crate::net::hostname;
use crate::plan::timeline::{self, Gated, Step};
use crate::plan::{BackupMode, Plan, ProbeKind};
use crate::quarantine::Quarantine;
use crate::record::{CheckRecord, GateRecord, Measurement, PhaseRecord, RunNote, RunReport, Status};
use crate::scratch::{RunScratch, ScratchRoot};
use crate::store::{Manifest, Store};
use canary::{CanaryLog, CanaryWriter};
pub use gates::{Approval, GateError, Gates, PendingGate};
pub use inventory::Inventory;
pub use recovery::Recovery;
pub use safeguards::HALT_POLL;
use safeguards::Watch;

/// Longest time rollback and cleanup each get once the run is over (or the
/// plan's timeout, when shorter): a hanging rollback must not hang the daemon.
const AFTERWARDS_MAX: Duration = Duration::from_secs(600);

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
    /// Asked before each destructive failure and before the run is recorded
    /// (fleet mode: does this node still hold the firing?).
    pub fence: Option<Fence>,
}

/// A check the engine awaits before each destructive failure and before it
/// records the run; `Err(why)` stops the run there (recorded `aborted`, why).
#[derive(Clone)]
pub struct Fence(pub Arc<FenceFn>);

/// Given what comes next (`failure #1 (delete)`, `recording the run`).
pub type FenceFn = dyn Fn(&str) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync;

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fence")
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { trigger: "manual".into(), abort: Cancel::new(), gates: Gates::new(), notes: None, fence: None }
    }
}

pub struct Engine {
    pub config: Arc<Config>,
    pub db: Arc<Db>,
    pub scratch: ScratchRoot,
}

impl Engine {
    pub fn open(config: Arc<Config>) -> anyhow::Result<Engine> {
        let db = Arc::new(Db::open_for(&config)?);
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
    /// when it was refused: by the blast-radius guard (a [`Refused`] inside the
    /// error) or by the halt file (a [`crate::config::Halt`]); then nothing was
    /// touched and no run was recorded.
    pub async fn run(&self, plan: &Plan, opts: RunOptions, observer: &dyn Observer) -> anyhow::Result<RunReport> {
        // While the halt file is there nothing starts: a [`Halt`] inside the error.
        if let Some(halt) = self.config.safety.halt() {
            return Err(anyhow::Error::new(halt));
        }
        let guard = Arc::new(self.guard());
        plan.guard_check(&guard).map_err(anyhow::Error::new::<Refused>)?;
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

        // One token stops every step, whether the deadline passed or a person
        // aborted; `timed_out` tells the two apart for the record.
        let cancel = opts.abort.clone();
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = far(Instant::now(), plan.timeout);
        let timer = {
            let (cancel, timed_out) = (cancel.clone(), timed_out.clone());
            let timeout = plan.timeout;
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                timed_out.store(true, Ordering::SeqCst);
                cancel.cancel_because(&format!("the run reached its deadline: timeout {}", format_duration(timeout)));
            })
        };

        let scratch = self.scratch.create_run(run_id);
        let ctx = RunCtx {
            run_id,
            run_dir: scratch.as_ref().map(|s| s.path().to_path_buf()).unwrap_or_default(),
            deadline,
            cancel: cancel.clone(),
            pass_env: Arc::new(plan.env.clone()),
            groups: Default::default(),
        };
        let mut run = RunState {
            engine: self,
            plan,
            run_id,
            observer,
            ctx,
            phases: Vec::new(),
            checks: Vec::new(),
            measurements: Vec::new(),
            end: RunEnd {
                backup_mode: Some(plan.backup.mode.as_str().into()),
                store: Some(plan.store_name().into()),
                ..Default::default()
            },
            undo: Arc::new(UndoLog::new(Quarantine::new(self.scratch.path(), run_id))),
            guard,
            gates: opts.gates.clone(),
            fence: opts.fence.clone(),
            gate_wait_after_fail: Duration::ZERO,
            timed_out: timed_out.clone(),
            store: None,
            canary: None,
            canary_log: None,
            manifest: None,
            found: None,
            existing_store: None,
            t_fail: None,
            restored: None,
            service: None,
            service_start: None,
            service_groups: Default::default(),
            watches: Vec::new(),
            stopped_by: None,
        };
        run.watches.extend(Watch::halt_file(&self.config.safety, &cancel));

        let steps = timeline::steps(plan);
        let outcome = match &scratch {
            Ok(s) => run.execute(&steps, s).await,
            Err(e) => Err(anyhow!("{e:#}")),
        };
        // Watching ends with the steps; a watch that stopped the run says why.
        for w in std::mem::take(&mut run.watches) {
            if let Some(t) = w.stop().await {
                if let Some((started, took, detail)) = t.evaluation {
                    run.record_took("safeguard", started, took, false, detail);
                }
                run.stopped_by.get_or_insert(t.reason);
            }
        }
        // No marker may be written after the run stopped, whatever stopped it.
        if let Some(w) = run.canary.take() {
            run.canary_log.get_or_insert(w.stop());
        }
        timer.abort();

        // Rollbacks and cleanup run whatever happened above.
        let mut problems = Vec::new();
        if scratch.is_ok()
            && let Err(e) = run.rollback().await
        {
            problems.push(format!("rollback failed: {e:#}"));
        }
        if let Err(e) = run.cleanup(scratch).await {
            problems.push(e);
        }

        // An abort during verify makes the checks fail instead of erroring out;
        // it is still an abort, not a drill that failed its checks. (A timeout
        // there stays a failure whose reason names the check cut off.)
        let aborted = cancel.is_cancelled() && !timed_out.load(Ordering::SeqCst);
        let outcome = match outcome {
            Ok(()) if aborted => Err(anyhow!("cancelled while the checks ran")),
            o => o,
        };
        let (status, reason) = match outcome {
            Ok(()) => run.verdict(problems),
            // A safeguard or the halt file: its reason says all, whatever step it cut short.
            Err(_) if aborted && run.stopped_by.is_some() => (Status::Aborted, run.stopped_by.clone()),
            Err(e) => {
                let reason = if timed_out.load(Ordering::SeqCst) {
                    format!("run exceeded its timeout of {}: {}", format_duration(plan.timeout), explain(&e))
                } else if aborted {
                    match cancel.reason().filter(|r| r != "cancelled") {
                        Some(why) => format!("aborted ({why}): {}", explain(&e)),
                        None => format!("aborted: {}", explain(&e)),
                    }
                } else {
                    explain(&e)
                };
                (if aborted { Status::Aborted } else { Status::Failed }, Some(reason))
            }
        };
        // A node that lost its firing to another records it as aborted, not as the result.
        let (status, reason) = match &opts.fence {
            Some(fence) => match (fence.0)("recording the run").await {
                Ok(()) => (status, reason),
                Err(why) => {
                    (Status::Aborted, Some([Some(why), reason].into_iter().flatten().collect::<Vec<_>>().join("; ")))
                }
            },
            None => (status, reason),
        };
        if status == Status::Passed && steps.contains(&Step::Retention) {
            run.apply_retention().await;
        }
        run.end.status = status.as_str().into();
        run.end.reason = reason;
        run.end.finished_at = Some(Utc::now());
        let status = match self.db.finish_run(run_id, &run.end, &run.phases, &run.checks, &run.measurements) {
            Ok(()) => status,
            Err(e) => {
                self.finish_despite(run_id, &mut run.end, status, (&run.phases, &run.checks, &run.measurements), e)?
            }
        };
        let reason = run.end.reason.clone();
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

/// `now + d`, or a time far enough that nobody waits for it when `d` would overflow.
fn far(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).or_else(|| now.checked_add(Duration::from_secs(10 * 365 * 86400))).unwrap_or(now)
}

struct RunState<'a> {
    engine: &'a Engine,
    plan: &'a Plan,
    run_id: i64,
    observer: &'a dyn Observer,
    ctx: RunCtx,
    phases: Vec<PhaseRecord>,
    checks: Vec<CheckRecord>,
    measurements: Vec<Measurement>,
    end: RunEnd,
    /// What the injected failures must undo, owned by this run.
    undo: Arc<UndoLog>,
    guard: Arc<Guard>,
    gates: Gates,
    fence: Option<Fence>,
    /// Time spent at gates after T_fail: a person deciding, not the restore, so
    /// it is recorded on its own and left out of RTO.
    gate_wait_after_fail: Duration,
    timed_out: Arc<AtomicBool>,
    // Carried from one step to the next.
    store: Option<Store>,
    canary: Option<CanaryWriter>,
    canary_log: Option<CanaryLog>,
    /// Shared, not cloned: a large tree's manifest lists every file.
    manifest: Option<Arc<Manifest>>,
    /// With `mode = "existing"`: the backup chosen, and the store its adapter reads.
    found: Option<Found>,
    existing_store: Option<Store>,
    t_fail: Option<Started>,
    /// The restore's outcome and how long the whole restore step took.
    restored: Option<(RestoreOutcome, Duration)>,
    /// Watching the halt file and the safeguards while the steps run.
    watches: Vec<Watch>,
    /// Why the run stopped itself (a safeguard failed, the halt file
    /// appeared), recorded as the reason instead of the step it cut short.
    stopped_by: Option<String>,
    /// The plan's `[service]`, once started: its process, when it started, and
    /// how long it took to be ready (RTO's `start` share).
    service: Option<(crate::proc::Background, Instant)>,
    service_start: Option<Duration>,
    /// The service's process group, stopped first at cleanup.
    service_groups: crate::proc::Groups,
}

impl RunState<'_> {
    fn record(&mut self, name: &str, started: Started, ok: bool, detail: String) {
        self.record_took(name, started, started.elapsed(), ok, detail);
    }

    /// [`RunState::record`] for a phase that ended before now.
    fn record_took(&mut self, name: &str, started: Started, took: Duration, ok: bool, detail: String) {
        let p = PhaseRecord {
            name: name.into(),
            started_at: started.wall,
            duration_ms: ms(took),
            status: if ok { "ok" } else { "failed" }.into(),
            detail: crate::redact::scrub(&detail).into_owned(),
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
        let started = Started::now();
        let result = work.await;
        match result {
            Ok((value, detail)) if !self.ctx.cancel.is_cancelled() => {
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

    fn failure_ctx(&self, run: RunCtx, index: usize) -> FailureCtx {
        FailureCtx { run, source: self.plan.source.clone(), index, guard: self.guard.clone(), undo: self.undo.clone() }
    }

    /// The main steps, in the timeline's order, up to the first error.
    async fn execute(&mut self, steps: &[Step], scratch: &RunScratch) -> anyhow::Result<()> {
        for step in steps.iter().filter(|s| !s.always() && **s != Step::Retention) {
            match *step {
                Step::Prepare => self.prepare(scratch).await?,
                Step::Gate(g) => {
                    let waited = self.gate(g).await?;
                    if g.after_t_fail() {
                        self.gate_wait_after_fail += waited;
                    }
                }
                Step::Backup => self.backup(scratch).await?,
                Step::Safeguards => self.safeguards().await?,
                Step::Failure => self.inject().await?,
                Step::Restore => self.restore(scratch).await?,
                Step::Service => self.start_service().await?,
                Step::Verify => self.verify_and_measure().await?,
                Step::Rollback | Step::Cleanup | Step::Retention => {}
            }
        }
        Ok(())
    }

    /// Everything that can be refused is refused before T_fail.
    async fn prepare(&mut self, scratch: &RunScratch) -> anyhow::Result<()> {
        let plan = self.plan;
        let source = plan.source.clone();
        let store = self.engine.open_store(plan.store_name());
        scratch.subdir("failure")?;
        let prepare_ctx = self.failure_ctx(self.ctx.clone(), 0);
        let ctx = self.ctx.clone();
        let (store, writer, existing_store) = self
            .phase("prepare", async {
                let store = store?;
                if plan.backup.mode == BackupMode::Fresh {
                    store.check_writable().await?;
                }
                let (src, c) = (source.clone(), ctx.clone());
                blocking(move || src.preflight(&c)).await?;
                let existing_store = match &plan.existing {
                    Some(e) => {
                        let (e2, c) = (e.clone(), ctx.clone());
                        blocking(move || e2.preflight(&c)).await?;
                        match e.store() {
                            Some(name) => Some(self.engine.open_store(name)?),
                            None => None,
                        }
                    }
                    None => None,
                };
                for (i, f) in plan.failures.iter().enumerate() {
                    let (f, ctx) = (f.clone(), FailureCtx { index: i + 1, ..prepare_ctx.clone() });
                    blocking(move || f.prepare(&ctx)).await?;
                }
                // A heartbeat is the daemon's: it writes markers all the time.
                let writer = match (&plan.probe, plan.canary()) {
                    (Some(p), Some(c)) if p.kind == ProbeKind::Canary => Some(CanaryWriter::start(c, p.interval.0)?),
                    _ => None,
                };
                let detail = match &plan.existing {
                    Some(e) => format!("{}; backups: {}", source.describe(), e.describe()),
                    None => format!("{}; store `{}` ({})", source.describe(), store.name, store.describe),
                };
                Ok(((store, writer, existing_store), detail))
            })
            .await?;
        self.store = Some(store);
        self.canary = writer;
        self.existing_store = existing_store;
        Ok(())
    }

    async fn backup(&mut self, scratch: &RunScratch) -> anyhow::Result<()> {
        let plan = self.plan;
        if let Some(existing) = &plan.existing {
            return self.choose_existing(existing.clone()).await;
        }
        let store = self.store.clone().context("prepare opened no store")?;
        scratch.subdir("staging")?;
        let ctx = self.ctx.clone();
        let manifest: Arc<Manifest> = self
            .phase("backup", async {
                match plan.backup.mode {
                    BackupMode::Fresh => {
                        let swept = sweep_partial_uploads(&store, &plan.name, plan.timeout).await;
                        let options = BackupOptions { compression_level: plan.backup.compression_level };
                        let m = take_backup(plan.source.clone(), &store, &plan.name, ctx, options).await?;
                        let detail = format!(
                            "fresh backup {} ({} entries, {} -> {} bytes)",
                            m.backup_id,
                            m.totals().entries,
                            m.payload.raw_size,
                            m.payload.size
                        );
                        let detail = [vec![detail], backup_notes(&m), swept.into_iter().collect()].concat().join("; ");
                        Ok((Arc::new(m), detail))
                    }
                    BackupMode::Latest => {
                        let newest = store.newest_complete(&plan.name).await?;
                        let damage = newest.damage();
                        let m = newest.manifest.with_context(|| {
                            format!(
                                "store `{}` holds no complete backup of plan `{}`{}: run it once with `mode = \"fresh\"`, or check the store",
                                store.name,
                                plan.name,
                                damage.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
                            )
                        })?;
                        let detail = format!("newest backup {} from {}", m.backup_id, m.created_at.to_rfc3339());
                        let detail = [vec![detail], backup_notes(&m), damage.into_iter().collect()].concat().join("; ");
                        Ok((Arc::new(m), detail))
                    }
                    BackupMode::Existing => unreachable!("existing backups are chosen by choose_existing"),
                }
            })
            .await?;
        self.end.backup_id = Some(manifest.backup_id.clone());
        self.end.backup_sha256 = Some(manifest.payload.sha256.clone());
        self.end.backup_created_at = Some(manifest.created_at);
        self.manifest = Some(manifest);
        Ok(())
    }

    /// Picks the team's backup to drill, by the plan's `select`.
    async fn choose_existing(&mut self, existing: Arc<dyn Existing>) -> anyhow::Result<()> {
        let plan = self.plan;
        let (ctx, store, db) = (self.ctx.clone(), self.existing_store.clone(), self.engine.db.clone());
        let repository = existing.repository();
        let found = self
            .phase("backup", async {
                let (e, source, name, repo) =
                    (existing.clone(), plan.source.clone(), plan.name.clone(), repository.clone());
                let (select, window) = (plan.backup.select, plan.backup.window.map(|w| w.0));
                blocking(move || {
                    let at = Access { ctx: &ctx, source: source.as_ref(), store: store.as_ref(), t_fail: None };
                    let all = e.list(&at)?;
                    let count = all.len();
                    let tested = if select == Select::LeastTested {
                        db.last_restored(&name, &repo)?
                    } else {
                        Default::default()
                    };
                    let found = existing::choose(all, select, window, Utc::now(), &|f| tested.get(&f.id).copied())
                        .context("no backup to choose from")?;
                    let detail = format!(
                        "{} {} from {} ({count} backup(s) there; select = {})",
                        found.label,
                        found.time.to_rfc3339(),
                        repo,
                        select.as_str()
                    );
                    Ok((found, detail))
                })
                .await
            })
            .await?;
        self.end.store = Some(repository);
        self.end.backup_id = Some(found.id.clone());
        self.end.backup_created_at = Some(found.time);
        self.found = Some(found);
        Ok(())
    }

    /// Stops the run for `reason` (a safeguard, the halt file), which becomes
    /// the recorded reason unless something else stopped the run first.
    fn stop_run(&mut self, reason: String) {
        if self.ctx.cancel.cancel_because(&reason) {
            self.stopped_by = Some(reason);
        }
    }

    /// Every safeguard once, at the same time, right before injection: all
    /// must pass, or the run stops here with nothing injected. Then they are
    /// watched every `interval` until the steps end.
    async fn safeguards(&mut self) -> anyhow::Result<()> {
        self.observer.phase_started(self.run_id, "safeguard");
        let started = Started::now();
        let evaluations = futures::future::join_all(self.plan.safeguards.iter().map(|sg| {
            let ctx = self.ctx.clone();
            async move { safeguards::evaluate(sg, &ctx).await }
        }))
        .await;
        let mut details = Vec::new();
        let mut failed = None;
        for (sg, evaluation) in self.plan.safeguards.iter().zip(evaluations) {
            match evaluation {
                None => details.push(format!("{}: cancelled", sg.name)),
                Some((_, _, Ok(seen))) => details.push(format!("{}: {seen}", sg.name)),
                Some((_, _, Err(observed))) => {
                    details.push(format!("{}: FAILED: {observed}", sg.name));
                    failed.get_or_insert((sg.clone(), observed));
                }
            }
        }
        if let Some((sg, observed)) = failed {
            self.record("safeguard", started, false, format!("{}; nothing was injected", details.join("; ")));
            self.stop_run(safeguards::reason(&sg, &observed));
            anyhow::bail!("safeguard {} failed before injection: {observed}", sg.name);
        }
        if self.ctx.cancel.is_cancelled() {
            self.record("safeguard", started, false, "cancelled".into());
            anyhow::bail!("safeguards were cancelled");
        }
        let cadence: Vec<String> = self.plan.safeguards.iter().map(|s| format!("{} {}", s.name, s.cadence())).collect();
        let detail = format!("{}; watching until the run ends: {}", details.join("; "), cadence.join(", "));
        self.record("safeguard", started, true, detail);
        self.watches.push(Watch::safeguards(&self.plan.safeguards, &self.ctx));
        Ok(())
    }

    /// T_fail. The canary stops first, so no marker is newer than T_fail.
    async fn inject(&mut self) -> anyhow::Result<()> {
        // The halt watch looks every second; injection does not wait for it.
        if let Some(halt) = self.engine.config.safety.halt() {
            self.stop_run(halt.abort_reason());
            anyhow::bail!("{halt} before the first failure; nothing was injected");
        }
        self.canary_log = self.canary.take().map(CanaryWriter::stop);
        self.observer.phase_started(self.run_id, "failure");
        let started = Started::now();
        self.t_fail = Some(started);
        self.end.t_fail = Some(started.wall);
        let mut details = Vec::new();
        let mut error = None;
        for (i, f) in self.plan.failures.iter().enumerate() {
            if self.ctx.cancel.is_cancelled() {
                error = Some(anyhow!("cancelled before failure #{} ({})", i + 1, f.kind()));
                break;
            }
            if let Some(fence) = self.fence.as_ref().filter(|_| f.destructive())
                && let Err(why) = (fence.0)(&format!("failure #{} ({})", i + 1, f.kind())).await
            {
                self.ctx.cancel.cancel_because(&why);
                error = Some(anyhow!("{why}"));
                break;
            }
            let (f2, ctx) = (f.clone(), self.failure_ctx(self.ctx.clone(), i + 1));
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
        Ok(())
    }

    /// Fetch and unpack are pipelined; the fetch share is the time spent
    /// waiting on the store.
    async fn restore(&mut self, scratch: &RunScratch) -> anyhow::Result<()> {
        scratch.subdir("restore")?;
        if let (Some(existing), Some(found)) = (&self.plan.existing, self.found.clone()) {
            let (e, ctx, store, source) =
                (existing.clone(), self.ctx.clone(), self.existing_store.clone(), self.plan.source.clone());
            let t_fail = self.t_fail.map(|t| t.wall);
            let started = Instant::now();
            let restored = self
                .phase("restore", async {
                    blocking(move || {
                        let at = Access { ctx: &ctx, source: source.as_ref(), store: store.as_ref(), t_fail };
                        let r = e.restore(&at, &found)?;
                        let to = r.target.map(|t| format!(", recovered to {}", t.to_rfc3339())).unwrap_or_default();
                        let note = r.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default();
                        let detail = format!(
                            "{} restored with {}: {} files, {} bytes into {}{to}{note}",
                            found.label,
                            e.kind(),
                            r.files,
                            r.bytes,
                            r.path.display()
                        );
                        Ok((r, detail))
                    })
                    .await
                })
                .await?;
            // The tool fetches and restores in one go: its time is all restore.
            self.restored = Some((RestoreOutcome { restored, fetch_wait: Duration::ZERO }, started.elapsed()));
            return Ok(());
        }
        let store = self.store.clone().context("prepare opened no store")?;
        let manifest = self.manifest.clone().context("no backup to restore")?;
        let (source, ctx) = (self.plan.source.clone(), self.ctx.clone());
        let started = Instant::now();
        let outcome = self
            .phase("restore", async {
                let o = restore_backup(source, &store, &manifest, ctx).await?;
                let note = o.restored.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default();
                let detail = format!(
                    "{} files, {} bytes verified against the manifest into {}{note}",
                    o.restored.files,
                    o.restored.bytes,
                    o.restored.path.display()
                );
                Ok((o, detail))
            })
            .await?;
        self.restored = Some((outcome, started.elapsed()));
        Ok(())
    }

    /// Starts the plan's `[service]` on the restored data and waits until it is
    /// ready; from now on the checks see it (and `DRDRILL_PORT` is its port).
    async fn start_service(&mut self) -> anyhow::Result<()> {
        let spec = self.plan.service.clone().context("the plan has no [service]")?;
        let (outcome, restore_elapsed) = self.restored.clone().context("nothing was restored")?;
        let (ctx, groups, restored) = (self.ctx.clone(), self.service_groups.clone(), outcome.restored.clone());
        let started = Instant::now();
        let up = self
            .phase("service", async {
                let up = blocking(move || service::start(&spec, &ctx, &restored, &groups)).await?;
                let detail = up.detail.clone();
                Ok((up, detail))
            })
            .await?;
        self.service_start = Some(started.elapsed());
        self.service = Some((up.process, started));
        self.restored = Some((RestoreOutcome { restored: up.restored, ..outcome }, restore_elapsed));
        Ok(())
    }

    /// Waits at the approval gate before `phase`. Returns how long it waited.
    async fn gate(&mut self, gated: Gated) -> anyhow::Result<Duration> {
        let phase = gated.name();
        let started = Started::now();
        let rx = self.gates.open(self.run_id, phase, started.wall);
        self.observer.gate_waiting(self.run_id, phase);
        let approval = self.gates.wait(self.run_id, rx, &self.ctx.cancel).await;
        let waited = started.elapsed();
        let record = GateRecord {
            gate: phase.into(),
            waiting_since: started.wall,
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

    /// Runs the checks, then measures RTO (with its shares) and RPO.
    async fn verify_and_measure(&mut self) -> anyhow::Result<()> {
        let (outcome, restore_elapsed) = self.restored.clone().context("nothing was restored")?;
        let t_fail = self.t_fail.context("no failure was injected")?;
        let verify_started = Instant::now();
        let t_ok = self.verify(&outcome).await?;

        let targets = self.plan.targets;
        let gates = self.gate_wait_after_fail;
        let rto = t_ok.map(|t| t.duration_since(t_fail.mono).saturating_sub(gates));
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
        if let Some(start) = self.service_start {
            self.measure("start", Some(start), None, "[service] started until ready");
        }
        self.measure("verify", t_ok.map(|t| t.duration_since(verify_started)), None, "checks until the last passed");

        // Restored to a point in time, the loss is read against that point.
        let target = outcome.restored.target;
        let (newest, mut method) = self.newest_data(&outcome, t_fail.wall).await;
        if let Some(target) = target {
            self.prove_target(target, &newest);
            method = format!("{method}, against the recovery target {}", short_time(target));
        }
        let reference = target.unwrap_or(t_fail.wall);
        let rpo = match newest {
            Ok(t) if t > reference && target.is_some() => Err(format!(
                "the restored copy holds data from {}, after the recovery target {}: recovery did not stop at the target",
                t.to_rfc3339(),
                reference.to_rfc3339()
            )),
            Ok(t) if t > reference => Err(format!(
                "the restored copy claims data from {}, after the incident at {}: a clock is wrong or the backup's timestamps are forged, so the data-loss window is unknown",
                t.to_rfc3339(),
                t_fail.wall.to_rfc3339()
            )),
            Ok(t) => Ok((reference - t).to_std().unwrap_or(Duration::ZERO)),
            Err(why) => Err(why),
        };
        match rpo {
            Ok(v) => self.measure("rpo", Some(v), Some(targets.rpo.0), &method),
            // A failed check is the reason people need; the markers it kept
            // from being read are a consequence.
            Err(why) if t_ok.is_none() => {
                self.measure("rpo", None, Some(targets.rpo.0), &format!("{method}; not measured: {why}"))
            }
            Err(why) => {
                self.measure("rpo", None, Some(targets.rpo.0), &method);
                return Err(anyhow!("RPO could not be measured: {why}"));
            }
        }
        Ok(())
    }

    /// Records whether a restore to `target` holds every marker up to it and
    /// none after: its newest marker is at most the target, and no older than
    /// the probe's interval (with a second of slack) before it. WAL is replayed
    /// in commit order, so with the newest marker in place every earlier one is.
    fn prove_target(&mut self, target: DateTime<Utc>, newest: &Result<DateTime<Utc>, String>) {
        let Some(probe) = &self.plan.probe else {
            self.measurements.push(Measurement {
                name: "pitr".into(),
                value_ms: None,
                target_ms: None,
                method: format!(
                    "PITR target {} not proven: add [probe] kind = \"heartbeat\" so the restore holds markers to compare with it",
                    short_time(target)
                ),
                met: None,
            });
            return;
        };
        let slack = probe.interval.0 + Duration::from_secs(1);
        let (value, met, method) = match newest {
            Ok(t) if *t > target => (
                None,
                false,
                format!(
                    "PITR target missed: the restore holds a marker from {}, after the target {}",
                    clock(*t, target),
                    short_time(target)
                ),
            ),
            Ok(t) => {
                let gap = (target - *t).to_std().unwrap_or_default();
                if gap <= slack {
                    (
                        Some(gap),
                        true,
                        format!(
                            "PITR target met: newest marker {} for target {}",
                            clock(*t, target),
                            short_time(target)
                        ),
                    )
                } else {
                    (
                        Some(gap),
                        false,
                        format!(
                            "PITR target missed: newest marker {} is {} before the target {}, and markers come every {}: the restore lacks data up to the target (or the heartbeat stopped)",
                            clock(*t, target),
                            format_duration(gap),
                            short_time(target),
                            probe.interval
                        ),
                    )
                }
            }
            Err(why) => (None, false, format!("PITR target {} not proven: {why}", short_time(target))),
        };
        self.measurements.push(Measurement {
            name: "pitr".into(),
            value_ms: value.map(ms),
            target_ms: Some(ms(slack)),
            method,
            met: Some(met),
        });
    }

    /// The newest instant whose data the restore holds, and how it was found:
    /// the canary's newest marker in the restore (none after `t_fail`), else
    /// the backup's consistency point.
    async fn newest_data(
        &self,
        outcome: &RestoreOutcome,
        t_fail: DateTime<Utc>,
    ) -> (Result<DateTime<Utc>, String>, String) {
        let point = self.manifest.as_ref().map(|m| m.consistency_point).or(self.found.as_ref().map(|f| f.time));
        let (Some(probe), Some(c)) = (&self.plan.probe, self.plan.canary()) else {
            let point = point.ok_or_else(|| "no backup was restored".to_string());
            let method =
                if self.found.is_some() { "backup age (the backup's own time)" } else { "backup consistency point" };
            return (point, method.into());
        };
        let marker_method = match probe.kind {
            ProbeKind::Canary => "canary marker in the restored copy",
            ProbeKind::Heartbeat => "measured (heartbeat in the restore)",
        };
        let (restored, cancel) = (outcome.restored.clone(), self.ctx.cancel.clone());
        let found = blocking(move || {
            // Markers after the incident but not after now are real (a heartbeat
            // kept writing into a log the restore replays); one from the future
            // is a wrong clock or a forgery, and is returned for the check above.
            let any = c.newest_marker(&restored, DateTime::<Utc>::MAX_UTC, &cancel)?;
            match any {
                Some(t) if t > Utc::now() => Ok(Some(t)),
                Some(t) if t > t_fail => c.newest_marker(&restored, t_fail, &cancel),
                newest => Ok(newest),
            }
        })
        .await;
        let result = match found {
            Ok(Some(t)) => return (Ok(t), marker_method.into()),
            Ok(None) => match self.canary_log.as_ref().and_then(|l| l.last_error.clone()) {
                Some(e) => format!("no {} marker in the restored copy; the probe reported: {e}", probe.kind.as_str()),
                None if probe.kind == ProbeKind::Heartbeat => "no heartbeat marker in the restored copy: is the daemon running with this plan, and was the backup taken after it started?".to_string(),
                None => "no canary marker in the restored copy (the backup predates the probe?)".to_string(),
            },
            Err(e) => format!("cannot read the {} marker from the restore: {e:#}", probe.kind.as_str()),
        };
        (Err(result), probe.kind.as_str().into())
    }

    /// Runs every check once, retrying those that wait for something to come
    /// up until they pass or the deadline passes. Returns T_ok, or `None` if a
    /// check never passed.
    async fn verify(&mut self, restored: &RestoreOutcome) -> anyhow::Result<Option<Instant>> {
        let started = Started::now();
        let ctx = Arc::new(CheckCtx {
            run: self.ctx.clone(),
            restored: restored.restored.clone(),
            live: self.plan.live_tree(),
        });
        let cancel = self.ctx.cancel.clone();
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
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
            // What the last finished attempt saw: when the deadline cuts the next
            // one short, "cancelled" alone would hide why the check never passed.
            let mut observed: Option<String> = None;
            let (passed, output) = loop {
                attempts += 1;
                let (c, cx) = (check.clone(), ctx.clone());
                let result = tokio::task::spawn_blocking(move || c.run(&cx))
                    .await
                    .unwrap_or_else(|e| Err(format!("check panicked: {e}")));
                let delay = backoff.next_delay();
                match result {
                    Ok(out) => break (true, out),
                    Err(why) => {
                        // A server or application that is gone does not come back by waiting.
                        // The summary goes last: the verdict quotes a check's last line.
                        if let Err(gone) = ctx.restored.services_running() {
                            let summary = gone.lines().next().unwrap_or_default();
                            break (false, format!("{why}\n{gone}\nno retry can pass: {summary}"));
                        }
                        if cancel.is_cancelled()
                            && let Some(seen) = observed.take()
                        {
                            break (false, format!("{why}; the attempt before it failed with:\n{seen}"));
                        }
                        if !check.retries() || cancel.is_cancelled() || Instant::now() + delay >= self.ctx.deadline {
                            break (false, why);
                        }
                        observed = Some(why);
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = cancel.cancelled() => {}
                        }
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
                output: crate::redact::scrub(&output).into_owned(),
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
            _ => None,
        };
        self.measurements.push(Measurement {
            name: name.into(),
            value_ms: value.map(ms),
            target_ms: target.map(ms),
            method: method.into(),
            met,
        });
    }

    /// A context for work after the run's own steps: the run's folder and id,
    /// a fresh token (an abort must not cut a rollback short) that a budget of
    /// its own cancels (a hanging rollback must not hang the run either).
    fn afterwards(&self, what: &str) -> (RunCtx, tokio::task::JoinHandle<()>) {
        let budget = self.plan.timeout.min(AFTERWARDS_MAX);
        let cancel = Cancel::new();
        let timer = {
            let (cancel, what) = (cancel.clone(), what.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(budget).await;
                cancel.cancel_because(&format!("{what} took longer than {}", format_duration(budget)));
            })
        };
        let ctx = RunCtx { cancel, deadline: far(Instant::now(), budget), ..self.ctx.clone() };
        (ctx, timer)
    }

    async fn rollback(&mut self) -> anyhow::Result<()> {
        if self.undo.is_empty() {
            return Ok(());
        }
        let started = Started::now();
        let mut details = Vec::new();
        let mut first_error = None;
        self.observer.phase_started(self.run_id, "rollback");
        let (ctx, timer) = self.afterwards("rollback");
        let failure_ctx = self.failure_ctx(ctx, 0);
        for (kind, step) in self.undo.take() {
            let c = failure_ctx.clone();
            match blocking(move || step.rollback(&c)).await {
                Ok(Some(d)) => details.push(format!("{kind}: {d}")),
                Ok(None) => {}
                Err(e) => {
                    details.push(format!("{kind}: {e:#}"));
                    first_error.get_or_insert(e);
                }
            }
        }
        timer.abort();
        if first_error.is_none() {
            self.undo.quarantine().remove_if_empty();
        }
        if details.is_empty() && first_error.is_none() {
            return Ok(());
        }
        self.record("rollback", started, first_error.is_none(), details.join("; "));
        first_error.map_or(Ok(()), Err)
    }

    /// Stops what the restore started (before its folder goes; the folder is
    /// removed even if stopping failed), then every process group it kept, then
    /// the scratch folder. Returns the problem, if any, for the verdict.
    async fn cleanup(&mut self, scratch: anyhow::Result<RunScratch>) -> Result<(), String> {
        let started = Started::now();
        let scratch = match scratch {
            Ok(s) => s,
            Err(_) => {
                self.record("cleanup", started, true, "no scratch to remove".into());
                return Ok(());
            }
        };
        self.observer.phase_started(self.run_id, "cleanup");
        let mut parts = Vec::new();
        // The application first: it uses what the restore started.
        if let Some((process, since)) = self.service.take() {
            let how = match process.exited() {
                Some(status) => format!("had exited ({status})"),
                None => "stopped".to_string(),
            };
            let groups = self.service_groups.clone();
            tokio::task::spawn_blocking(move || groups.kill_all()).await.unwrap_or(0);
            parts.push(format!(
                "service `{}` {how} after {}; its output: {}",
                self.plan.service.as_ref().map(|s| s.run.as_str()).unwrap_or(""),
                format_duration(since.elapsed()),
                match process.tail() {
                    t if t.is_empty() => "(none)".to_string(),
                    t => t,
                }
            ));
        } else {
            // A service that never became ready is still stopped.
            let groups = self.service_groups.clone();
            tokio::task::spawn_blocking(move || groups.kill_all()).await.unwrap_or(0);
        }
        let (ctx, timer) = self.afterwards("cleanup");
        let (src, c, existing) = (self.plan.source.clone(), ctx.clone(), self.plan.existing.clone());
        let stopped = blocking(move || {
            let mut what = Vec::new();
            if let Some(e) = existing {
                what.extend(e.cleanup(&c)?);
            }
            what.extend(src.cleanup(&c)?);
            Ok((!what.is_empty()).then(|| what.join("; ")))
        })
        .await;
        timer.abort();
        let groups = ctx.groups.clone();
        let leftovers = tokio::task::spawn_blocking(move || groups.kill_all()).await.unwrap_or(0);
        let removed = scratch.cleanup().map(|_| "scratch removed".to_string());
        let mut problem = None;
        match stopped {
            Ok(Some(what)) => parts.push(what),
            Ok(None) => {}
            Err(e) => problem = Some(format!("cannot stop what the restore started: {}", explain(&e))),
        }
        if leftovers > 0 {
            parts.push(format!("stopped {leftovers} process group(s) the restore left running"));
        }
        match removed {
            Ok(d) => parts.push(d),
            Err(e) => {
                problem.get_or_insert(explain(&e));
            }
        }
        match problem {
            None => {
                self.record("cleanup", started, true, parts.join("; "));
                Ok(())
            }
            Some(p) => {
                self.record("cleanup", started, false, p.clone());
                Err(p)
            }
        }
    }

    /// Deletes the plan's backups that its retention rules expire. A failure is
    /// recorded but does not fail a drill that passed: the restore was proven.
    async fn apply_retention(&mut self) {
        let started = Started::now();
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
        for m in self.measurements.iter().filter(|m| m.name == "pitr" && m.met == Some(false)) {
            reasons.push(m.method.clone());
        }
        for m in self.measurements.iter().filter(|m| m.target_ms.is_some() && m.name != "pitr") {
            match (m.value_ms, m.met) {
                (None, _) => reasons.push(format!("{} was not measured", m.name.to_uppercase())),
                (Some(v), Some(false)) => reasons.push(format!(
                    "{} {} exceeded its target {}",
                    m.name.to_uppercase(),
                    fmt_ms(Some(v)),
                    fmt_ms(m.target_ms)
                )),
                _ => {}
            }
        }
        if reasons.is_empty() { (Status::Passed, None) } else { (Status::Failed, Some(reasons.join("; "))) }
    }
}

/// A time for people, to the millisecond: `12:04:59.8 (2026-11-30, UTC)`.
fn short_time(t: DateTime<Utc>) -> String {
    format!("{} ({}, UTC)", clock(t, t), t.format("%Y-%m-%d"))
}

/// `t`'s time of day (`12:04:59.8`), with its date when that is not `beside`'s.
fn clock(t: DateTime<Utc>, beside: DateTime<Utc>) -> String {
    let text = t.format("%H:%M:%S%.3f").to_string();
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if t.date_naive() == beside.date_naive() { text.to_string() } else { format!("{} {text}", t.format("%Y-%m-%d")) }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await.context("worker thread panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pitr_times_read_as_people_write_them() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let target = at("2026-11-30T12:05:00Z");
        assert_eq!(short_time(target), "12:05:00 (2026-11-30, UTC)");
        assert_eq!(clock(at("2026-11-30T12:04:59.800Z"), target), "12:04:59.8");
        assert_eq!(clock(at("2026-11-29T23:59:59.250Z"), target), "2026-11-29 23:59:59.25");
    }
}
