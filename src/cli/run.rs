//! `drdrill run PLAN`: one drill now, watched live.

use std::sync::Arc;

use drdrill::config::Config;
use drdrill::db::PhaseRecord;
use drdrill::duration::format_duration;
use drdrill::engine::report::fmt_ms;
use drdrill::engine::{Engine, Observer, Quiet, RunOptions};
use drdrill::plan::Plan;

use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

/// Prints each phase as it ends, for the person watching.
struct LivePhases;

impl Observer for LivePhases {
    fn run_started(&self, run_id: i64, plan: &Plan) {
        eprintln!("drill {} (run {run_id}) started", plan.name);
    }

    fn phase(&self, _run_id: i64, p: &PhaseRecord) {
        let mark = if p.status == "ok" { "✓" } else { "✗" };
        eprintln!("  {mark} {:<9} {:>9}  {}", p.name, fmt_ms(Some(p.duration_ms)), p.detail);
    }
}

pub fn load_plan(arg: &str, config: &Config) -> Result<Plan, u8> {
    let path = match drdrill::plan::resolve(arg, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Err(EXIT_BAD_INPUT);
        }
    };
    Plan::load(&path, config).map_err(|d| {
        eprintln!("{d}");
        EXIT_BAD_INPUT
    })
}

pub async fn cmd_run(
    config: Arc<Config>,
    arg: &str,
    dry_run: bool,
    json: bool,
    notes: Option<String>,
) -> anyhow::Result<u8> {
    let plan = match load_plan(arg, &config) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if dry_run {
        print!("{}", dry_run_text(&plan, &config));
        return Ok(EXIT_PASSED);
    }
    let engine = Engine::open(config)?;
    let observer: &dyn Observer = if json { &Quiet } else { &LivePhases };
    let report = engine.run(&plan, RunOptions { notes, ..RunOptions::default() }, observer).await?;
    // The run is recorded; mail goes out only now, bounded and never changing the result.
    drdrill::notify::after_run(engine.config.notify.as_ref(), &engine.db, &report).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.passed() { EXIT_PASSED } else { EXIT_FAILED })
}

fn dry_run_text(plan: &Plan, config: &Config) -> String {
    let store = config.stores.get(plan.store_name()).map(|s| s.describe()).unwrap_or_default();
    let mut out = format!("dry run of drill {} ({}): nothing is touched\n", plan.name, plan.file.display());
    out += &format!(
        "  prepare  check {} is readable; open store `{}` ({store})\n",
        plan.source.describe(),
        plan.store_name()
    );
    if let Some(p) = &plan.probe {
        out += &format!("           start a canary writing a marker into the source every {}\n", p.interval);
    }
    out += &match plan.backup.mode {
        drdrill::plan::BackupMode::Fresh => format!(
            "  backup   take a fresh backup into store `{}` (zstd level {})\n",
            plan.store_name(),
            plan.backup.compression_level
        ),
        drdrill::plan::BackupMode::Latest => {
            format!("  backup   pick the newest complete backup of `{}` in store `{}`\n", plan.name, plan.store_name())
        }
    };
    for f in &plan.failures {
        out += &format!("  failure  {}\n", f.describe());
    }
    out += &format!("  restore  into {}/run-<id>/restore, verifying every checksum\n", config.scratch.display());
    for c in &plan.checks {
        out += &format!("  verify   {}: {}\n", c.kind(), c.describe());
    }
    out += &format!(
        "  targets  RTO {}, RPO {}; the whole run times out after {}\n",
        plan.targets.rto,
        plan.targets.rpo,
        format_duration(plan.timeout)
    );
    out += "  cleanup  roll back failures, remove the scratch folder\n";
    out
}
