//! Proof that a restore works, run against the restored copy in scratch. One file
//! per kind.
//!
//! Contract for every kind:
//! - `needs` says what it needs from the restore ([`Need`]); plan validation
//!   matches it with what the source's restore yields, so a check never names a
//!   source kind and a new source fits every check that its restore serves.
//! - `run` is one attempt: `Ok` carries what was observed, `Err` why it failed.
//!   It reads only inside the restore ([`CheckCtx::file`] refuses a symlink out
//!   of it) and stops when the run is cancelled.
//! - `retries` says whether a failed attempt can turn into a pass by waiting:
//!   a query against a server that is still starting can, a hash of a static
//!   file cannot. The engine retries only those, until the run's deadline, so a
//!   deterministic failure is reported in seconds, not after the whole timeout.

pub mod command;
pub mod expect;
pub mod file_hash;
pub mod http;
pub mod safeguard;
pub mod sql_query;
pub mod sqlite_integrity;
pub mod sqlite_query;
pub mod tree_matches_source;

use std::fmt::Debug;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;
use toml::de::DeValue;

use crate::cancel::Hook;
use crate::context::RunCtx;
use crate::diag::{Diagnostic, KindParser, TomlDoc};
pub use crate::restored::Need;
use crate::restored::{LiveTree, Restored, Shape};

pub trait Check: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    fn describe(&self) -> String;
    /// What it needs from the restore, matched at validation.
    fn needs(&self) -> Need;
    /// Whether a failed attempt may pass later (it waits for something to come up).
    fn retries(&self) -> bool {
        false
    }
    /// One attempt. `Ok` carries what was observed, `Err` why it failed. Blocking.
    fn run(&self, ctx: &CheckCtx) -> Result<String, String>;
}

pub struct CheckCtx {
    pub run: RunCtx,
    pub restored: Restored,
    /// The live folder the restore came from, for comparing checks.
    pub live: Option<LiveTree>,
}

impl CheckCtx {
    /// A file named by a check, inside the restored copy and never through a
    /// symlink out of it. For a restore that yields one file, `None` means that
    /// file; a tree needs a path.
    pub fn file(&self, path: Option<&Path>) -> Result<PathBuf, String> {
        match (path, self.restored.shape) {
            (None, Shape::File) => Ok(self.restored.path.clone()),
            (None, _) => Err("this check needs `path`: the restore is a folder".into()),
            (Some(p), _) => crate::paths::inside(&self.restored.root, p),
        }
    }

    /// Opens a restored SQLite database read-only, so a check can never change
    /// what it is proving. A cancelled run interrupts whatever statement runs.
    pub fn open_sqlite(&self, path: Option<&Path>) -> Result<(rusqlite::Connection, Hook), String> {
        let db = self.file(path)?;
        if !db.is_file() {
            return Err(format!("{} does not exist in the restore", db.display()));
        }
        let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
        let interrupt = conn.get_interrupt_handle();
        let hook = self.run.cancel.on_cancel(move || interrupt.interrupt());
        Ok((conn, hook))
    }
}

/// The check kinds. A new kind is one file and one line here.
const KINDS: &[KindParser<std::sync::Arc<dyn Check>>] = &[
    (sqlite_integrity::KIND, sqlite_integrity::parse),
    (sqlite_query::KIND, sqlite_query::parse),
    (tree_matches_source::KIND, tree_matches_source::parse),
    (file_hash::KIND, file_hash::parse),
    (command::KIND, command::parse),
    (sql_query::KIND, sql_query::parse),
    (http::KIND, http::parse),
];

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

pub fn parse(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<std::sync::Arc<dyn Check>, Diagnostic> {
    doc.parse_kind(value, "check", KINDS)
}

/// Check paths stay inside the restored copy.
pub(crate) fn relative_path(doc: &TomlDoc, value: &Spanned<DeValue>, path: Option<&Path>) -> Result<(), Diagnostic> {
    if let Some(p) = path
        && p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(doc.at(
            value.span(),
            format!("check path {} must be relative to the restored copy, without `..`", p.display()),
            Some("write it as it appears inside the backup, e.g. `path = \"data/app.db\"`".into()),
        ));
    }
    Ok(())
}
