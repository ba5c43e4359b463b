//! What a drill protects. Every kind backs itself up into a payload stream and
//! restores itself from one, behind the [`Source`] trait; one file per kind.
//!
//! Contract for every kind:
//! - `backup` writes a *consistent* copy (a snapshot, not a torn read of a file
//!   being written) and reports the instant it is consistent as of, which is the
//!   RPO when no canary is used. It never modifies the live source.
//! - `restore` writes only below `dest` and verifies what it writes against the
//!   manifest; an error means nothing restored may be trusted.
//! - Both are blocking and run on a blocking thread; the caller owns compression,
//!   hashing of the payload, and moving bytes to and from the store.

pub mod command;
pub mod directory;
pub mod postgres;
pub mod sqlite;

use std::fmt::Debug;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use toml::Spanned;
use toml::de::DeValue;

use crate::diag::{Diagnostic, KindParser, TomlDoc};
use crate::store::{FileEntry, Manifest};

pub trait Source: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    /// What is protected, for people.
    fn describe(&self) -> String;
    /// The live data's path, for checks that compare a restore with it.
    fn live_path(&self) -> Option<&Path> {
        None
    }
    /// Cheap proof that the source exists and is readable, before anything runs.
    fn preflight(&self) -> anyhow::Result<()>;
    /// The decompressed payload's format, recorded in the manifest (`tar`, ...).
    fn payload_format(&self) -> &'static str;
    /// Writes a consistent copy into `out`. `staging` is a private empty folder in
    /// the run's scratch space for temporary files.
    fn backup(&self, staging: &Path, out: &mut dyn Write) -> anyhow::Result<SourceBackup>;
    /// Rebuilds the data below `dest` (an empty folder) from the payload.
    fn restore(&self, input: &mut dyn Read, dest: &Path, manifest: &Manifest) -> anyhow::Result<Restored>;
    /// Copies the live data below `dest`, for failures that must leave production alone.
    fn replicate(&self, dest: &Path) -> anyhow::Result<PathBuf>;
    /// Stops whatever `restore` started below the run's `scratch` folder (a
    /// throwaway server, ...). The engine calls it at the end of every run that
    /// had a scratch folder (passed, failed, aborted or timed out) before the
    /// folder is removed, so it must work from the folder alone, whatever state a
    /// half-done restore left there. Returns what it stopped, for the record.
    fn cleanup(&self, _scratch: &Path) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
    /// Marker writer for measured RPO, where this kind supports one.
    fn canary(&self) -> Option<Arc<dyn Canary>> {
        None
    }
}

#[derive(Debug)]
pub struct SourceBackup {
    pub files: Vec<FileEntry>,
    pub consistency_point: DateTime<Utc>,
    /// Entries that could not be backed up meaningfully (sockets, fifos, ...).
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Restored {
    /// What checks look at: the restored database file, or the restored tree.
    pub path: PathBuf,
    pub files: u64,
    pub bytes: u64,
}

/// Writes timestamped markers into the live source so that the restored copy
/// shows how recent its data really is.
pub trait Canary: Send + Sync {
    fn write_marker(&self, at: DateTime<Utc>) -> anyhow::Result<()>;
    /// The newest marker in a restored copy (at [`Restored::path`]).
    fn newest_marker(&self, restored: &Path) -> anyhow::Result<Option<DateTime<Utc>>>;
}

/// The source kinds. A new kind is one file and one line here.
const KINDS: &[KindParser<Arc<dyn Source>>] = &[
    (directory::KIND, directory::parse),
    (sqlite::KIND, sqlite::parse),
    (postgres::KIND, postgres::parse),
    (command::KIND, command::parse),
];

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

pub fn parse(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<Arc<dyn Source>, Diagnostic> {
    doc.parse_kind(value, "source", KINDS)
}

/// Rejects an empty `path`, which would otherwise mean "the working directory".
pub(crate) fn require_path(doc: &TomlDoc, value: &Spanned<DeValue>, path: &Path) -> Result<(), Diagnostic> {
    if path.as_os_str().is_empty() {
        return Err(doc.at(
            value.span(),
            "source `path` is empty".into(),
            Some("set `path` to the data to protect".into()),
        ));
    }
    Ok(())
}
