//! `GET /`: fleet health at a glance. A banner that names what needs a
//! person, the matrix of plans, RTO/RPO trends (the report's charts), a
//! calendar of outcomes and the checks that fail most. Everything is read
//! from the evidence records the HTML report reads, so both agree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use super::layout::{against, at, at_text, e, status};
use super::period::{self, View};
use crate::daemon::Daemon;
use crate::daemon::overdue::{Due, standing};
use crate::fleet::status::FleetStatus;
use crate::report::{Health, PlanSummary, points, svg::trend_chart};
/// Plans whose trends are drawn on the overview (the rest on their pages).
const CHART_PLANS: usize = 6;
/// Days in the calendar.
const CALENDAR_DAYS: i64 = 35;
const TOP_CHECKS: usize = 10;

/// `fleet`: in fleet mode, the fleet's status (or why it is unavailable) and
/// this node's name, for the Nodes panel; `None` outside fleet mode.
pub fn render(
    d: &Daemon,
    now: DateTime<Utc>,
    fleet: Option<&(Result<FleetStatus, String>, String)>,
) -> anyhow::Result<String> {
    let (report, view) = d.period.read(&d.engine.db, &d.chain, now, d.config.daemon.max_interval.map(|m| m.0))?;
    let since = period::start(now);
    let summaries: BTreeMap<&str, &PlanSummary> = report.plans.iter().map(|p| (p.plan.as_str(), p)).collect();
    let entries: Vec<_> = d.plans().plans.values().cloned().collect();
    let errors = d.plans().errors.clone();
    let active = d.active.lock().unwrap_or_else(|p| p.into_inner()).clone();

    // The banner: everything that needs a person.
    let mut failing = Vec::new();
    let mut overdue = Vec::new();
    let mut stale = Vec::new();
    for entry in &entries {
        let name = entry.plan.name.as_str();
        if summaries.get(name).is_some_and(|s| s.health == Health::Failing) {
            failing.push(name);
        }
        if standing(d, &entry.plan, now)?.state == Due::Overdue {
            overdue.push(name);
        }
        if d.freshness.view(name).is_some_and(|f| f.stale) {
            stale.push(name);
        }
    }
    let quarantine = super::super::api::leftovers(d);
    let mut out = String::with_capacity(64 * 1024 + entries.len() * 700);
    let mut alarms: Vec<String> = Vec::new();
    if let Some(p) = d.pause() {
        alarms.push(e(&crate::daemon::pause::status(&p)));
    }
    if let Some(h) = crate::daemon::halt::status(d) {
        alarms.push(e(&h));
    }
    let names = |v: &[&str]| v.iter().map(|n| e(n)).collect::<Vec<_>>().join(", ");
    if !failing.is_empty() {
        alarms.push(format!("{} failing: {}", failing.len(), names(&failing)));
    }
    if !overdue.is_empty() {
        alarms.push(format!("{} overdue: {}", overdue.len(), names(&overdue)));
    }
    if !stale.is_empty() {
        alarms.push(format!("{} stale backup(s): {}", stale.len(), names(&stale)));
    }
    for q in &quarantine {
        alarms.push(format!("ATTENTION, quarantined live data: {}", e(&q.message())));
    }
    if !errors.is_empty() {
        alarms.push(format!("{} broken plan file(s), listed below", errors.len()));
    }
    if alarms.is_empty() {
        let _ = write!(
            out,
            r#"<div class="banner" id="banner">All healthy: {} plan(s), none failing, overdue or stale</div>"#,
            entries.len()
        );
    } else {
        let class = if d.pause().is_some() || !failing.is_empty() || !quarantine.is_empty() { "bad" } else { "warn" };
        let _ = write!(out, r#"<div class="banner {class}" id="banner">Needs attention<ul>"#);
        for a in &alarms {
            let _ = write!(out, "<li>{a}</li>");
        }
        out.push_str("</ul></div>");
    }
    let _ = write!(
        out,
        r#"<div class="meta">{} · evidence chain: {} · since {} · {} running</div>"#,
        e(&at(now)),
        e(&report.chain_text()),
        e(&at(since)),
        active.values().filter(|a| a.run_id.is_some()).count()
    );

    if let Some((status, me)) = fleet {
        super::nodes::panel(&mut out, status, me, now);
    }

    // The matrix.
    out.push_str(r#"<h2>Plans</h2><table id="plans"><thead><tr><th>plan</th><th>health</th><th>last result</th><th>RTO / target</th><th>RPO / target</th><th>last verified restore</th><th>next due</th><th>backup freshness</th><th>coverage</th><th>now</th></tr></thead><tbody>"#);
    for entry in &entries {
        let p = &entry.plan;
        let s = summaries.get(p.name.as_str());
        let last = view.last.get(&p.name);
        let health = s.map(|s| s.health.as_str()).unwrap_or("untested");
        let target = |t: std::time::Duration| t.as_secs_f64() * 1000.0;
        let (rto, rpo) = match last {
            Some(r) => {
                (against(r.rto_ms, Some(target(p.targets.rto.0))), against(r.rpo_ms, Some(target(p.targets.rpo.0))))
            }
            // Nothing measured yet is not a miss.
            None => (
                format!("- / {}", e(&crate::duration::fmt_ms(Some(target(p.targets.rto.0))))),
                format!("- / {}", e(&crate::duration::fmt_ms(Some(target(p.targets.rpo.0))))),
            ),
        };
        let result = match last {
            Some(r) => {
                format!(r#"<a href="/runs/{}">{}</a> {}"#, r.run_id, status(&r.result), e(&at_text(&r.started_at)))
            }
            None => "never ran".into(),
        };
        let verified = s.and_then(|s| s.last_success.as_deref()).map(at_text).unwrap_or_else(|| "never".into());
        let next = entry.next.as_ref().map(|n| at(n.at)).unwrap_or_else(|| "not scheduled".into());
        let fresh = match d.freshness.view(&p.name) {
            Some(f) if f.stale => r#"<span class="stale">stale</span>"#.to_string(),
            Some(f) => match f.age(now) {
                Some(age) => {
                    format!(r#"<span class="fresh">fresh</span> ({} old)"#, e(&crate::duration::format_duration(age)))
                }
                None => "not looked at yet".into(),
            },
            None => "-".into(),
        };
        let coverage = match s {
            Some(s) if !s.coverage.never() => {
                format!("{} backup(s) restored in {} drill(s)", s.coverage.tested.len(), s.coverage.restores)
            }
            _ => "no restore in the period".into(),
        };
        let now_text = match active.get(&p.name) {
            Some(a) => match a.run_id {
                Some(id) => format!(
                    r#"<a href="/runs/{id}">run {id}</a>: {}"#,
                    e(a.last_phase.as_deref().unwrap_or("starting"))
                ),
                None => "queued".into(),
            },
            None => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr data-plan="{n}"><td><a href="/plans/{n}">{n}</a><div class="small">{desc}</div></td><td>{h}</td><td>{result}</td><td>{rto}</td><td>{rpo}</td><td>{verified}</td><td>{next}</td><td>{fresh}</td><td>{coverage}</td><td>{now_text}</td></tr>"#,
            n = e(&p.name),
            desc = e(&p.description),
            h = status(health),
            verified = e(&verified),
            next = e(&next),
        );
    }
    out.push_str("</tbody></table>");
    if entries.is_empty() {
        let _ = write!(out, "<p>No plan is loaded from {}.</p>", e(&d.config.plans.display().to_string()));
    }
    if !errors.is_empty() {
        out.push_str(r#"<h2>Broken plan files</h2><table id="broken"><tbody>"#);
        for err in &errors {
            let _ = write!(out, "<tr><td>{}</td><td><pre>{}</pre></td></tr>", e(&err.file), e(&err.error));
        }
        out.push_str("</tbody></table>");
    }

    // Trends of the plans that most need a look.
    let mut charted: Vec<&PlanSummary> = report.plans.iter().collect();
    charted.sort_by_key(|s| (s.health == Health::Healthy, s.plan.clone()));
    out.push_str(r#"<h2>RTO and RPO trends</h2><div class="charts">"#);
    for s in charted.iter().take(CHART_PLANS) {
        for (name, label, target) in [("rto", "RTO", s.rto.target_ms), ("rpo", "RPO", s.rpo.target_ms)] {
            let title = format!("{label} of {}", s.plan);
            let chart = trend_chart(&title, &points(&report, &s.plan, name), target, since, now);
            let _ = write!(out, "<figure><figcaption>{}</figcaption>{chart}</figure>", e(&title));
        }
    }
    out.push_str("</div>");
    if charted.len() > CHART_PLANS {
        let _ = write!(
            out,
            r#"<p class="small">{} more plan(s): trends on each plan's page.</p>"#,
            charted.len() - CHART_PLANS
        );
    }

    calendar(&mut out, &view, now);
    top_failing_checks(&mut out, &view);
    Ok(out)
}

/// The last [`CALENDAR_DAYS`] days, each coloured by its worst outcome.
fn calendar(out: &mut String, view: &View, now: DateTime<Utc>) {
    let first = now.date_naive() - Duration::days(CALENDAR_DAYS - 1);
    out.push_str(r#"<h2>Calendar of outcomes</h2><div class="cal" id="calendar">"#);
    for i in 0..CALENDAR_DAYS {
        let day = first + Duration::days(i);
        let (p, f, a) = view.days.get(&day).copied().unwrap_or_default();
        let class = if f > 0 {
            "d-failed"
        } else if a > 0 {
            "d-aborted"
        } else if p > 0 {
            "d-passed"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<div class="{class}" title="{day}: {p} passed, {f} failed, {a} aborted">{}</div>"#,
            day.format("%d")
        );
    }
    out.push_str(
        r#"</div><p class="small">Green: all passed · red: a run failed · orange: a run aborted · grey: no run.</p>"#,
    );
}

/// The checks that failed most often in the period, with the newest output.
fn top_failing_checks(out: &mut String, view: &View) {
    let mut top: Vec<_> = view.checks.iter().collect();
    top.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
    out.push_str(r#"<h2>Top failing checks</h2>"#);
    if top.is_empty() {
        out.push_str("<p>No check failed in the period.</p>");
        return;
    }
    out.push_str(r#"<table id="failing-checks"><thead><tr><th>plan</th><th>check</th><th>failures</th><th>newest output</th></tr></thead><tbody>"#);
    for ((plan, kind, desc), f) in top.into_iter().take(TOP_CHECKS) {
        let (n, run) = (f.count, f.run_id);
        let output: String = f.output.chars().take(400).collect();
        let _ = write!(
            out,
            r#"<tr><td><a href="/plans/{p}">{p}</a></td><td>{k}: {d}</td><td>{n}</td><td><a href="/runs/{run}">run {run}</a><pre>{o}</pre></td></tr>"#,
            p = e(plan),
            k = e(kind),
            d = e(desc),
            o = e(&output)
        );
    }
    out.push_str("</tbody></table>");
}
