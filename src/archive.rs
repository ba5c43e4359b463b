//! Tar archives of file trees: written with a sha256 per file, and walked
//! against the manifest entry by entry ([`walk_verified`]): an unpack writes each
//! entry inside a scratch folder as it is proven, a scrub only reads them.
//!
//! The payload is a plain tar stream so that `zstd -dc payload.tar.zst | tar x`
//! restores it in a disaster without drdrill.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::cancel::Cancel;
use crate::hashing::{Digest256, HashingReader};
use crate::store::{Entries, EntryKind, EntryReader, EntryWriter, FileEntry, SkippedEntry};

/// Files are copied with this buffer: large enough to keep the disk streaming.
const COPY_BUF: usize = 256 * 1024;

/// What a backup records a filesystem object as, or (as `Err`) what it is when
/// a backup skips it: sockets and device nodes mean nothing in a restored copy.
/// Checks that compare a restore with its source use this same rule, so they
/// expect exactly what a backup takes.
pub fn entry_kind(ft: &fs::FileType) -> Result<EntryKind, &'static str> {
    if ft.is_dir() {
        Ok(EntryKind::Dir)
    } else if ft.is_symlink() {
        Ok(EntryKind::Symlink)
    } else if ft.is_file() {
        Ok(EntryKind::File)
    } else if ft.is_fifo() {
        Ok(EntryKind::Fifo)
    } else if ft.is_socket() {
        Err("socket")
    } else if ft.is_block_device() {
        Err("block device")
    } else if ft.is_char_device() {
        Err("character device")
    } else {
        Err("special file")
    }
}

/// Writes a tree (or single files) into a tar stream, recording a manifest entry
/// for everything written in a spool file (so memory does not grow with the
/// number of files). Entries must be added in path order
/// ([`crate::store::path_order`]), which [`TreeWriter::add_tree`] does.
pub struct TreeWriter<W: Write> {
    builder: tar::Builder<W>,
    entries: EntryWriter,
    cancel: Cancel,
    /// What [`entry_kind`] says a backup cannot take, found while walking.
    pub skipped: Vec<SkippedEntry>,
}

impl<W: Write> TreeWriter<W> {
    /// `spool` is a private folder for the manifest's entries while they are written.
    pub fn new(out: W, cancel: Cancel, spool: &Path) -> anyhow::Result<Self> {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        Ok(TreeWriter { builder, entries: EntryWriter::new_in(spool)?, skipped: Vec::new(), cancel })
    }

