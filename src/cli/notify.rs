//! `drdrill notify test|digest|flush`: mail settings check, a digest now, and
//! a retry of queued mail.

use std::sync::Arc;

use drdrill::alert::{self as notify, NotifyConfig};
use drdrill::config::Config;

use super::history::open_db;
use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

#[derive(clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test message now and print any error
    Test,
    /// Send the digest (HTML report attached) now
    Digest,
    /// Retry every queued message now
    Flush,
}

fn settings(config: &Config) -> Result<&NotifyConfig, u8> {
    config.notify.as_ref().ok_or_else(|| {
        eprintln!(
            "error: no [notify] section in {}: add smtp_host, from and to (see docs/evidence.md)",
            config.origin()
        );
        EXIT_BAD_INPUT
    })
}

pub async fn cmd_notify(config: Arc<Config>, cmd: NotifyCommand) -> anyhow::Result<u8> {
    let n = match settings(&config) {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let summary = match cmd {
        NotifyCommand::Test => {
            return Ok(match notify::send_test(n).await {
                Ok(()) => {
                    println!("test message sent to {}", n.to.join(", "));
                    EXIT_PASSED
                }
                Err(e) => {
                    eprintln!("error: test message not sent: {e:#}");
                    EXIT_FAILED
                }
            });
        }
        NotifyCommand::Digest => notify::send_digest(n, &open_db(&config)?).await?,
        NotifyCommand::Flush => {
            let db = open_db(&config)?;
            notify::make_all_due(&db)?;
            notify::flush_outbox(n, &db).await
        }
    };
    println!("mail: {} sent, {} failed, {} still queued", summary.sent, summary.failed, summary.waiting);
    Ok(if summary.failed == 0 { EXIT_PASSED } else { EXIT_FAILED })
}
