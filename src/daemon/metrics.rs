//! `GET /metrics`: Prometheus/OpenMetrics text, built from the results database
//! at each scrape so counts survive restarts and match `drdrill history`.
//!
//! Labels stay bounded: a plan, a result, a check's position and kind; never
//! a run id or a time, which would make a new series for every run.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use super::Daemon;

type Labels = Vec<(String, String)>;
type FloatGauge = Family<Labels, Gauge<f64, AtomicU64>>;

fn plan(name: &str) -> Labels {
    vec![("plan".into(), name.into())]
}

pub fn render(daemon: &Daemon) -> anyhow::Result<String> {
    let stats = daemon.engine.db.plan_stats()?;
    let mut registry = Registry::with_prefix("drdrill");

    let runs = Family::<Labels, Counter>::default();
    let last_rto = FloatGauge::default();
    let rto_target = FloatGauge::default();
    let last_rpo = FloatGauge::default();
    let rpo_target = FloatGauge::default();
    let last_success = FloatGauge::default();
    for s in &stats {
        for (status, n) in &s.runs_by_status {
            runs.get_or_create(&vec![("plan".into(), s.plan.clone()), ("result".into(), status.clone())]).inc_by(*n);
        }
        let secs = |ms: f64| ms / 1000.0;
        if let Some((v, t)) = s.last_rto_ms {
            last_rto.get_or_create(&plan(&s.plan)).set(secs(v));
            if let Some(t) = t {
                rto_target.get_or_create(&plan(&s.plan)).set(secs(t));
            }
        }
        if let Some((v, t)) = s.last_rpo_ms {
            last_rpo.get_or_create(&plan(&s.plan)).set(secs(v));
            if let Some(t) = t {
                rpo_target.get_or_create(&plan(&s.plan)).set(secs(t));
            }
        }
        if let Some(t) = s.last_success {
            last_success.get_or_create(&plan(&s.plan)).set(t.timestamp_millis() as f64 / 1000.0);
        }
    }
    let last_run = FloatGauge::default();
    for (p, t) in daemon.engine.db.last_run_times()? {
        last_run.get_or_create(&plan(&p)).set(t.timestamp_millis() as f64 / 1000.0);
    }
    let check_duration = FloatGauge::default();
    for c in daemon.engine.db.last_check_durations()? {
        let labels = vec![("plan".into(), c.plan), ("check".into(), format!("{}:{}", c.seq, c.kind))];
        check_duration.get_or_create(&labels).set(c.duration_ms / 1000.0);
    }
    // Targets of loaded plans are known before their first run.
    let active = Family::<Labels, Gauge>::default();
    let plan_errors = Gauge::<i64>::default();
    let overdue = Family::<Labels, Gauge>::default();
    let loaded: Vec<_> = {
        let plans = daemon.plans();
        plan_errors.set(plans.errors.len() as i64);
        plans.plans.values().map(|e| e.plan.clone()).collect()
    };
    let now = chrono::Utc::now();
    for p in &loaded {
        rto_target.get_or_create(&plan(&p.name)).set(p.targets.rto.0.as_secs_f64());
        rpo_target.get_or_create(&plan(&p.name)).set(p.targets.rpo.0.as_secs_f64());
        let state = super::overdue::standing(daemon, p, now)?.state;
        overdue.get_or_create(&plan(&p.name)).set(i64::from(state == super::overdue::Due::Overdue));
    }
    // Between drills: the newest backup of each watched plan.
    let backup_age = FloatGauge::default();
    let backup_stale = Family::<Labels, Gauge>::default();
    let now = chrono::Utc::now();
    for (name, v) in daemon.freshness.views() {
        if let Some(age) = v.age(now) {
            backup_age.get_or_create(&plan(&name)).set(age.as_secs_f64());
        }
        if v.checked_at.is_some() {
            backup_stale.get_or_create(&plan(&name)).set(i64::from(v.stale));
        }
    }
    let beat_last = FloatGauge::default();
    let beat_failing = Family::<Labels, Gauge>::default();
    for (name, v) in daemon.heartbeats.views() {
        if let Some(t) = v.last_marker {
            beat_last.get_or_create(&plan(&name)).set(t.timestamp_millis() as f64 / 1000.0);
        }
        beat_failing.get_or_create(&plan(&name)).set(i64::from(v.failing_since.is_some()));
    }
    for a in daemon.active.lock().unwrap_or_else(|p| p.into_inner()).values() {
        let state = if a.run_id.is_some() { "running" } else { "queued" };
        active.get_or_create(&vec![("plan".into(), a.plan.clone()), ("state".into(), state.into())]).set(1);
    }

    registry.register("runs", "Finished drill runs by plan and result (passed, failed, aborted, skipped)", runs);
    registry.register_with_unit("last_rto", "Newest measured RTO per plan", Unit::Seconds, last_rto);
    registry.register_with_unit("rto_target", "RTO target per plan", Unit::Seconds, rto_target);
    registry.register_with_unit("last_rpo", "Newest measured RPO per plan", Unit::Seconds, last_rpo);
    registry.register_with_unit("rpo_target", "RPO target per plan", Unit::Seconds, rpo_target);
    registry.register("last_success_timestamp_seconds", "Unix time of the newest passed run per plan", last_success);
    registry.register_with_unit(
        "backup_age",
        "Age of the newest backup of each existing/latest plan at this scrape",
        Unit::Seconds,
        backup_age,
    );
    registry.register("backup_stale", "1 when the plan's newest backup is older than its RPO target", backup_stale);
    registry.register(
        "heartbeat_last_marker_timestamp_seconds",
        "Unix time of the newest heartbeat marker the daemon wrote into each plan's live source",
        beat_last,
    );
    registry.register("heartbeat_failing", "1 while the plan's heartbeat markers cannot be written", beat_failing);
    registry.register(
        "last_run_timestamp_seconds",
        "Unix time the newest finished run per plan ended (skipped firings left out)",
        last_run,
    );
    registry.register_with_unit(
        "check_duration",
        "How long each check of the plan's newest run that ran checks took, by position:kind",
        Unit::Seconds,
        check_duration,
    );
    registry.register("overdue", "1 when the plan has had no passed run for longer than its max_interval", overdue);
    registry.register("active_runs", "Drills running or queued now", active);
    registry.register("plan_errors", "Plan files that failed to load at the last (re)load", plan_errors);
    let paused = Gauge::<i64>::default();
    paused.set(i64::from(daemon.pause().is_some()));
    registry.register(
        "scheduler_paused",
        "1 while an emergency stop pauses the scheduler (`drdrill resume` lifts it)",
        paused,
    );

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}
