//! `drdrill daemon`: runs plans on their schedules, serves the API, and stops cleanly.
//!
//! Start-up order matters: signals are caught first (a SIGHUP before the handler
//! would kill the process), then runs left `running` by processes that died are
//! marked aborted and their scratch folders swept (runs another live process
//! owns are left alone), and only then can anything start.
//! READY=1 is sent once the API listens and the scheduler runs.

pub mod api;
pub mod console;
pub mod deadman;
pub mod fleet;
pub mod freshness;
pub mod halt;
pub mod heartbeat;
mod lock;
pub mod mail;
pub mod metrics;
pub mod overdue;
pub mod pause;
pub mod plans;
pub mod scheduler;
pub mod signals;
pub mod systemd;
pub mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, broadcast, oneshot};
use tracing::Instrument;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::db::{GateRecord, NewRun, PhaseRecord};
use crate::duration::format_duration;
use crate::engine::{Engine, Gates, Observer, RunOptions};
use crate::net::hostname;
use crate::plan::Plan;
use plans::PlanSet;

/// The trigger of runs started in the web console (recorded as such).
pub const CONSOLE_TRIGGER: &str = "console";

/// A plan's run that the daemon holds: queued for a concurrency slot, or running.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveRun {
    pub plan: String,
    pub trigger: String,
    pub since: DateTime<Utc>,
    /// `None` while queued for a concurrency slot.
    pub run_id: Option<i64>,
    /// The last phase that ended, e.g. `backup ok`.
    pub last_phase: Option<String>,
    #[serde(skip)]
    pub abort: Cancel,
}

/// Progress of one run, published to followers (`drdrill trigger --follow`).
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A phase ended; `seq` is its position in the run's timeline.
    Phase { run_id: i64, seq: usize, phase: PhaseRecord },
    /// The run now waits for approval before phase `gate`.
    Gate { run_id: i64, gate: String, since: DateTime<Utc> },
    /// The run's outcome is in the database.
    Finished { run_id: i64 },
}

/// Why a run was not started.
#[derive(Debug)]
pub enum Declined {
    Stopping,
    /// The plan's previous run is still active.
    Busy(ActiveRun),
    /// An emergency stop paused the scheduler.
    Paused(Box<crate::db::pause::Pause>),
}

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declined::Stopping => f.write_str("the daemon is stopping and starts no new runs"),
            Declined::Paused(p) => f.write_str(&pause::refusal(p)),
            Declined::Busy(a) => match a.run_id {
                Some(id) => write!(f, "the previous run {id} (started {}) is still running", a.since.to_rfc3339()),
                None => {
                    write!(f, "the previous run (queued since {}) is still waiting for a slot", a.since.to_rfc3339())
                }
            },
        }
    }
}

pub struct Daemon {
    pub config: Arc<Config>,
    pub engine: Arc<Engine>,
    pub plans: RwLock<PlanSet>,
    pub active: Mutex<BTreeMap<String, ActiveRun>>,
    slots: Arc<Semaphore>,
    stopping: AtomicBool,
    /// Wakes the scheduler after a reload or when stopping.
    pub wake: Notify,
    pub events: broadcast::Sender<RunEvent>,
    /// Runs waiting at `pause_before` gates, approved through the API.
    pub gates: Gates,
    /// Wakes the mail worker to deliver what a run just queued.
    pub mail: Notify,
    /// Where alerts go (the config's channels).
    pub alerts: crate::alert::Channels,
    /// Markers written into the live sources of heartbeat plans.
    pub heartbeats: heartbeat::Heartbeats,
    /// How old the newest backup of each `existing` and `latest` plan is.
    pub freshness: freshness::Freshness,
    /// Dead-man pings of plans with a `ping_url`.
    pub pinger: deadman::Pinger,
    /// Fleet mode: this node's part in the fleet; `None` runs every firing here.
    pub fleet: Option<Arc<fleet::FleetNode>>,
    /// The emergency stop in force (the database's, see [`pause`]).
    paused: Mutex<Option<crate::db::pause::Pause>>,
    /// Who is logged in to the web console.
    pub sessions: console::session::Sessions,
    /// The evidence chain's status as the console shows it.
    pub chain: console::ChainCache,
    /// The overview's fold of the period's records, kept between page loads.
    pub period: console::PeriodCache,
    token: String,
}

