//! JSON: every record with its hashes, so `drdrill evidence verify --file` can
//! re-verify the export offline, plus the per-plan summary for tools.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PlanSummary, Report};
use crate::db::evidence::ChainEntry;

#[derive(Serialize)]
struct JsonReport<'a> {
    generated_at: DateTime<Utc>,
    drdrill_version: &'static str,
    since: Option<DateTime<Utc>>,
    plan: Option<&'a str>,
    /// The newest record of the whole chain when the report was made.
    chain_head: Option<ChainHead<'a>>,
    /// `verified` or the first break found in the database.
    chain_status: String,
    plans: &'a [PlanSummary],
    /// Run ids selected by the period and plan filter.
    selected_runs: Vec<i64>,
    /// A contiguous slice of the chain holding every selected record (and any
    /// records of other runs between them), so it verifies on its own.
    evidence: &'a [ChainEntry],
}

#[derive(Serialize)]
struct ChainHead<'a> {
    seq: i64,
    hash: &'a str,
}

/// The part of a JSON report that verification reads; other keys are ignored.
#[derive(Deserialize)]
pub struct Exported {
    pub evidence: Vec<ChainEntry>,
}

pub fn render(r: &Report) -> anyhow::Result<String> {
    let doc = JsonReport {
        generated_at: r.generated_at,
        drdrill_version: crate::VERSION,
        since: r.since,
        plan: r.plan_filter.as_deref(),
        chain_head: r.head.as_ref().map(|(seq, hash)| ChainHead { seq: *seq, hash }),
        chain_status: match &r.chain {
            Ok(_) => "verified".into(),
            Err(e) => format!("broken: {e}"),
        },
        plans: &r.plans,
        selected_runs: r.entries.iter().map(|e| e.record.run_id).collect(),
        evidence: r.chain_slice.as_deref().unwrap_or(&r.entries),
    };
    let mut s = serde_json::to_string_pretty(&doc)?;
    s.push('\n');
    Ok(s)
}
