//! Outside conditions that stop a run at once: the plan's `[[safeguard]]`s
//! (evaluated right before the first failure, then every `interval`) and the
//! config's `[safety] halt_file` (looked at every second from the run's start).
//!
//! A watch runs beside the run's steps as tasks of its own and stops the run
//! through its cancel token, so every step stops as an abort stops it and
//! rollbacks and cleanup run as they always do. The reason the watch gave is
//! the run's recorded reason only when its cancel came first (a person's
//! abort or the deadline keeps theirs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::{Cancel, Hook};
use crate::check::safeguard::Safeguard;
use crate::clock::Started;
use crate::config::SafetyConfig;
use crate::context::RunCtx;

/// How often a running drill looks for the halt file.
pub const HALT_POLL: Duration = Duration::from_secs(1);

/// What stopped the run: its reason as recorded, and, for a safeguard, the
/// evaluation that failed (recorded as a `safeguard` phase).
#[derive(Debug, Clone)]
pub struct Tripped {
    pub reason: String,
    pub evaluation: Option<(Started, Duration, String)>,
}

/// Tasks watching one run; [`Watch::stop`] ends them and says whether one stopped the run.
pub struct Watch {
    stop: Cancel,
    tasks: Vec<tokio::task::JoinHandle<Option<Tripped>>>,
    _linked: Hook,
}

impl Watch {
    /// A token the watch's work stops on: when the watch stops, or the run does.
    fn linked(run: &Cancel) -> (Cancel, Hook) {
        let stop = Cancel::new();
        let hook = {
            let s = stop.clone();
            run.on_cancel(move || {
                s.cancel();
            })
        };
        (stop, hook)
    }

    /// Looks for the halt file every [`HALT_POLL`] until stopped.
    pub fn halt_file(safety: &SafetyConfig, run: &Cancel) -> Option<Watch> {
        safety.halt_file.as_ref()?;
        let (stop, linked) = Watch::linked(run);
        let (safety, run, s) = (safety.clone(), run.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HALT_POLL);
            loop {
                tokio::select! {
                    _ = s.cancelled() => return None,
                    _ = tick.tick() => {}
                }
                if let Some(halt) = safety.halt() {
                    let reason = halt.abort_reason();
                    tracing::warn!("{reason}: stopping the run");
                    return run.cancel_because(&reason).then_some(Tripped { reason, evaluation: None });
                }
            }
        });
        Some(Watch { stop, tasks: vec![task], _linked: linked })
    }

    /// Evaluates each safeguard every `interval` from now until stopped; the
    /// first that fails stops the run. `run` is the run's context: each
    /// evaluation gets it with a token of the watch.
    pub fn safeguards(safeguards: &[Arc<Safeguard>], run: &RunCtx) -> Watch {
        let (stop, linked) = Watch::linked(&run.cancel);
        let ctx = RunCtx { cancel: stop.clone(), ..run.clone() };
        let tasks =
            safeguards.iter().map(|sg| tokio::spawn(watch_one(sg.clone(), ctx.clone(), run.cancel.clone()))).collect();
        Watch { stop, tasks, _linked: linked }
    }

    /// Stops the watch and waits for its tasks; the trip, if it stopped the run.
    pub async fn stop(self) -> Option<Tripped> {
        self.stop.cancel();
        let mut tripped = None;
        for t in self.tasks {
            if let Ok(Some(t)) = t.await {
                tripped.get_or_insert(t);
            }
        }
        tripped
    }
}

/// Evaluates `sg` once on a blocking thread: when it began, how long it took,
/// and what it saw. `None` when `ctx.cancel` stopped it first (no verdict).
pub async fn evaluate(sg: &Arc<Safeguard>, ctx: &RunCtx) -> Option<(Started, Duration, Result<String, String>)> {
    let started = Started::now();
    let (s, c) = (sg.clone(), ctx.clone());
    let work = tokio::task::spawn_blocking(move || s.evaluate(&c));
    let result = tokio::select! {
        r = work => r.unwrap_or_else(|e| Err(format!("the safeguard panicked: {e}"))),
        _ = ctx.cancel.cancelled() => return None,
    };
    if ctx.cancel.is_cancelled() {
        return None;
    }
    let result = result.map_err(|e| crate::redact::scrub(&e).into_owned());
    Some((started, started.elapsed(), result))
}

/// The reason a run stopped by `sg` is recorded with.
pub fn reason(sg: &Safeguard, observed: &str) -> String {
    // One line: the reason is quoted in lists, alerts and reports.
    format!("aborted by safeguard {}: {}", sg.name, observed.split_whitespace().collect::<Vec<_>>().join(" "))
}

async fn watch_one(sg: Arc<Safeguard>, ctx: RunCtx, run: Cancel) -> Option<Tripped> {
    let mut next = Instant::now() + sg.interval;
    let mut passed = 1u64;
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return None,
            _ = tokio::time::sleep_until(next.into()) => {}
        }
        // Evaluations start every interval; one that ran long is followed at once.
        next = (next + sg.interval).max(Instant::now());
        let (started, took, result) = evaluate(&sg, &ctx).await?;
        match result {
            Ok(_) => passed += 1,
            Err(observed) => {
                let reason = reason(&sg, &observed);
                tracing::warn!("{reason}: stopping the run");
                let detail =
                    format!("`{}` failed after {passed} passing evaluation(s), {}: {observed}", sg.name, sg.cadence());
                return run
                    .cancel_because(&reason)
                    .then_some(Tripped { reason, evaluation: Some((started, took, detail)) });
            }
        }
    }
}
