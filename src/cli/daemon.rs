//! `drdrill daemon`: scheduled drills, the API and systemd integration.

use std::sync::Arc;

use drdrill::config::Config;

pub async fn cmd_daemon(config: Arc<Config>) -> anyhow::Result<u8> {
    drdrill::daemon::run(config).await
}
