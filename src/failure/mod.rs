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
//!   writes what must be undone into the run's [`UndoLog`] (`ctx.undo`) *before*
//!   it changes anything, so that a half-applied failure is still undone. Live
//!   data it moves aside or overwrites is kept in the run's quarantine through
//!   the same log. Live paths are resolved through `ctx.guard` again at inject
//!   time, so a symlink swapped in after the check cannot widen the blast radius.
//! - The engine owns the undo log of each run and rolls back every entry after
//!   the drill (pass, fail, error, abort), newest first. A failure kind holds no
//!   state of its own: the parsed plan stays immutable and could run twice at once.

pub mod command;
pub mod corrupt;
pub mod declare;
pub mod delete;
pub mod guard;
pub mod kill;
pub mod stop_service;
pub mod truncate;
mod undo;

use std::fmt::{self, Debug};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;
use toml::de::DeValue;

use crate::context::RunCtx;
use crate::diag::{Diagnostic, KindParser, TomlDoc};
use crate::proc::Reap;
use crate::source::Source;
pub use guard::{Guard, Refused};
pub use undo::{Undo, UndoLog};

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
    /// The incident. Whatever must be undone goes into `ctx.undo` first.
    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String>;
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
    pub run: RunCtx,
    pub source: Arc<dyn Source>,
    /// This failure's position in the plan (1-based), for names in scratch.
    pub index: usize,
    pub guard: Arc<Guard>,
    /// Where inject writes what rollback must undo, and keeps live data it moves aside.
    pub undo: Arc<UndoLog>,
}

impl FailureCtx {
    /// A private folder in the run's scratch space for this failure.
    pub fn scratch(&self) -> PathBuf {
        self.run.run_dir.join("failure")
    }

    /// Runs `sh -c script` for this failure (its output in a log in scratch)
    /// and returns the tail of its output. `reap` says what becomes of what it
    /// leaves running: a rollback's restarted service stays.
    pub fn shell(&self, script: &str, label: &str, reap: Reap) -> anyhow::Result<String> {
        let dir = self.scratch();
        std::fs::create_dir_all(&dir)?;
        let done = self
            .run
            .shell(script)
            .env("DRDRILL_SCRATCH", &dir)
            .log(dir.join(format!("{label}.log")))
            .reap(reap)
            .run(&self.run.cancel)?;
        done.check()?;
        Ok(if done.tail.is_empty() { "exit 0".into() } else { done.tail })
    }
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
/// The failure's `path`, resolved against the plan's base; an empty one is an error.
pub(crate) fn require_path(
    doc: &TomlDoc,
    value: &Spanned<DeValue>,
    kind: &str,
    path: &Path,
) -> Result<PathBuf, Diagnostic> {
    if path.as_os_str().is_empty() {
        return Err(doc.at(
            value.span(),
            format!("failure `{kind}` has an empty `path`"),
            Some("set `path` to the live file it acts on".into()),
        ));
    }
    Ok(doc.plan_path(path))
}
