//! `kind = "corrupt"` (destructive): overwrites `bytes` bytes of a live file at
//! the given `offsets`, or at `count` random offsets. Every overwritten byte is
//! changed (XOR with a non-zero value), the file keeps its size, and the
//! original bytes are kept so that rollback writes them back.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx, Target, Undo};
use crate::diag::{Bounded, Diagnostic, TomlDoc, limit};

pub const KIND: &str = "corrupt";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corrupt {
    path: PathBuf,
    /// How many bytes to overwrite at each offset.
    #[serde(default = "default_bytes")]
    bytes: Bounded<Bytes>,
    /// Byte offsets; without them, `count` random offsets.
    offsets: Option<Vec<u64>>,
    #[serde(default = "default_count")]
    count: Bounded<Count>,
    /// Makes random offsets and bytes reproducible.
    seed: Option<u64>,
}

fn default_bytes() -> Bounded<Bytes> {
    Bounded::of(512)
}

limit!(pub Bytes: u64 = "[[failure]] bytes", 1, 1 << 20);
fn default_count() -> Bounded<Count> {
    Bounded::of(1)
}

limit!(
    /// The original bytes at every offset are kept in memory for rollback.
    pub Count: u32 = "[[failure]] count", 1, 1000
);

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Failure>, Diagnostic> {
    let mut c: Corrupt = doc.deserialize(&value)?;
    c.path = super::require_path(doc, &value, KIND, &c.path)?;
    if c.offsets.as_ref().is_some_and(|o| o.is_empty()) {
        return Err(doc.at(
            value.span(),
            "corrupt has nothing to overwrite".into(),
            Some("give `offsets = [0]`, or remove `offsets` for `count` random offsets".into()),
        ));
    }
    Ok(std::sync::Arc::new(c))
}

impl Failure for Corrupt {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destructive(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let at = match &self.offsets {
            Some(o) => format!("offsets {o:?}"),
            None => format!("{} random offset(s)", self.count),
        };
        format!("overwrite {} bytes of {} at {at} (originals kept for rollback)", self.bytes.get(), self.path.display())
    }

    fn targets(&self) -> Vec<Target> {
        vec![Target::Path(self.path.clone())]
    }

    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String> {
        let path = ctx.guard.path(&self.path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {} for writing", path.display()))?;
        let len = file.metadata()?.len();
        if len < self.bytes.get() {
            bail!("{} is {len} bytes long, shorter than `bytes = {}`", path.display(), self.bytes.get());
        }
        let mut rng = SplitMix(self.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }));
        let offsets: Vec<u64> = match &self.offsets {
            Some(o) => o.clone(),
            None => (0..self.count.get()).map(|_| rng.next() % (len - self.bytes.get() + 1)).collect(),
        };
        if let Some(bad) = offsets.iter().find(|o| **o + self.bytes.get() > len) {
            bail!("offset {bad} + {} bytes is past the end of {} ({len} bytes)", self.bytes.get(), path.display());
        }
        let mut originals = Vec::new();
        for &off in &offsets {
            let mut buf = vec![0u8; self.bytes.get() as usize];
            file.read_exact_at(&mut buf, off).with_context(|| format!("cannot read {} at {off}", path.display()))?;
            originals.push((off, buf));
        }
        // Kept before the first write, in memory for rollback and on disk for a
        // person if drdrill dies before it can roll back.
        let kept = ctx.undo.keep(&path, "original-bytes", "one line per offset: OFFSET HEX-BYTES")?;
        let lines: String = originals.iter().map(|(off, b)| format!("{off} {}\n", hex::encode(b))).collect();
        std::fs::write(&kept, lines)
            .with_context(|| format!("cannot keep the original bytes in {}", kept.display()))?;
        ctx.undo.push(KIND, WriteBack { path: path.clone(), originals: originals.clone(), kept });
        for (off, orig) in &originals {
            let garbage: Vec<u8> = orig.iter().map(|b| b ^ ((rng.next() as u8) | 1)).collect();
            file.write_all_at(&garbage, *off).with_context(|| format!("cannot write {} at {off}", path.display()))?;
        }
        file.sync_all()?;
        Ok(format!("overwrote {} bytes of {} at offsets {offsets:?}", self.bytes.get(), path.display()))
    }
}

/// The bytes that were at each offset, and their copy in the quarantine.
#[derive(Debug)]
struct WriteBack {
    path: PathBuf,
    originals: Vec<(u64, Vec<u8>)>,
    kept: PathBuf,
}

impl Undo for WriteBack {
    fn rollback(&self, _ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        let WriteBack { path, originals, kept } = self;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot reopen {} to write the original bytes back", path.display()))?;
        for (off, orig) in originals {
            file.write_all_at(orig, *off).with_context(|| format!("cannot restore {} at {off}", path.display()))?;
        }
        file.sync_all()?;
        for (off, orig) in originals {
            let mut buf = vec![0u8; orig.len()];
            file.read_exact_at(&mut buf, *off)?;
            if buf != *orig {
                bail!("{} at {off} does not read back as the original bytes", path.display());
            }
        }
        std::fs::remove_file(kept)?;
        Ok(Some(format!("wrote the original bytes of {} back at {} offset(s)", path.display(), originals.len())))
    }
}

/// A small deterministic generator: corruption needs spread, not secrecy.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
