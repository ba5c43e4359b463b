//! `kind = "tree-matches-source"`: the restored tree equals the live folder, entry
//! by entry (kind, mode, size, sha256, symlink target). Meant for folders that do
//! not change between backup and check; drdrill's own canary file is ignored, and
//! so is what a backup never takes (sockets, device nodes: [`entry_kind`]).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Check, CheckCtx, Need};
use crate::archive::entry_kind;
use crate::cancel::Cancel;
use crate::diag::{Diagnostic, TomlDoc};
use crate::hashing::sha256_file;
use crate::store::EntryKind;

pub const KIND: &str = "tree-matches-source";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeMatchesSource {}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Check>, Diagnostic> {
    let c: TreeMatchesSource = doc.deserialize(&value)?;
    Ok(std::sync::Arc::new(c))
}

/// What must be equal about one entry; `None` for what a backup does not take.
fn fingerprint(path: &Path) -> std::io::Result<Option<String>> {
    let meta = fs::symlink_metadata(path)?;
    let mode = meta.mode() & 0o7777;
    Ok(Some(match entry_kind(&meta.file_type()) {
        Ok(EntryKind::Symlink) => format!("symlink -> {}", fs::read_link(path)?.display()),
        Ok(EntryKind::Dir) => format!("dir mode {mode:o}"),
        Ok(EntryKind::File) => {
            let (sha, size) = sha256_file(path)?;
            format!("file mode {mode:o} size {size} sha256 {sha}")
        }
        Ok(EntryKind::Fifo) => format!("named pipe mode {mode:o}"),
        Err(_) => return Ok(None),
    }))
}

fn snapshot(root: &Path, ignore: &[String], cancel: &Cancel) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        let item = item.map_err(|e| format!("cannot walk {}: {e}", root.display()))?;
        let rel = item.path().strip_prefix(root).expect("below root").to_string_lossy().into_owned();
        if ignore.contains(&rel) {
            continue;
        }
        let fp = fingerprint(item.path()).map_err(|e| format!("cannot read {}: {e}", item.path().display()))?;
        if let Some(fp) = fp {
            out.insert(rel, fp);
        }
    }
    Ok(out)
}

impl Check for TreeMatchesSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        "restored tree equals the live folder".into()
    }

    fn needs(&self) -> Need {
        Need::TreeAndLive
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        let live = ctx.live.as_ref().ok_or("the source has no live folder to compare with")?;
        let want = snapshot(&live.path, &live.ignore, &ctx.run.cancel)?;
        let got = snapshot(&ctx.restored.path, &live.ignore, &ctx.run.cancel)?;
        let live = &live.path;
        let mut diffs = Vec::new();
        for (path, fp) in &want {
            match got.get(path) {
                None => diffs.push(format!("missing `{path}`")),
                Some(g) if g != fp => diffs.push(format!("`{path}` differs: live {fp}, restored {g}")),
                Some(_) => {}
            }
        }
        diffs.extend(got.keys().filter(|p| !want.contains_key(*p)).map(|p| format!("extra `{p}`")));
        if diffs.is_empty() {
            Ok(format!("{} entries identical to {}", want.len(), live.display()))
        } else {
            let shown: Vec<_> = diffs.iter().take(5).cloned().collect();
            Err(format!("{} differences, first: {}", diffs.len(), shown.join("; ")))
        }
    }
}
