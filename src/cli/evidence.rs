//! `drdrill evidence verify [--file F]`: recompute the hash chain and name the
//! first record that does not match.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use drdrill::config::Config;
use drdrill::db::evidence::verify_exported;
use drdrill::report::json::Exported;

use super::history::open_db;
use super::{EXIT_FAILED, EXIT_PASSED};

pub fn cmd_verify(config: Arc<Config>, file: Option<&Path>, json: bool) -> anyhow::Result<u8> {
    let (what, result) = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            let exported: Exported = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a drdrill JSON report (or was edited so it no longer parses): make one with `drdrill report --format json -o FILE`",
                    f.display()
                )
            })?;
            (f.display().to_string(), verify_exported(&exported.evidence))
        }
        None => {
            let db = open_db(&config)?;
            (config.database.display().to_string(), db.verify_evidence()?)
        }
    };
    if json {
        let view = match &result {
            Ok(v) => serde_json::json!({
                "source": what, "ok": true, "records": v.records, "anchor": v.anchor, "head": v.head,
                "logged": v.logged, "broken": null,
            }),
            Err(b) => serde_json::json!({
                "source": what, "ok": false, "records": null, "anchor": null, "head": null, "logged": null,
                "broken": { "seq": b.seq, "run_id": b.run_id, "problem": b.problem, "text": b.to_string() },
            }),
        };
        super::print_json(&view)?;
        return Ok(if result.is_ok() { EXIT_PASSED } else { EXIT_FAILED });
    }
    match result {
        Ok(v) => {
            println!("evidence chain in {what}: OK, {} record(s)", v.records);
            if v.anchor != drdrill::db::evidence::GENESIS {
                println!("  starts after an earlier record with hash {} (an exported slice)", v.anchor);
            }
            println!("  head {}", v.head);
            if let Some(seq) = v.logged {
                println!("  the head log beside the database agrees, up to record #{seq}");
            }
            Ok(EXIT_PASSED)
        }
        Err(b) => {
            println!("evidence chain in {what}: BROKEN at {b}");
            Ok(EXIT_FAILED)
        }
    }
}
