//! `drdrill trigger NAME [--follow]`: a game-day run through the daemon's API.

use std::time::Duration;

use drdrill::config::Config;
use serde_json::Value;

use super::client::Client;
use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

pub async fn cmd_trigger(config: &Config, name: &str, follow: bool) -> anyhow::Result<u8> {
    let client = Client::new(config)?;
    let started = match client.post(&format!("/api/plans/{name}/runs")).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let Some(run_id) = started.get("run_id").and_then(Value::as_i64) else {
        anyhow::bail!("the daemon's answer has no run id: {started}");
    };
    println!("drill {name} started as run {run_id}");
    if !follow {
        return Ok(EXIT_PASSED);
    }
    // The engine records each phase as it ends, so polling the run shows the
    // phases as they happen; the answer ends once the run has a final status.
    let mut shown = 0;
    loop {
        let run = client.get(&format!("/api/runs/{run_id}")).await?;
        let phases = run.get("phases").and_then(Value::as_array).cloned().unwrap_or_default();
        for p in phases.iter().skip(shown) {
            let ok = p.get("status").and_then(Value::as_str) == Some("ok");
            let ms = p.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0);
            println!(
                "  {} {:<9} {:>9}  {}",
                if ok { "✓" } else { "✗" },
                p.get("name").and_then(Value::as_str).unwrap_or("?"),
                drdrill::engine::report::fmt_ms(Some(ms)),
                p.get("detail").and_then(Value::as_str).unwrap_or("")
            );
        }
        shown = phases.len();
        let summary = run.get("summary").cloned().unwrap_or(Value::Null);
        let status = summary.get("status").and_then(Value::as_str).unwrap_or("running");
        if status != "running" {
            let field = |k: &str| summary.get(k).and_then(Value::as_f64);
            println!(
                "run {run_id} {status}: RTO {} (target {}), RPO {} (target {})",
                drdrill::engine::report::fmt_ms(field("rto_ms")),
                drdrill::engine::report::fmt_ms(field("rto_target_ms")),
                drdrill::engine::report::fmt_ms(field("rpo_ms")),
                drdrill::engine::report::fmt_ms(field("rpo_target_ms")),
            );
            if let Some(reason) = summary.get("reason").and_then(Value::as_str) {
                println!("  reason: {reason}");
            }
            return Ok(if status == "passed" { EXIT_PASSED } else { EXIT_FAILED });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
