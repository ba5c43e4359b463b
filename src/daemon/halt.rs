//! `[safety] halt_file`: the daemon looks for it every second, says when it
//! appears or goes, and keeps its status line (`drdrill status`, systemd's
//! STATUS=) showing the halt. Refusing new runs and aborting running ones is
//! the engine's: each run watches the file itself and refuses to start while
//! it exists, so `drdrill run` in a terminal obeys it as the daemon's runs do.

use std::sync::Arc;

use super::Daemon;
use crate::engine::HALT_POLL;

pub async fn run(daemon: Arc<Daemon>) {
    if daemon.config.safety.halt_file.is_none() {
        return;
    }
    let mut halted = None;
    let mut tick = tokio::time::interval(HALT_POLL);
    loop {
        tick.tick().await;
        let now = daemon.config.safety.halt();
        if now == halted {
            continue;
        }
        match &now {
            Some(h) => {
                let running = daemon.active().values().filter(|a| a.run_id.is_some()).count();
                tracing::error!(
                    "{h}: no drill starts until it is removed; {running} running drill(s) abort with rollbacks"
                );
            }
            None => tracing::warn!("the halt file is gone: drills may start again"),
        }
        halted = now;
        daemon.publish_status();
    }
}

/// The line `drdrill status` shows first while the halt file exists.
pub fn status(daemon: &Daemon) -> Option<String> {
    daemon.config.safety.halt().map(|h| format!("HALTED: {h}: no drill starts, running ones are aborted"))
}
