//! `drdrill approve RUN [--gate G] [--note TEXT]`: lets a run that the daemon
//! holds at a `pause_before` gate go on, through the API.

use drdrill::config::Config;
use serde_json::{Value, json};

use super::client::Client;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub async fn cmd_approve(
    config: &Config,
    run_id: i64,
    gate: Option<String>,
    note: Option<String>,
    as_json: bool,
) -> anyhow::Result<u8> {
    let body = json!({ "gate": gate, "note": note, "by": super::operator() });
    match Client::new(config)?.post_json(&format!("/api/runs/{run_id}/approve"), Some(&body)).await {
        Ok(a) if as_json => {
            super::print_json(&a)?;
            Ok(EXIT_PASSED)
        }
        Ok(a) => {
            println!(
                "run {run_id}: gate before {} approved by {}",
                a.get("gate").and_then(Value::as_str).unwrap_or("?"),
                a.get("approved_by").and_then(Value::as_str).unwrap_or("?")
            );
            Ok(EXIT_PASSED)
        }
        Err(e) => Ok(super::fail(
            as_json,
            EXIT_BAD_INPUT,
            &format!("{e:#}"),
            Some("`drdrill status` shows the runs waiting at a gate"),
        )),
    }
}
