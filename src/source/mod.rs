//! What a drill protects. Every kind backs itself up into a payload stream and
//! restores itself from one, behind the [`Source`] trait; one file per kind.
//!
//! Contract for every kind:
//! - `backup` writes a *consistent* copy (a snapshot, not a torn read of a file
//!   being written) and reports the instant it is consistent as of, which is the
//!   RPO when no canary is used. It never modifies the live source.
//! - `restore` writes only below [`RunCtx::restore_dir`] (an empty folder),
//!   verifies what it writes against the manifest, and returns what it yields;
//!   an error means nothing restored may be trusted. What it can yield is known
//!   before the run ([`Source::yields`]) so that checks are matched at validation.
//! - Every step is blocking, runs on a blocking thread, and stops promptly when
//!   `ctx.cancel` is set: processes go through [`RunCtx::cmd`], loops check the
//!   token. The caller owns compression, hashing of the payload, and moving bytes
//!   to and from the store.

pub mod command;
pub mod directory;
pub mod mysql;
pub mod postgres;
pub mod sqlite;

use std::fmt::Debug;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use toml::Spanned;
use toml::de::DeValue;

use crate::cancel::Cancel;
use crate::context::RunCtx;
use crate::diag::{Diagnostic, KindParser, TomlDoc};
pub use crate::restored::{LiveTree, Restored, Yields};
use crate::store::{Entries, Manifest, SkippedEntry};

pub trait Source: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    /// What is protected, for people.
    fn describe(&self) -> String;
    /// What a restore of this source yields, for matching checks at validation.
    fn yields(&self) -> Yields;
    /// The live folder, for checks that compare a restored tree with it.
    fn live_tree(&self) -> Option<LiveTree> {
        None
    }
    /// The database it protects, for kinds that protect one database of a
    /// server: a restore made by another tool opens the same one.
    fn database_name(&self) -> Option<&str> {
        None
    }
    /// The local path this source reads, for `validate` to warn when it is missing
    /// on this host; `None` when the kind needs none (or makes it, like a seed).
    fn live_path(&self) -> Option<&Path> {
        None
    }
    /// Cheap proof that the source exists and is readable, before anything runs.
    fn preflight(&self, ctx: &RunCtx) -> anyhow::Result<()>;
    /// The decompressed payload's format, recorded in the manifest (`tar`, ...).
    fn payload_format(&self) -> &'static str;
    /// Writes a consistent copy into `out`. [`RunCtx::staging`] is a private
    /// empty folder for temporary files.
    fn backup(&self, ctx: &RunCtx, out: &mut dyn Write) -> anyhow::Result<SourceBackup>;
    /// Rebuilds the data below [`RunCtx::restore_dir`] (an empty folder) from the payload.
    fn restore(&self, ctx: &RunCtx, input: &mut dyn Read, manifest: &Manifest) -> anyhow::Result<Restored>;
    /// Copies the live data below `dest`, for failures that must leave production
    /// alone. Kinds that cannot say why and what to use instead.
    fn replicate(&self, _ctx: &RunCtx, _dest: &Path) -> anyhow::Result<PathBuf> {
        anyhow::bail!(
            "a {} source cannot be replicated into scratch: use `kind = \"declare\"`, or a `command` failure against a test copy",
            self.kind()
        )
    }
    /// Stops whatever `restore` started (a throwaway server, ...). The engine
    /// calls it at the end of every run that had a scratch folder (passed,
    /// failed, aborted or timed out) before the folder is removed, so it must
    /// work from the folder alone, whatever state a half-done restore left there.
    /// It gets a context of its own: the run's token may be cancelled already.
    /// Returns what it stopped, for the record.
    fn cleanup(&self, _ctx: &RunCtx) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
    /// Marker writer for measured RPO, where this kind supports one. `marker`
    /// is the plan's `[probe] marker`: where a folder keeps it.
    fn canary(&self, _marker: Option<&Path>) -> Option<Arc<dyn Canary>> {
        None
    }
}

#[derive(Debug)]
pub struct SourceBackup {
    /// The manifest's entries, in path order (none for payloads that are not trees).
    pub entries: Entries,
    pub consistency_point: DateTime<Utc>,
    /// Entries that could not be backed up meaningfully (sockets, devices); the
    /// manifest and the run's record list them.
    pub skipped: Vec<SkippedEntry>,
}

/// Writes timestamped markers into the live source so that the restored copy
/// shows how recent its data really is.
pub trait Canary: Send + Sync {
    fn write_marker(&self, at: DateTime<Utc>) -> anyhow::Result<()>;
    /// The newest marker in a restored copy written at or before `until` (the
    /// incident). A restore that replays a log to its end (a WAL archive the
    /// daemon's heartbeat kept filling during the drill) holds later markers
    /// too, which a real incident at `until` would not have left. A kind that
    /// keeps one marker (a file) has no older one to give and returns it.
    fn newest_marker(
        &self,
        restored: &Restored,
        until: DateTime<Utc>,
        cancel: &Cancel,
    ) -> anyhow::Result<Option<DateTime<Utc>>>;
}

/// The source kinds. A new kind is one file and one line here.
const KINDS: &[KindParser<Arc<dyn Source>>] = &[
    (directory::KIND, directory::parse),
    (sqlite::KIND, sqlite::parse),
    (postgres::KIND, postgres::parse),
    (mysql::KIND, mysql::parse),
    (command::KIND, command::parse),
];

/// Stops the throwaway servers a restore may have left below a run's folder,
/// from the folder alone, whichever kind started them: for the folders of runs
/// whose process died, before the folders are removed (a server would keep
/// running on deleted files). Returns what it stopped, and what it could not.
pub fn stop_leftovers(ctx: &RunCtx) -> Vec<String> {
    [postgres::cluster::stop(ctx, None), mysql::server::stop(ctx)]
        .into_iter()
        .filter_map(|r| match r {
            Ok(stopped) => stopped,
            Err(e) => Some(format!("{e:#}")),
        })
        .collect()
}

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

pub fn parse(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<Arc<dyn Source>, Diagnostic> {
    doc.parse_kind(value, "source", KINDS)
}

/// Rejects an empty `path`, which would otherwise mean "the working directory".
/// The source's `path`, resolved against the plan's base; an empty one is an error.
pub(crate) fn require_path(doc: &TomlDoc, value: &Spanned<DeValue>, path: &Path) -> Result<PathBuf, Diagnostic> {
    if path.as_os_str().is_empty() {
        return Err(doc.at(
            value.span(),
            "source `path` is empty".into(),
            Some("set `path` to the data to protect".into()),
        ));
    }
    Ok(doc.plan_path(path))
}
