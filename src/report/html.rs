//! HTML: one self-contained file (inline CSS and SVG, no scripts, no external
//! resources or links) that shows at a glance which plans are healthy.

use std::fmt::Write as _;

use super::svg::trend_chart;
use super::{NOT_RECORDED, PlanSummary, Report, day, escape, measurement_text, percent, points, stat_text};

/// The runs table lists at most this many runs (newest first); the JSON and CSV
/// exports always hold every run.
pub const MAX_TABLE_ROWS: usize = 2000;

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2230;background:#f3f4f7}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}h3{font-size:16px;margin:0}
.meta{color:#5b6273}.hash{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all;background:#fff;border:1px solid #d5d8df;border-radius:6px;padding:8px 10px;display:block;margin-top:6px}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:10px}
.tile{border-radius:8px;padding:10px 12px;background:#fff;border-left:8px solid #999}
.tile b{display:block;font-size:15px}.tile .st{font-weight:700;letter-spacing:.04em}
.tile.healthy,.plan.healthy{border-left-color:#2e7d32}.healthy .st{color:#2e7d32}
.tile.failing,.plan.failing{border-left-color:#c62828}.failing .st{color:#c62828}
.tile.overdue,.plan.overdue{border-left-color:#ef6c00}.overdue .st{color:#ef6c00}
.tile.untested,.plan.untested{border-left-color:#757575}.untested .st{color:#757575}
section.plan{background:#fff;border-radius:8px;padding:14px 16px;margin:14px 0;border-left:8px solid #999}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:4px 18px;margin:10px 0}
.kv div span{color:#5b6273}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;max-width:100%;height:auto}
.chart .ax{font-size:10px;fill:#5b6273}.chart .tg{font-size:10px;fill:#c62828}
.chart .good{fill:#2e7d32}.chart .bad{fill:#c62828}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e3e5ea;padding:5px 7px;text-align:left;vertical-align:top}
th{background:#eceef3}td.r-passed{color:#2e7d32;font-weight:600}td.r-failed,td.r-aborted{color:#c62828;font-weight:600}
.warn{color:#c62828;font-weight:600}.small{font-size:12px;color:#5b6273}
";

pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024 + r.runs.min(MAX_TABLE_ROWS) * 400);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>DR drill report: {}</title><style>{CSS}</style></head><body><main>",
        escape(&r.period_text())
    );
    let _ = write!(
        out,
        "<h1>Disaster-recovery drill report</h1><div class=\"meta\">Period: {} · generated {} by drdrill {}{}</div>",
        escape(&r.period_text()),
        escape(&r.generated_at.format("%Y-%m-%d %H:%M UTC").to_string()),
        crate::VERSION,
        r.plan_filter.as_ref().map(|p| format!(" · plan {}", escape(p))).unwrap_or_default()
    );
    let chain_class = if r.chain.is_ok() { "" } else { " class=\"warn\"" };
    let _ = write!(
        out,
        "<p><b>Evidence chain head</b> (cite this hash; <code>drdrill evidence verify</code> recomputes it):<code class=\"hash\" id=\"chain-head\">{}</code><span{chain_class}>{}</span></p>",
        escape(&r.head_text()),
        escape(&r.chain_text())
    );

    let unhealthy = r.unhealthy();
    let _ = write!(
        out,
        "<h2>Overview: {} of {} plan(s) healthy</h2><div class=\"tiles\">",
        r.plans.len() - unhealthy,
        r.plans.len()
    );
    for p in &r.plans {
        let _ = write!(
            out,
            "<a href=\"#plan-{id}\" style=\"text-decoration:none;color:inherit\"><div class=\"tile {cls}\"><b>{name}</b><span class=\"st\">{st}</span><div class=\"small\">{runs} run(s), pass rate {rate}<br>last success: {last}{overdue}</div></div></a>",
            id = anchor(&p.plan),
            cls = p.health.as_str(),
            name = escape(&p.plan),
            st = p.health.as_str().to_uppercase(),
            runs = p.runs,
            rate = percent(p.pass_rate),
            last = escape(p.last_success.as_deref().unwrap_or("never in period")),
            overdue = match (p.overdue_since, p.max_interval_ms) {
                (Some(_), Some(ms)) => {
                    let interval = humantime::format_duration(std::time::Duration::from_millis(ms as u64));
                    format!("<br>no pass for over {}", escape(&interval.to_string()))
                }
                _ => String::new(),
            },
        );
    }
    out.push_str("</div>");
    if r.plans.is_empty() {
        out.push_str("<p>No finished runs in the period.</p>");
    }

    let (from, to) = (r.since.unwrap_or_else(|| first_start(r)), r.generated_at);
    for p in &r.plans {
        plan_section(&mut out, r, p, from, to);
    }

    let shown = r.runs.min(MAX_TABLE_ROWS);
    let _ = write!(out, "<h2>Runs ({} in the period", r.runs);
    if shown < r.runs {
        let _ = write!(out, "; the newest {shown} are listed, the JSON and CSV exports hold all");
    }
    out.push_str(")</h2><table><thead><tr><th>#</th><th>run</th><th>plan</th><th>started (UTC)</th><th>trigger</th><th>result</th><th>RTO / target</th><th>RPO / target</th><th>checks</th><th>backup</th><th>reason / notes</th></tr></thead><tbody>");
    for e in r.entries.iter().rev().take(MAX_TABLE_ROWS) {
        let rec = &e.record;
        let notes = match (&rec.reason, &rec.notes) {
            (Some(a), Some(b)) => format!("{a} — notes: {b}"),
            (Some(a), None) => a.clone(),
            (None, Some(b)) => format!("notes: {b}"),
            (None, None) => String::new(),
        };
        let _ = write!(
            out,
            "<tr><td title=\"{hash}\">{seq}</td><td>{id}</td><td>{plan}</td><td>{start}</td><td>{trig}</td><td class=\"r-{res}\">{res}</td><td>{rto}</td><td>{rpo}</td><td>{cp}/{ct}</td><td>{backup}</td><td>{notes}</td></tr>",
            hash = escape(&e.hash),
            seq = e.seq,
            id = rec.run_id,
            plan = escape(&rec.plan),
            start = escape(&rec.started_at),
            trig = escape(&rec.trigger),
            res = escape(&rec.result),
            rto = escape(&measurement_text(rec, "rto")),
            rpo = escape(&measurement_text(rec, "rpo")),
            cp = rec.checks.iter().filter(|c| c.passed).count(),
            ct = rec.checks.len(),
            backup = escape(rec.backup.id.as_deref().unwrap_or(NOT_RECORDED)),
            notes = escape(&notes),
        );
    }
    out.push_str("</tbody></table>");
    out.push_str("<p class=\"small\">Every value above is read from the hash-chained evidence records. Values a record does not carry are shown as “not recorded”. RTO = checks passed − failure injected (monotonic clock); RPO = failure injected − newest data held by the restore. A run passes only if every check passed and both targets were measured and met.</p>");
    let _ = write!(
        out,
        "<p class=\"small\">Not recorded by drdrill (attach separately if your framework asks for it): {}.</p>",
        super::NOT_RECORDED_FIELDS
    );
    out.push_str("</main></body></html>\n");
    out
}

fn plan_section(
    out: &mut String,
    r: &Report,
    p: &PlanSummary,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) {
    let _ = write!(
        out,
        "<section class=\"plan {cls}\" id=\"plan-{id}\"><h3>{name} — <span class=\"st\">{st}</span></h3><div class=\"kv\">",
        cls = p.health.as_str(),
        id = anchor(&p.plan),
        name = escape(&p.plan),
        st = p.health.as_str().to_uppercase()
    );
    let (rm, rw, rt) = stat_text(&p.rto);
    let (pm, pw, pt) = stat_text(&p.rpo);
    let kv = |k: &str, v: String| format!("<div><span>{}:</span> {}</div>", escape(k), v);
    let mut items = vec![
        kv("runs", format!("{} ({} passed, {} failed, {} aborted)", p.runs, p.passed, p.failed, p.aborted)),
        kv("pass rate", percent(p.pass_rate)),
        kv(
            "last run",
            escape(&format!("{} ({})", p.last_run.as_deref().unwrap_or("-"), p.last_result.as_deref().unwrap_or("-"))),
        ),
        kv("last successful restore", escape(p.last_success.as_deref().unwrap_or("never in period"))),
        kv("RTO median / worst", format!("{} / {} (target {})", escape(&rm), escape(&rw), escape(&rt))),
        kv("RPO median / worst", format!("{} / {} (target {})", escape(&pm), escape(&pw), escape(&pt))),
        kv("targets missed", format!("RTO {} run(s), RPO {} run(s)", p.rto.missed, p.rpo.missed)),
    ];
    let sched = match (&p.schedule.schedule, &p.schedule.note) {
        (Some(s), note) => format!(
            "<code>{}</code>{}",
            escape(s),
            note.as_ref().map(|n| format!(" ({})", escape(n))).unwrap_or_default()
        ),
        (None, Some(n)) => escape(n),
        (None, None) => NOT_RECORDED.into(),
    };
    items.push(kv("schedule", sched));
    if let Some(o) = p.schedule.overdue_since {
        items.push(kv(
            "overdue",
            format!(
                "<span class=\"warn\">no run since the firing of {}</span>",
                escape(&o.format("%Y-%m-%d %H:%M").to_string())
            ),
        ));
    }
    if p.schedule.schedule.is_some() {
        let gaps = &p.schedule.gaps;
        let text = if gaps.is_empty() {
            "none".to_string()
        } else {
            let missed: usize = gaps.iter().map(|g| g.missed).sum();
            let recent: Vec<String> = gaps
                .iter()
                .rev()
                .take(3)
                .map(|g| format!("{} → {} ({} missed)", day(g.from), day(g.to), g.missed))
                .collect();
            let more = if gaps.len() > 3 { "; all gaps are in the Markdown and JSON reports" } else { "" };
            format!(
                "<span class=\"warn\">{} gap(s), {missed} scheduled run(s) missed</span>; latest: {}{more}",
                gaps.len(),
                escape(&recent.join("; "))
            )
        };
        items.push(kv("schedule gaps", text));
    }
    let c = &p.coverage;
    let tested = if c.never() {
        "<span class=\"warn\">none: no drill in the period restored a backup</span>".to_string()
    } else {
        format!("{} distinct backup(s) in {} restore(s)", c.tested.len(), c.restores)
    };
    items.push(kv("backups restore-tested", tested));
    out.push_str(&items.concat());
    out.push_str("</div>");
    coverage_table(out, p);
    out.push_str("<div class=\"charts\">");
    let rto = points(r, &p.plan, "rto");
    out.push_str(&trend_chart(&format!("RTO of {} (target {rt})", p.plan), &rto, p.rto.target_ms, from, to));
    let rpo = points(r, &p.plan, "rpo");
    out.push_str(&trend_chart(&format!("RPO of {} (target {pt})", p.plan), &rpo, p.rpo.target_ms, from, to));
    out.push_str("</div></section>");
}

/// The newest backups the plan's drills restored, at most this many.
const MAX_COVERAGE_ROWS: usize = 10;

fn coverage_table(out: &mut String, p: &PlanSummary) {
    let tested = &p.coverage.tested;
    if tested.is_empty() {
        return;
    }
    out.push_str("<table class=\"small\"><thead><tr><th>backup restored</th><th>repository</th><th>backup time</th><th>restores</th><th>last restored</th><th>last result</th></tr></thead><tbody>");
    for t in tested.iter().take(MAX_COVERAGE_ROWS) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"r-{res}\">{res}</td></tr>",
            escape(&t.id),
            escape(t.repository.as_deref().unwrap_or(NOT_RECORDED)),
            escape(t.created_at.as_deref().unwrap_or(NOT_RECORDED)),
            t.times,
            escape(&t.last_tested),
            res = escape(&t.last_result),
        );
    }
    out.push_str("</tbody></table>");
    if tested.len() > MAX_COVERAGE_ROWS {
        let _ = write!(
            out,
            "<p class=\"small\">{} more restored backup(s) in the Markdown and JSON reports; <code>drdrill coverage</code> lists what the repository holds.</p>",
            tested.len() - MAX_COVERAGE_ROWS
        );
    }
}

fn anchor(plan: &str) -> String {
    plan.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

fn first_start(r: &Report) -> chrono::DateTime<chrono::Utc> {
    r.first_start.unwrap_or(r.generated_at - chrono::Duration::days(1))
}
