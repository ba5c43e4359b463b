//! `drdrill stop-all [--reason TEXT]`: the emergency stop. The daemon aborts
//! every running drill (rollbacks and cleanup still run, each is recorded
//! `aborted`) and pauses its scheduler until `drdrill resume`; the pause is
//! recorded with who and why, and outlives a daemon restart.

use drdrill::config::Config;
use serde_json::{Value, json};

use super::client::Client;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub async fn cmd_stop_all(config: &Config, reason: Option<String>, as_json: bool) -> anyhow::Result<u8> {
    let body = json!({ "reason": reason, "by": super::operator() });
    let a = match Client::new(config)?.post_json("/api/stop", Some(&body)).await {
        Ok(a) => a,
        Err(e) => return Ok(super::fail(as_json, EXIT_BAD_INPUT, &format!("{e:#}"), None)),
    };
    if as_json {
        super::print_json(&a)?;
        return Ok(EXIT_PASSED);
    }
    let pause = &a["pause"];
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    if a["newly_paused"].as_bool() == Some(true) {
        println!("scheduler paused: no drill starts until `drdrill resume`");
    } else {
        println!(
            "scheduler already paused since {} by {}: {}",
            s(pause, "paused_at"),
            s(pause, "paused_by"),
            s(pause, "reason")
        );
    }
    let aborted = a["aborted"].as_array().cloned().unwrap_or_default();
    if aborted.is_empty() {
        println!("no drill was running");
    }
    for r in &aborted {
        match r["run_id"].as_i64() {
            Some(id) => println!("run {id} ({}): aborting; rollbacks run before it is recorded aborted", s(r, "plan")),
            None => println!("{}: queued run dropped", s(r, "plan")),
        }
    }
    Ok(EXIT_PASSED)
}

/// `drdrill resume`: lifts the emergency stop; exit 2 when nothing was paused.
pub async fn cmd_resume(config: &Config, as_json: bool) -> anyhow::Result<u8> {
    let body = json!({ "by": super::operator() });
    match Client::new(config)?.post_json("/api/resume", Some(&body)).await {
        Ok(a) if as_json => {
            super::print_json(&a)?;
            Ok(EXIT_PASSED)
        }
        Ok(a) => {
            let p = &a["resumed"];
            println!(
                "scheduler resumed (paused since {} by {}): drills start on their schedules again",
                p["paused_at"].as_str().unwrap_or("?"),
                p["paused_by"].as_str().unwrap_or("?")
            );
            Ok(EXIT_PASSED)
        }
        Err(e) => Ok(super::fail(as_json, EXIT_BAD_INPUT, &format!("{e:#}"), None)),
    }
}
