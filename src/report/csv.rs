//! CSV: one row per run, for spreadsheets. Quoting follows RFC 4180.

use super::{NOT_RECORDED, Report, target_of, value_of};
use crate::db::evidence::EvidenceRecord;

const HEADER: [&str; 23] = [
    "seq",
    "run_id",
    "plan",
    "result",
    "reason",
    "trigger",
    "started_at",
    "finished_at",
    "t_fail",
    "rto_ms",
    "rto_target_ms",
    "rto_met",
    "rpo_ms",
    "rpo_target_ms",
    "rpo_met",
    "checks_passed",
    "checks_total",
    "backup_id",
    "backup_sha256",
    "plan_sha256",
    "host",
    "hash",
    "notes",
];

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    push_row(&mut out, HEADER.iter().map(|s| s.to_string()));
    for e in &r.entries {
        let rec = &e.record;
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| NOT_RECORDED.into());
        let num = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        let met = |rec: &EvidenceRecord, n: &str| match rec.measurement(n).and_then(|m| m.met) {
            Some(true) => "yes".to_string(),
            Some(false) => "no".to_string(),
            None => String::new(),
        };
        push_row(
            &mut out,
            [
                e.seq.to_string(),
                rec.run_id.to_string(),
                rec.plan.clone(),
                rec.result.clone(),
                rec.reason.clone().unwrap_or_default(),
                rec.trigger.clone(),
                rec.started_at.clone(),
                opt(&rec.finished_at),
                opt(&rec.t_fail),
                num(value_of(rec, "rto")),
                num(target_of(rec, "rto")),
                met(rec, "rto"),
                num(value_of(rec, "rpo")),
                num(target_of(rec, "rpo")),
                met(rec, "rpo"),
                rec.checks.iter().filter(|c| c.passed).count().to_string(),
                rec.checks.len().to_string(),
                opt(&rec.backup.id),
                opt(&rec.backup.sha256),
                rec.plan_sha256.clone(),
                rec.host.clone(),
                e.hash.clone(),
                rec.notes.clone().unwrap_or_default(),
            ]
            .into_iter(),
        );
    }
    out
}

fn push_row(out: &mut String, cells: impl Iterator<Item = String>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if c.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&c.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&c);
        }
    }
    out.push_str("\r\n");
}
