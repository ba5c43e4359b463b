//! `kind = "kill"` (destructive): sends a signal to a process found by
//! `pidfile` or by its exact `name` (the kernel's name, `/proc/PID/comm`), waits
//! for it to exit, and on rollback runs the optional `restart` command.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::guard::{pid_and_name, process_name};
use super::{Failure, FailureCtx, Target, Undo};
use crate::diag::{Bounded, Diagnostic, TomlDoc, limit};
use crate::duration::HOUR;
use crate::proc::Reap;

pub const KIND: &str = "kill";

const SIGNALS: &[(&str, i32)] = &[
    ("TERM", libc::SIGTERM),
    ("KILL", libc::SIGKILL),
    ("INT", libc::SIGINT),
    ("HUP", libc::SIGHUP),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kill {
    pidfile: Option<PathBuf>,
    /// Exact process name; with `pidfile`, the process there must have it.
    name: Option<String>,
    #[serde(default = "default_signal")]
    signal: String,
    /// How long to wait for the process to exit after the signal.
    #[serde(default = "default_wait")]
    wait: Bounded<Wait>,
    /// Rollback: a shell command that starts the process again.
    restart: Option<String>,
}

fn default_signal() -> String {
    "TERM".into()
}
fn default_wait() -> Bounded<Wait> {
    Bounded::of(Duration::from_secs(10))
}

limit!(
    /// A process that outlives its signal by an hour is not going to exit.
    pub Wait: Duration = "[[failure]] wait", Duration::from_millis(100), Duration::from_secs(HOUR)
);

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Failure>, Diagnostic> {
    let mut k: Kill = doc.deserialize(&value)?;
    k.pidfile = k.pidfile.map(|p| doc.plan_path(&p));
    if k.pidfile.is_none() && k.name.as_deref().is_none_or(str::is_empty) {
        return Err(doc.at(
            value.span(),
            "kill needs the process: `pidfile` or `name`".into(),
            Some("add `pidfile = \"/run/app.pid\"` or `name = \"app\"` (exact process name)".into()),
        ));
    }
    if let Some(n) = &k.name
        && n.len() > 15
    {
        return Err(doc.at(
            value.span(),
            format!("process name `{n}` is longer than the 15 characters the kernel keeps (/proc/PID/comm)"),
            Some(format!("use `name = \"{}\"` or a `pidfile`", n.chars().take(15).collect::<String>())),
        ));
    }
    if signal_number(&k.signal).is_none() {
        let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
        return Err(doc.at(
            value.span(),
            format!("unknown signal `{}`", k.signal),
            Some(format!("use one of {} (or SIG-prefixed)", names.join(", "))),
        ));
    }
    Ok(std::sync::Arc::new(k))
}

fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    SIGNALS.iter().find(|(s, _)| *s == n).map(|(_, v)| *v)
}

/// Gone or a zombie (dead, waiting for its parent to reap it).
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) == Some("Z"),
    }
}

fn pids_named(name: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| *pid != me && !exited(*pid) && process_name(*pid).as_deref() == Some(name))
        .collect();
    pids.sort();
    pids
}

impl Failure for Kill {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destructive(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let which = match (&self.pidfile, &self.name) {
            (Some(p), Some(n)) => format!("process `{n}` in pidfile {}", p.display()),
            (Some(p), None) => format!("the process in pidfile {}", p.display()),
            (None, Some(n)) => format!("every process named `{n}`"),
            (None, None) => "nothing".into(),
        };
        let restart = match &self.restart {
            Some(r) => format!("; rollback runs `{r}`"),
            None => "; no restart on rollback".into(),
        };
        format!("send SIG{} to {which}{restart}", self.signal.trim().to_ascii_uppercase().trim_start_matches("SIG"))
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        if let Some(p) = &self.pidfile {
            t.push(Target::Pidfile(p.clone()));
        }
        if let Some(n) = &self.name {
            t.push(Target::Process(n.clone()));
        }
        t
    }

    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String> {
        let signal = signal_number(&self.signal).context("signal was validated")?;
        let pids = match &self.pidfile {
            Some(file) => {
                let (pid, name) = pid_and_name(file).map_err(anyhow::Error::msg)?;
                if let Some(want) = &self.name
                    && *want != name
                {
                    bail!(
                        "pid {pid} from {} is `{name}`, not `{want}`: a stale pidfile? not killing it",
                        file.display()
                    );
                }
                ctx.guard.process(&name)?;
                vec![pid]
            }
            None => {
                let name = self.name.as_deref().unwrap_or_default();
                ctx.guard.process(name)?;
                let pids = pids_named(name);
                if pids.is_empty() {
                    bail!("no process named `{name}` is running");
                }
                pids
            }
        };
        // Logged before signalling: the rollback restarts even after a partial kill.
        ctx.undo.push(KIND, Restart { pids: pids.clone(), restart: self.restart.clone() });
        for pid in &pids {
            // SAFETY: kill(2) has no memory effects; the pid was checked just above.
            if unsafe { libc::kill(*pid, signal) } != 0 {
                bail!("cannot signal pid {pid}: {}", std::io::Error::last_os_error());
            }
        }
        // Not our children: there is nothing to wait on but /proc.
        let until = Instant::now() + self.wait.0;
        while !pids.iter().all(|p| exited(*p)) {
            if Instant::now() >= until || ctx.run.cancel.sleep(Duration::from_millis(20)) {
                bail!("pid(s) {pids:?} still running {} after the signal", self.wait);
            }
        }
        Ok(format!("sent signal {signal} to pid(s) {pids:?}; they exited"))
    }
}

#[derive(Debug)]
struct Restart {
    pids: Vec<i32>,
    restart: Option<String>,
}

impl Undo for Restart {
    fn rollback(&self, ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        let Some(restart) = &self.restart else {
            return Ok(Some(format!("pid(s) {:?} stay stopped: no `restart` command", self.pids)));
        };
        // The restarted process is production's again: never reaped by the drill.
        let out = ctx.shell(restart, "kill-restart", Reap::Never)?;
        Ok(Some(format!("restarted with `{restart}`: {out}")))
    }
}
