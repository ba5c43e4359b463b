//! The outcome of one run, as printed by `drdrill run` and stored in the DB.

use std::fmt::Write as _;

use serde::Serialize;

use crate::db::{CheckRecord, Measurement, PhaseRecord};
use crate::duration::format_duration;

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub plan: String,
    pub status: Status,
    pub reason: Option<String>,
    pub phases: Vec<PhaseRecord>,
    pub checks: Vec<CheckRecord>,
    pub measurements: Vec<Measurement>,
    pub backup_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Aborted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Aborted => "aborted",
        }
    }
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }

    pub fn measurement(&self, name: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.name == name)
    }

    /// The human summary `drdrill run` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verdict = match self.status {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Aborted => "ABORTED",
        };
        let _ = writeln!(out, "drill {} (run {}): {verdict}", self.plan, self.run_id);
        for p in &self.phases {
            let mark = match p.status.as_str() {
                "ok" => " ",
                "skipped" => "-",
                _ => "!",
            };
            let _ = writeln!(out, " {mark} {:<9} {:>9}  {}", p.name, fmt_ms(Some(p.duration_ms)), p.detail);
        }
        for c in &self.checks {
            let mark = if c.passed { "ok  " } else { "FAIL" };
            let tries = if c.attempts > 1 { format!(" after {} attempts", c.attempts) } else { String::new() };
            let _ = writeln!(out, "   check {mark} {}: {}{tries}", c.kind, one_line(&c.output));
        }
        for name in ["rto", "rpo"] {
            let Some(m) = self.measurement(name) else { continue };
            let verdict = match m.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "NOT MEASURED",
            };
            let _ = write!(
                out,
                "   {:<3} {:>9}  target {:>7}  {verdict}  ({})",
                name.to_uppercase(),
                fmt_ms(m.value_ms),
                fmt_ms(m.target_ms),
                m.method
            );
            if name == "rto" {
                let shares: Vec<String> = ["fetch", "restore", "verify"]
                    .iter()
                    .filter_map(|s| self.measurement(s).map(|m| format!("{s} {}", fmt_ms(m.value_ms))))
                    .collect();
                if !shares.is_empty() {
                    let _ = write!(out, " {}", shares.join(", "));
                }
            }
            out.push('\n');
        }
        if let Some(reason) = &self.reason {
            let _ = writeln!(out, "   reason: {reason}");
        }
        out
    }
}

pub fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(ms) if ms.is_finite() && ms >= 0.0 => format_duration(std::time::Duration::from_secs_f64(ms / 1000.0)),
        Some(ms) => format!("{ms:.0}ms"),
        None => "-".into(),
    }
}

fn one_line(s: &str) -> String {
    let line = s.lines().last().unwrap_or("").trim();
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_string()
    }
}