/// What a caller adds to a run it starts (fleet mode: the fencing check, the
/// takeover note, and being told the outcome).
#[derive(Default)]
pub struct Extra {
    pub fence: Option<crate::engine::Fence>,
    pub notes: Option<String>,
    pub done: Option<oneshot::Sender<Option<crate::record::RunReport>>>,
}

/// The run's outcome as the one who started it learns it.
pub type Started = Result<i64, StartError>;

/// Why a run that was accepted did not start after all.
#[derive(Debug, Clone)]
pub enum StartError {
    /// The blast-radius guard refused the plan; nothing was touched.
    Guard(String),
    /// It never got a concurrency slot (the daemon is stopping), or could not be recorded.
    NotStarted(String),
}

/// Why an abort request was not carried out.
#[derive(Debug)]
pub enum AbortError {
    /// No run with that id in the results database.
    NoSuchRun(i64),
    /// The run exists but this daemon is not running it (finished, or another process's).
    NotRunning { run_id: i64, status: String },
}

impl std::fmt::Display for AbortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbortError::NoSuchRun(id) => write!(f, "no run {id}"),
            AbortError::NotRunning { run_id, status } => {
                write!(f, "run {run_id} is not running in this daemon (its status is `{status}`)")
            }
        }
    }
}

impl Daemon {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn token_matches(&self, given: &str) -> bool {
        token::matches(&self.token, given)
    }

