//! `drdrill status`: what the daemon is doing, from its API.

use drdrill::config::Config;
use serde_json::Value;

use super::client::Client;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub async fn cmd_status(config: &Config, json: bool) -> anyhow::Result<u8> {
    let client = Client::new(config)?;
    let (health, plans) = match (client.get("/healthz").await, client.get("/api/plans").await) {
        (Ok(h), Ok(p)) => (h, p),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "health": health, "plans": plans }))?);
        return Ok(EXIT_PASSED);
    }
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    println!("daemon {} ({}): {}", s(&health, "status"), s(&health, "version"), s(&health, "detail"));
    println!("schedules in {}", s(&plans, "timezone"));
    println!("{:<24} {:<16} {:<26} {:<10} now", "PLAN", "SCHEDULE", "NEXT", "LAST");
    for p in plans.get("plans").and_then(Value::as_array).into_iter().flatten() {
        let last = p.get("last_run").map(|r| s(r, "status")).unwrap_or_else(|| "-".into());
        let now = match p.get("active").filter(|a| !a.is_null()) {
            Some(a) => match a.get("run_id").and_then(Value::as_i64) {
                Some(id) => match a.get("last_phase").and_then(Value::as_str) {
                    Some(p) if p.starts_with("waiting") => format!("run {id}, {p}"),
                    p => format!("run {id}, after {}", p.unwrap_or("start")),
                },
                None => "queued".into(),
            },
            None => String::new(),
        };
        println!("{:<24} {:<16} {:<26} {:<10} {now}", s(p, "name"), s(p, "schedule"), s(p, "next_due"), last);
    }
    // Older daemons have no /api/gates: then there is simply nothing to list.
    for g in client.get("/api/gates").await.ok().as_ref().and_then(Value::as_array).into_iter().flatten() {
        println!(
            "run {} ({}) waits for approval before {} since {}: {}",
            g.get("run_id").and_then(Value::as_i64).unwrap_or_default(),
            s(g, "plan"),
            s(g, "gate"),
            s(g, "since"),
            s(g, "approve")
        );
    }
    for p in plans.get("plans").and_then(Value::as_array).into_iter().flatten() {
        let due = p.get("due").cloned().unwrap_or(Value::Null);
        let interval = due
            .get("max_interval_ms")
            .and_then(Value::as_u64)
            .map(|ms| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string());
        match due.get("state").and_then(Value::as_str) {
            Some("overdue") => println!(
                "OVERDUE: {} has had no passed run for over {} (since {}; last passed: {})",
                s(p, "name"),
                interval.unwrap_or_default(),
                s(&due, "overdue_since"),
                due.get("last_passed").and_then(Value::as_str).unwrap_or("never")
            ),
            Some("untested") => println!(
                "untested: {} has never run (first loaded {}){}",
                s(p, "name"),
                s(&due, "first_loaded"),
                interval.map(|i| format!("; overdue {i} after that without a passed run")).unwrap_or_default()
            ),
            _ => {}
        }
    }
    for q in plans.get("quarantine").and_then(Value::as_array).into_iter().flatten() {
        println!(
            "ATTENTION: run {} left live data in {}; read {} to put it back",
            q.get("run_id").and_then(Value::as_i64).unwrap_or_default(),
            s(q, "folder"),
            s(q, "index")
        );
    }
    for e in plans.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let kept = e.get("kept").and_then(Value::as_str).map(|k| format!(" (previous `{k}` kept)")).unwrap_or_default();
        println!("broken plan {}{kept}:\n  {}", s(e, "file"), s(e, "error").replace('\n', "\n  "));
    }
    Ok(EXIT_PASSED)
}
