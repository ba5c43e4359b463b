//! systemd notifications (Type=notify): READY=1, STATUS=, STOPPING=1 and the
//! watchdog. Without `NOTIFY_SOCKET` every call is a no-op, so the daemon runs
//! the same outside systemd.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// systemd 253+ requires MONOTONIC_USEC with RELOADING=1; older ones ignore it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => tracing::debug!("cannot read the monotonic clock for RELOADING=1: {e}"),
    }
}

pub fn stopping(status_text: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status_text)]);
}

/// Pings the watchdog at half the interval systemd asked for (WatchdogSec=), from
/// the async runtime: if the runtime stalls, the pings stop and systemd restarts us.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    tracing::info!("systemd watchdog every {interval:?}: pinging at half that");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}
