//! Drills of the backups a team already has, made by its own tools and left
//! where they are: restic and borg repositories, pgBackRest stanzas, dump files
//! in a store. One file per tool behind [`Existing`].
//!
//! Contract for every kind:
//! - it never writes to, prunes, locks exclusively or "repairs" the team's
//!   repository: only the tool's read-only paths, with lock-free reads where the
//!   tool allows them, caches and state kept in the run's scratch folder;
//! - `list` returns every backup that matches the plan's filters with the time
//!   its data is consistent as of (the RPO without a heartbeat);
//! - `restore` writes only below [`RunCtx::restore_dir`] with the tool's own
//!   restore, verifies what the tool can verify, and returns what the restore
//!   yields, which must be what [`Existing::yields`] promised at validation;
//! - every tool runs through [`RunCtx::cmd`]: cancellable, its stderr tail in errors.

pub mod borg;
pub mod objects;
pub mod pgbackrest;
pub mod restic;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use crate::context::RunCtx;
use crate::diag::{Diagnostic, KindParser, TomlDoc};
use crate::restored::{Restored, Yields};
use crate::source::Source;
use crate::store::Store;

pub trait Existing: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    /// Where the backups are, for people and for the record (`restic:/srv/restic`); no secrets.
    fn repository(&self) -> String;
    /// The repository and the plan's filters, for people.
    fn describe(&self) -> String;
    /// What a restore yields for this live `source`, matched with the checks at validation.
    fn yields(&self, source: &dyn Source) -> Yields;
    /// The tool is there and recent enough, the repository opens with these credentials.
    fn preflight(&self, ctx: &RunCtx) -> anyhow::Result<()>;
    /// The configured store it reads from, for kinds whose backups are objects.
    fn store(&self) -> Option<&str> {
        None
    }
    /// Every backup matching the plan's filters, any order.
    fn list(&self, at: &Access) -> anyhow::Result<Vec<Found>>;
    /// Restores `found` below `at.ctx.restore_dir()` with the tool's own restore.
    fn restore(&self, at: &Access, found: &Found) -> anyhow::Result<Restored>;
    /// Stops what `restore` started (a throwaway server); works from the folder alone.
    fn cleanup(&self, _ctx: &RunCtx) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}

/// What a step is handed: the run, the live source the backups protect, the
/// store named by [`Existing::store`], opened, and (for the restore) T_fail,
/// which a recovery target such as `T_fail - 5m` is resolved against.
pub struct Access<'a> {
    pub ctx: &'a RunCtx,
    pub source: &'a dyn Source,
    pub store: Option<&'a Store>,
    /// The incident's wall-clock time, once it happened (`None` while listing).
    pub t_fail: Option<DateTime<Utc>>,
}

/// One backup in a team's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The tool's own id (restic snapshot id, borg archive name, pgBackRest label, object key).
    pub id: String,
    /// When its data is consistent as of.
    pub time: DateTime<Utc>,
    /// For people: `snapshot 1a2b3c4d of app1:/srv/data`.
    pub label: String,
}

/// `select = "newest" | "random" | "least-tested"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Select {
    #[default]
    Newest,
    Random,
    /// The one restored least recently (never restored first), oldest first among equals.
    LeastTested,
}

impl Select {
    pub fn as_str(self) -> &'static str {
        match self {
            Select::Newest => "newest",
            Select::Random => "random",
            Select::LeastTested => "least-tested",
        }
    }
}

/// Chooses the backup to drill. `window` limits `random` and `least-tested` to
/// backups this young (the newest is always a candidate); `last_restored` says
/// when each backup was last restored by a drill of this plan.
pub fn choose(
    mut found: Vec<Found>,
    select: Select,
    window: Option<Duration>,
    now: DateTime<Utc>,
    last_restored: &dyn Fn(&Found) -> Option<DateTime<Utc>>,
) -> Option<Found> {
    found.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    let newest = found.last()?.clone();
    if select == Select::Newest {
        return Some(newest);
    }
    let cutoff = window.and_then(|w| chrono::Duration::from_std(w).ok()).map(|w| now - w);
    let mut pool: Vec<Found> = found.into_iter().filter(|f| cutoff.is_none_or(|c| f.time >= c)).collect();
    if pool.is_empty() {
        pool.push(newest);
    }
    match select {
        Select::Newest => unreachable!("handled above"),
        Select::Random => {
            let n = (now.timestamp_nanos_opt().unwrap_or_default() as u64 ^ u64::from(std::process::id())) as usize;
            Some(pool.swap_remove(n % pool.len()))
        }
        // Never restored sorts first (None < Some), then the longest ago, then the oldest backup.
        Select::LeastTested => pool.into_iter().min_by_key(|f| (last_restored(f), f.time)),
    }
}

