//! `kind = "sqlite"`: one SQLite database, copied online through SQLite's backup
//! API so the copy is consistent while the application keeps writing.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Canary, Restored, Source, SourceBackup, Yields};
use crate::archive::{TreeWriter, unpack_verified};
use crate::backoff::Backoff;
use crate::cancel::Cancel;
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};
use crate::store::Manifest;

pub const KIND: &str = "sqlite";

/// The canary's side table in the protected database.
pub const CANARY_TABLE: &str = "_drdrill_canary";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSource {
    pub path: PathBuf,
    /// SQL that creates the database when it does not exist yet: lets a demo or a
    /// test plan bring its own data. Never applied to an existing database.
    pub seed: Option<PathBuf>,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Source>, Diagnostic> {
    let mut src: SqliteSource = doc.deserialize(&value)?;
    src.path = super::require_path(doc, &value, &src.path)?;
    src.seed = src.seed.map(|s| doc.plan_path(&s));
    Ok(Arc::new(src))
}

impl SqliteSource {
    fn file_name(&self) -> anyhow::Result<&str> {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("source path {} has no UTF-8 file name", self.path.display()))
    }

    fn open_live(&self, flags: OpenFlags) -> anyhow::Result<Connection> {
        let conn = Connection::open_with_flags(&self.path, flags)
            .with_context(|| format!("cannot open SQLite database {}", self.path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }

    fn create_from_seed(&self, seed: &Path) -> anyhow::Result<()> {
        let sql = fs::read_to_string(seed)
            .with_context(|| format!("cannot read seed SQL {} named by [source] seed", seed.display()))?;
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent)?;
        }
        // Build next to the target and rename, so a failed seed leaves no half database.
        let tmp = self.path.with_extension("seeding");
        let _ = fs::remove_file(&tmp);
        let conn = Connection::open(&tmp)?;
        conn.execute_batch(&sql).with_context(|| format!("seed SQL {} failed", seed.display()))?;
        conn.pragma_update(None, "journal_mode", "wal")?;
        drop(conn);
        fs::rename(&tmp, &self.path)?;
        tracing::info!(db = %self.path.display(), seed = %seed.display(), "created source database from seed");
        Ok(())
    }

    /// Copies the live database to `dest` with the backup API, returning the
    /// instant the copy is consistent as of.
    fn snapshot_to(&self, dest: &Path, cancel: &Cancel) -> anyhow::Result<DateTime<Utc>> {
        let src = self.open_live(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        let mut dst = Connection::open(dest).with_context(|| format!("cannot create {}", dest.display()))?;
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        // One step copies every page under a single read transaction, so the copy
        // holds exactly what was committed when the step began: taking the clock
        // first makes the recorded point conservative, never optimistic.
        let mut wait = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
        loop {
            let point = Utc::now();
            match backup.step(-1).with_context(|| format!("online backup of {} failed", self.path.display()))? {
                rusqlite::backup::StepResult::Done => return Ok(point),
                // A writer holds the lock: wait for it, unless the run ends first.
                _ => {
                    if cancel.sleep(wait.next_delay()) {
                        return Err(crate::cancel::Cancelled.into());
                    }
                }
            }
        }
    }
}

impl Source for SqliteSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    fn live_path(&self) -> Option<&Path> {
        // A seed creates a missing database on the first run.
        self.seed.is_none().then_some(self.path.as_path())
    }
    fn yields(&self) -> Yields {
        Yields::file()
    }

    fn preflight(&self, _ctx: &RunCtx) -> anyhow::Result<()> {
        if !self.path.exists() {
            match &self.seed {
                Some(seed) => self.create_from_seed(seed)?,
                None => bail!(
                    "source database {} does not exist: fix `path` in [source], or add `seed = \"file.sql\"` to create it",
                    self.path.display()
                ),
            }
        }
        let conn = self.open_live(OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
            .with_context(|| format!("{} is not a readable SQLite database", self.path.display()))?;
        Ok(())
    }

    fn payload_format(&self) -> &'static str {
        "tar"
    }

    fn backup(&self, ctx: &RunCtx, out: &mut dyn Write) -> anyhow::Result<SourceBackup> {
        let name = self.file_name()?;
        let copy = ctx.staging().join(name);
        let consistency_point = self.snapshot_to(&copy, &ctx.cancel)?;
        let mut writer = TreeWriter::new(out, ctx.cancel.clone(), &ctx.staging())?;
        writer.add_path(&copy, name)?;
        let (_, entries) = writer.finish()?;
        fs::remove_file(&copy).ok();
        Ok(SourceBackup { entries, consistency_point, skipped: Vec::new() })
    }

    fn restore(&self, ctx: &RunCtx, input: &mut dyn Read, manifest: &Manifest) -> anyhow::Result<Restored> {
        let dest = ctx.restore_dir();
        let stats = unpack_verified(input, &dest, &manifest.entries, &ctx.cancel)?;
        let name = manifest
            .entries
            .reader()?
            .next()
            .transpose()?
            .map(|f| f.path)
            .context("manifest of a sqlite backup lists no database file")?;
        Ok(Restored::file(dest.clone(), dest.join(name), stats.files, stats.bytes))
    }

    fn replicate(&self, ctx: &RunCtx, dest: &Path) -> anyhow::Result<PathBuf> {
        let copy = dest.join(self.file_name()?);
        self.snapshot_to(&copy, &ctx.cancel)?;
        Ok(copy)
    }

    fn canary(&self, _marker: Option<&Path>) -> Option<Arc<dyn Canary>> {
        Some(Arc::new(SqliteCanary { db: self.path.clone() }))
    }
}

struct SqliteCanary {
    db: PathBuf,
}

impl Canary for SqliteCanary {
    fn write_marker(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        let conn = Connection::open(&self.db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(&format!("CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (at_ms INTEGER NOT NULL);"))?;
        let ms = at.timestamp_millis();
        // Keep the side table small: an hour of markers is plenty to find the newest.
        conn.execute(&format!("DELETE FROM {CANARY_TABLE} WHERE at_ms < ?1"), [ms - 3_600_000])?;
        conn.execute(&format!("INSERT INTO {CANARY_TABLE} (at_ms) VALUES (?1)"), [ms])?;
        Ok(())
    }

    fn newest_marker(
        &self,
        restored: &Restored,
        until: DateTime<Utc>,
        _cancel: &Cancel,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let conn = Connection::open_with_flags(&restored.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let exists: Option<String> = conn
            .query_row("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?1", [CANARY_TABLE], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let ms: Option<i64> = conn.query_row(
            &format!("SELECT max(at_ms) FROM {CANARY_TABLE} WHERE at_ms <= ?1"),
            [until.timestamp_millis()],
            |r| r.get(0),
        )?;
        Ok(ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single()))
    }
}
