//! The service step: the plan's `[service]` started on the restored data, on
//! a free loopback port (`DRDRILL_PORT`), and waited for until it is ready.
//! Its process group is kept in a [`Groups`] of its own, which the run's
//! cleanup stops first (before the restored database it uses), whatever
//! happened; its output tail is kept with the run.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::backoff::Backoff;
use crate::check::{Check, CheckCtx};
use crate::context::RunCtx;
use crate::duration::format_duration;
use crate::plan::{Ready, ServiceSection};
use crate::proc::{Background, Groups};
use crate::restored::{Liveness, Restored};

/// The application, started.
pub struct Started {
    /// What the checks get: the restore, with `DRDRILL_PORT` now the
    /// application's port and the application among what must stay up.
    pub restored: Restored,
    pub process: Background,
    pub detail: String,
}

/// The application's process, named as the plan names it.
#[derive(Debug)]
struct App(Background);

impl Liveness for App {
    fn running(&self) -> Result<(), String> {
        self.0.running().map_err(|e| format!("the service stopped: {e}"))
    }
}

/// Starts `spec` against `restored` and waits for `ready`.
pub fn start(spec: &ServiceSection, ctx: &RunCtx, restored: &Restored, groups: &Groups) -> anyhow::Result<Started> {
    let port = crate::net::free_port()?;
    let mut env: Vec<(String, String)> = restored.env.iter().filter(|(k, _)| k != "DRDRILL_PORT").cloned().collect();
    env.push(("DRDRILL_PORT".into(), port.to_string()));
    let dir = spec.workdir.clone().unwrap_or_else(|| ctx.run_dir.clone());
    if !dir.is_dir() {
        bail!("[service] `workdir` {} is not a folder: fix it in the plan", dir.display());
    }
    let process = ctx
        .shell(&spec.run)
        .dir(&dir)
        .env("DRDRILL_RESTORE", &restored.path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .label(format!("service `{}`", spec.run))
        .log(ctx.run_dir.join("service.log"))
        .start_kept(groups)?;
    let mut with_service = restored.clone();
    with_service.env = env;
    with_service.services.push(Arc::new(App(process.clone())));
    let started = Instant::now();
    let until = spec.ready_timeout.map_or(ctx.deadline, |t| (started + t).min(ctx.deadline));
    let ready = match &spec.ready {
        None => "not waited for (no `ready`)".to_string(),
        Some(r) => match wait_ready(r, port, ctx, &with_service, until) {
            Ok(seen) => seen,
            Err(e) => {
                // Once it exited, the error already carries its output.
                let output = match process.exited() {
                    None => format!("; its output: {}", non_empty(process.tail())),
                    Some(_) => String::new(),
                };
                bail!(
                    "service `{}` did not become ready ({r}) within {}: {e:#}{output}",
                    spec.run,
                    format_duration(started.elapsed())
                );
            }
        },
    };
    // Started and gone at once (a typo, a missing module) is no service either.
    with_service.services_running().map_err(anyhow::Error::msg)?;
    let detail = format!(
        "`{}` (pid {}) on DRDRILL_PORT={port}: ready after {} ({ready})",
        spec.run,
        process.pid,
        format_duration(started.elapsed())
    );
    Ok(Started { restored: with_service, process, detail })
}

/// Waits until `ready` passes, the application (or the restored database)
/// stops, the run is cancelled, or `until`. Returns what it observed.
fn wait_ready(ready: &Ready, port: u16, ctx: &RunCtx, restored: &Restored, until: Instant) -> anyhow::Result<String> {
    let check_ctx = CheckCtx { run: ctx.clone(), restored: restored.clone(), live: None };
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        restored.services_running().map_err(anyhow::Error::msg)?;
        let attempt = match ready {
            Ready::Tcp(p) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], p.unwrap_or(port)));
                TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    .map(|_| format!("{addr} accepts connections"))
                    .map_err(|e| format!("{addr}: {e}"))
            }
            Ready::Http(c) => c.run(&check_ctx),
        };
        let last = match attempt {
            Ok(seen) => return Ok(seen),
            Err(why) => why,
        };
        let delay = backoff.next_delay();
        if Instant::now() + delay >= until {
            bail!("last attempt: {last}");
        }
        if ctx.cancel.sleep(delay) {
            bail!("cancelled; last attempt: {last}");
        }
    }
}

fn non_empty(s: String) -> String {
    if s.is_empty() { "(none)".into() } else { s }
}
