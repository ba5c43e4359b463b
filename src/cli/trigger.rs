//! `drdrill trigger NAME [--follow]`: a game-day run through the daemon's API.

use std::time::Duration;

use drdrill::config::Config;
use drdrill::duration::fmt_ms;
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
    // Phases arrive as they end (the daemon's engine observer publishes them);
    // should the stream break off, the recorded timeline is polled instead.
    let mut shown = 0;
    let mut result = None;
    let streamed = client
        .get_lines(&format!("/api/runs/{run_id}/events"), |event| {
            if let Some(p) = event.get("phase") {
                print_phase(p);
                shown += 1;
            }
            if let Some(g) = event.get("gate").and_then(|g| g.get("gate")).and_then(Value::as_str) {
                println!(
                    "  ⏸ run {run_id} is waiting for approval before {g}: `drdrill approve {run_id} --gate {g}` lets it go on, `drdrill abort {run_id}` aborts"
                );
            }
            if let Some(r) = event.get("result") {
                result = Some(r.clone());
                return false;
            }
            true
        })
        .await;
    if let Err(e) = streamed {
        eprintln!("warning: {e:#}; polling the run instead");
    }
    loop {
        if let Some(summary) = result {
            return Ok(print_result(run_id, &summary));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let run = client.get(&format!("/api/runs/{run_id}")).await?;
        let phases = run.get("phases").and_then(Value::as_array).cloned().unwrap_or_default();
        for p in phases.iter().skip(shown) {
            print_phase(p);
        }
        shown = shown.max(phases.len());
        let summary = run.get("summary").cloned().unwrap_or(Value::Null);
        if summary.get("status").and_then(Value::as_str).is_some_and(|s| s != "running") {
            result = Some(summary);
        }
    }
}

fn print_phase(p: &Value) {
    let ok = p.get("status").and_then(Value::as_str) == Some("ok");
    let ms = p.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0);
    println!(
        "  {} {:<9} {:>9}  {}",
        if ok { "✓" } else { "✗" },
        p.get("name").and_then(Value::as_str).unwrap_or("?"),
        fmt_ms(Some(ms)),
        p.get("detail").and_then(Value::as_str).unwrap_or("")
    );
}

/// Prints the outcome; returns the exit code `drdrill run` would give.
fn print_result(run_id: i64, summary: &Value) -> u8 {
    let status = summary.get("status").and_then(Value::as_str).unwrap_or("unknown");
    let field = |k: &str| summary.get(k).and_then(Value::as_f64);
    println!(
        "run {run_id} {status}: RTO {} (target {}), RPO {} (target {})",
        fmt_ms(field("rto_ms")),
        fmt_ms(field("rto_target_ms")),
        fmt_ms(field("rpo_ms")),
        fmt_ms(field("rpo_target_ms")),
    );
    if let Some(reason) = summary.get("reason").and_then(Value::as_str) {
        println!("  reason: {reason}");
    }
    if status == "passed" { EXIT_PASSED } else { EXIT_FAILED }
}
