//! Moving payloads between a source and a store: zstd compression, sha256 of
//! the compressed stream, and bounded buffering in between so memory stays flat
//! whatever the data size.
//!
//! Sources and archives are blocking code; object_store is async. The two meet
//! in a bounded channel of 1 MiB chunks, which also gives backpressure: a slow
//! store slows the reader instead of filling memory.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::archive::{UnpackStats, verify_tar};
use crate::cancel::{Cancel, Cancelled};
use crate::context::RunCtx;
use crate::hashing::{HashingReader, HashingWriter, hex_digest};
use crate::source::{Restored, Source};
use crate::store::{MANIFEST_FORMAT, Manifest, PayloadInfo, Store, new_backup_id};

const CHUNK: usize = 1024 * 1024;
const CHANNEL_CHUNKS: usize = 4;

/// What a backup is made with.
#[derive(Debug, Clone, Copy)]
pub struct BackupOptions {
    pub compression_level: i32,
}

impl Default for BackupOptions {
    fn default() -> Self {
        // Level 1: drills are timed, and level 1 keeps zstd faster than the disk.
        BackupOptions { compression_level: 1 }
    }
}

/// Takes a backup of `source` into `store` under `plan`. The manifest is written
/// only after the payload upload completed; on any error the partial upload is
/// aborted and no manifest exists.
pub async fn take_backup(
    source: Arc<dyn Source>,
    store: &Store,
    plan: &str,
    ctx: RunCtx,
    options: BackupOptions,
) -> anyhow::Result<Manifest> {
    let cancel = ctx.cancel.clone();
    let created_at = Utc::now();
    let backup_id = new_backup_id(created_at);
    let payload_name = format!("payload.{}.zst", source.payload_format());
    let path = Store::payload_path(plan, &backup_id, &payload_name);
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);

    let src = source.clone();
    let producer_cancel = cancel.clone();
    let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let sink = ChunkWriter::new(tx, producer_cancel);
        let mut encoder = zstd::Encoder::new(HashingWriter::new(sink), options.compression_level)?;
        encoder.include_checksum(true)?;
        // Compression runs on libzstd's own workers while this thread reads and
        // hashes files: the two halves of a backup overlap on separate cores.
        encoder.set_parameter(zstd_safe::CParameter::NbWorkers(compression_workers()))?;
        let mut counted = CountingWriter { inner: encoder, count: 0 };
        let backup = src.backup(&ctx, &mut counted)?;
        let raw_size = counted.count;
        let (mut sink, sha256, size) = counted.inner.finish()?.finish();
        sink.flush()?;
        Ok((backup, sha256, size, raw_size))
    });

    let mut upload = store.upload(&path);
    let mut upload_error = None;
    // A store that stops answering must not outlive the run's deadline.
    let uploaded = async {
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = upload.put(chunk).await {
                upload_error = Some(e);
                break;
            }
        }
    };
    let cut = tokio::select! {
        _ = uploaded => false,
        _ = cancel.cancelled() => true,
    };
    // Closing the channel makes a still-running producer fail fast.
    drop(rx);
    let produced = producer.await.context("backup thread panicked")?;
    if cut || cancel.is_cancelled() {
        upload.abort().await.ok();
        return Err(anyhow::Error::new(Cancelled).context("the backup was stopped"));
    }
    if let Some(e) = upload_error {
        upload.abort().await.ok();
        return Err(store.annotate(e, format!("upload of {path} to store `{}` failed", store.name)));
    }
    let (backup, sha256, size, raw_size) = match produced {
        Ok(v) => v,
        Err(e) => {
            upload.abort().await.ok();
            return Err(e.context(format!("backup of {} failed", source.describe())));
        }
    };
    upload
        .shutdown()
        .await
        .map_err(|e| store.annotate(e, format!("upload of {path} to store `{}` did not complete", store.name)))?;
    if let Some(first) = backup.skipped.first() {
        tracing::warn!(count = backup.skipped.len(), first = %first.path, "special files were not backed up");
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        plan: plan.to_string(),
        backup_id,
        source_kind: source.kind().to_string(),
        created_at,
        consistency_point: backup.consistency_point,
        drdrill_version: crate::VERSION.to_string(),
        payload: PayloadInfo {
            name: payload_name,
            format: source.payload_format().to_string(),
            compression: "zstd".into(),
            size,
            sha256,
            raw_size,
        },
        skipped: backup.skipped,
        entries: backup.entries,
    };
    store.put_manifest(&manifest).await?;
    Ok(manifest)
}