    /// Adds everything below `root` (not `root` itself), in path order: each
    /// folder's names sorted bytewise, depth first.
    pub fn add_tree(&mut self, root: &Path) -> anyhow::Result<()> {
        let walker = walkdir::WalkDir::new(root).min_depth(1).follow_links(false).sort_by_file_name();
        for item in walker {
            let item = item.with_context(|| format!("cannot read {}", root.display()))?;
            let rel = item.path().strip_prefix(root).expect("walkdir stays below root");
            let name = rel.to_str().with_context(|| {
                format!("file name {:?} is not valid UTF-8; rename it so the manifest can record it", item.path())
            })?;
            if let Err(e) = self.add_path(item.path(), name) {
                // Deleted between listing and reading: it is simply not in this copy.
                let vanished = e.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::NotFound)
                    || e.root_cause()
                        .downcast_ref::<io::Error>()
                        .is_some_and(|io| io.kind() == io::ErrorKind::NotFound);
                if !vanished {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Adds one filesystem object under the archive name `name`.
    pub fn add_path(&mut self, path: &Path, name: &str) -> anyhow::Result<()> {
        self.cancel.check()?;
        let meta = fs::symlink_metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
        let kind = match entry_kind(&meta.file_type()) {
            Ok(kind) => kind,
            Err(what) => {
                self.skipped.push(SkippedEntry { path: name.to_string(), kind: what.to_string() });
                return Ok(());
            }
        };
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        let mode = meta.mode() & 0o7777;
        let mtime = meta.mtime();
        match kind {
            EntryKind::Dir | EntryKind::Fifo => {
                // A pipe is archived as tar does: its type and mode, no content.
                header.set_size(0);
                self.builder.append_data(&mut header, name, io::empty())?;
                self.entries.push(&entry(name, kind, mode, mtime, 0, None, None))?;
            }
            EntryKind::Symlink => {
                let target = fs::read_link(path)?;
                let target_str = target
                    .to_str()
                    .with_context(|| format!("symlink target of {} is not valid UTF-8", path.display()))?
                    .to_string();
                header.set_size(0);
                self.builder.append_link(&mut header, name, &target)?;
                self.entries.push(&entry(name, EntryKind::Symlink, mode, mtime, 0, None, Some(target_str)))?;
            }
            EntryKind::File => {
                let size = meta.len();
                let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                let mut hasher = Sha256::new();
                let mut count = 0u64;
                let reader = HashingReader::new(
                    io::BufReader::with_capacity(COPY_BUF, file.take(size)),
                    &mut hasher,
                    &mut count,
                );
                self.builder
                    .append_data(&mut header, name, reader)
                    .with_context(|| format!("cannot archive {}", path.display()))?;
                if count != size {
                    bail!(
                        "{} shrank from {size} to {count} bytes while it was being backed up; back it up when it is not being rewritten, or use a source kind that snapshots it",
                        path.display()
                    );
                }
                self.entries.push(&entry(
                    name,
                    EntryKind::File,
                    mode,
                    mtime,
                    size,
                    Some(Digest256::of(hasher)),
                    None,
                ))?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<(W, Entries)> {
        let out = self.builder.into_inner()?;
        Ok((out, self.entries.finish()?))
    }
}

fn entry(
    path: &str,
    kind: EntryKind,
    mode: u32,
    mtime: i64,
    size: u64,
    sha256: Option<Digest256>,
    target: Option<String>,
) -> FileEntry {
    FileEntry { path: path.to_string(), kind, mode, mtime, size, sha256, target }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    /// Entries of every kind.
    pub entries: u64,
    /// Regular files, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

/// What [`walk_verified`] does with an archive entry once its name, kind, size
/// (and a symlink's target) matched the manifest's next entry.
trait Visitor {
    fn dir(&mut self, rel: &Path, name: &str, want: &FileEntry) -> anyhow::Result<()>;
    /// `data` holds exactly `want.size` bytes, whose sha256 the visitor must
    /// check with [`check_content`] (here, or on a thread of its own).
    fn file(&mut self, rel: &Path, name: &str, want: &FileEntry, data: &mut dyn Read) -> anyhow::Result<()>;
    fn symlink(&mut self, rel: &Path, name: &str, want: &FileEntry, target: &Path) -> anyhow::Result<()>;
    fn fifo(&mut self, rel: &Path, name: &str, want: &FileEntry) -> anyhow::Result<()>;
    /// Work the visitor handed off has failed: the walk stops, and the caller
    /// reports that failure instead of the entries left unread.
    fn stopped(&self) -> bool {
        false
    }
}

/// Walks a tar stream against the manifest's entries: every entry must be the
/// manifest's next one, of the same kind and declared size, and nothing may be
/// missing or extra. The first mismatch (or the first bad manifest line: out of
/// order, duplicate, beyond the declared totals) is an error naming the entry,
/// raised before any of that entry reaches the visitor.
fn walk_verified(
    input: impl Read,
    expected: &Entries,
    cancel: &Cancel,
    visitor: &mut dyn Visitor,
) -> anyhow::Result<UnpackStats> {
    // The archive and the manifest list entries in the same order (both are
    // written by one walk), so each entry is matched with the next expected one:
    // neither is held whole, and memory stays flat at any entry count.
    let mut wanted: EntryReader = expected.reader()?;
    let mut stats = UnpackStats::default();
    let mut archive = tar::Archive::new(input);
    for item in archive.entries().context("payload is not a tar stream")? {
        if visitor.stopped() {
            return Ok(stats);
        }
        cancel.check()?;
        let mut item = item.context("payload tar stream is damaged")?;
        let raw = item.path().context("archive entry has an unreadable name")?.into_owned();
        let rel = safe_relative(&raw)?;
        let name = rel.to_str().with_context(|| format!("archive entry {raw:?} is not valid UTF-8"))?.to_string();
        let want = match wanted.next().transpose()? {
            Some(w) if w.path == name => w,
            Some(w) => bail!(
                "archive entry `{name}` is not the manifest's next entry (`{}`): the payload does not belong to this manifest",
                w.path
            ),
            None => {
                bail!("archive entry `{name}` is not in the manifest: the payload does not belong to this manifest")
            }
        };
        stats.entries += 1;
        match (item.header().entry_type(), &want.kind) {
            (tar::EntryType::Directory, EntryKind::Dir) => visitor.dir(&rel, &name, &want)?,
            (tar::EntryType::Regular | tar::EntryType::Continuous, EntryKind::File) => {
                // Checked before a byte is written: a manifest that says 6 bytes
                // never lets 50 MB land in scratch.
                let size = item.size();
                if size != want.size {
                    bail!(
                        "archive entry `{name}` holds {size} bytes but the manifest says {}: the backup is corrupt; nothing of this entry was written",
                        want.size
                    );
                }
                visitor.file(&rel, &name, &want, &mut item)?;
                stats.files += 1;
                stats.bytes += size;
            }
            (tar::EntryType::Symlink, EntryKind::Symlink) => {
                let target = item.link_name()?.context("symlink entry without a target")?.into_owned();
                if want.target.as_deref() != target.to_str() {
                    bail!(
                        "symlink `{name}` points to {target:?} but the manifest says {:?}: the backup is corrupt",
                        want.target
                    );
                }
                visitor.symlink(&rel, &name, &want, &target)?;
            }
            (tar::EntryType::Fifo, EntryKind::Fifo) => visitor.fifo(&rel, &name, &want)?,
            (other, _) => bail!(
                "archive entry `{name}` is a {other:?} but the manifest says {:?}; drdrill restores only files, folders, symlinks and named pipes",
                want.kind
            ),
        }
    }
    if visitor.stopped() {
        return Ok(stats);
    }
    // What the manifest lists beyond the archive's end, counted (and checked) as it is read.
    let mut missing = 0u64;
    let mut first = None;
    for w in wanted {
        let w = w?;
        missing += 1;
        first.get_or_insert(w.path);
    }
    if let Some(first) = first {
        bail!(
            "{missing} entries of the manifest are missing from the payload (from `{first}` on): the payload is truncated or corrupt"
        );
    }
    Ok(stats)
}

/// Reads a tar stream and proves it matches the manifest entry by entry (names,
/// kinds, sizes, every file's sha256, symlink targets, nothing missing or extra)
/// without writing anything: a scrub. The error names the first bad entry.
pub fn verify_tar(input: impl Read, expected: &Entries, cancel: &Cancel) -> anyhow::Result<UnpackStats> {
    walk_verified(input, expected, cancel, &mut Scrubber { buf: vec![0u8; COPY_BUF] })
}

struct Scrubber {
    buf: Vec<u8>,
}

impl Visitor for Scrubber {
    fn dir(&mut self, _: &Path, _: &str, _: &FileEntry) -> anyhow::Result<()> {
        Ok(())
    }

    fn file(&mut self, _: &Path, name: &str, want: &FileEntry, data: &mut dyn Read) -> anyhow::Result<()> {
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        loop {
            let n = data.read(&mut self.buf).with_context(|| format!("payload ends inside `{name}`"))?;
            if n == 0 {
                break;
            }
            hasher.update(&self.buf[..n]);
            count += n as u64;
        }
        check_content(name, want, hasher, count)
    }

    fn symlink(&mut self, _: &Path, _: &str, _: &FileEntry, _: &Path) -> anyhow::Result<()> {
        Ok(())
    }

    fn fifo(&mut self, _: &Path, _: &str, _: &FileEntry) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Unpacks a tar stream into `dest` (which must exist and be empty), refusing any
/// entry that would land outside it, and verifies every entry against `expected`.
pub fn unpack_verified(
    input: impl Read,
    dest: &Path,
    expected: &Entries,
    cancel: &Cancel,
) -> anyhow::Result<UnpackStats> {
    // Creating a file costs the kernel more than writing a small one, so small
    // files are written by a few threads while this one keeps reading the stream.
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let any_failed = AtomicBool::new(false);
    let (jobs, queue) = std::sync::mpsc::sync_channel::<SmallFile>(SMALL_FILE_QUEUE);
    let queue = Mutex::new(queue);
    let (walked, dirs) = std::thread::scope(|scope| {
        for _ in 0..writer_threads() {
            scope.spawn(|| {
                loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = job else { return };
                    if let Err(e) = write_small(&job) {
                        failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        any_failed.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
        let mut unpacker = Unpacker {
            dest,
            jobs: Some(jobs),
            any_failed: &any_failed,
            dirs: Vec::new(),
            safe_dirs: HashSet::new(),
            buf: vec![0u8; COPY_BUF],
        };
        let walked = walk_verified(input, expected, cancel, &mut unpacker);
        // Dropping the sender lets the writers finish the queue and exit.
        (walked, unpacker.into_dirs())
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let stats = walked?;
    // Writing children changes a folder's mtime, so folders are finished last,
    // deepest first, once every writer is done.
    let mut dirs = dirs;
    dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
    for (path, mode, mtime) in dirs {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        set_mtime(&path, mtime, false)?;
    }
    Ok(stats)
}

/// Writes each verified entry below `dest`.
struct Unpacker<'a> {
    dest: &'a Path,
    /// Small files for the writer threads; `None` once they stopped taking any.
    jobs: Option<std::sync::mpsc::SyncSender<SmallFile>>,
    any_failed: &'a AtomicBool,
    /// Folders with their mode and mtime, set once everything inside is written.
    dirs: Vec<(PathBuf, u32, i64)>,
    /// Folders (relative to dest) already proven to be real folders below dest:
    /// most entries share a parent, so the symlink walk runs once per folder.
    safe_dirs: HashSet<PathBuf>,
    buf: Vec<u8>,
}

impl<'a> Unpacker<'a> {
    fn into_dirs(self) -> Vec<(PathBuf, u32, i64)> {
        self.dirs
    }

    /// The entry's full path, its parent made and proven safe.
    fn place(&mut self, rel: &Path) -> anyhow::Result<PathBuf> {
        prepare_parent(self.dest, rel, &mut self.safe_dirs)?;
        Ok(self.dest.join(rel))
    }
}

impl Visitor for Unpacker<'_> {
    fn dir(&mut self, rel: &Path, name: &str, want: &FileEntry) -> anyhow::Result<()> {
        let full = self.place(rel)?;
        fs::create_dir_all(&full).with_context(|| format!("cannot create {}", full.display()))?;
        // create_dir_all accepts a symlink to a folder; a folder entry must be a real one.
        if fs::symlink_metadata(&full).map(|m| !m.file_type().is_dir()).unwrap_or(true) {
            bail!("archive entry `{name}` would turn a symlink into a folder; refusing this backup");
        }
        self.safe_dirs.insert(rel.to_path_buf());
        self.dirs.push((full, want.mode, want.mtime));
        Ok(())
    }

    fn file(&mut self, rel: &Path, name: &str, want: &FileEntry, data: &mut dyn Read) -> anyhow::Result<()> {
        let full = self.place(rel)?;
        if want.size <= SMALL_FILE {
            let mut bytes = Vec::with_capacity(want.size as usize);
            data.read_to_end(&mut bytes).with_context(|| format!("payload ends inside `{name}`"))?;
            let job = SmallFile { full, name: name.to_string(), want: want.clone(), data: bytes };
            let sent = self.jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok());
            if !sent {
                self.jobs = None;
            }
            Ok(())
        } else {
            write_verified(&full, name, want, data, &mut self.buf)
        }
    }

    fn symlink(&mut self, rel: &Path, _: &str, want: &FileEntry, target: &Path) -> anyhow::Result<()> {
        let full = self.place(rel)?;
        std::os::unix::fs::symlink(target, &full)
            .with_context(|| format!("cannot create symlink {}", full.display()))?;
        set_mtime(&full, want.mtime, true)?;
        Ok(())
    }

    fn fifo(&mut self, rel: &Path, _: &str, want: &FileEntry) -> anyhow::Result<()> {
        let full = self.place(rel)?;
        let c = CString::new(full.as_os_str().as_bytes()).context("a path with a NUL byte")?;
        // SAFETY: `c` is a NUL-terminated path that lives across the call. mkfifo
        // fails on an existing name, so it never reuses something planted there.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("cannot create named pipe {}", full.display()));
        }
        fs::set_permissions(&full, fs::Permissions::from_mode(want.mode))?;
        // The no-follow call sets times by name; the other opens the file, and
        // opening a pipe waits for a writer that never comes.
        set_mtime(&full, want.mtime, true)?;
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.jobs.is_none() || self.any_failed.load(Ordering::SeqCst)
    }
}

/// Files up to this size are read whole and written by the writer threads.
const SMALL_FILE: u64 = 256 * 1024;
/// Small files queued for the writers: bounds memory to a few MiB.
const SMALL_FILE_QUEUE: usize = 16;

struct SmallFile {
    full: PathBuf,
    name: String,
    want: FileEntry,
    data: Vec<u8>,
}

fn writer_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4)
}

/// Streams one file from the archive into `full`, hashing as it goes; fails
/// unless it matches the manifest entry.
fn write_verified(
    full: &Path,
    name: &str,
    want: &FileEntry,
    data: &mut dyn Read,
    buf: &mut [u8],
) -> anyhow::Result<()> {
    let mut file = create_exclusive(full)?;
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    loop {
        let n = data.read(buf).with_context(|| format!("payload ends inside `{name}`"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        count += n as u64;
        file.write_all(&buf[..n]).with_context(|| format!("cannot write {}", full.display()))?;
    }
    finish_verified(file, name, want, hasher, count)
}

/// [`write_verified`] for a small file already read whole, on a writer thread.
fn write_small(job: &SmallFile) -> anyhow::Result<()> {
    let mut file = create_exclusive(&job.full)?;
    let hasher = Sha256::new_with_prefix(&job.data);
    file.write_all(&job.data).with_context(|| format!("cannot write {}", job.full.display()))?;
    finish_verified(file, &job.name, &job.want, hasher, job.data.len() as u64)
}

/// create_new never follows a link planted at the final name.
fn create_exclusive(full: &Path) -> anyhow::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(full)
        .with_context(|| format!("cannot create {}", full.display()))
}

/// The one comparison of a file's content with its manifest entry, for unpack and scrub.
fn check_content(name: &str, want: &FileEntry, hasher: Sha256, count: u64) -> anyhow::Result<()> {
    let got = Digest256::of(hasher);
    if want.sha256 != Some(got) || count != want.size {
        bail!(
            "file `{name}` in the payload does not match the manifest (sha256 {got}, {count} bytes; manifest says {}, {} bytes): the backup is corrupt",
            want.sha256.map_or("none".to_string(), |d| d.to_string()),
            want.size
        );
    }
    Ok(())
}

fn finish_verified(file: fs::File, name: &str, want: &FileEntry, hasher: Sha256, count: u64) -> anyhow::Result<()> {
    check_content(name, want, hasher, count)?;
    file.set_permissions(fs::Permissions::from_mode(want.mode))?;
    let t = filetime::FileTime::from_unix_time(want.mtime, 0);
    filetime::set_file_handle_times(&file, Some(t), Some(t))?;
    Ok(())
}

/// The entry name as a plain relative path, or an error if it would escape.
fn safe_relative(raw: &Path) -> anyhow::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => bail!(
                "archive entry {raw:?} would land outside the scratch folder; refusing this backup (it is corrupt or malicious) and writing nothing outside scratch"
            ),
        }
    }
    if out.as_os_str().is_empty() {
        bail!("archive entry {raw:?} has an empty name");
    }
    Ok(out)
}

/// Makes sure the folder `rel` will be written into exists and is reached
/// without passing through a symlink, creating it if needed.
fn prepare_parent(dest: &Path, rel: &Path, safe_dirs: &mut HashSet<PathBuf>) -> anyhow::Result<()> {
    let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else { return Ok(()) };
    if safe_dirs.contains(parent) {
        return Ok(());
    }
    refuse_symlinked_parents(dest, rel)?;
    let full = dest.join(parent);
    fs::create_dir_all(&full).with_context(|| format!("cannot create {}", full.display()))?;
    for ancestor in parent.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        safe_dirs.insert(ancestor.to_path_buf());
    }
    Ok(())
}

/// An archive may plant `a -> /etc` and then `a/passwd`; refuse to write through
/// any symlink that is already inside `dest`.
fn refuse_symlinked_parents(dest: &Path, rel: &Path) -> anyhow::Result<()> {
    let mut cur = dest.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "archive entry {rel:?} would be written through the symlink {}, which may point outside the scratch folder; refusing this backup",
                cur.display()
            ),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", cur.display())),
        }
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: i64, symlink: bool) -> io::Result<()> {
    let t = filetime::FileTime::from_unix_time(mtime, 0);
    if symlink { filetime::set_symlink_file_times(path, t, t) } else { filetime::set_file_times(path, t, t) }
}

/// Unpacks a tar archive that has no manifest (a team's own tarball) into
/// `dest`, with the same refusals as [`unpack_verified`]: no entry lands
/// outside `dest` or is written through a symlink. Files, folders and
/// symlinks are restored; other entry types are skipped.
pub fn unpack_untrusted(input: impl Read, dest: &Path, cancel: &Cancel) -> anyhow::Result<UnpackStats> {
    let mut safe_dirs: HashSet<PathBuf> = HashSet::new();
    let mut stats = UnpackStats::default();
    let mut archive = tar::Archive::new(input);
    let mut buf = vec![0u8; COPY_BUF];
    for item in archive.entries().context("not a tar stream")? {
        cancel.check()?;
        let mut item = item.context("tar stream is damaged")?;
        let raw = item.path().context("archive entry has an unreadable name")?.into_owned();
        let rel = match safe_relative(&raw) {
            Ok(r) => r,
            // `./` at the top of many tarballs names the root itself.
            Err(_) if raw.components().all(|c| matches!(c, Component::CurDir)) => continue,
            Err(e) => return Err(e),
        };
        let full = dest.join(&rel);
        prepare_parent(dest, &rel, &mut safe_dirs)?;
        match item.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&full).with_context(|| format!("cannot create {}", full.display()))?;
                if fs::symlink_metadata(&full).map(|m| !m.file_type().is_dir()).unwrap_or(true) {
                    bail!("archive entry {raw:?} would turn a symlink into a folder; refusing this archive");
                }
                safe_dirs.insert(rel);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = create_exclusive(&full)?;
                loop {
                    let n = item.read(&mut buf).with_context(|| format!("archive ends inside {raw:?}"))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&buf[..n]).with_context(|| format!("cannot write {}", full.display()))?;
                    stats.bytes += n as u64;
                }
                if let Ok(mode) = item.header().mode() {
                    file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
                }
                stats.files += 1;
            }
            tar::EntryType::Symlink => {
                let target = item.link_name()?.context("symlink entry without a target")?.into_owned();
                std::os::unix::fs::symlink(&target, &full)
                    .with_context(|| format!("cannot create symlink {}", full.display()))?;
            }
            _ => {}
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_names_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert!(safe_relative(Path::new(bad)).is_err(), "{bad}");
        }
        assert_eq!(safe_relative(Path::new("./a/b")).unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn round_trip_with_verification() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("d/empty")).unwrap();
        fs::write(src.path().join("d/f.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("f.txt", src.path().join("d/link")).unwrap();
        let spool = tempfile::tempdir().unwrap();
        let mut w = TreeWriter::new(Vec::new(), Cancel::new(), spool.path()).unwrap();
        w.add_tree(src.path()).unwrap();
        let (tar, entries) = w.finish().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let stats = unpack_verified(&tar[..], dest.path(), &entries, &Cancel::new()).unwrap();
        assert_eq!(stats.files, 1);
        assert_eq!(fs::read(dest.path().join("d/f.txt")).unwrap(), b"hello");
        assert_eq!(fs::read_link(dest.path().join("d/link")).unwrap(), PathBuf::from("f.txt"));
        assert!(dest.path().join("d/empty").is_dir());

        // The same payload against a manifest that disagrees must fail.
        let mut lying: Vec<FileEntry> = entries.reader().unwrap().map(Result::unwrap).collect();
        for e in &mut lying {
            if e.kind == EntryKind::File {
                e.sha256 = Some(Digest256([0; 32]));
            }
        }
        let lying = Entries::listed(lying);
        let dest2 = tempfile::tempdir().unwrap();
        let err = unpack_verified(&tar[..], dest2.path(), &lying, &Cancel::new()).unwrap_err();
        assert!(format!("{err:#}").contains("does not match the manifest"), "{err:#}");
    }
}