    fn active(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ActiveRun>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn plans(&self) -> std::sync::RwLockReadGuard<'_, PlanSet> {
        self.plans.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the plans folder. Broken plans keep their previous version.
    pub fn reload(&self) -> PlanSet {
        systemd::reloading();
        let tz = self.config.daemon.timezone.0;
        // Held while loading: the scheduler must not advance a due time that
        // this reload would then overwrite with the old one (a double firing).
        let summary = {
            let mut current = self.plans.write().unwrap_or_else(|p| p.into_inner());
            let fresh = plans::load(&self.config, Some(&current), tz, Utc::now());
            for e in &fresh.errors {
                tracing::error!(file = %e.file, "plan not reloaded: {}{}", e.error, e.kept_note());
            }
            tracing::info!(plans = fresh.plans.len(), errors = fresh.errors.len(), "plans reloaded");
            let summary = fresh.summary();
            *current = fresh;
            summary
        };
        self.wake.notify_one();
        self.heartbeats.wake();
        self.freshness.wake();
        systemd::ready();
        self.publish_status();
        summary
    }

    /// Starts `plan` now, unless the daemon is stopping or the plan's previous run is
    /// still active. The receiver gets the run id once the run is recorded (after a
    /// concurrency slot is free); it is dropped if the run never starts.
    pub fn start(self: &Arc<Self>, plan: Arc<Plan>, trigger: &str) -> Result<oneshot::Receiver<Started>, Declined> {
        self.start_with(plan, trigger, Extra::default())
    }

    /// [`Daemon::start`] with what the caller adds to the run.
    pub fn start_with(
        self: &Arc<Self>,
        plan: Arc<Plan>,
        trigger: &str,
        extra: Extra,
    ) -> Result<oneshot::Receiver<Started>, Declined> {
        if self.is_stopping() {
            return Err(Declined::Stopping);
        }
        let abort = Cancel::new();
        {
            let mut active = self.active();
            // Checked under this lock: see `emergency_stop`.
            if let Some(p) = self.pause() {
                return Err(Declined::Paused(Box::new(p)));
            }
            if let Some(a) = active.get(&plan.name) {
                return Err(Declined::Busy(a.clone()));
            }
            active.insert(
                plan.name.clone(),
                ActiveRun {
                    plan: plan.name.clone(),
                    trigger: trigger.into(),
                    since: Utc::now(),
                    run_id: None,
                    last_phase: None,
                    abort: abort.clone(),
                },
            );
        }
        let (tx, rx) = oneshot::channel();
        let daemon = self.clone();
        let trigger = trigger.to_string();
        tokio::spawn(async move {
            daemon.drive(plan, trigger, abort, tx, extra).await;
        });
        self.publish_status();
        Ok(rx)
    }

    async fn drive(
        self: Arc<Self>,
        plan: Arc<Plan>,
        trigger: String,
        abort: Cancel,
        tx: oneshot::Sender<Started>,
        extra: Extra,
    ) {
        let name = plan.name.clone();
        let permit = tokio::select! {
            p = self.slots.clone().acquire_owned() => p.ok(),
            _ = abort.cancelled() => None,
        };
        // Stopping means no new runs, even if a slot freed up during the grace period.
        if permit.is_none() || self.is_stopping() {
            // Aborted while queued (an emergency stop), or the daemon stops.
            let why = abort.reason().unwrap_or_else(|| "the daemon stopped before a concurrency slot was free".into());
            self.skip(&plan, &trigger, &why);
            let _ = tx.send(Err(StartError::NotStarted(why)));
            self.active().remove(&name);
            self.publish_status();
            return;
        }
        // Every line logged about this run carries its plan and, once known, its id.
        let span = tracing::info_span!("drill", plan = %name, run = tracing::field::Empty, trigger = %trigger);
        let watch = Watch {
            daemon: self.clone(),
            plan: name.clone(),
            started: Mutex::new(Some(tx)),
            run_id: Mutex::new(None),
            phases: std::sync::atomic::AtomicUsize::new(0),
            span: span.clone(),
        };
        // Only runs the schedule starts: the monitor expects the schedule's beat.
        let ping = plan.ping_url.clone().filter(|_| trigger == "schedule" || trigger == "catch-up");
        let start_ping = ping.as_ref().map(|url| {
            let (pinger, plan, url) = (self.pinger.clone(), name.clone(), url.clone());
            let body = format!("drdrill: drill {plan} starting ({trigger})");
            tokio::spawn(async move { pinger.send(&plan, &url, deadman::Ping::Start, body).await })
        });
        let opts = RunOptions {
            trigger: trigger.clone(),
            abort,
            gates: self.gates.clone(),
            notes: extra.notes,
            fence: extra.fence,
        };
        let result = self.engine.run(&plan, opts, &watch).instrument(span.clone()).await;
        let _in_run = span.enter();
        if let Some(done) = extra.done {
            let _ = done.send(result.as_ref().ok().cloned());
        }
        if let Some(url) = ping {
            let (ping, body) = match &result {
                Ok(r) if r.passed() => (deadman::Ping::Pass, r.render()),
                Ok(r) => (deadman::Ping::Fail, r.render()),
                Err(e) => (deadman::Ping::Fail, format!("drdrill: drill {name} did not run: {e:#}")),
            };
            let (pinger, plan) = (self.pinger.clone(), name.clone());
            let body = crate::redact::scrub(&body).into_owned();
            tokio::spawn(async move {
                // After the start ping, so the monitor sees them in order.
                if let Some(s) = start_ping {
                    let _ = s.await;
                }
                pinger.send(&plan, &url, ping, body).await;
            });
        }
        if let Some(run_id) = *watch.run_id.lock().unwrap_or_else(|p| p.into_inner()) {
            // No follower is not an error.
            let _ = self.events.send(RunEvent::Finished { run_id });
        }
        let started = watch.started.lock().unwrap_or_else(|p| p.into_inner()).take();
        match result {
            Ok(report) => {
                tracing::info!(
                    plan = %name,
                    run = report.run_id,
                    "drill {}{}",
                    report.status.as_str(),
                    report.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
                );
                // Only queued here; the mail worker delivers, so a slow or dead
                // mail server never holds this slot or the next scheduled run.
                if crate::alert::queue_alert(&self.alerts, &self.engine.db, &report) {
                    self.mail.notify_one();
                }
            }
            Err(e) => {
                // Not an internal error: the config's [safety] says no (the blast
                // radius, or the halt file is there), and nothing was touched.
                let refused =
                    match (e.downcast_ref::<crate::failure::Refused>(), e.downcast_ref::<crate::config::Halt>()) {
                        (Some(r), _) => Some(StartError::Guard(r.to_string())),
                        (None, Some(h)) => Some(StartError::NotStarted(h.refusal())),
                        (None, None) => None,
                    };
                match refused {
                    Some(answer) => {
                        let (StartError::Guard(why) | StartError::NotStarted(why)) = &answer;
                        if trigger == "api" || trigger == CONSOLE_TRIGGER {
                            tracing::warn!(plan = %name, "game-day run not started: {why}");
                        } else {
                            self.skip(&plan, &trigger, why);
                        }
                        if let Some(tx) = started {
                            let _ = tx.send(Err(answer));
                        }
                    }
                    None => {
                        tracing::error!(plan = %name, "drill could not be recorded: {e:#}");
                        if let Some(tx) = started {
                            let _ =
                                tx.send(Err(StartError::NotStarted(format!("the run could not be recorded: {e:#}"))));
                        }
                    }
                }
            }
        }
        drop(permit);
        self.active().remove(&name);
        self.publish_status();
    }

    /// Records a due run that is not started, with why.
    pub fn skip(&self, plan: &Plan, trigger: &str, reason: &str) {
        tracing::warn!(plan = %plan.name, "run skipped: {reason}");
        let rec = NewRun {
            plan: &plan.name,
            plan_file: &plan.file.to_string_lossy(),
            plan_sha256: &plan.sha256,
            description: &plan.description,
            trigger,
            host: &hostname(),
            started_at: Utc::now(),
        };
        if let Err(e) = self.engine.db.record_skipped(&rec, reason) {
            tracing::error!(plan = %plan.name, "cannot record the skipped run: {e:#}");
        }
    }

    /// Aborts run `run_id` if this daemon is running it: the engine rolls back,
    /// removes scratch and records it `aborted` with `reason`.
    pub fn abort(&self, run_id: i64, reason: &str) -> Result<ActiveRun, AbortError> {
        let found = self.active().values().find(|a| a.run_id == Some(run_id)).cloned();
        if let Some(a) = found {
            tracing::warn!(plan = %a.plan, run = run_id, "aborting: {reason}");
            a.abort.cancel_because(reason);
            return Ok(a);
        }
        match self.engine.db.run_detail(run_id) {
            Ok(Some(r)) => Err(AbortError::NotRunning { run_id, status: r.summary.status }),
            Ok(None) => Err(AbortError::NoSuchRun(run_id)),
            // Unknown either way; "not running here" is still true.
            Err(e) => Err(AbortError::NotRunning { run_id, status: format!("unknown: {e:#}") }),
        }
    }

    /// The plan of the active run `run_id`, if this daemon runs it.
    pub fn plan_of(&self, run_id: i64) -> Option<String> {
        self.active().values().find(|a| a.run_id == Some(run_id)).map(|a| a.plan.clone())
    }

    /// What is running, for `STATUS=` and the logs.
    pub fn status_line(&self) -> String {
        let mut line = String::new();
        if let Some(h) = halt::status(self) {
            line += &format!("{h}; ");
        }
        if let Some(p) = self.pause() {
            line += &format!("{}; ", pause::status(&p));
        }
        line + &self.activity_line()
    }

    fn activity_line(&self) -> String {
        let active = self.active();
        if self.is_stopping() {
            return format!("stopping; {} drill(s) still active", active.len());
        }
        let running: Vec<String> = active
            .values()
            .map(|a| match (a.run_id, &a.last_phase) {
                (None, _) => format!("{} (queued)", a.plan),
                (Some(id), None) => format!("{} (run {id}, starting)", a.plan),
                (Some(id), Some(p)) => format!("{} (run {id}, after {p})", a.plan),
            })
            .collect();
        let plans = self.plans();
        let next = plans.next_due();
        let next = next.map(|(n, t)| format!("; next: {n} at {}", t.to_rfc3339())).unwrap_or_default();
        let errors =
            if plans.errors.is_empty() { String::new() } else { format!("; {} broken plan(s)", plans.errors.len()) };
        if running.is_empty() {
            format!("idle; {} plan(s){next}{errors}", plans.plans.len())
        } else {
            format!("running: {}{next}{errors}", running.join(", "))
        }
    }

    pub fn publish_status(&self) {
        systemd::status(&self.status_line());
    }

    /// Stops starting runs, lets active ones finish within the grace period, then
    /// aborts the rest (the engine rolls back, removes scratch and records `aborted`).
    async fn shut_down(&self, signal: &str, signals: &mut signals::Signals) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        self.heartbeats.wake();
        self.freshness.stop();
        let grace = self.config.daemon.grace_period.0;
        tracing::info!("{signal}: starting no new runs; active runs have {} to finish", format_duration(grace));
        systemd::stopping(&self.status_line());
        let deadline = tokio::time::Instant::now() + grace;
        let mut reason = format!("daemon stopping on {signal}; the grace period of {} ran out", format_duration(grace));
        while !self.active().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                // A second SIGTERM/SIGINT (an impatient Ctrl-C) cuts the grace period short.
                event = signals.next() => if let signals::Event::Stop(again) = event {
                    reason = format!("daemon stopping on {signal}, then {again} during the grace period");
                    break;
                },
            }
        }
        for a in self.active().values() {
            tracing::warn!(plan = %a.plan, run = ?a.run_id, "aborting: {reason}");
            a.abort.cancel_because(&reason);
        }
        while !self.active().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(f) = &self.fleet {
            f.settle(Duration::from_secs(10)).await;
        }
    }
}

