//! `drdrill fleet status|report`: the whole fleet, read offline from its bucket.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use drdrill::config::Config;
use drdrill::db::evidence::{GENESIS, Verified};
use drdrill::fleet::{self, Fleet};
use drdrill::report::{Format, Report, ReportOptions, parse_since};

use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

fn open(config: &Config) -> anyhow::Result<Fleet> {
    let f = config.fleet.as_ref().with_context(|| {
        format!("{} has no [fleet] section: fleet commands read the bucket named by `[fleet] store`", config.origin())
    })?;
    Fleet::open_unprobed(config, f)
}

pub async fn cmd_status(config: Arc<Config>, json: bool) -> anyhow::Result<u8> {
    let fleet = open(&config)?;
    let s = fleet::status::read(&fleet).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(EXIT_PASSED);
    }
    let now = Utc::now();
    println!("fleet in store `{}` ({}): {} node(s)", fleet.store.name, fleet.store.describe, s.nodes.len());
    for n in &s.nodes {
        let age = fleet::status::heartbeat_age(n, now)
            .map(|d| format!("{} ago", drdrill::duration::format_duration(std::time::Duration::from_secs(d.as_secs()))))
            .unwrap_or_else(|| "at an unreadable time".into());
        let state = match fleet::status::node_state(&s, n, now) {
            fleet::status::NodeState::Alive => "",
            fleet::status::NodeState::Stale => ", SILENT",
            fleet::status::NodeState::Fenced => ", FENCED (a firing it held was taken over)",
        };
        println!(
            "  {:<20} drdrill {:<8} last heartbeat {} ({age}){}; {} claim(s) now, {} takeover(s)",
            n.node,
            n.version,
            n.heartbeat_at,
            state,
            n.claims.len(),
            n.takeovers
        );
    }
    println!("current claims: {}", s.current.len());
    for c in &s.current {
        println!("  {} at {}: {} (attempt {}, renewed {})", c.plan, c.instant, c.node, c.attempt, c.renewed_at);
    }
    println!("takeovers: {}", s.takeovers.len());
    for c in &s.takeovers {
        let from = c.previous.as_ref().map(|p| format!("{} (attempt {})", p.node, p.attempt)).unwrap_or_default();
        println!("  {} at {}: {} took over from {from} as attempt {}", c.plan, c.instant, c.node, c.attempt);
    }
    Ok(EXIT_PASSED)
}

pub async fn cmd_report(
    config: Arc<Config>,
    since: &str,
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
    let since = match parse_since(since, now) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let fleet = open(&config)?;
    let chains = fleet::evidence::read(&fleet).await?;
    let mut broken = Vec::new();
    let mut records = 0;
    for c in &chains {
        match fleet::evidence::verify(c, None) {
            Ok(v) => records += v.records,
            Err(why) => broken.push(format!("node {}: {why}", c.node)),
        }
    }
    let heads: Vec<String> =
        chains.iter().filter_map(|c| c.head.as_ref().map(|h| format!("{} #{} {}", c.node, h.count, h.hash))).collect();
    let chain = if broken.is_empty() {
        Ok(Verified { records, anchor: GENESIS.into(), head: heads.join("; "), logged: None, signatures: None })
    } else {
        Err(broken.join("; "))
    };
    let files: std::collections::BTreeMap<String, String> =
        drdrill::daemon::plans::load(&config, None, config.daemon.timezone.0, now)
            .plans
            .into_iter()
            .map(|(name, e)| (name, e.plan.file.to_string_lossy().into_owned()))
            .collect();
    let entries = fleet::evidence::entries(&chains);
    let head = Some((records as i64, heads.join("; ")));
    let report = Report::from_entries(
        entries,
        chain,
        head,
        &files,
        &ReportOptions { since, plan, now, max_interval: config.daemon.max_interval.map(|m| m.0) },
    );
    let text = report.render(format)?;
    match output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} ({} run(s) of {} node(s))", path.display(), report.entries.len(), chains.len());
        }
        None => print!("{text}"),
    }
    if report.chain.is_err() {
        eprintln!("warning: {}", report.chain_text());
    }
    Ok(EXIT_PASSED)
}

/// `drdrill evidence verify --fleet`: every node's shipped chain.
pub async fn cmd_verify(config: Arc<Config>, signers: Option<&Path>) -> anyhow::Result<u8> {
    let fleet = open(&config)?;
    let trusted = match signers {
        Some(p) => Some(drdrill::db::bundle::parse_allowed_signers(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        None => None,
    };
    let chains = fleet::evidence::read(&fleet).await?;
    if chains.is_empty() {
        println!("fleet evidence in store `{}`: no node has shipped evidence yet", fleet.store.name);
        return Ok(EXIT_FAILED);
    }
    let mut ok = true;
    for c in &chains {
        match fleet::evidence::verify(c, trusted.as_deref()) {
            Ok(v) => println!(
                "node {} ({}): OK, {} record(s), every one signed; signed head #{} {}",
                v.node, v.fingerprint, v.records, v.head_count, v.head
            ),
            Err(why) => {
                ok = false;
                println!("node {}: BROKEN: {why}", c.node);
            }
        }
    }
    Ok(if ok { EXIT_PASSED } else { EXIT_FAILED })
}
