//! Report rendering over a large history: fills a results database with N runs
//! (default 100,000) across three plans and times building and rendering each
//! format. Not a test: run with
//! `cargo bench --bench report` (release), or `cargo bench --bench report -- 300
//! /tmp/r.html` to keep a small report for a look.

use std::time::Instant;

use chrono::{Duration, Utc};
use drdrill::db::{Db, ts};
use drdrill::report::{Format, Report, ReportOptions};
use rusqlite::params;

const PLANS: [(&str, &str, f64, f64); 3] = [
    // name, schedule, RTO target ms, RPO target ms
    ("orders-db", "0 3 * * *", 300_000.0, 900_000.0),
    ("docs-folder", "0 */6 * * *", 60_000.0, 3_600_000.0),
    ("payments-pg", "30 2 * * Sun", 600_000.0, 300_000.0),
];

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, as
    // a quick smoke run on a small history.
    let benching = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let n: usize = args.first().map(|a| a.parse()).transpose()?.unwrap_or(if benching { 100_000 } else { 500 });
    let keep_html = args.get(1).cloned();
    let dir = tempfile::tempdir()?;
    let db = Db::open(&dir.path().join("drdrill.db"))?;
    let now = Utc::now();

    let t = Instant::now();
    db.with_conn(|c| -> anyhow::Result<()> {
        let tx = c.transaction()?;
        for (name, schedule, _, _) in PLANS {
            let file = dir.path().join(format!("{name}.toml"));
            std::fs::write(&file, format!("name = \"{name}\"\nschedule = \"{schedule}\"\n"))?;
            tx.execute(
                "INSERT INTO plans (name, file, sha256, description, updated_at) VALUES (?1, ?2, 'ab', '', ?3)",
                params![name, file.to_string_lossy(), ts(now)],
            )?;
        }
        // Runs spread evenly over the last 90 days, oldest first.
        let span = Duration::days(90).num_milliseconds();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 10_000) as f64 / 10_000.0
        };
        for i in 0..n {
            let (plan, _, rto_t, rpo_t) = PLANS[i % PLANS.len()];
            let started = now - Duration::milliseconds(span - span * i as i64 / n as i64);
            // payments-pg stops running 10 days ago: overdue.
            if plan == "payments-pg" && started > now - Duration::days(10) {
                continue;
            }
            let rto = rto_t * (0.2 + rand() * 0.7) * if plan == "docs-folder" && i > n * 9 / 10 { 2.0 } else { 1.0 };
            let rpo = rpo_t * (0.1 + rand() * 0.8);
            let passed = rto <= rto_t && rpo <= rpo_t;
            tx.execute(
                "INSERT INTO runs (plan, plan_sha256, trigger, status, started_at, finished_at, t_fail, backup_mode,
                   store, backup_id, backup_sha256, backup_created_at, host, version, reason)
                 VALUES (?1, 'ab', 'schedule', ?2, ?3, ?4, ?3, 'fresh', 'local', ?5, 'cd', ?3, 'bench', '0.1.0', ?6)",
                params![
                    plan,
                    if passed { "passed" } else { "failed" },
                    ts(started),
                    ts(started + Duration::milliseconds(rto as i64 + 500)),
                    format!("backup-{i}"),
                    (!passed).then(|| "RTO exceeded its target".to_string()),
                ],
            )?;
            let id = tx.last_insert_rowid();
            for (m, v, target) in [("rto", rto, rto_t), ("rpo", rpo, rpo_t)] {
                tx.execute(
                    "INSERT INTO measurements (run_id, name, value_ms, target_ms, method, met) VALUES (?1, ?2, ?3, ?4, 'bench', ?5)",
                    params![id, m, v, target, v <= target],
                )?;
            }
            tx.execute(
                "INSERT INTO checks (run_id, seq, kind, description, passed, attempts, duration_ms, output)
                 VALUES (?1, 0, 'sqlite-query', 'count orders', 1, 1, 12.5, '20000')",
                [id],
            )?;
            drdrill::db::evidence::append(&tx, id)?;
        }
        tx.commit()?;
        Ok(())
    })?;
    println!("seeded {n} runs in {:.2?}", t.elapsed());

    let t = Instant::now();
    let entries = db.evidence_entries(Some(&ts(now - Duration::days(90))), None)?;
    println!("  read + parse {} records: {:.2?}", entries.len(), t.elapsed());
    let t = Instant::now();
    let links = db.verify_chain()?;
    println!("  verify links and hashes: {:.2?} ({:?})", t.elapsed(), links.map(|v| v.records));
    let t = Instant::now();
    let full = db.verify_evidence()?;
    println!(
        "  `evidence verify` (records against their rows too): {:.2?} ({:?})",
        t.elapsed(),
        full.map(|v| v.records)
    );

    let opts = ReportOptions { since: Some(now - Duration::days(90)), plan: None, now, max_interval: None };
    let t = Instant::now();
    let report = Report::build(&db, &opts)?;
    let built = t.elapsed();
    println!("build (read + verify chain + summarize {} records): {built:.2?}", report.entries.len());
    for (format, name) in [
        (Format::Html, "html"),
        (Format::Json, "json"),
        (Format::Csv, "csv"),
        (Format::Md, "md"),
        (Format::Junit, "junit"),
    ] {
        let t = Instant::now();
        let text = report.render(format)?;
        println!("render {name:<5}: {:>8.2?}  ({} bytes)", t.elapsed(), text.len());
        if format == Format::Html
            && let Some(path) = &keep_html
        {
            std::fs::write(path, &text)?;
        }
    }
    let t = Instant::now();
    let html = Report::build_html(&db, &opts)?.render(Format::Html)?;
    println!("HTML report end to end (build + render, {} bytes): {:.2?}", html.len(), t.elapsed());
    Ok(())
}
