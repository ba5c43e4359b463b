//! `kind = "tree-matches-source"`: the restored tree equals the live folder, entry
//! by entry (kind, mode, size, sha256, symlink target). Meant for folders that do
//! not change between backup and check; drdrill's own canary file is ignored, and
//! so is what a backup never takes (sockets, device nodes: [`entry_kind`]).
//!
//! Both sides are walked in path order and merged, so memory stays flat. When
//! the restore verified every entry against its manifest, the restored side is
//! that manifest: the restored files are not hashed a second time.

use std::cmp::Ordering;
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
use crate::store::{Entries, EntryKind, FileEntry, path_order};

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

/// The same words for a manifest entry the restore proved it wrote.
fn entry_fingerprint(e: &FileEntry) -> String {
    match e.kind {
        EntryKind::Symlink => format!("symlink -> {}", e.target.as_deref().unwrap_or("")),
        EntryKind::Dir => format!("dir mode {:o}", e.mode),
        EntryKind::File => format!(
            "file mode {:o} size {} sha256 {}",
            e.mode,
            e.size,
            e.sha256.map_or("none".to_string(), |d| d.to_string())
        ),
        EntryKind::Fifo => format!("named pipe mode {:o}", e.mode),
    }
}

/// (path, fingerprint) of every entry of one side, in path order.
type Side<'a> = Box<dyn Iterator<Item = Result<(String, String), String>> + 'a>;

/// A folder's entries in path order (each folder's names sorted bytewise,
/// depth first: the order of manifests), fingerprinted one at a time.
fn walk<'a>(root: &'a Path, ignore: &'a [String], cancel: &'a Cancel) -> Side<'a> {
    let walker = walkdir::WalkDir::new(root).min_depth(1).follow_links(false).sort_by_file_name();
    Box::new(walker.into_iter().filter_map(move |item| {
        if cancel.is_cancelled() {
            return Some(Err("cancelled".into()));
        }
        let item = match item {
            Ok(item) => item,
            Err(e) => return Some(Err(format!("cannot walk {}: {e}", root.display()))),
        };
        let rel = item.path().strip_prefix(root).expect("below root").to_string_lossy().into_owned();
        if ignore.contains(&rel) {
            return None;
        }
        match fingerprint(item.path()) {
            Ok(fp) => fp.map(|fp| Ok((rel, fp))),
            Err(e) => Some(Err(format!("cannot read {}: {e}", item.path().display()))),
        }
    }))
}

/// The entries a restore verified, as the restored side: nothing is read again.
fn verified<'a>(entries: &Entries, ignore: &'a [String]) -> Result<Side<'a>, String> {
    let reader = entries.reader().map_err(|e| format!("cannot read the manifest the restore verified: {e:#}"))?;
    Ok(Box::new(reader.filter_map(move |e| match e {
        Ok(e) if ignore.contains(&e.path) => None,
        Ok(e) => {
            let fp = entry_fingerprint(&e);
            Some(Ok((e.path, fp)))
        }
        Err(e) => Some(Err(format!("cannot read the manifest the restore verified: {e:#}"))),
    })))
}

/// Differences shown in a failure; all are counted.
const SHOWN: usize = 5;

/// Merges two path-ordered sides: the number of live entries, and the
/// differences (how many, and the first few named).
fn compare(live: Side, restored: Side) -> Result<(u64, u64, Vec<String>), String> {
    let (mut live, mut restored) = (live.peekable(), restored.peekable());
    let (mut entries, mut count, mut shown) = (0u64, 0u64, Vec::new());
    let mut note = |d: String| {
        count += 1;
        if shown.len() < SHOWN {
            shown.push(d);
        }
    };
    loop {
        let l = live.peek().cloned().transpose()?;
        let r = restored.peek().cloned().transpose()?;
        let order = match (&l, &r) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((lp, _)), Some((rp, _))) => path_order(lp, rp),
        };
        if order != Ordering::Greater
            && let Some((path, fp)) = l.as_ref()
        {
            entries += 1;
            live.next();
            if order == Ordering::Less {
                note(format!("`{path}` appeared in the live folder ({fp}) and is not in the restore"));
                continue;
            }
        }
        if let Some((path, rfp)) = r {
            restored.next();
            match l {
                Some((_, lfp)) if order == Ordering::Equal && lfp != rfp => {
                    note(format!("`{path}` changed: live {lfp}, restored {rfp}"))
                }
                _ if order == Ordering::Greater => {
                    note(format!("`{path}` vanished from the live folder (restored: {rfp})"))
                }
                _ => {}
            }
        }
    }
    Ok((entries, count, shown))
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
        let cancel = &ctx.run.cancel;
        let live_side = walk(&live.path, &live.ignore, cancel);
        // A restore that proved every entry against its manifest hands the
        // manifest over: only the live side is read and hashed. Other restores
        // (restic, borg, a team's tarball) are read here.
        let (restored_side, against) = match &ctx.restored.verified {
            Some(entries) => (verified(entries, &live.ignore)?, "the manifest the restore verified"),
            None => (walk(&ctx.restored.path, &live.ignore, cancel), "the restored tree"),
        };
        let (entries, count, shown) = compare(live_side, restored_side)?;
        if count == 0 {
            Ok(format!("{entries} entries identical to {} (compared with {against})", live.path.display()))
        } else {
            Err(format!("{count} differences, first: {}", shown.join("; ")))
        }
    }
}
