//! `drdrill reload`: the daemon re-reads its plans (like SIGHUP) and reports broken ones.

use drdrill::config::Config;
use serde_json::Value;

use super::client::Client;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub async fn cmd_reload(config: &Config, json: bool) -> anyhow::Result<u8> {
    let answer = match Client::new(config)?.post("/api/reload").await {
        Ok(a) => a,
        Err(e) => return Ok(super::fail(json, EXIT_BAD_INPUT, &format!("{e:#}"), None)),
    };
    let plans = answer.get("plans").and_then(Value::as_array).map_or(0, Vec::len);
    let errors = answer.get("errors").and_then(Value::as_array).cloned().unwrap_or_default();
    let code = if errors.is_empty() { EXIT_PASSED } else { EXIT_BAD_INPUT };
    if json {
        super::print_json(&answer)?;
        return Ok(code);
    }
    println!("reloaded: {plans} plan(s) scheduled");
    for e in &errors {
        let file = e.get("file").and_then(Value::as_str).unwrap_or("?");
        let kept = e.get("kept").and_then(Value::as_str).map(|k| format!(" (previous `{k}` kept)")).unwrap_or_default();
        println!(
            "broken plan {file}{kept}:\n  {}",
            e.get("error").and_then(Value::as_str).unwrap_or("").replace('\n', "\n  ")
        );
    }
    Ok(code)
}
