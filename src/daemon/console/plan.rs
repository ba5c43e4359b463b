//! `GET /plans/{name}`: one plan's runs, trends, schedule with its next
//! times, the coverage of its backups, and the plan file as loaded.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::layout::{Viewer, against, at, at_text, e, status};
use crate::daemon::Daemon;
use crate::report::{Report, ReportOptions, points, svg::trend_chart};

/// Runs listed on the page, newest first.
const RUNS: usize = 50;
/// Next schedule times shown.
const NEXT_TIMES: usize = 5;

/// The page body, or `None` when no plan of that name is loaded.
pub fn render(d: &Daemon, name: &str, viewer: &Viewer, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
    let Some(entry) = d.plans().plans.get(name).cloned() else { return Ok(None) };
    let p = &entry.plan;
    let since = super::period::start(now);
    let opts = ReportOptions {
        since: Some(since),
        plan: Some(p.name.clone()),
        now,
        max_interval: d.config.daemon.max_interval.map(|m| m.0),
    };
    let report = report_of(d, &opts)?;
    let summary = report.plans.iter().find(|s| s.plan == p.name);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<h1>Plan {}</h1><p>{}</p><div class="meta">file {} · sha256 <code class="hash">{}</code></div>"#,
        e(&p.name),
        e(&p.description),
        e(&p.file.display().to_string()),
        e(&p.sha256)
    );
    let trigger = viewer.form(&format!("/console/plans/{}/trigger", p.name), "", "Start a game-day run now", "go");
    if !trigger.is_empty() {
        let _ = write!(out, r#"<div class="actions">{trigger}</div>"#);
    }

    out.push_str("<h2>Schedule</h2>");
    match &p.schedule {
        Some(s) => {
            let tz = d.config.daemon.timezone.0;
            let next = s.next_after_in(now, tz, NEXT_TIMES);
            let _ = write!(
                out,
                r#"<p><code>{}</code> in {} (missed firings: {}); next:</p><ul id="next-times">"#,
                e(&s.text),
                e(&tz.to_string()),
                e(p.missed.as_str())
            );
            for t in next {
                let _ = write!(out, "<li>{}</li>", e(&at(t)));
            }
            out.push_str("</ul>");
        }
        None => out.push_str("<p>Not scheduled: it runs when someone starts it.</p>"),
    }

    let (rto_t, rpo_t) = (p.targets.rto.0.as_secs_f64() * 1000.0, p.targets.rpo.0.as_secs_f64() * 1000.0);
    out.push_str(r#"<h2>Trends</h2><div class="charts">"#);
    out.push_str(&trend_chart(
        &format!("RTO of {}", p.name),
        &points(&report, &p.name, "rto"),
        Some(rto_t),
        since,
        now,
    ));
    out.push_str(&trend_chart(
        &format!("RPO of {}", p.name),
        &points(&report, &p.name, "rpo"),
        Some(rpo_t),
        since,
        now,
    ));
    out.push_str("</div>");

    let _ = write!(
        out,
        r#"<h2>Runs (newest {RUNS})</h2><table id="runs"><thead><tr><th>run</th><th>started</th><th>trigger</th><th>result</th><th>RTO / target</th><th>RPO / target</th><th>reason</th></tr></thead><tbody>"#
    );
    for r in d.engine.db.runs(Some(&p.name), RUNS)? {
        let _ = write!(
            out,
            r#"<tr><td><a href="/runs/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            e(&at_text(&r.started_at)),
            e(&r.trigger),
            status(&r.status),
            against(r.rto_ms, r.rto_target_ms),
            against(r.rpo_ms, r.rpo_target_ms),
            e(r.reason.as_deref().unwrap_or("")),
            id = r.id,
        );
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Coverage of its backups</h2>");
    match summary.filter(|s| !s.coverage.never()) {
        Some(s) => {
            out.push_str(r#"<table id="coverage"><thead><tr><th>backup</th><th>where</th><th>consistent as of</th><th>restored</th><th>last tested</th></tr></thead><tbody>"#);
            for t in &s.coverage.tested {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} time(s)</td><td>{} ({})</td></tr>",
                    e(&t.id),
                    e(t.repository.as_deref().unwrap_or("-")),
                    e(&t.created_at.as_deref().map(at_text).unwrap_or_else(|| "-".into())),
                    t.times,
                    e(&at_text(&t.last_tested)),
                    status(&t.last_result)
                );
            }
            out.push_str("</tbody></table>");
        }
        None => out.push_str("<p>No drill restored a backup of this plan in the period.</p>"),
    }

    out.push_str("<h2>Plan file</h2>");
    match std::fs::read_to_string(&p.file) {
        Ok(text) => {
            let _ = write!(out, r#"<pre id="plan-file">{}</pre>"#, e(&crate::redact::scrub(&text)));
        }
        Err(err) => {
            let _ = write!(out, "<p>cannot read {}: {}</p>", e(&p.file.display().to_string()), e(&err.to_string()));
        }
    }
    Ok(Some(out))
}

/// One plan's report over the period: its records (a few hundred at most)
/// read afresh, with the chain's status from the daemon's cache.
fn report_of(d: &Daemon, opts: &ReportOptions) -> anyhow::Result<Report> {
    let db = &d.engine.db;
    let since = opts.since.map(crate::db::ts);
    let entries = db.evidence_entries(since.as_deref(), opts.plan.as_deref())?;
    let (head, chain) = d.chain.status(db)?;
    Ok(Report::from_entries(entries, chain, head, &db.plan_files()?, opts))
}
