//! `kind = "delete"`.
//!
//! Without `path`: deletes a scratch replica of the source, so the drill really
//! loses the data it must then restore, while production stays untouched.
//!
//! With `path = "..."` (destructive): the live path disappears. It is *moved*
//! aside, never unlinked, into the run's quarantine folder when that is on the
//! same filesystem, else next to it as a hidden sibling; rollback moves it back.
//! A rename is atomic, so the path is either fully there or fully quarantined.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx, Target, Undo};
use crate::diag::{Diagnostic, TomlDoc};
use crate::scratch::force_remove;

pub const KIND: &str = "delete";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    /// The live path to delete; none means a scratch replica of the source.
    path: Option<PathBuf>,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Failure>, Diagnostic> {
    let mut d: Delete = doc.deserialize(&value)?;
    if let Some(p) = &d.path {
        d.path = Some(super::require_path(doc, &value, KIND, p)?);
    }
    Ok(std::sync::Arc::new(d))
}

impl Failure for Delete {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destructive(&self) -> bool {
        self.path.is_some()
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("delete {} (moved aside; rollback puts it back)", p.display()),
            None => "delete a scratch replica of the source (production untouched)".into(),
        }
    }

    fn targets(&self) -> Vec<Target> {
        self.path.iter().map(|p| Target::Path(p.clone())).collect()
    }

    fn prepare(&self, ctx: &FailureCtx) -> anyhow::Result<()> {
        if self.path.is_some() {
            return Ok(());
        }
        let dir = replica_dir(ctx);
        std::fs::create_dir_all(&dir)?;
        ctx.source
            .replicate(&ctx.run, &dir)
            .with_context(|| format!("cannot make a scratch replica of {}", ctx.source.describe()))?;
        Ok(())
    }

    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String> {
        match &self.path {
            Some(p) => self.delete_live(p, ctx),
            None => self.delete_replica(ctx),
        }
    }
}

/// Where `prepare` puts the replica: derived from the run and the failure's
/// position, so inject finds it without state kept between the two.
fn replica_dir(ctx: &FailureCtx) -> PathBuf {
    ctx.scratch().join(format!("replica-{}", ctx.index))
}

/// A live path moved aside, to be moved back.
#[derive(Debug)]
struct MoveBack {
    live: PathBuf,
    aside: PathBuf,
}

impl Undo for MoveBack {
    fn rollback(&self, _ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        let MoveBack { live, aside } = self;
        if std::fs::symlink_metadata(live).is_ok() {
            bail!(
                "cannot put {} back: something was created there during the drill; the original is kept at {}",
                live.display(),
                aside.display()
            );
        }
        std::fs::rename(aside, live).with_context(|| {
            format!("cannot move {} back to {}; the original is kept there", aside.display(), live.display())
        })?;
        Ok(Some(format!("put {} back", live.display())))
    }
}

impl Delete {
    fn delete_replica(&self, ctx: &FailureCtx) -> anyhow::Result<String> {
        let replica = replica_dir(ctx);
        anyhow::ensure!(replica.exists(), "replica {} was not prepared", replica.display());
        let entries = walkdir::WalkDir::new(&replica).into_iter().count();
        force_remove(&replica).with_context(|| format!("cannot delete replica {}", replica.display()))?;
        if replica.exists() {
            bail!("replica {} still exists after deletion", replica.display());
        }
        Ok(format!("deleted scratch replica {} ({entries} entries); production untouched", replica.display()))
    }

    fn delete_live(&self, path: &Path, ctx: &FailureCtx) -> anyhow::Result<String> {
        let live = ctx.guard.path(path)?;
        std::fs::symlink_metadata(&live)
            .with_context(|| format!("cannot delete {}: it does not exist", live.display()))?;
        let name = live.file_name().context("cannot delete a filesystem root")?;
        // Used when the quarantine is on another filesystem, where a move would
        // be a copy: a hidden sibling is on the same filesystem by construction.
        let sibling = live.with_file_name(format!(".{}.drdrill-run-{}", name.to_string_lossy(), ctx.run.run_id));
        if std::fs::symlink_metadata(&sibling).is_ok() {
            bail!(
                "{} already exists: an earlier run kept data there; put it back or remove it first",
                sibling.display()
            );
        }
        let in_quarantine = ctx.undo.keep(
            &live,
            "deleted",
            &format!("rollback moves it back; on another filesystem it is kept at {} instead", sibling.display()),
        )?;
        let aside = match std::fs::rename(&live, &in_quarantine) {
            Ok(()) => in_quarantine,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                std::fs::rename(&live, &sibling)
                    .with_context(|| format!("cannot move {} aside to {}", live.display(), sibling.display()))?;
                sibling
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot move {} aside to {}", live.display(), in_quarantine.display()));
            }
        };
        // After the rename, which is atomic: before it there is nothing to move back.
        ctx.undo.push(KIND, MoveBack { live: live.clone(), aside: aside.clone() });
        Ok(format!("deleted {} (kept at {} for rollback)", live.display(), aside.display()))
    }
}
