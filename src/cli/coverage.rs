//! `drdrill coverage [PLAN] [--json]`: for each plan, the backups a drill
//! chooses among (those in its `window`), which of them drills have restored and
//! when, the share covered, and the plans no drill ever restored. The backups
//! are listed where they are (through the plan's adapter, or its store); what
//! was restored comes from the results database.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drdrill::cancel::Cancel;
use drdrill::config::Config;
use drdrill::db::RestoreTests;
use drdrill::engine::Engine;
use drdrill::plan::{BackupMode, Plan};
use serde::Serialize;

use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

/// A repository that does not list in this long is reported as an error.
const LIST_BUDGET: Duration = Duration::from_secs(300);

#[derive(Serialize)]
struct Coverage {
    generated_at: DateTime<Utc>,
    plans: Vec<PlanCoverage>,
    /// Plans no drill has restored a backup of, ever.
    never_drilled: Vec<String>,
    /// Plan files that did not load (only without a PLAN argument).
    broken_plans: Vec<Broken>,
}

#[derive(Serialize)]
struct Broken {
    file: String,
    error: String,
}

#[derive(Serialize)]
struct PlanCoverage {
    plan: String,
    mode: &'static str,
    /// As runs record it (`restic:/srv/restic`, or a store's name).
    repository: String,
    /// How an `existing` plan chooses.
    select: Option<&'static str>,
    window: Option<String>,
    /// The backups in the window, newest first.
    backups: Vec<BackupRow>,
    in_window: usize,
    tested_in_window: usize,
    /// `tested_in_window / in_window`; `null` without backups.
    share: Option<f64>,
    /// Older backups that drills no longer choose.
    outside_window: usize,
    never_drilled: bool,
    /// Why the backups could not be listed.
    error: Option<String>,
}

#[derive(Serialize)]
struct BackupRow {
    id: String,
    time: DateTime<Utc>,
    label: String,
    tested: bool,
    last_restored: Option<DateTime<Utc>>,
    last_run: Option<i64>,
    last_status: Option<String>,
    restores: u64,
}

pub async fn cmd_coverage(config: Arc<Config>, plan: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let mut plans = Vec::new();
    let mut broken_plans = Vec::new();
    match plan {
        Some(p) => {
            let path = match drdrill::plan::find(p, &config) {
                Ok(path) => path,
                Err(e) => {
                    let fix = "`drdrill validate` lists the plans";
                    return Ok(super::fail(json, EXIT_BAD_INPUT, &format!("{e:#}"), Some(fix)));
                }
            };
            match Plan::load(&path, &config) {
                Ok(plan) => plans.push(plan),
                Err(d) => {
                    let fix = "fix the plan (`drdrill validate` shows every problem)";
                    return Ok(super::fail(json, EXIT_BAD_INPUT, &d.to_string(), Some(fix)));
                }
            }
        }
        None => {
            for file in drdrill::plan::plan_files(&config.plans)? {
                match Plan::load(&file, &config) {
                    Ok(p) => plans.push(p),
                    Err(d) => broken_plans.push(Broken { file: file.display().to_string(), error: d.to_string() }),
                }
            }
        }
    }
    let engine = Engine::open(config.clone())?;
    let drilled = engine.db.drilled_plans()?;
    let now = Utc::now();
    let mut rows = Vec::new();
    for p in &plans {
        rows.push(plan_coverage(&engine, p, drilled.contains(&p.name), now).await);
    }
    let failed = rows.iter().any(|r| r.error.is_some());
    let doc = Coverage {
        generated_at: now,
        never_drilled: rows.iter().filter(|r| r.never_drilled).map(|r| r.plan.clone()).collect(),
        plans: rows,
        broken_plans,
    };
    if json {
        super::print_json(&doc)?;
    } else {
        print_text(&doc);
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_PASSED })
}

