//! `drdrill trigger NAME [--follow] [--json]`: a game-day run through the
//! daemon's API. With `--json --follow` every event is one JSON object per
//! line (NDJSON): `started`, then `phase` and `gate` as they happen, then `result`.

use std::time::Duration;

use drdrill::config::Config;
use drdrill::duration::fmt_ms;
use serde_json::{Value, json};

use super::client::Client;
use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

/// How the run is shown: lines for people, or NDJSON.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
    run_id: i64,
}

impl Out {
    fn phase(&self, p: &Value) {
        if self.json {
            let _ = super::print_ndjson(&json!({ "event": "phase", "run_id": self.run_id, "phase": p }));
            return;
        }
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

    fn gate(&self, g: &Value) {
        let run_id = self.run_id;
        if self.json {
            let _ = super::print_ndjson(&json!({ "event": "gate", "run_id": run_id, "gate": g }));
            return;
        }
        if let Some(g) = g.get("gate").and_then(Value::as_str) {
            println!(
                "  ⏸ run {run_id} is waiting for approval before {g}: `drdrill approve {run_id} --gate {g}` lets it go on, `drdrill abort {run_id}` aborts"
            );
        }
    }

    /// Prints the outcome; returns the exit code `drdrill run` would give.
    fn result(&self, summary: &Value) -> u8 {
        let status = summary.get("status").and_then(Value::as_str).unwrap_or("unknown");
        let code = if status == "passed" { EXIT_PASSED } else { EXIT_FAILED };
        if self.json {
            let _ = super::print_ndjson(&json!({ "event": "result", "run_id": self.run_id, "result": summary }));
            return code;
        }
        let field = |k: &str| summary.get(k).and_then(Value::as_f64);
        println!(
            "run {} {status}: RTO {} (target {}), RPO {} (target {})",
            self.run_id,
            fmt_ms(field("rto_ms")),
            fmt_ms(field("rto_target_ms")),
            fmt_ms(field("rpo_ms")),
            fmt_ms(field("rpo_target_ms")),
        );
        if let Some(reason) = summary.get("reason").and_then(Value::as_str) {
            println!("  reason: {reason}");
        }
        code
    }
}

pub async fn cmd_trigger(config: &Config, name: &str, follow: bool, json: bool) -> anyhow::Result<u8> {
    let client = Client::new(config)?;
    let started = match client.post(&format!("/api/plans/{name}/runs")).await {
        Ok(v) => v,
        Err(e) => return Ok(super::fail(json, EXIT_BAD_INPUT, &format!("{e:#}"), None)),
    };
    let Some(run_id) = started.get("run_id").and_then(Value::as_i64) else {
        anyhow::bail!("the daemon's answer has no run id: {started}");
    };
    let out = Out { json, run_id };
    if json && follow {
        super::print_ndjson(&json!({ "event": "started", "plan": name, "run_id": run_id }))?;
    } else if json {
        super::print_json(&json!({ "plan": name, "run_id": run_id }))?;
    } else {
        println!("drill {name} started as run {run_id}");
    }
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
                out.phase(p);
                shown += 1;
            }
            if let Some(g) = event.get("gate") {
                out.gate(g);
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
            return Ok(out.result(&summary));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let run = client.get(&format!("/api/runs/{run_id}")).await?;
        let phases = run.get("phases").and_then(Value::as_array).cloned().unwrap_or_default();
        for p in phases.iter().skip(shown) {
            out.phase(p);
        }
        shown = shown.max(phases.len());
        let summary = run.get("summary").cloned().unwrap_or(Value::Null);
        if summary.get("status").and_then(Value::as_str).is_some_and(|s| s != "running") {
            result = Some(summary);
        }
    }
}
