//! A backup's manifest, read and written as a stream so that memory does not
//! grow with the number of files.
//!
//! Format 3 is JSON Lines. Line 1 is a small header object (format, plan,
//! backup id, source kind, times, drdrill version, payload, skipped entries and
//! the `totals` of the entries below); every further line is one [`FileEntry`].
//! Entries are in **path order**: paths are compared component by component
//! (split at `/`), each component bytewise. That is the order of a depth-first
//! walk that visits each folder's names sorted bytewise, which is how a backup
//! walks its source and so the order the tar stream holds the entries in; it is
//! a total order in which a folder comes right before everything inside it.
//! A restore therefore walks the archive and the manifest in step, one entry
//! of each at a time, with no index of either.
//!
//! Formats 1 and 2 (one JSON object with a `files` array) are still read; their
//! entries are held in memory, as they always were.
//!
//! A reader trusts nothing: an entry out of order, a duplicate path, more
//! entries or bytes than the header declares, or fewer entries than it declares
//! (a truncated manifest) is an error naming the line.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tempfile::TempPath;

use crate::hashing::sha256_hex;

/// 3: JSON Lines with a header. 2: one JSON object, checksum beside it.
/// 1: one JSON object without a checksum. All three are read.
pub const MANIFEST_FORMAT: u32 = 3;
pub(super) const OBJECT_FORMAT: u32 = 2;
pub(super) const LEGACY_FORMAT: u32 = 1;
pub(super) const MANIFEST_NAME: &str = "manifest.json";

/// Metadata of one backup; its encoding ([`Manifest::write_to`]) is the
/// contract with restore tools.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The format it was read in; a manifest is always written as format 3.
    pub format: u32,
    pub plan: String,
    pub backup_id: String,
    pub source_kind: String,
    pub created_at: DateTime<Utc>,
    /// The newest instant whose data the backup is known to hold (RPO without a canary).
    pub consistency_point: DateTime<Utc>,
    pub drdrill_version: String,
    pub payload: PayloadInfo,
    /// Entries of the source the backup did not take (sockets, device nodes).
    pub skipped: Vec<SkippedEntry>,
    /// The backed-up tree, in path order; read with [`Entries::reader`].
    pub entries: Entries,
}

/// Something in the source that a backup cannot carry, and what it was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SkippedEntry {
    pub path: String,
    /// `socket`, `block device`, `character device`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PayloadInfo {
    /// Object name inside the backup folder, e.g. `payload.tar.zst`.
    pub name: String,
    /// What the decompressed stream is: `tar`, or a tool's own dump format.
    pub format: String,
    pub compression: String,
    pub size: u64,
    pub sha256: String,
    /// Bytes before compression.
    pub raw_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A named pipe: restored as an empty pipe, as tar does.
    Fifo,
}

/// One entry of the backed-up tree, as restore must reproduce it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<crate::hashing::Digest256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many entries a manifest lists, how many are files, and their bytes:
/// declared in the header, so a reader can refuse a manifest that lists more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
}

impl Totals {
    fn add(&mut self, e: &FileEntry) {
        self.entries += 1;
        if e.kind == EntryKind::File {
            self.files += 1;
        }
        self.bytes = self.bytes.saturating_add(e.size);
    }
}

/// The order of entries in a manifest and a tar stream: component by
/// component, each bytewise (see the module's documentation).
pub fn path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The header line of format 3, and (with `files`) the whole object of formats 1 and 2.
#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    plan: String,
    backup_id: String,
    source_kind: String,
    created_at: DateTime<Utc>,
    consistency_point: DateTime<Utc>,
    drdrill_version: String,
    payload: PayloadInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<SkippedEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    totals: Option<Totals>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileEntry>>,
}

impl Manifest {
    /// The declared totals of its entries.
    pub fn totals(&self) -> Totals {
        self.entries.totals
    }

