//! `kind = "directory"`: a folder tree with nested and empty folders, symlinks
//! (kept as symlinks), named pipes, modes, mtimes and any UTF-8 names. Sockets
//! and device nodes are skipped, and the manifest and the run's record say so.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Canary, LiveTree, Restored, Source, SourceBackup, Yields};
use crate::archive::{TreeWriter, unpack_verified};
use crate::cancel::Cancel;
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};
use crate::store::Manifest;

pub const KIND: &str = "directory";

/// The canary's file in the protected folder; checks that compare trees ignore it.
pub const CANARY_FILE: &str = ".drdrill-canary";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySource {
    pub path: PathBuf,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Source>, Diagnostic> {
    let mut src: DirectorySource = doc.deserialize(&value)?;
    src.path = super::require_path(doc, &value, &src.path)?;
    Ok(Arc::new(src))
}

impl Source for DirectorySource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("directory {}", self.path.display())
    }

    fn yields(&self) -> Yields {
        Yields::tree(true)
    }

    fn live_path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn live_tree(&self) -> Option<LiveTree> {
        Some(LiveTree { path: self.path.clone(), ignore: vec![CANARY_FILE.into(), format!("{CANARY_FILE}.tmp")] })
    }

    fn preflight(&self, _ctx: &RunCtx) -> anyhow::Result<()> {
        let meta = fs::metadata(&self.path).with_context(|| {
            format!("source directory {} cannot be read: fix `path` in [source] or create it", self.path.display())
        })?;
        if !meta.is_dir() {
            bail!("source {} is not a directory: use `kind = \"sqlite\"` for a database file", self.path.display());
        }
        fs::read_dir(&self.path).with_context(|| format!("cannot list source directory {}", self.path.display()))?;
        Ok(())
    }

    fn payload_format(&self) -> &'static str {
        "tar"
    }

    fn backup(&self, ctx: &RunCtx, out: &mut dyn Write) -> anyhow::Result<SourceBackup> {
        // A folder is read file by file, not frozen: everything written before the
        // walk started is in the copy, later writes may or may not be.
        let consistency_point = Utc::now();
        let mut writer = TreeWriter::new(out, ctx.cancel.clone(), &ctx.staging())?;
        writer.add_tree(&self.path)?;
        let skipped = std::mem::take(&mut writer.skipped);
        let (_, entries) = writer.finish()?;
        Ok(SourceBackup { entries, consistency_point, skipped })
    }

    fn restore(&self, ctx: &RunCtx, input: &mut dyn Read, manifest: &Manifest) -> anyhow::Result<Restored> {
        let root = ctx.restore_dir().join("tree");
        fs::create_dir(&root)?;
        let stats = unpack_verified(input, &root, &manifest.entries, &ctx.cancel)?;
        // Every entry was proven against these: checks compare with them
        // instead of hashing the restored tree again.
        Ok(Restored::tree(root, stats.files, stats.bytes).with_verified(manifest.entries.clone()))
    }

    fn replicate(&self, _ctx: &RunCtx, dest: &Path) -> anyhow::Result<PathBuf> {
        let root = dest.join("tree");
        copy_tree(&self.path, &root)?;
        Ok(root)
    }

    fn canary(&self, marker: Option<&Path>) -> Option<Arc<dyn Canary>> {
        let rel = marker.unwrap_or(Path::new(CANARY_FILE)).to_path_buf();
        Some(Arc::new(DirCanary { file: self.path.join(&rel), rel }))
    }
}

/// Copies a tree, keeping symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    for item in walkdir::WalkDir::new(from).min_depth(1).follow_links(false) {
        let item = item?;
        let target = to.join(item.path().strip_prefix(from).expect("below root"));
        let ft = item.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&target)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(item.path())?, &target)?;
        } else if ft.is_file() {
            fs::copy(item.path(), &target).with_context(|| format!("cannot copy {}", item.path().display()))?;
        }
    }
    Ok(())
}

struct DirCanary {
    file: PathBuf,
    /// The same, relative to the folder: where a restore holds it.
    rel: PathBuf,
}

impl Canary for DirCanary {
    fn write_marker(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        // Write then rename, so a backup never reads half a marker.
        if let Some(dir) = self.file.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = self.file.with_extension("tmp");
        fs::write(&tmp, at.to_rfc3339())?;
        fs::rename(&tmp, &self.file)?;
        Ok(())
    }

    fn newest_marker(
        &self,
        restored: &Restored,
        _until: DateTime<Utc>,
        _cancel: &Cancel,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        match fs::read_to_string(restored.root.join(&self.rel)) {
            Ok(text) => Ok(Some(DateTime::parse_from_rfc3339(text.trim())?.with_timezone(&Utc))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