async fn plan_coverage(engine: &Engine, plan: &Plan, drilled: bool, now: DateTime<Utc>) -> PlanCoverage {
    let window = plan.backup.window.map(|w| w.0);
    let mut row = PlanCoverage {
        plan: plan.name.clone(),
        mode: plan.backup.mode.as_str(),
        repository: match &plan.existing {
            Some(e) => e.repository(),
            None => plan.store_name().to_string(),
        },
        select: (plan.backup.mode == BackupMode::Existing).then(|| plan.backup.select.as_str()),
        window: window.map(drdrill::duration::format_duration),
        backups: Vec::new(),
        in_window: 0,
        tested_in_window: 0,
        share: None,
        outside_window: 0,
        never_drilled: !drilled,
        error: None,
    };
    let listed = engine.inventory(plan, "coverage", LIST_BUDGET, Cancel::new()).await;
    let tested = engine.db.restore_tests(&plan.name, &row.repository);
    let (inventory, tested) = match (listed, tested) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            row.error = Some(drdrill::redact::scrub(&drdrill::errors::explain(&e)).into_owned());
            return row;
        }
    };
    let candidates = inventory.in_window(window, now);
    row.outside_window = inventory.backups.len() - candidates.len();
    row.backups = candidates.iter().rev().map(|f| backup_row(f, tested.get(&f.id))).collect();
    row.in_window = row.backups.len();
    row.tested_in_window = row.backups.iter().filter(|b| b.tested).count();
    row.share = (row.in_window > 0).then(|| row.tested_in_window as f64 / row.in_window as f64);
    row
}

fn backup_row(f: &drdrill::existing::Found, t: Option<&RestoreTests>) -> BackupRow {
    BackupRow {
        id: f.id.clone(),
        time: f.time,
        label: f.label.clone(),
        tested: t.is_some(),
        last_restored: t.map(|t| t.last_at),
        last_run: t.map(|t| t.last_run),
        last_status: t.map(|t| t.last_status.clone()),
        restores: t.map_or(0, |t| t.times),
    }
}

fn print_text(doc: &Coverage) {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for p in &doc.plans {
        let mut how = vec![p.mode.to_string(), p.repository.clone()];
        how.extend(p.select.map(|s| format!("select = {s}")));
        how.extend(p.window.as_ref().map(|w| format!("window {w}")));
        let head = format!("{} ({})", p.plan, how.join(", "));
        if let Some(e) = &p.error {
            println!("{head}: cannot list the backups: {e}\n");
            continue;
        }
        let share = p.share.map(|s| format!(" ({:.0}%)", s * 100.0)).unwrap_or_default();
        println!("{head}: {} of {} backup(s) in the window restore-tested{share}", p.tested_in_window, p.in_window);
        if !p.backups.is_empty() {
            println!(
                "  {:<40} {:<21} {:<21} {:>6} {:<8} {:>5}",
                "BACKUP", "TIME (UTC)", "LAST RESTORED", "RUN", "RESULT", "TIMES"
            );
        }
        for b in &p.backups {
            match (b.last_restored, b.last_run) {
                (Some(at), Some(run)) => println!(
                    "  {:<40} {:<21} {:<21} {run:>6} {:<8} {:>5}",
                    b.id,
                    time(b.time),
                    time(at),
                    b.last_status.as_deref().unwrap_or("-"),
                    b.restores
                ),
                _ => println!("  {:<40} {:<21} never", b.id, time(b.time)),
            }
        }
        if p.outside_window > 0 {
            println!("  {} older backup(s) outside the window", p.outside_window);
        }
        println!();
    }
    if doc.never_drilled.is_empty() {
        println!("every plan has had a backup restored by a drill");
    } else {
        println!("never drilled (no drill restored a backup): {}", doc.never_drilled.join(", "));
    }
    for b in &doc.broken_plans {
        println!("broken plan {}:\n  {}", b.file, b.error.replace('\n', "\n  "));
    }
}