    /// Writes the manifest as format 3: the header line, then one line per entry.
    pub fn write_to(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let header = Header {
            format: MANIFEST_FORMAT,
            plan: self.plan.clone(),
            backup_id: self.backup_id.clone(),
            source_kind: self.source_kind.clone(),
            created_at: self.created_at,
            consistency_point: self.consistency_point,
            drdrill_version: self.drdrill_version.clone(),
            payload: self.payload.clone(),
            skipped: self.skipped.clone(),
            totals: Some(self.entries.totals),
            files: None,
        };
        serde_json::to_writer(&mut *out, &header)?;
        out.write_all(b"\n")?;
        match &self.entries.held {
            // Lines spooled by a backup (or read and verified): copied as they are.
            Held::Lines { path, has_header } => {
                let mut file = BufReader::with_capacity(COPY_BUF, open_spool(path)?);
                if *has_header {
                    file.read_until(b'\n', &mut Vec::new())?;
                }
                io::copy(&mut file, out).context("cannot copy the manifest's entries")?;
            }
            Held::Listed(files) => {
                for e in files.iter() {
                    serde_json::to_writer(&mut *out, e)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    }

    /// Reads a manifest from `file` (whose bytes the caller has proven), and
    /// keeps the file as the source of its entries.
    pub(super) fn from_spool(path: TempPath) -> anyhow::Result<Manifest> {
        let mut file = BufReader::with_capacity(COPY_BUF, open_spool(&path)?);
        let mut first = Vec::new();
        file.read_until(b'\n', &mut first)?;
        let header = match serde_json::from_slice::<Header>(&first) {
            Ok(h) if h.format == MANIFEST_FORMAT => h,
            // Formats 1 and 2 are one object, maybe spread over many lines.
            _ => {
                file.rewind()?;
                let h: Header = serde_json::from_reader(&mut file).context("it is not a manifest")?;
                if h.format == MANIFEST_FORMAT {
                    bail!("line 1 is not a manifest header: a format {MANIFEST_FORMAT} header fills exactly one line");
                }
                h
            }
        };
        let entries = match (header.format, header.files, header.totals) {
            (MANIFEST_FORMAT, None, Some(totals)) => {
                Entries { held: Held::Lines { path: Arc::new(path), has_header: true }, totals, declared: true }
            }
            (MANIFEST_FORMAT, _, _) => {
                bail!("line 1, its header, must declare `totals` and no `files` list")
            }
            (_, Some(files), _) => Entries::listed(files),
            (_, None, _) => bail!("it has no `files` list"),
        };
        Ok(Manifest {
            format: header.format,
            plan: header.plan,
            backup_id: header.backup_id,
            source_kind: header.source_kind,
            created_at: header.created_at,
            consistency_point: header.consistency_point,
            drdrill_version: header.drdrill_version,
            payload: header.payload,
            skipped: header.skipped,
            entries,
        })
    }

    /// Why this manifest is trusted less than a current one, if it is.
    pub fn integrity_note(&self) -> Option<String> {
        (self.format == LEGACY_FORMAT).then(|| {
            "format 1 manifest (written before manifests had a checksum): accepted, but only the payload's and each file's sha256 protect it; its other fields (times, modes, sizes) are unprotected. A fresh backup replaces it".to_string()
        })
    }
}

const COPY_BUF: usize = 256 * 1024;

fn open_spool(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("cannot open the manifest's local copy {}", path.display()))
}

/// Where a manifest's entries are: a local file of JSON lines, or a list.
/// Cloning is cheap; the file is removed when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Entries {
    held: Held,
    totals: Totals,
    /// The totals came from a header and bound what a reader accepts.
    declared: bool,
}

#[derive(Debug, Clone)]
enum Held {
    /// JSON lines in a local file; `has_header` when line 1 is the header.
    Lines { path: Arc<TempPath>, has_header: bool },
    /// A format 1 or 2 manifest's list, or one made in memory.
    Listed(Arc<Vec<FileEntry>>),
}

impl Entries {
    /// Entries held in memory (formats 1 and 2, and small hand-made lists).
    pub fn listed(files: Vec<FileEntry>) -> Entries {
        let mut totals = Totals::default();
        files.iter().for_each(|e| totals.add(e));
        Entries { held: Held::Listed(Arc::new(files)), totals, declared: false }
    }