/// Removes what killed backups of `plan` left in `store` (partial uploads older
/// than `older_than`, the plan's timeout, so no running backup owns them).
/// Returns what happened, for the run's record; a failure to sweep does not
/// stop a backup.
pub async fn sweep_partial_uploads(store: &Store, plan: &str, older_than: Duration) -> Option<String> {
    match store.remove_stale_uploads(plan, older_than).await {
        Ok(removed) if removed.is_empty() => None,
        Ok(removed) => Some(format!(
            "removed {} partial upload(s) left by interrupted backups: {}",
            removed.len(),
            removed.join(", ")
        )),
        Err(e) => Some(format!("could not remove partial uploads left by interrupted backups: {e:#}")),
    }
}

/// What a run's record must say about a backup beyond its size: the entries it
/// did not take, and a manifest trusted less than a current one.
pub fn backup_notes(m: &Manifest) -> Vec<String> {
    let mut notes = Vec::new();
    if !m.skipped.is_empty() {
        const SHOWN: usize = 10;
        let names: Vec<String> = m.skipped.iter().take(SHOWN).map(|s| format!("`{}` ({})", s.path, s.kind)).collect();
        let more = m.skipped.len().saturating_sub(SHOWN);
        notes.push(format!(
            "skipped {} entr{} a backup cannot carry: {}{}",
            m.skipped.len(),
            if m.skipped.len() == 1 { "y" } else { "ies" },
            names.join(", "),
            if more > 0 { format!(" and {more} more (all listed in the manifest)") } else { String::new() }
        ));
    }
    notes.extend(m.integrity_note());
    notes
}

/// What a restore did and how long it waited on the store.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub restored: Restored,
    /// Time spent waiting for bytes from the store: the "fetch" share of the
    /// pipelined fetch + restore.
    pub fetch_wait: Duration,
}

/// Streams a backup from `store` into `dest`, verifying the payload's sha256
/// while it flows and each file against the manifest as it lands. Fails before
/// fetching anything when scratch has less room than the backup unpacks to.
pub async fn restore_backup(
    source: Arc<dyn Source>,
    store: &Store,
    manifest: &Arc<Manifest>,
    ctx: RunCtx,
) -> anyhow::Result<RestoreOutcome> {
    ensure_room(&ctx.run_dir, manifest)?;
    let (m, cancel) = (manifest.clone(), ctx.cancel.clone());
    // Two stages on two threads: one fetches, hashes and decompresses; the
    // source's restore unpacks, hashes and writes files on the other.
    let (restored, fetch_wait) =
        fetch_decoded(store, manifest, cancel, move |decoded| source.restore(&ctx, decoded, &m)).await?;
    Ok(RestoreOutcome { restored, fetch_wait })
}

/// What a scrub proved about one backup.
#[derive(Debug, Clone)]
pub struct ScrubReport {
    /// The payload's sha256 and size, equal to the manifest's.
    pub sha256: String,
    pub size: u64,
    /// The archive walk of a tar payload; `None` for other formats (pg_dump,
    /// command streams), which only the payload's hash covers.
    pub walked: Option<UnpackStats>,
}

/// Scrubs one backup without writing anything: streams its payload, checking
/// its sha256, size and decompressed size, and walks a tar payload against
/// the manifest entry by entry (kind, size, sha256, nothing missing or extra),
/// so a payload that belongs to another backup's manifest is caught. The error
/// names the first bad entry.
pub async fn scrub_backup(store: &Store, manifest: &Arc<Manifest>, cancel: Cancel) -> anyhow::Result<ScrubReport> {
    let (m, c) = (manifest.clone(), cancel.clone());
    let (walked, _) = fetch_decoded(store, manifest, cancel, move |decoded| {
        // The format every tree source writes; others are opaque streams.
        if m.payload.format == "tar" { verify_tar(decoded, &m.entries, &c).map(Some) } else { Ok(None) }
    })
    .await?;
    Ok(ScrubReport { sha256: manifest.payload.sha256.clone(), size: manifest.payload.size, walked })
}