/// Publishes a run's progress to the daemon's state (for `STATUS=`, the API and
/// `drdrill trigger --follow`), and hands the run id to whoever started it.
struct Watch {
    daemon: Arc<Daemon>,
    plan: String,
    started: Mutex<Option<oneshot::Sender<Started>>>,
    run_id: Mutex<Option<i64>>,
    /// Phases seen so far: the next one's position in the timeline.
    phases: std::sync::atomic::AtomicUsize,
    /// The run's log span, which learns the run id here.
    span: tracing::Span,
}

impl Observer for Watch {
    fn run_started(&self, run_id: i64, plan: &Plan) {
        self.span.record("run", run_id);
        tracing::info!(plan = %plan.name, run = run_id, "drill started");
        *self.run_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(run_id);
        if let Some(a) = self.daemon.active().get_mut(&self.plan) {
            a.run_id = Some(run_id);
            a.since = Utc::now();
        }
        if let Some(tx) = self.started.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(Ok(run_id));
        }
        self.daemon.publish_status();
    }

    fn gate_waiting(&self, run_id: i64, gate: &str) {
        tracing::warn!(
            plan = %self.plan,
            run = run_id,
            "waiting for approval before {gate}: `drdrill approve {run_id} --gate {gate}` (or POST /api/runs/{run_id}/approve); `drdrill abort {run_id}` aborts"
        );
        if let Some(a) = self.daemon.active().get_mut(&self.plan) {
            a.last_phase = Some(format!("waiting for approval before {gate}"));
        }
        let _ = self.daemon.events.send(RunEvent::Gate { run_id, gate: gate.into(), since: Utc::now() });
        self.daemon.publish_status();
    }

    fn gate_decided(&self, run_id: i64, g: &GateRecord) {
        tracing::info!(plan = %self.plan, run = run_id, "gate before {}: {} by {}", g.gate, g.outcome, g.decided_by);
    }

    fn phase(&self, run_id: i64, p: &PhaseRecord) {
        tracing::info!(plan = %self.plan, run = run_id, "{} {} in {:.0}ms: {}", p.name, p.status, p.duration_ms, p.detail);
        if let Some(a) = self.daemon.active().get_mut(&self.plan) {
            a.last_phase = Some(format!("{} {}", p.name, p.status));
        }
        let seq = self.phases.fetch_add(1, Ordering::SeqCst);
        let _ = self.daemon.events.send(RunEvent::Phase { run_id, seq, phase: p.clone() });
        self.daemon.publish_status();
    }
}

