//! `drdrill notify test|digest|flush`: mail settings check, a digest now, and
//! a retry of queued mail.

use std::sync::Arc;

use drdrill::alert::{self, NotifyConfig};
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
    let channels = alert::Channels::from_config(&config);
    let summary = match cmd {
        NotifyCommand::Test => {
            let mut code = EXIT_PASSED;
            for (channel, result) in alert::send_test(&channels).await {
                match result {
                    Ok(()) if channel == "email" => println!("test message sent by email to {}", n.to.join(", ")),
                    Ok(()) => println!("test message sent through {channel}"),
                    Err(e) => {
                        eprintln!("error: test message not sent through {channel}: {}", drdrill::errors::explain(&e));
                        code = EXIT_FAILED;
                    }
                }
            }
            return Ok(code);
        }
        NotifyCommand::Digest => alert::send_digest(&channels, n.digest_period(), &open_db(&config)?).await?,
        NotifyCommand::Flush => {
            let db = open_db(&config)?;
            alert::make_all_due(&db)?;
            alert::flush_outbox(&channels, &db).await
        }
    };
    println!("mail: {} sent, {} failed, {} still queued", summary.sent, summary.failed, summary.waiting);
    Ok(if summary.failed == 0 { EXIT_PASSED } else { EXIT_FAILED })
}