    /// No entries: payloads that are not trees (dumps, command streams).
    pub fn none() -> Entries {
        Entries::listed(Vec::new())
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The entries one by one, checked as they are read (see [`EntryReader`]).
    pub fn reader(&self) -> anyhow::Result<EntryReader> {
        let from = match &self.held {
            Held::Lines { path, has_header } => {
                let mut file = BufReader::with_capacity(COPY_BUF, open_spool(path)?);
                if *has_header {
                    file.read_until(b'\n', &mut Vec::new())?;
                }
                From::Lines(file)
            }
            Held::Listed(files) => From::Listed(files.clone(), 0),
        };
        Ok(EntryReader {
            from,
            declared: self.declared.then_some(self.totals),
            seen: Totals::default(),
            last: None,
            line: Vec::new(),
            done: false,
        })
    }
}

enum From {
    Lines(BufReader<File>),
    Listed(Arc<Vec<FileEntry>>, usize),
}

/// A manifest's entries in order, each checked against the ones before it and
/// the header's totals; the first problem is an error naming its line, and
/// ends the iteration.
pub struct EntryReader {
    from: From,
    declared: Option<Totals>,
    seen: Totals,
    last: Option<String>,
    line: Vec<u8>,
    done: bool,
}

impl EntryReader {
    /// Where entry number `n` (from 0) is: its line of the file (after the
    /// header), or its place in a list.
    fn place(&self, n: u64) -> String {
        match self.from {
            From::Lines(_) => format!("manifest line {}", n + 2),
            From::Listed(..) => format!("manifest entry {}", n + 1),
        }
    }

    fn next_raw(&mut self) -> anyhow::Result<Option<FileEntry>> {
        let n = self.seen.entries;
        match &mut self.from {
            From::Listed(files, i) => {
                let e = files.get(*i).cloned();
                *i += 1;
                Ok(e)
            }
            From::Lines(file) => {
                self.line.clear();
                let read = file.read_until(b'\n', &mut self.line).context("cannot read the manifest's entries")?;
                if read == 0 {
                    return Ok(None);
                }
                if self.line.last() != Some(&b'\n') {
                    bail!("{} is cut off (no line end): the manifest is truncated", self.place(n));
                }
                serde_json::from_slice(&self.line).map(Some).map_err(|e| {
                    let text = String::from_utf8_lossy(&self.line);
                    let shown: String = text.trim_end().chars().take(80).collect();
                    anyhow::anyhow!("{} is not a manifest entry ({e}): {shown:?}", self.place(n))
                })
            }
        }
    }

    fn check(&mut self, e: &FileEntry) -> anyhow::Result<()> {
        let n = self.seen.entries;
        let at = || format!("{} (`{}`)", self.place(n), e.path);
        if let Some(last) = &self.last {
            match path_order(last, &e.path) {
                Ordering::Less => {}
                Ordering::Equal => bail!("{}: duplicate path, also on the entry before it", at()),
                Ordering::Greater => bail!(
                    "{} is out of order: it sorts before `{last}` on the entry before it, and entries are in path order (component by component, bytewise)",
                    at()
                ),
            }
        }
        let mut seen = self.seen;
        seen.add(e);
        if let Some(d) = self.declared {
            for (what, got, declared) in
                [("entries", seen.entries, d.entries), ("files", seen.files, d.files), ("bytes", seen.bytes, d.bytes)]
            {
                if got > declared {
                    bail!(
                        "{} brings the manifest to {got} {what}, more than the {declared} its header declares: the manifest is damaged",
                        at()
                    );
                }
            }
        }
        self.seen = seen;
        remember(&mut self.last, &e.path);
        Ok(())
    }

