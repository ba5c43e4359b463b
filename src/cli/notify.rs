//! `drdrill notify test|digest|flush`: a test message through every alert
//! channel, a digest now, and a retry of everything queued.

use std::sync::Arc;
use std::time::Duration;

use drdrill::alert;
use drdrill::config::Config;

use super::history::open_db;
use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

#[derive(clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test message through every channel now and print any error
    Test,
    /// Send the digest (HTML report attached by email) now
    Digest,
    /// Retry every queued message now
    Flush,
}

pub async fn cmd_notify(config: Arc<Config>, cmd: NotifyCommand, json: bool) -> anyhow::Result<u8> {
    let channels = alert::Channels::from_config(&config);
    if channels.is_empty() {
        let msg = format!("no alert channel in {}", config.origin());
        let fix = "add a [notify] section (email) or an [[alert]] table (webhook, slack, ntfy); see the README";
        return Ok(super::fail(json, EXIT_BAD_INPUT, &msg, Some(fix)));
    }
    let summary = match cmd {
        NotifyCommand::Test => {
            let results = alert::send_test(&channels).await;
            let failed = results.iter().any(|(_, r)| r.is_err());
            if json {
                let rows: Vec<serde_json::Value> = results
                    .iter()
                    .map(|(channel, r)| {
                        serde_json::json!({
                            "channel": channel,
                            "ok": r.is_ok(),
                            "error": r.as_ref().err().map(drdrill::errors::explain),
                        })
                    })
                    .collect();
                super::print_json(&serde_json::json!({ "channels": rows }))?;
            } else {
                for (channel, result) in &results {
                    match result {
                        Ok(()) if channel == "email" => println!(
                            "test message sent by email to {}",
                            config.notify.as_ref().map(|n| n.to.join(", ")).unwrap_or_default()
                        ),
                        Ok(()) => println!("test message sent through {channel}"),
                        Err(e) => {
                            eprintln!("error: test message not sent through {channel}: {}", drdrill::errors::explain(e))
                        }
                    }
                }
            }
            return Ok(if failed { EXIT_FAILED } else { EXIT_PASSED });
        }
        NotifyCommand::Digest => {
            let period = config.notify.as_ref().map_or(Duration::from_secs(7 * 86400), |n| n.digest_period());
            let max_interval = config.daemon.max_interval.map(|m| m.0);
            alert::send_digest(&channels, period, max_interval, &open_db(&config)?).await?
        }
        NotifyCommand::Flush => {
            let db = open_db(&config)?;
            alert::make_all_due(&db)?;
            alert::flush_outbox(&channels, &db).await
        }
    };
    if json {
        super::print_json(&summary)?;
    } else {
        println!("alerts: {} sent, {} failed, {} still queued", summary.sent, summary.failed, summary.waiting);
    }
    Ok(if summary.failed == 0 { EXIT_PASSED } else { EXIT_FAILED })
}