/// Runs the daemon until SIGTERM or SIGINT; returns the exit code.
pub async fn run(config: Arc<Config>) -> anyhow::Result<u8> {
    let mut signals = signals::Signals::install()?;
    let listen: SocketAddr = config.api.listen.parse().with_context(|| {
        format!(
            "[api] listen = {:?} in {} is not an address such as 127.0.0.1:7878",
            config.api.listen,
            config.origin()
        )
    })?;
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "[api] listen = {listen} in {} is not a loopback address: the API has no TLS; keep it on 127.0.0.1 and put a TLS proxy in front for remote use",
        config.origin()
    );
    // Crash recovery below assumes no other daemon uses this database.
    let _lock = lock::exclusive(&config.database)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ([api] listen in {})", config.origin()))?;
    let token = token::load_or_create(&config.api.token_file)?;
    let engine = Arc::new(Engine::open(config.clone())?);
    let paused = engine.db.current_pause()?;
    if let Some(p) = &paused {
        tracing::error!("{}", pause::status(p));
    }

    // Crash recovery, before anything can start: only runs whose process died
    // (a `drdrill run` in another terminal goes on untouched).
    let found = engine.recover("the daemon's start-up")?;
    for r in &found.aborted {
        tracing::warn!(plan = %r.plan, run = r.run_id, "marked a run left running by a dead process as aborted: {}", r.reason);
    }
    if !found.swept.is_empty() {
        tracing::warn!(folders = ?found.swept, "removed scratch folders of runs that are over");
    }
    // Live data that a crashed destructive run moved aside: never removed, only told.
    for q in &found.quarantine {
        tracing::error!("{}", q.message());
    }

    let tz = config.daemon.timezone.0;
    let plan_set = plans::load(&config, None, tz, Utc::now());
    for e in &plan_set.errors {
        tracing::error!(file = %e.file, "plan not loaded: {}", e.error);
    }
    let fleet = match &config.fleet {
        Some(f) => Some(Arc::new(fleet::FleetNode::join(&config, f, &engine.db).await?)),
        None => None,
    };
    let daemon = Arc::new(Daemon {
        slots: Arc::new(Semaphore::new(config.daemon.concurrency.get())),
        config: config.clone(),
        engine,
        plans: RwLock::new(plan_set),
        active: Mutex::new(BTreeMap::new()),
        stopping: AtomicBool::new(false),
        wake: Notify::new(),
        events: broadcast::channel(256).0,
        gates: Gates::new(),
        mail: Notify::new(),
        alerts: crate::alert::Channels::from_config(&config),
        heartbeats: Default::default(),
        freshness: Default::default(),
        pinger: deadman::Pinger::new()?,
        fleet,
        paused: Mutex::new(paused),
        sessions: Default::default(),
        chain: Default::default(),
        period: Default::default(),
        token,
    });

    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let server = {
        let app = api::router(daemon.clone());
        tokio::spawn(api::serve(listener, app, async {
            let _ = api_stopped.await;
        }))
    };

    // In a fleet, peers ran the firings this node missed.
    if daemon.fleet.is_none() {
        scheduler::catch_up(&daemon);
    }
    let scheduler = tokio::spawn(scheduler::run(daemon.clone()));
    let heartbeat = tokio::spawn(heartbeat::run(daemon.clone()));
    let freshness = tokio::spawn(freshness::run(daemon.clone()));
    let fleet_worker = daemon.fleet.is_some().then(|| tokio::spawn(fleet::worker(daemon.clone())));
    let mailer = (!daemon.alerts.is_empty()).then(|| tokio::spawn(mail::run(daemon.clone())));
    let overdue = tokio::spawn(overdue::run(daemon.clone()));
    let halt = tokio::spawn(halt::run(daemon.clone()));
    let watchdog = systemd::spawn_watchdog();
    tracing::info!(
        "daemon ready: API on http://{listen}, {} plan(s), concurrency {}, schedules in {}",
        daemon.plans().plans.len(),
        config.daemon.concurrency,
        tz
    );
    systemd::ready();
    daemon.publish_status();

    let signal = loop {
        match signals.next().await {
            signals::Event::Reload => {
                tracing::info!("SIGHUP: reloading plans");
                let d = daemon.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || d.reload()).await {
                    tracing::error!("reload panicked: {e}");
                }
            }
            signals::Event::Stop(name) => break name,
        }
    };
    daemon.shut_down(signal, &mut signals).await;
    scheduler.abort();
    heartbeat.abort();
    freshness.abort();
    overdue.abort();
    halt.abort();
    if let Some(w) = fleet_worker {
        w.abort();
    }
    // Undelivered mail stays in the outbox for the next start or `drdrill notify flush`.
    if let Some(m) = mailer {
        m.abort();
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = stop_api.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Err(e)) => tracing::warn!("API server: {e}"),
        Err(_) => tracing::warn!("API server did not stop within 5s"),
        _ => {}
    }
    tracing::info!("daemon stopped");
    Ok(0)
}
