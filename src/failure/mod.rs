//! How a drill starts its incident. The instant the first failure is injected is
//! T_fail, from which RTO and RPO are measured. One file per kind.
//!
//! Contract:
//! - `targets` lists everything outside drdrill's own scratch space that the
//!   failure will touch, as configured (unresolved). The [`guard`] decides on
//!   them before the run starts and `--dry-run` prints them; a kind that touches
//!   something it does not list here is a bug.
//! - `prepare` runs before T_fail and may take time (it is not part of RTO).
//! - `inject` is the incident itself and returns what it did, for the record. It
//!   must keep whatever `rollback` needs *before* it changes anything, so that a
//!   half-applied failure can still be undone. Live paths are resolved through
//!   `ctx.guard` again at inject time, so a symlink swapped in after the check
//!   cannot widen the blast radius.
//! - `rollback` always runs after the drill (pass, fail, error, abort), in
//!   reverse order of injection, and is a no-op for a failure that did nothing.
//!   Undo state lives inside the failure, so one plan object runs one drill at a time.

pub mod command;
pub mod corrupt;
pub mod declare;
pub mod delete;
pub mod guard;
pub mod kill;
pub mod stop_service;
pub mod truncate;

use std::fmt::{self, Debug};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use toml::Spanned;
use toml::de::DeValue;

use crate::cancel::Cancel;
use crate::diag::{Diagnostic, KindParser, TomlDoc};
use crate::source::Source;
pub use guard::Guard;

pub trait Failure: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    /// Whether it touches anything outside drdrill's own scratch space.
    fn destructive(&self) -> bool;
    fn describe(&self) -> String;
    /// What it will touch outside scratch (empty for safe kinds).
    fn targets(&self) -> Vec<Target> {
        Vec::new()
    }
    fn prepare(&self, _ctx: &FailureCtx) -> anyhow::Result<()> {
        Ok(())
    }
    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String>;
    fn rollback(&self, _ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}

/// Something a failure touches, as the plan names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file or folder (checked against `allowed_paths`).
    Path(PathBuf),
    /// A process by exact name (checked against `allowed_processes`).
    Process(String),
    /// A process whose pid is in this file; its name is checked against `allowed_processes`.
    Pidfile(PathBuf),
    /// A systemd unit (checked against `allowed_units`).
    Unit(String),
    /// An arbitrary user command: drdrill cannot see what it touches.
    Command(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Path(p) => write!(f, "path {}", p.display()),
            Target::Process(n) => write!(f, "process named `{n}`"),
            Target::Pidfile(p) => write!(f, "process in pidfile {}", p.display()),
            Target::Unit(u) => write!(f, "unit `{u}`"),
            Target::Command(c) => write!(f, "command `{c}`"),
        }
    }
}

#[derive(Clone)]
pub struct FailureCtx {
    pub source: Arc<dyn Source>,
    /// A private folder in the run's scratch space, removed after the run.
    pub scratch: PathBuf,
    /// Where live data is moved aside until rollback. Outside the run's scratch
    /// folder, so that data a rollback could not put back is never swept away.
    pub quarantine: PathBuf,
    pub run_id: i64,
    pub guard: Arc<Guard>,
    /// Long-running work (user commands) stops when this is set. Rollbacks get
    /// one that is never set: an abort must not cut a rollback short.
    pub cancel: Cancel,
}

/// The failure kinds. A new kind is one file and one line here.
const KINDS: &[KindParser<Arc<dyn Failure>>] = &[
    (declare::KIND, declare::parse),
    (delete::KIND, delete::parse),
    (corrupt::KIND, corrupt::parse),
    (truncate::KIND, truncate::parse),
    (kill::KIND, kill::parse),
    (stop_service::KIND, stop_service::parse),
    (command::KIND, command::parse),
];

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

pub fn parse(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<Arc<dyn Failure>, Diagnostic> {
    doc.parse_kind(value, "failure", KINDS)
}

/// Rejects an empty path in a failure table.
pub(crate) fn require_path(doc: &TomlDoc, value: &Spanned<DeValue>, kind: &str, path: &Path) -> Result<(), Diagnostic> {
    if path.as_os_str().is_empty() {
        return Err(doc.at(
            value.span(),
            format!("failure `{kind}` has an empty `path`"),
            Some("set `path` to the live file it acts on".into()),
        ));
    }
    Ok(())
}

/// Runs `sh -c script` with the drill's environment, its output in a log file
/// (a pipe could block a command that leaves a daemon behind holding it), and
/// kills it when the run is cancelled. Returns the tail of its output.
pub(crate) fn run_shell(script: &str, ctx: &FailureCtx, label: &str) -> anyhow::Result<String> {
    fs::create_dir_all(&ctx.scratch).with_context(|| format!("cannot create {}", ctx.scratch.display()))?;
    let log_path = ctx.scratch.join(format!("{label}.log"));
    let log = fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut child = Process::new("sh")
        .arg("-c")
        .arg(script)
        .env("DRDRILL_SCRATCH", &ctx.scratch)
        .env("DRDRILL_RUN_ID", ctx.run_id.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C meant for drdrill does not hit it
        // directly (drdrill decides), and on abort the whole group is killed.
        .process_group(0)
        .spawn()
        .context("cannot start `sh`")?;
    let status = loop {
        match child.try_wait().with_context(|| format!("cannot wait for `{script}`"))? {
            Some(status) => break status,
            None if ctx.cancel.is_cancelled() => {
                // SAFETY: kill(2) on the group this child leads; no memory effects.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                bail!("`{script}` was killed: the run was aborted");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let output = crate::check::command::tail(&log_path);
    if !status.success() {
        bail!("`{script}` exited with {status}: {output}");
    }
    Ok(if output.is_empty() { "exit 0".into() } else { output })
}

/// The file in a quarantine folder that says what each kept item is, so that
/// after a crash (when no rollback ran) a person can put things back by hand.
pub const QUARANTINE_INDEX: &str = "WHAT-IS-HERE.txt";

/// A path in the quarantine for data kept from `live`, with a line in the
/// quarantine's index saying what it is and how to put it back.
pub(crate) fn quarantine_keep(ctx: &FailureCtx, live: &Path, what: &str, how: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    fs::create_dir_all(&ctx.quarantine)
        .with_context(|| format!("cannot create quarantine folder {}", ctx.quarantine.display()))?;
    let item = ctx.quarantine.join(quarantine_name(live, what));
    // A rename onto it would replace data an earlier, crashed run kept here.
    if fs::symlink_metadata(&item).is_ok() {
        bail!(
            "quarantine already holds {} (see {} there): put it back or remove it before running this drill again",
            item.display(),
            QUARANTINE_INDEX
        );
    }
    let index = ctx.quarantine.join(QUARANTINE_INDEX);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&index)
        .with_context(|| format!("cannot write {}", index.display()))?;
    writeln!(f, "{}: run {} {what} of {}; {how}", item.display(), ctx.run_id, live.display())?;
    f.sync_all()?;
    Ok(item)
}

/// A stable file name for a live path inside the quarantine folder.
pub(crate) fn quarantine_name(path: &Path, what: &str) -> String {
    let digest = crate::hashing::sha256_hex(path.as_os_str().as_encoded_bytes());
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "root".into());
    format!("{}-{base}.{what}", &digest[..12])
}
