//! `GET /runs/{id}`: one run. The phase timeline as a Gantt bar, checks with
//! their output, gates with who let the run through and when, notes,
//! measurements with how they were measured, and the evidence record's hash
//! with the chain's status. While the run goes on, the page carries the
//! Approve, Note and Abort forms, and its script adds phases as they end.

use std::fmt::Write as _;

use super::layout::{Viewer, at, e, status};
use crate::daemon::Daemon;
use crate::db::PhaseRecord;
use crate::duration::fmt_ms;

/// The page body, or `None` when there is no such run.
pub fn render(d: &Daemon, id: i64, viewer: &Viewer) -> anyhow::Result<Option<String>> {
    let Some(r) = d.engine.db.run_detail(id)? else { return Ok(None) };
    let s = &r.summary;
    let running = s.status == "running";
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<h1>Run {id} of <a href="/plans/{p}">{p}</a>: <span id="run-status">{}</span></h1><div class="meta">started {} · trigger {} · host {} · drdrill {}{}</div>"#,
        status(&s.status),
        e(&super::layout::at_text(&s.started_at)),
        e(&s.trigger),
        e(&r.host),
        e(&r.version),
        s.finished_at.as_deref().map(|f| format!(" · finished {}", e(&super::layout::at_text(f)))).unwrap_or_default(),
        p = e(&s.plan),
    );
    if let Some(reason) = &s.reason {
        let _ = write!(out, r#"<p id="run-reason"><b>Reason:</b> {}</p>"#, e(reason));
    }

    // Actions while it runs.
    let gate = d.gates.pending().into_iter().find(|g| g.run_id == id);
    let _ = write!(out, r#"<div id="live" data-run="{id}" data-running="{running}">"#);
    match &gate {
        Some(g) => {
            let _ = write!(
                out,
                r#"<p id="gate-waiting" class="overdue">Waiting for approval before <b>{}</b> since {}</p>"#,
                e(&g.gate),
                e(&at(g.since))
            );
        }
        None if running => {
            out.push_str(r#"<p id="gate-waiting" class="small">Running; phases appear below as they end.</p>"#)
        }
        None => {}
    }
    out.push_str("</div>");
    if viewer.session.is_some() {
        out.push_str(r#"<div class="actions">"#);
        if let Some(g) = &gate {
            out.push_str(&viewer.form(
                &format!("/console/runs/{id}/approve"),
                &format!(
                    r#"<input type="hidden" name="gate" value="{}"><input type="text" name="note" placeholder="note (optional)" size="22">"#,
                    e(&g.gate)
                ),
                "Approve",
                "go",
            ));
        }
        out.push_str(&viewer.form(
            &format!("/console/runs/{id}/note"),
            r#"<input type="text" name="text" placeholder="what you saw" size="28" required>"#,
            "Note",
            "",
        ));
        if running {
            out.push_str(&viewer.form(
                &format!("/console/runs/{id}/abort"),
                r#"<input type="text" name="reason" placeholder="why (optional)" size="18">"#,
                "Abort",
                "danger",
            ));
        }
        out.push_str("</div>");
    }

    out.push_str("<h2>Timeline</h2>");
    out.push_str(&gantt(&r.phases));
    out.push_str(r#"<table id="phases"><thead><tr><th>phase</th><th>started</th><th>took</th><th>status</th><th>detail</th></tr></thead><tbody>"#);
    for p in &r.phases {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&p.name),
            e(&p.started_at.format("%H:%M:%S%.3f").to_string()),
            e(&fmt_ms(Some(p.duration_ms))),
            status(&p.status),
            e(&p.detail)
        );
    }
    out.push_str("</tbody></table>");

    out.push_str(r#"<h2>Measurements</h2><table id="measurements"><thead><tr><th>what</th><th>measured</th><th>target</th><th>verdict</th><th>method</th></tr></thead><tbody>"#);
    for m in &r.measurements {
        let verdict = match m.met {
            Some(true) => r#"<span class="met">met</span>"#,
            Some(false) => r#"<span class="missed">missed</span>"#,
            None => "-",
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{verdict}</td><td>{}</td></tr>",
            e(&m.name.to_uppercase()),
            e(&m.value_ms.map(|v| fmt_ms(Some(v))).unwrap_or_else(|| "not measured".into())),
            e(&m.target_ms.map(|v| fmt_ms(Some(v))).unwrap_or_else(|| "-".into())),
            e(&m.method)
        );
    }
    out.push_str("</tbody></table>");

    out.push_str(r#"<h2>Checks</h2><table id="checks"><thead><tr><th>check</th><th>result</th><th>attempts</th><th>took</th><th>output</th></tr></thead><tbody>"#);
    for c in &r.checks {
        let _ = write!(
            out,
            "<tr><td>{}: {}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            e(&c.kind),
            e(&c.description),
            status(if c.passed { "passed" } else { "failed" }),
            c.attempts,
            e(&fmt_ms(Some(c.duration_ms))),
            e(&c.output)
        );
    }
    out.push_str("</tbody></table>");

    out.push_str(r#"<h2>Gates</h2><table id="gates"><thead><tr><th>before</th><th>waiting since</th><th>decided</th><th>outcome</th><th>by</th><th>note</th></tr></thead><tbody>"#);
    for g in &r.gates {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&g.gate),
            e(&at(g.waiting_since)),
            e(&at(g.decided_at)),
            status(&g.outcome),
            e(&g.decided_by),
            e(g.note.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table>");

    out.push_str(r#"<h2>Notes</h2><ul id="notes">"#);
    for n in &r.notes {
        let _ = write!(out, "<li>{} · {}: {}</li>", e(&at(n.at)), e(&n.author), e(&n.text));
    }
    out.push_str("</ul>");

    out.push_str("<h2>Evidence</h2>");
    match &r.evidence {
        Some(entry) => {
            let chain = match d.chain.status(&d.engine.db)?.1 {
                Ok(v) => {
                    format!(r#"<span class="ok">chain verified</span>: {} records, head {}"#, v.records, e(&v.head))
                }
                Err(b) => format!(r#"<span class="failed">chain BROKEN</span>: {}"#, e(&b)),
            };
            let _ = write!(
                out,
                r#"<p>Record {} of the chain, hash <code class="hash" id="evidence-hash">{}</code> (previous {})</p><p id="chain-status">{chain}</p>"#,
                entry.seq,
                e(&entry.hash),
                e(&entry.prev_hash)
            );
        }
        None => out.push_str("<p>No evidence record yet: it is written when the run ends.</p>"),
    }
    Ok(Some(out))
}

/// The phases side by side, each as wide as its share of the run.
fn gantt(phases: &[PhaseRecord]) -> String {
    let total: f64 = phases.iter().map(|p| p.duration_ms.max(0.0)).sum();
    let mut out = String::from(r#"<div class="gantt" id="gantt">"#);
    for p in phases {
        let share = if total > 0.0 { p.duration_ms.max(0.0) / total * 100.0 } else { 100.0 / phases.len() as f64 };
        let _ = write!(
            out,
            r#"<div class="p-{}" style="width:{share:.2}%" data-ms="{:.0}" title="{}: {} ({})">{}</div>"#,
            e(&p.status),
            // The live script resizes every bar from these when a phase is added.
            p.duration_ms.max(0.0),
            e(&p.name),
            e(&fmt_ms(Some(p.duration_ms))),
            e(&p.status),
            e(&p.name)
        );
    }
    out.push_str("</div>");
    out
}