    fn finish(&self) -> anyhow::Result<()> {
        let Some(d) = self.declared.filter(|d| *d != self.seen) else { return Ok(()) };
        if self.seen.entries == d.entries {
            bail!(
                "its {} entries hold {} files and {} bytes but its header declares {} files and {} bytes: the manifest is damaged",
                d.entries,
                self.seen.files,
                self.seen.bytes,
                d.files,
                d.bytes
            );
        }
        bail!(
            "{} is missing: the manifest ends after {} entries ({} files, {} bytes) but its header declares {} entries ({} files, {} bytes); it is truncated",
            self.place(self.seen.entries),
            self.seen.entries,
            self.seen.files,
            self.seen.bytes,
            d.entries,
            d.files,
            d.bytes
        )
    }
}

impl Iterator for EntryReader {
    type Item = anyhow::Result<FileEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.next_raw().and_then(|e| match e {
            Some(e) => self.check(&e).map(|()| Some(e)),
            None => self.finish().map(|()| None),
        });
        match step {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Spools a backup's entries to a local file as they are made, so that a
/// backup of millions of files holds none of them in memory.
pub struct EntryWriter {
    out: BufWriter<File>,
    path: TempPath,
    totals: Totals,
    last: Option<String>,
}

impl EntryWriter {
    /// A spool in `dir` (a run's private staging folder).
    pub fn new_in(dir: &Path) -> anyhow::Result<EntryWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let file = tempfile::Builder::new()
            .prefix("manifest-entries-")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create the manifest's spool file in {}", dir.display()))?;
        let (file, path) = file.into_parts();
        Ok(EntryWriter { out: BufWriter::with_capacity(COPY_BUF, file), path, totals: Totals::default(), last: None })
    }

    /// Adds the next entry; entries must come in path order.
    pub fn push(&mut self, e: &FileEntry) -> anyhow::Result<()> {
        if let Some(last) = &self.last
            && path_order(last, &e.path) != Ordering::Less
        {
            bail!("`{}` was added to the manifest after `{last}`: a backup must add entries in path order", e.path);
        }
        serde_json::to_writer(&mut self.out, e)?;
        self.out.write_all(b"\n").context("cannot write the manifest's spool file")?;
        self.totals.add(e);
        remember(&mut self.last, &e.path);
        Ok(())
    }

    /// The entries written, read back from the spool.
    pub fn finish(self) -> anyhow::Result<Entries> {
        self.out.into_inner().map_err(|e| e.into_error()).context("cannot write the manifest's spool file")?;
        Ok(Entries {
            held: Held::Lines { path: Arc::new(self.path), has_header: false },
            totals: self.totals,
            declared: true,
        })
    }
}

/// The content of `manifest.json.sha256` for a manifest's bytes: one
/// `sha256sum` line, so `sha256sum -c manifest.json.sha256` checks it by hand.
pub fn manifest_checksum(bytes: &[u8]) -> String {
    checksum_line(&sha256_hex(bytes))
}

pub(super) fn checksum_line(sha256: &str) -> String {
    format!("{sha256}  {MANIFEST_NAME}\n")
}

/// Keeps `path` as the last one seen, reusing the buffer: reader and writer
/// compare every entry with its predecessor, a million times for a big tree.
fn remember(last: &mut Option<String>, path: &str) {
    match last {
        Some(l) => {
            l.clear();
            l.push_str(path);
        }
        None => *last = Some(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            mtime: 0,
            size: 0,
            sha256: None,
            target: None,
        }
    }

    #[test]
    fn path_order_is_the_order_of_a_sorted_depth_first_walk() {
        let walk = ["a", "a/b", "a/b/c", "a.txt", "a0", "b", "é"];
        for w in walk.windows(2) {
            assert_eq!(path_order(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(path_order("x/y", "x/y"), Ordering::Equal);
    }

    #[test]
    fn declared_totals_that_the_entries_do_not_add_up_to_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EntryWriter::new_in(tmp.path()).unwrap();
        w.push(&dir("a")).unwrap();
        let mut entries = w.finish().unwrap();
        entries.totals.bytes = 5;
        let e = entries.reader().unwrap().find_map(Result::err).expect("a mismatch of the totals is an error");
        assert!(
            format!("{e:#}").contains("hold 0 files and 0 bytes but its header declares 0 files and 5 bytes"),
            "{e:#}"
        );
    }

    #[test]
    fn the_writer_refuses_entries_out_of_order_and_the_reader_reads_them_back() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EntryWriter::new_in(tmp.path()).unwrap();
        w.push(&dir("a")).unwrap();
        w.push(&dir("a/b")).unwrap();
        assert!(w.push(&dir("a")).is_err());
        let entries = w.finish().unwrap();
        assert_eq!(entries.totals(), Totals { entries: 2, files: 0, bytes: 0 });
        let read: Vec<_> = entries.reader().unwrap().map(|e| e.unwrap().path).collect();
        assert_eq!(read, ["a", "a/b"]);
    }
}
