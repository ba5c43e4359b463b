//! `kind = "truncate"` (destructive): cuts a live file down to `size` bytes
//! (default 0). The cut tail is copied into the run's quarantine folder first,
//! so rollback appends it back and the file is byte-identical again.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx, Target, Undo};
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "truncate";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truncate {
    path: PathBuf,
    /// Bytes to keep.
    #[serde(default)]
    size: u64,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Failure>, Diagnostic> {
    let mut t: Truncate = doc.deserialize(&value)?;
    t.path = super::require_path(doc, &value, KIND, &t.path)?;
    Ok(std::sync::Arc::new(t))
}

impl Failure for Truncate {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destructive(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("truncate {} to {} bytes (the tail is kept for rollback)", self.path.display(), self.size)
    }

    fn targets(&self) -> Vec<Target> {
        vec![Target::Path(self.path.clone())]
    }

    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String> {
        let path = ctx.guard.path(&self.path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let len = file.metadata()?.len();
        if len <= self.size {
            bail!("{} is {len} bytes long; truncating it to {} bytes would change nothing", path.display(), self.size);
        }
        let how =
            format!("bytes {}..{len}; put back with `truncate -s {} FILE && cat TAIL >> FILE`", self.size, self.size);
        let tail_path = ctx.undo.keep(&path, "tail", &how)?;
        let mut tail =
            fs::File::create(&tail_path).with_context(|| format!("cannot create {}", tail_path.display()))?;
        file.seek(SeekFrom::Start(self.size))?;
        let copied = std::io::copy(&mut file, &mut tail)
            .with_context(|| format!("cannot copy the tail of {}", path.display()))?;
        tail.sync_all()?;
        if copied != len - self.size {
            bail!("{} changed size while its tail was copied; not truncating", path.display());
        }
        ctx.undo.push(KIND, AppendTail { path: path.clone(), size: self.size, len, tail: tail_path });
        file.set_len(self.size)?;
        file.sync_all()?;
        Ok(format!("truncated {} from {len} to {} bytes", path.display(), self.size))
    }
}

/// The cut tail, kept in the quarantine, and the length to restore.
#[derive(Debug)]
struct AppendTail {
    path: PathBuf,
    size: u64,
    len: u64,
    tail: PathBuf,
}

impl Undo for AppendTail {
    fn rollback(&self, _ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        let AppendTail { path, size, len, tail: tail_path } = self;
        let (size, len) = (*size, *len);
        let mut file = OpenOptions::new().write(true).open(path).with_context(|| {
            format!("cannot reopen {}; its tail is kept at {}", path.display(), tail_path.display())
        })?;
        file.set_len(size)?;
        file.seek(SeekFrom::Start(size))?;
        let mut tail = fs::File::open(tail_path)?;
        std::io::copy(&mut tail, &mut file)?;
        file.sync_all()?;
        let now = file.metadata()?.len();
        if now != len {
            bail!(
                "{} is {now} bytes after rollback, expected {len}; its tail is kept at {}",
                path.display(),
                tail_path.display()
            );
        }
        fs::remove_file(tail_path)?;
        Ok(Some(format!("appended the {} cut bytes back to {}", len - size, path.display())))
    }
}
