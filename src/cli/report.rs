//! `drdrill report`: the periodic report over the evidence chain.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use drdrill::config::Config;
use drdrill::report::{Format, Report, ReportOptions, parse_since};

use super::history::open_db;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub fn cmd_report(
    config: Arc<Config>,
    since: Option<&str>,
    plan: Option<String>,
    format: &str,
    output: Option<&Path>,
) -> anyhow::Result<u8> {
    let format: Format = match format.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let now = Utc::now();
    let since = match since.map(|s| parse_since(s, now)).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let db = open_db(&config)?;
    let opts = ReportOptions { since, plan, now, max_interval: config.daemon.max_interval.map(|m| m.0) };
    // HTML lists only the newest runs: it streams the history instead of loading it.
    let report = if format == Format::Html { Report::build_html(&db, &opts)? } else { Report::build(&db, &opts)? };
    let text = report.render(format)?;
    match output {
        Some(path) => {
            // Written next to the target and renamed, so a reader never sees half a report.
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {} ({} run(s), {} plan(s), {} needing attention)",
                path.display(),
                report.runs,
                report.plans.len(),
                report.unhealthy()
            );
        }
        None => print!("{text}"),
    }
    if report.chain.is_err() {
        eprintln!("warning: {}", report.chain_text());
    }
    Ok(EXIT_PASSED)
}
