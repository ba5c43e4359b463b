//! Moving payloads between a source and a store: zstd compression, sha256 of
//! the compressed stream, and bounded buffering in between so memory stays flat
//! whatever the data size.
//!
//! Sources and archives are blocking code; object_store is async. The two meet
//! in a bounded channel of 1 MiB chunks, which also gives backpressure: a slow
//! store slows the reader instead of filling memory.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::cancel::{Cancel, Cancelled};
use crate::context::RunCtx;
use crate::hashing::{HashingReader, HashingWriter, hex_digest};
use crate::source::{Restored, Source};
use crate::store::{MANIFEST_FORMAT, Manifest, PayloadInfo, Store, new_backup_id};

const CHUNK: usize = 1024 * 1024;
const CHANNEL_CHUNKS: usize = 4;
/// Multipart part size: S3's minimum, since every part in flight is memory.
const PART_SIZE: usize = 5 * 1024 * 1024;

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
        let sink = ChunkWriter { tx, buf: BytesMut::with_capacity(CHUNK), cancel: producer_cancel };
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

    let mut upload = BufWriter::with_capacity(store.object_store(), path.clone(), PART_SIZE).with_max_concurrency(2);
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
    if !backup.skipped.is_empty() {
        tracing::warn!(count = backup.skipped.len(), first = %backup.skipped[0], "special files were not backed up");
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
        files: backup.files,
    };
    store.put_manifest(&manifest).await?;
    Ok(manifest)
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
/// while it flows and each file against the manifest as it lands.
pub async fn restore_backup(
    source: Arc<dyn Source>,
    store: &Store,
    manifest: &Arc<Manifest>,
    ctx: RunCtx,
) -> anyhow::Result<RestoreOutcome> {
    let cancel = ctx.cancel.clone();
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
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<RestoreOutcome> {
        // Two stages on two threads: this one fetches, hashes and decompresses;
        // the source's restore unpacks, hashes and writes files on the other.
        let (dtx, drx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
        let unpack_cancel = cancel.clone();
        let unpack_manifest = m.clone();
        let unpacker = std::thread::spawn(move || -> anyhow::Result<Restored> {
            let m = unpack_manifest;
            let mut decoded =
                ChunkReader { rx: drx, current: Bytes::new(), waited: Duration::ZERO, cancel: unpack_cancel, failed: None };
            let restored = source.restore(&ctx, &mut decoded, &m)?;
            // Trailing tar padding is part of the payload: read it so the stream ends cleanly.
            io::copy(&mut decoded, &mut io::sink()).context("payload has damaged trailing data")?;
            Ok(restored)
        });
        let mut reader =
            ChunkReader { rx, current: Bytes::new(), waited: Duration::ZERO, cancel: cancel.clone(), failed: None };
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        let decoded = {
            let hashing = HashingReader::new(&mut reader, &mut hasher, &mut count);
            let sink = ChunkWriter { tx: dtx, buf: BytesMut::with_capacity(CHUNK), cancel: cancel.clone() };
            zstd::Decoder::new(hashing).and_then(|mut decoder| {
                let mut sink = sink;
                io::copy(&mut decoder, &mut sink)?;
                sink.flush()
            })
            // The sink (and so the channel) is dropped here: the unpacker sees the end.
        };
        // Hash whatever the decoder left unread, so the payload's checksum is decided
        // even when decoding or unpacking stopped halfway.
        let drained = io::copy(&mut HashingReader::new(&mut reader, &mut hasher, &mut count), &mut io::sink());
        let unpacked = unpacker.join().unwrap_or_else(|_| Err(anyhow::anyhow!("restore thread panicked")));
        if cancel.is_cancelled() {
            return Err(anyhow::Error::new(Cancelled).context("the restore was stopped"));
        }
        if let Some(e) = &reader.failed {
            bail!("reading the payload from store `{store_name}` failed: {e}");
        }
        drained.with_context(|| format!("reading the payload from store `{store_name}` failed"))?;
        let sha256 = hex_digest(hasher);
        // A consumer that stopped early breaks the pipe; that is its error, not the decoder's.
        let decode_error = decoded.err().filter(|e| e.kind() != io::ErrorKind::BrokenPipe);
        if sha256 != m.payload.sha256 || count != m.payload.size {
            let cause = decode_error
                .map(|e| e.to_string())
                .or_else(|| unpacked.as_ref().err().map(|e| format!("{e:#}")))
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
        let restored = unpacked?;
        Ok(RestoreOutcome { restored, fetch_wait: reader.waited })
    })
    .await
    .context("restore thread panicked")?;
    forward.abort();
    result.map(|mut r| {
        r.fetch_wait += open_wait;
        r
    })
}

/// libzstd worker threads for compression: one per core, at most four.
fn compression_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
}

struct ChunkWriter {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    cancel: Cancel,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK);
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the store stopped accepting data"))
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
