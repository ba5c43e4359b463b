//! JUnit XML: a testsuite per plan and a testcase per run, so CI systems list
//! drills like tests. Failed and aborted runs carry a `<failure>` element.

use std::fmt::Write as _;

use super::{Report, escape, measurement_text};

pub fn render(r: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = r.entries.iter().filter(|e| e.ran()).count();
    let failures = r.entries.iter().filter(|e| e.ran() && e.record.result != "passed").count();
    let _ = writeln!(out, "<testsuites name=\"drdrill\" tests=\"{total}\" failures=\"{failures}\">");
    for p in &r.plans {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">",
            escape(&p.plan),
            p.runs,
            p.runs - p.passed
        );
        for e in r.records_of(&p.plan) {
            let rec = &e.record;
            let secs = rec.phases.iter().filter_map(|ph| ph.duration_ms.parse::<f64>().ok()).sum::<f64>() / 1000.0;
            let _ = write!(
                out,
                "    <testcase classname=\"drdrill.{}\" name=\"run {} at {}\" time=\"{secs:.3}\"",
                escape(&rec.plan),
                rec.run_id,
                escape(&rec.started_at)
            );
            let summary = format!("RTO {}; RPO {}", measurement_text(rec, "rto"), measurement_text(rec, "rpo"));
            if rec.result == "passed" {
                let _ = writeln!(out, ">\n      <system-out>{}</system-out>\n    </testcase>", escape(&summary));
            } else {
                let reason = rec.reason.clone().unwrap_or_else(|| format!("run {}", rec.result));
                let mut body = summary;
                for c in rec.checks.iter().filter(|c| !c.passed) {
                    let _ = write!(body, "\ncheck {} failed: {}", c.kind, c.output);
                }
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    escape(&reason),
                    escape(&rec.result),
                    escape(&body)
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