/// A password for a tool: the name of a file or of an environment variable,
/// never the password itself in a plan.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

impl Secret {
    /// Reads it (and registers it for redaction); `None` when neither is set.
    pub fn read(&self, what: &str) -> anyhow::Result<Option<String>> {
        let value = if let Some(f) = &self.file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the {what} file {}: fix the path in the plan", f.display()))?;
            text.lines().next().unwrap_or("").to_string()
        } else if let Some(var) = &self.env {
            std::env::var(var).with_context(|| {
                format!(
                    "environment variable {var}, named in the plan for the {what}, is not set: export it for drdrill"
                )
            })?
        } else {
            return Ok(None);
        };
        crate::redact::register(&value);
        Ok(Some(value))
    }
}

/// The adapters. A new one is one file and one line here.
const KINDS: &[KindParser<Arc<dyn Existing>>] = &[
    (restic::KIND, restic::parse),
    (borg::KIND, borg::parse),
    (pgbackrest::KIND, pgbackrest::parse),
    (objects::KIND, objects::parse),
];

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

/// Parses `[backup.<from>]` with the adapter `from` names. `from` carries the
/// span of the `from` key, for errors about the kind itself.
pub fn parse(
    doc: &TomlDoc,
    from: &Spanned<String>,
    table: Option<&Spanned<DeValue>>,
) -> Result<Arc<dyn Existing>, Diagnostic> {
    let names = kind_names();
    let Some((_, parse)) = KINDS.iter().find(|(k, _)| *k == from.get_ref()) else {
        let fix = match crate::diag::closest(from.get_ref(), &names) {
            Some(k) => format!("did you mean `{k}`? tools are: {}", names.join(" | ")),
            None => format!("tools are: {}", names.join(" | ")),
        };
        return Err(doc.at(from.span(), format!("unknown backup tool `{}`", from.get_ref()), Some(fix)));
    };
    let Some(table) = table else {
        return Err(doc.at(
            from.span(),
            format!("`from = \"{0}\"` needs a [backup.{0}] table saying where the backups are", from.get_ref()),
            Some(format!("add [backup.{}] with at least `repository = \"...\"`", from.get_ref())),
        ));
    };
    parse(doc, table.clone())
}

/// The tree a restore of `source` should be compared as: the basename of the
/// backed-up folder below `root`, or the one file.
pub(crate) fn restored_as(source: &dyn Source, root: &Path, inside: &Path) -> Restored {
    let top = root.join(inside.file_name().unwrap_or(inside.as_os_str()));
    match source.yields().shape {
        crate::restored::Shape::File => Restored::file(root.to_path_buf(), top, 0, 0),
        _ => Restored::tree(top, 0, 0),
    }
}

/// A repository named by a relative folder resolves like every path in a plan;
/// anything with a scheme (`s3:...`, `ssh://...`, `rest:...`) is left as written.
pub(crate) fn local_repository(doc: &TomlDoc, repository: &str) -> String {
    let p = Path::new(repository);
    if repository.is_empty() || p.is_absolute() || repository.contains(':') {
        return repository.to_string();
    }
    doc.plan_path(p).display().to_string()
}

/// Sizes of what a restore wrote, for the record.
pub(crate) fn count_tree(root: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for e in walkdir::WalkDir::new(root).follow_links(false).into_iter().flatten() {
        if e.file_type().is_file() {
            files += 1;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    (files, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn found(id: &str, day: u32) -> Found {
        Found { id: id.into(), time: Utc.with_ymd_and_hms(2026, 11, day, 3, 0, 0).unwrap(), label: id.into() }
    }

    #[test]
    fn least_tested_visits_every_backup_in_the_window_before_repeating() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let all = vec![found("a", 1), found("b", 20), found("c", 25), found("d", 29)];
        let window = Some(Duration::from_secs(15 * 86400));
        let mut tested: std::collections::BTreeMap<String, DateTime<Utc>> = Default::default();
        let mut order = Vec::new();
        for i in 0..6 {
            let t = tested.clone();
            let pick = choose(all.clone(), Select::LeastTested, window, now, &|f| t.get(&f.id).copied()).unwrap();
            tested.insert(pick.id.clone(), now + chrono::Duration::minutes(i));
            order.push(pick.id);
        }
        assert_eq!(order, ["b", "c", "d", "b", "c", "d"], "`a` is outside the window");
        assert_eq!(choose(all.clone(), Select::Newest, None, now, &|_| None).unwrap().id, "d");
        let r = choose(all, Select::Random, window, now, &|_| None).unwrap();
        assert!(["b", "c", "d"].contains(&r.id.as_str()));
        assert_eq!(choose(Vec::new(), Select::Newest, None, now, &|_| None), None);
    }
}
