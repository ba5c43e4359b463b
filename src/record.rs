//! What a run produced: its phases, checks, measurements, gates and notes, and
//! the report `drdrill run` prints. Shared by the engine that makes them, the
//! results database that keeps them, and the outputs (reports, alerts) that
//! show them.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseRecord {
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    /// `ok`, `failed` or `skipped`.
    pub status: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckRecord {
    pub kind: String,
    pub description: String,
    pub passed: bool,
    pub attempts: u32,
    pub duration_ms: f64,
    pub output: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Measurement {
    /// `rto`, `rpo`, a share of RTO (`fetch`, `restore`, `start`, `verify`), or
    /// `pitr`: whether a restore to a point in time met its target.
    pub name: String,
    pub value_ms: Option<f64>,
    pub target_ms: Option<f64>,
    /// How it was measured (`monotonic`, `canary`, `consistency-point`, ...).
    pub method: String,
    pub met: Option<bool>,
}

/// A timestamped remark by an operator during a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunNote {
    pub at: DateTime<Utc>,
    pub author: String,
    pub text: String,
}

/// Who or what let a run past an approval gate, and when.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GateRecord {
    /// The phase the run paused before.
    pub gate: String,
    pub waiting_since: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
    /// `approved`, or `aborted` when the run stopped while waiting.
    pub outcome: String,
    /// `terminal (user alice)`, `api (token ...)`, `abort`, ...
    pub decided_by: String,
    pub note: Option<String>,
}

use crate::duration::fmt_ms;

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
                let shares: Vec<String> = ["fetch", "restore", "start", "verify"]
                    .iter()
                    .filter_map(|s| self.measurement(s).map(|m| format!("{s} {}", fmt_ms(m.value_ms))))
                    .collect();
                if !shares.is_empty() {
                    let _ = write!(out, " {}", shares.join(", "));
                }
            }
            out.push('\n');
        }
        if let Some(m) = self.measurement("pitr") {
            let _ = writeln!(out, "   PITR {}", m.method.strip_prefix("PITR ").unwrap_or(&m.method));
        }
        if let Some(reason) = &self.reason {
            let _ = writeln!(out, "   reason: {reason}");
        }
        out
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
