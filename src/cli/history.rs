//! `drdrill history` and `drdrill show`: what past runs measured.

use std::path::Path;
use std::sync::Arc;

use drdrill::config::Config;
use drdrill::db::evidence::note_line;
use drdrill::duration::fmt_ms;

use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub fn cmd_history(config: Arc<Config>, plan: Option<&str>, limit: usize, json: bool) -> anyhow::Result<u8> {
    let db = open_db(&config)?;
    let runs = db.runs(plan, limit)?;
    // A typo is not "no runs yet": a plan with no file and no record is unknown.
    if let Some(p) = plan
        && runs.is_empty()
        && drdrill::plan::find(p, &config).is_err()
    {
        let known: Vec<String> = db.plan_files()?.into_keys().collect();
        let msg = format!("no plan `{p}`: no plan file in {} and no recorded run", config.plans.display());
        let fix = if known.is_empty() {
            "`drdrill validate` lists the plans".to_string()
        } else {
            format!("plans with runs: {}", known.join(", "))
        };
        return Ok(super::fail(json, EXIT_BAD_INPUT, &msg, Some(&fix)));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(EXIT_PASSED);
    }
    if runs.is_empty() {
        println!("no runs yet{}", plan.map(|p| format!(" of plan {p}")).unwrap_or_default());
        return Ok(EXIT_PASSED);
    }
    println!(
        "{:>5}  {:<24}  {:<20}  {:<8}  {:>9} / {:<7}  {:>9} / {:<7}  reason",
        "run", "started", "plan", "result", "RTO", "target", "RPO", "target"
    );
    for r in runs {
        println!(
            "{:>5}  {:<24}  {:<20}  {:<8}  {:>9} / {:<7}  {:>9} / {:<7}  {}",
            r.id,
            r.started_at,
            r.plan,
            r.status,
            fmt_ms(r.rto_ms),
            fmt_ms(r.rto_target_ms),
            fmt_ms(r.rpo_ms),
            fmt_ms(r.rpo_target_ms),
            r.reason.unwrap_or_default()
        );
    }
    Ok(EXIT_PASSED)
}

pub fn cmd_show(config: Arc<Config>, run_id: i64, json: bool) -> anyhow::Result<u8> {
    let db = open_db(&config)?;
    let Some(d) = db.run_detail(run_id)? else {
        eprintln!("error: no run {run_id} in {}", config.database.display());
        return Ok(EXIT_BAD_INPUT);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(EXIT_PASSED);
    }
    let s = &d.summary;
    println!(
        "run {} of {}: {} (trigger {}, host {}, drdrill {})",
        s.id, s.plan, s.status, s.trigger, d.host, d.version
    );
    println!("  started {}  finished {}", s.started_at, s.finished_at.as_deref().unwrap_or("-"));
    println!("  plan sha256 {}", d.plan_sha256);
    if let Some(b) = &s.backup_id {
        println!("  backup {b} sha256 {}", d.backup_sha256.as_deref().unwrap_or("-"));
    }
    for p in &d.phases {
        println!("  {:<9} {:>9}  {:<6}  {}", p.name, fmt_ms(Some(p.duration_ms)), p.status, p.detail);
    }
    // Once the run finished, approvals and notes are shown as its evidence
    // record holds them; rows that disagree with it are named, not passed off.
    let record = d.evidence.as_ref().map(|e| &e.record);
    match record.and_then(|r| r.gates.as_ref()) {
        Some(chained) => {
            for g in chained {
                println!(
                    "  gate before {:<8} {} by {} at {} (waiting since {}){}",
                    g.gate,
                    g.outcome,
                    g.decided_by,
                    g.decided_at,
                    g.waiting_since,
                    g.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
                );
            }
            for g in d.gates.iter().filter(|g| !chained.iter().any(|c| same_gate(c, g))) {
                println!(
                    "  WARNING: the approval row \"gate before {} {} by {}\" is not in the run's evidence record: it was added or changed after the run; `drdrill evidence verify` reports it",
                    g.gate, g.outcome, g.decided_by
                );
            }
        }
        None => {
            for g in &d.gates {
                println!(
                    "  gate before {:<8} {} by {} at {} (waiting since {}){}",
                    g.gate,
                    g.outcome,
                    g.decided_by,
                    drdrill::db::ts(g.decided_at),
                    drdrill::db::ts(g.waiting_since),
                    g.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
                );
            }
            if record.is_some() && !d.gates.is_empty() {
                println!(
                    "  (this run's evidence record predates approvals in records: the gates above are not vouched for)"
                );
            }
        }
    }
    for c in &d.checks {
        println!(
            "  check {} {}: {} ({} attempts)",
            if c.passed { "ok  " } else { "FAIL" },
            c.kind,
            c.output,
            c.attempts
        );
    }
    for m in &d.measurements {
        println!("  {:<8} {:>9}  target {:>7}  {}", m.name, fmt_ms(m.value_ms), fmt_ms(m.target_ms), m.method);
    }
    if let Some(r) = &s.reason {
        println!("  reason: {r}");
    }
    match record.filter(|r| r.note_count().is_some()) {
        Some(r) => {
            let chained: Vec<&str> = r.notes.as_deref().map(|n| n.lines().collect()).unwrap_or_default();
            for line in &chained {
                println!("  note {line}");
            }
            if d.notes.len() < chained.len() {
                println!(
                    "  WARNING: notes of the run's evidence record were deleted from the database; `drdrill evidence verify` reports it"
                );
            }
            for (i, n) in d.notes.iter().enumerate() {
                let at = drdrill::db::ts(n.at);
                match chained.get(i) {
                    Some(c) if *c == note_line(&at, &n.author, &n.text) => {}
                    Some(_) => println!(
                        "  WARNING: note {} no longer matches the run's evidence record: it was changed after the run; `drdrill evidence verify` reports it",
                        i + 1
                    ),
                    None => println!(
                        "  note [{at}] {}: {} (added after the run; not in its evidence record)",
                        n.author, n.text
                    ),
                }
            }
        }
        None => {
            for n in &d.notes {
                println!("  note {} {}: {}", drdrill::db::ts(n.at), n.author, n.text);
            }
        }
    }
    Ok(EXIT_PASSED)
}

fn same_gate(c: &drdrill::db::evidence::EvidenceGate, g: &drdrill::db::GateRecord) -> bool {
    c.gate == g.gate
        && c.outcome == g.outcome
        && c.decided_by == g.decided_by
        && c.note == g.note
        && c.decided_at == drdrill::db::ts(g.decided_at)
        && c.waiting_since == drdrill::db::ts(g.waiting_since)
}

pub fn open_db(config: &Config) -> anyhow::Result<drdrill::db::Db> {
    if !Path::new(&config.database).exists() {
        anyhow::bail!(
            "no results database at {} yet: run a drill first (`drdrill run quickstart`)",
            config.database.display()
        );
    }
    drdrill::db::Db::open_reading(config)
}
