//! Proof that a restore works, run against the restored copy in scratch. One file
//! per kind. The engine retries a failing check until the run's deadline, since a
//! restored service may need a moment before it answers.

pub mod command;
pub mod expect;
pub mod file_hash;
pub mod sql_query;
pub mod sqlite_integrity;
pub mod sqlite_query;
pub mod tree_matches_source;

use std::fmt::Debug;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use toml::Spanned;
use toml::de::DeValue;

use crate::cancel::Cancel;
use crate::diag::{Diagnostic, KindParser, TomlDoc};
use crate::source::Source;

pub trait Check: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    fn describe(&self) -> String;
    /// Whether this check can run against a restore of `source_kind`; the error
    /// says why not and what to use instead.
    fn fits(&self, source_kind: &str) -> Result<(), String>;
    /// One attempt. `Ok` carries what was observed, `Err` why it failed. Blocking.
    fn run(&self, ctx: &CheckCtx) -> Result<String, String>;
}

pub struct CheckCtx {
    /// The restored database file or tree root ([`crate::source::Restored::path`]).
    pub restored: PathBuf,
    pub scratch: PathBuf,
    pub run_id: i64,
    pub source: Arc<dyn Source>,
    pub deadline: Instant,
    pub cancel: Cancel,
}

impl CheckCtx {
    /// Opens a restored SQLite database read-only, so a check can never change
    /// what it is proving.
    pub fn open_sqlite(&self, path: Option<&Path>) -> Result<rusqlite::Connection, String> {
        let db = self.resolve(path)?;
        if !db.is_file() {
            return Err(format!("{} does not exist in the restore", db.display()));
        }
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())
    }

    /// A path named by a check, inside the restored copy. For a single restored
    /// file (a database) `None` means that file; for a tree it is required.
    pub fn resolve(&self, path: Option<&Path>) -> Result<PathBuf, String> {
        match path {
            None if self.restored.is_file() => Ok(self.restored.clone()),
            None => Err("this check needs `path`: the restore is a folder".into()),
            Some(p) if self.restored.is_dir() => Ok(self.restored.join(p)),
            Some(p) => Ok(self.restored.parent().unwrap_or(&self.restored).join(p)),
        }
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

/// Checks that read a SQLite file: the source is one, or a folder that holds one.
pub(crate) fn fits_sqlite_file(kind: &str, source_kind: &str, has_path: bool) -> Result<(), String> {
    match source_kind {
        "sqlite" => Ok(()),
        "directory" if has_path => Ok(()),
        "directory" => Err(format!("{kind} on a directory source needs `path` to the database file inside it")),
        other => Err(format!("{kind} reads a SQLite file, but the source is `{other}`")),
    }
}
