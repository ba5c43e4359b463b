//! Markdown, for pasting into tickets: the summary, the gaps and every run.

use std::fmt::Write as _;

use super::{NOT_RECORDED, Report, day, measurement_text, percent, stat_text};

/// Pipes and newlines would break a table row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# DR drill report: {}\n", r.period_text());
    let _ = writeln!(out, "- Generated: {} by drdrill {}", r.generated_at.to_rfc3339(), crate::VERSION);
    if let Some(p) = &r.plan_filter {
        let _ = writeln!(out, "- Plan: {}", cell(p));
    }
    let _ = writeln!(out, "- Evidence chain head: `{}`", r.head_text());
    let _ = writeln!(out, "- Evidence chain: {}", cell(&r.chain_text()));
    let _ = writeln!(out, "- Plans needing attention: {} of {}\n", r.unhealthy(), r.plans.len());
    out.push_str("## Plans\n\n");
    out.push_str("| plan | health | runs | pass rate | last success | RTO median / worst / target | RPO median / worst / target | schedule |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for p in &r.plans {
        let (rm, rw, rt) = stat_text(&p.rto);
        let (pm, pw, pt) = stat_text(&p.rpo);
        let sched = match (&p.schedule.schedule, &p.schedule.note) {
            (Some(s), _) if p.schedule.overdue_since.is_some() => {
                format!("`{s}`, OVERDUE since {}", p.schedule.overdue_since.map(day).unwrap_or_default())
            }
            (Some(s), _) => format!("`{s}`, {} gap(s)", p.schedule.gaps.len()),
            (None, Some(n)) => n.clone(),
            (None, None) => NOT_RECORDED.into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {rm} / {rw} / {rt} | {pm} / {pw} / {pt} | {} |",
            cell(&p.plan),
            p.health.as_str().to_uppercase(),
            p.runs,
            percent(p.pass_rate),
            p.last_success.as_deref().unwrap_or("never in period"),
            cell(&sched)
        );
    }
    let gaps: Vec<_> = r.plans.iter().flat_map(|p| p.schedule.gaps.iter().map(move |g| (p, g))).collect();
    if !gaps.is_empty() {
        out.push_str("\n## Schedule gaps\n\n| plan | from | to | missed runs |\n|---|---|---|---|\n");
        for (p, g) in gaps {
            let _ =
                writeln!(out, "| {} | {} | {} | {} |", cell(&p.plan), g.from.to_rfc3339(), g.to.to_rfc3339(), g.missed);
        }
    }
    coverage(&mut out, r);
    out.push_str("\n## Runs\n\n| # | run | plan | started | result | RTO | RPO | checks | backup | reason |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for e in r.entries.iter().rev() {
        let rec = &e.record;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} |",
            e.seq,
            rec.run_id,
            cell(&rec.plan),
            rec.started_at,
            rec.result,
            measurement_text(rec, "rto"),
            measurement_text(rec, "rpo"),
            rec.checks.iter().filter(|c| c.passed).count(),
            rec.checks.len(),
            cell(rec.backup.id.as_deref().unwrap_or(NOT_RECORDED)),
            cell(rec.reason.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(out, "\nNot recorded by drdrill (attach separately if needed): {}.", super::NOT_RECORDED_FIELDS);
    out
}

/// Which backups each plan's drills restored, and the plans whose drills restored none.
fn coverage(out: &mut String, r: &Report) {
    out.push_str("\n## Backup coverage\n\nBackups the drills restored in the period (`drdrill coverage` lists what each repository holds besides).\n\n");
    out.push_str("| plan | repository | backup | backup time | restored by drills | last restored | last result |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for p in &r.plans {
        for t in &p.coverage.tested {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&p.plan),
                cell(t.repository.as_deref().unwrap_or(NOT_RECORDED)),
                cell(&t.id),
                t.created_at.as_deref().unwrap_or(NOT_RECORDED),
                t.times,
                t.last_tested,
                t.last_result
            );
        }
    }
    let never: Vec<String> = r.plans.iter().filter(|p| p.coverage.never()).map(|p| cell(&p.plan)).collect();
    if !never.is_empty() {
        let _ = writeln!(out, "\nNever drilled in the period (no drill restored a backup): {}", never.join(", "));
    }
}
