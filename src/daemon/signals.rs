//! SIGHUP reloads plans; SIGTERM and SIGINT stop the daemon.

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

pub enum Event {
    Reload,
    /// The name of the signal that asked us to stop.
    Stop(&'static str),
}

pub struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installed before anything else: until then SIGHUP would kill the process.
    pub fn install() -> anyhow::Result<Signals> {
        let s = |k| signal(k).context("cannot install a signal handler");
        Ok(Signals {
            hup: s(SignalKind::hangup())?,
            term: s(SignalKind::terminate())?,
            int: s(SignalKind::interrupt())?,
        })
    }

    pub async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.hup.recv() => Event::Reload,
            _ = self.term.recv() => Event::Stop("SIGTERM"),
            _ = self.int.recv() => Event::Stop("SIGINT"),
        }
    }
}