/// Scratch must hold at least the decompressed payload: a restore that fills
/// the disk fails late, after the fetch, and starves whatever else uses it.
fn ensure_room(dir: &Path, m: &Manifest) -> anyhow::Result<()> {
    let free = free_bytes(dir).with_context(|| format!("cannot tell how much space is free in {}", dir.display()))?;
    if free < m.payload.raw_size {
        // As a full disk, so that it is explained (and its fix named) like one.
        return Err(anyhow::Error::new(io::Error::from(io::ErrorKind::StorageFull)).context(format!(
            "not enough space in scratch before the restore: {} has {free} bytes free, backup {} unpacks to {} bytes (its manifest's raw size)",
            dir.display(),
            m.backup_id,
            m.payload.raw_size
        )));
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is NUL-terminated and `st` is a buffer statvfs fills on success.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Fetches a backup's payload and hands its decompressed stream to `consume` on
/// a thread of its own, checking the payload's sha256, size and decompressed
/// size while it flows. The payload's checksum is decided even when `consume`
/// stops early, and a mismatch wins over `consume`'s own error: nothing read
/// from a corrupt payload is trusted. Returns `consume`'s result and the time
/// spent waiting for the store.
async fn fetch_decoded<T: Send + 'static>(
    store: &Store,
    manifest: &Arc<Manifest>,
    cancel: Cancel,
    consume: impl FnOnce(&mut dyn Read) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<(T, Duration)> {
    let opened = Instant::now();
    let mut stream = tokio::select! {
        s = store.payload_stream(manifest) => s?,
        _ = cancel.cancelled() => return Err(anyhow::Error::new(Cancelled).context("the restore was stopped")),
    };
    let open_wait = opened.elapsed();
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let forward_cancel = cancel.clone();
    let forward = tokio::spawn(async move {
        loop {
            // On cancel the sender is dropped: the reader ends, and sees the cancel.
            let item = tokio::select! {
                item = stream.next() => item,
                _ = forward_cancel.cancelled() => None,
            };
            let Some(item) = item else { break };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    let m = manifest.clone();
    let store_name = store.name.clone();
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<(T, Duration)> {
        let (dtx, drx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
        let consume_cancel = cancel.clone();
        let consumer = std::thread::spawn(move || -> anyhow::Result<T> {
            let mut decoded = ChunkReader {
                rx: drx,
                current: Bytes::new(),
                waited: Duration::ZERO,
                cancel: consume_cancel,
                failed: None,
            };
            let out = consume(&mut decoded)?;
            // Trailing tar padding is part of the payload: read it so the stream ends cleanly.
            io::copy(&mut decoded, &mut io::sink()).context("payload has damaged trailing data")?;
            Ok(out)
        });
        let mut reader =
            ChunkReader { rx, current: Bytes::new(), waited: Duration::ZERO, cancel: cancel.clone(), failed: None };
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        let decoded = {
            let hashing = HashingReader::new(&mut reader, &mut hasher, &mut count);
            let sink = ChunkWriter::new(dtx, cancel.clone());
            zstd::Decoder::new(hashing).and_then(|mut decoder| {
                let mut sink = sink;
                let n = io::copy(&mut decoder, &mut sink)?;
                sink.flush()?;
                Ok(n)
            })
            // The sink (and so the channel) is dropped here: the consumer sees the end.
        };
        // Hash whatever the decoder left unread, so the payload's checksum is decided
        // even when decoding or unpacking stopped halfway.
        let drained = io::copy(&mut HashingReader::new(&mut reader, &mut hasher, &mut count), &mut io::sink());
        let consumed = consumer.join().unwrap_or_else(|_| Err(anyhow::anyhow!("restore thread panicked")));
        if cancel.is_cancelled() {
            return Err(anyhow::Error::new(Cancelled).context("the restore was stopped"));
        }
        if let Some(e) = &reader.failed {
            bail!("reading the payload from store `{store_name}` failed: {e}");
        }
        drained.with_context(|| format!("reading the payload from store `{store_name}` failed"))?;
        let sha256 = hex_digest(hasher);
        // A consumer that stopped early breaks the pipe; that is its error, not the decoder's.
        let (decoded, decode_error) = match decoded {
            Ok(n) => (Some(n), None),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => (None, None),
            Err(e) => (None, Some(e)),
        };
        if sha256 != m.payload.sha256 || count != m.payload.size {
            let cause = decode_error
                .map(|e| e.to_string())
                .or_else(|| consumed.as_ref().err().map(|e| format!("{e:#}")))
                .map(|e| format!(" (restore stopped with: {e})"))
                .unwrap_or_default();
            bail!(
                "payload checksum mismatch for backup {}: manifest says sha256 {} ({} bytes), store `{store_name}` returned sha256 {sha256} ({count} bytes); the payload is corrupt or was tampered with, so nothing restored from it is trusted{cause}",
                m.backup_id,
                m.payload.sha256,
                m.payload.size,
            );
        }
        if let Some(e) = decode_error {
            bail!("payload of backup {} cannot be decompressed: {e}", m.backup_id);
        }
        let out = consumed?;
        if let Some(raw) = decoded.filter(|n| *n != m.payload.raw_size) {
            bail!(
                "payload of backup {} decompresses to {raw} bytes but its manifest says {}: the manifest does not describe this payload",
                m.backup_id,
                m.payload.raw_size
            );
        }
        Ok((out, reader.waited))
    })
    .await
    .context("restore thread panicked")?;
    forward.abort();
    result.map(|(out, waited)| (out, waited + open_wait))
}

/// libzstd worker threads for compression: one per core, at most four.
fn compression_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
}

/// Chunks a [`ChunkWriter`] remembers to take their memory back: those in the
/// channel and two more. An upload holds up to three parts of five chunks;
/// remembering those too halved a backup's page faults again but kept 8 MiB
/// more resident, against the flat-memory target.
const RECLAIMABLE: usize = CHANNEL_CHUNKS + 2;

struct ChunkWriter {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    cancel: Cancel,
    /// Chunks handed on, oldest first, whose buffers are used again once the
    /// receiver has dropped them. A new 1 MiB buffer per chunk is a new mmap
    /// (main.rs pins glibc's mmap threshold at 128 KiB for flat memory) and
    /// 256 page faults: most of a 1 GiB backup's system time went there.
    sent: VecDeque<Bytes>,
}

impl ChunkWriter {
    fn new(tx: mpsc::Sender<Bytes>, cancel: Cancel) -> ChunkWriter {
        ChunkWriter { tx, buf: BytesMut::with_capacity(CHUNK), cancel, sent: VecDeque::new() }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf = self.reclaim();
        self.sent.push_back(chunk.clone());
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the store stopped accepting data"))
    }

    /// An empty buffer of [`CHUNK`] bytes: the oldest sent chunk's that
    /// nothing else holds any more, else a new one.
    fn reclaim(&mut self) -> BytesMut {
        if let Some(i) = self.sent.iter().position(Bytes::is_unique)
            && let Some(Ok(mut b)) = self.sent.remove(i).map(Bytes::try_into_mut)
        {
            b.clear();
            // The whole allocation again: nothing else refers to it.
            b.reserve(CHUNK);
            return b;
        }
        // Held long (a store that buffers parts): forgotten, freed by its holder.
        if self.sent.len() >= RECLAIMABLE {
            self.sent.pop_front();
        }
        BytesMut::with_capacity(CHUNK)
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.cancel.check()?;
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// What a [`ChunkReader`] channel carries: store chunks may be errors, chunks
/// passed between our own threads cannot.
trait IntoChunk {
    fn into_chunk(self) -> io::Result<Bytes>;
}

impl IntoChunk for Bytes {
    fn into_chunk(self) -> io::Result<Bytes> {
        Ok(self)
    }
}

impl IntoChunk for io::Result<Bytes> {
    fn into_chunk(self) -> io::Result<Bytes> {
        self
    }
}

struct ChunkReader<T> {
    rx: mpsc::Receiver<T>,
    current: Bytes,
    waited: Duration,
    cancel: Cancel,
    /// The store's error, kept so a failed fetch is never mistaken for corruption.
    failed: Option<String>,
}

impl<T: IntoChunk> Read for ChunkReader<T> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.cancel.check()?;
        while self.current.is_empty() {
            let started = Instant::now();
            let next = self.rx.blocking_recv();
            self.waited += started.elapsed();
            match next.map(IntoChunk::into_chunk) {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    self.failed = Some(e.to_string());
                    return Err(e);
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_writer_uses_the_buffers_of_dropped_chunks_again_and_not_those_still_held() {
        let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
        let mut w = ChunkWriter::new(tx, Cancel::new());
        let mut seen = Vec::new();
        let mut held = Vec::new();
        for i in 0..20u8 {
            w.write_all(&vec![i; CHUNK]).unwrap();
            let chunk = rx.try_recv().unwrap();
            assert!(chunk.len() == CHUNK && chunk.iter().all(|b| *b == i), "chunk {i} kept its bytes");
            seen.push(chunk.as_ptr() as usize);
            // The first three are held (as an upload holds a part); the rest dropped.
            if i < 3 {
                held.push(chunk);
            }
        }
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert!(distinct.len() <= 5, "{} buffers for 20 chunks", distinct.len());
        assert!(seen[3..].iter().all(|p| !seen[..3].contains(p)), "a held chunk's buffer was written over");
        assert!(held.iter().enumerate().all(|(i, c)| c.iter().all(|b| *b == i as u8)));
    }
}
