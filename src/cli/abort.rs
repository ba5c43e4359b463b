//! `drdrill abort RUN [--reason TEXT]`: aborts a run the daemon is running. Its
//! rollbacks and cleanup still run, and it is recorded `aborted` with the reason.

use drdrill::config::Config;
use serde_json::{Value, json};

use super::client::Client;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub async fn cmd_abort(config: &Config, run_id: i64, reason: Option<String>, as_json: bool) -> anyhow::Result<u8> {
    let body = json!({ "reason": reason, "by": super::operator() });
    match Client::new(config)?.post_json(&format!("/api/runs/{run_id}/abort"), Some(&body)).await {
        Ok(a) if as_json => {
            super::print_json(&a)?;
            Ok(EXIT_PASSED)
        }
        Ok(a) => {
            println!(
                "run {run_id} ({}): abort requested; rollbacks run before it is recorded aborted (`drdrill show {run_id}`)",
                a.get("plan").and_then(Value::as_str).unwrap_or("?")
            );
            Ok(EXIT_PASSED)
        }
        Err(e) => Ok(super::fail(as_json, EXIT_BAD_INPUT, &format!("{e:#}"), None)),
    }
}
