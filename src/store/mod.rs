//! Where backups live: every store kind is an `object_store` behind [`Store`].
//!
//! Layout of one backup, readable without drdrill:
//!
//! ```text
//! <plan>/<backup-id>/payload.<format>.zst      the data, a plain zstd stream
//! <plan>/<backup-id>/manifest.json.sha256      `sha256sum` line of the manifest's bytes
//! <plan>/<backup-id>/manifest.json             sha256 of the payload and of each file (JSON Lines, [`manifest`])
//! ```
//!
//! Contract, for every kind: the payload is written first, then the manifest's
//! checksum (create-only: one writer owns the folder), then the manifest, which
//! appears only once completely uploaded, so a backup without a manifest does
//! not exist (it is listed as incomplete and never restored).
//! Objects are never modified in place. A missing object is reported as "not
//! found", never as an empty payload.
//!
//! A manifest is used only once its bytes match the checksum beside it (whatever
//! their layout: the checksum is over the file, not over parsed JSON) and its
//! `plan`, `backup_id` and `created_at` agree with the folder it sits in. Format 1
//! manifests, written before the checksum existed, have none: they are accepted
//! with a note saying their fields are unprotected. A format 2 or 3 manifest
//! without its checksum is damaged, so no change to a manifest's bytes makes it "legacy".

pub mod local;
pub mod manifest;
pub mod retention;
pub mod s3;

pub use manifest::{
    Entries, EntryKind, EntryReader, EntryWriter, FileEntry, MANIFEST_FORMAT, Manifest, PayloadInfo, SkippedEntry,
    Totals, manifest_checksum, path_order,
};
use manifest::{LEGACY_FORMAT, MANIFEST_NAME, OBJECT_FORMAT, checksum_line};

use std::fmt::Debug;
use std::io::{self, Write};
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use toml::Spanned;
use toml::de::DeValue;

use crate::diag::{Diagnostic, KindParser, TomlDoc};
use crate::hashing::{HashingWriter, hex_digest};

/// One store kind's configuration: its own file holds the struct, its
/// validation and its builder (see `local.rs`).
pub trait StoreSpec: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    /// Where the data goes, for people (no secrets).
    fn describe(&self) -> String;
    fn build(&self) -> anyhow::Result<Arc<dyn ObjectStore>>;
    /// Recognises this kind's common failures from an error's text and names the fix.
    fn hinter(&self) -> Hinter {
        Arc::new(|_| None)
    }
    /// The folder on this machine holding the objects, for kinds that have one:
    /// their interrupted uploads are files drdrill must sweep itself.
    fn local_root(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// Turns a store error's text into its fix, if known.
pub type Hinter = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The store kinds. A new kind is one file and one line here.
const KINDS: &[KindParser<Box<dyn StoreSpec>>] = &[(local::KIND, local::parse), (s3::KIND, s3::parse)];

pub fn parse_spec(doc: &TomlDoc, name: &str, value: &Spanned<DeValue>) -> Result<Box<dyn StoreSpec>, Diagnostic> {
    doc.parse_kind(value, &format!("store `{name}`"), KINDS)
}

const CHECKSUM_NAME: &str = "manifest.json.sha256";
/// How far in the future a backup's timestamps may be (clocks of hosts sharing
/// a store differ a little); anything later is forged or damaged.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The instant a backup id was made at: ids are `new_backup_id`'s output.
fn id_time(backup_id: &str) -> Option<DateTime<Utc>> {
    let (time, noise) = backup_id.rsplit_once('-')?;
    if noise.len() != 4 || !noise.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(time, ID_TIME).ok().map(|t| t.and_utc())
}

const ID_TIME: &str = "%Y%m%dT%H%M%S%.3fZ";

/// Checks that a manifest describes the folder it was read from and holds
/// nothing a restore would trust blindly. `now` bounds its timestamps.
fn check_binding(m: &Manifest, plan: &str, backup_id: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    if m.plan != plan || m.backup_id != backup_id {
        bail!(
            "it describes backup {} of plan `{}` but sits in folder {plan}/{backup_id}: it was copied or moved there, so it does not describe this folder's payload",
            m.backup_id,
            m.plan
        );
    }
    let made = id_time(backup_id).with_context(|| {
        format!(
            "folder name {backup_id} is not a backup id drdrill writes (UTC time to the millisecond and 4 hex digits)"
        )
    })?;
    if m.created_at.format(ID_TIME).to_string() != made.format(ID_TIME).to_string() {
        bail!(
            "it says it was created at {} but its id {backup_id} was made at {}",
            m.created_at.to_rfc3339(),
            made.to_rfc3339()
        );
    }
    for (what, at) in [("created_at", m.created_at), ("consistency_point", m.consistency_point)] {
        if at > now + CLOCK_SKEW {
            bail!(
                "its {what} {} is in the future (now {}): forged, or a clock is wrong",
                at.to_rfc3339(),
                now.to_rfc3339()
            );
        }
    }
    let p = &m.payload;
    if p.name != format!("payload.{}.zst", p.format) || p.format.contains('/') || p.compression != "zstd" {
        bail!(
            "its payload is named {:?} with format {:?} and compression {:?}; drdrill writes `payload.<format>.zst`, zstd",
            p.name,
            p.format,
            p.compression
        );
    }
    Ok(())
}

/// A backup folder found in a store, complete or not.
#[derive(Debug, Clone)]
pub struct Listing {
    pub plan: String,
    pub backup_id: String,
    pub manifest: Option<Manifest>,
    /// Problem reading the manifest, if there is one but it is unusable.
    pub manifest_error: Option<String>,
    pub stored_bytes: u64,
}

/// The backup `latest` mode restores, and the newer ones it passed over.
#[derive(Debug, Default)]
pub struct Newest {
    pub manifest: Option<Manifest>,
    /// Newer backups whose manifest is unusable, with why: damage to report.
    pub damaged: Vec<(String, String)>,
}

impl Newest {
    /// The damaged backups passed over, for the run's record.
    pub fn damage(&self) -> Option<String> {
        (!self.damaged.is_empty()).then(|| {
            let each: Vec<String> = self.damaged.iter().map(|(id, why)| format!("{id}: {why}")).collect();
            format!("passed over {} damaged newer backup(s): {}", self.damaged.len(), each.join("; "))
        })
    }
}

impl Listing {
    pub fn is_complete(&self) -> bool {
        self.manifest.is_some()
    }
}

/// A named, opened store.
#[derive(Clone)]
pub struct Store {
    pub name: String,
    pub describe: String,
    inner: Arc<dyn ObjectStore>,
    hinter: Hinter,
    local_root: Option<std::path::PathBuf>,
}

impl Store {
    pub fn open(name: &str, spec: &dyn StoreSpec) -> anyhow::Result<Store> {
        let inner = spec.build().with_context(|| format!("cannot open store `{name}` ({})", spec.describe()))?;
        Ok(Store {
            name: name.to_string(),
            describe: spec.describe(),
            inner,
            hinter: spec.hinter(),
            local_root: spec.local_root(),
        })
    }

    /// Adds the store's name and, when the cause is recognised, its fix to an error.
    pub fn annotate<E>(&self, e: E, what: String) -> anyhow::Error
    where
        E: Into<anyhow::Error>,
    {
        let e: anyhow::Error = e.into();
        let text = format!("{e:#}");
        let e = e.context(what);
        match (self.hinter)(&text) {
            Some(fix) => e.context(format!("store `{}` ({}): {fix}", self.name, self.describe)),
            None => e,
        }
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    pub fn payload_path(plan: &str, backup_id: &str, payload_name: &str) -> ObjPath {
        ObjPath::from(format!("{plan}/{backup_id}/{payload_name}"))
    }

    fn manifest_path(plan: &str, backup_id: &str) -> ObjPath {
        ObjPath::from(format!("{plan}/{backup_id}/{MANIFEST_NAME}"))
    }

    fn checksum_path(plan: &str, backup_id: &str) -> ObjPath {
        ObjPath::from(format!("{plan}/{backup_id}/{CHECKSUM_NAME}"))
    }

    /// Proves the store accepts writes before a backup starts, so a read-only or
    /// unreachable store fails the run up front with its name, not halfway through.
    pub async fn check_writable(&self) -> anyhow::Result<()> {
        let probe = ObjPath::from(format!(".drdrill-write-probe-{}", std::process::id()));
        self.inner
            .put(&probe, PutPayload::from_static(b"probe"))
            .await
            .map_err(|e| self.annotate(e, format!("store `{}` ({}) is not writable", self.name, self.describe)))?;
        self.inner.delete(&probe).await.ok();
        Ok(())
    }

    /// Writes the manifest's checksum, then the manifest: the manifest is what
    /// makes a backup exist, and it never exists without its checksum. The
    /// checksum is written create-only, so one writer owns the folder; the
    /// manifest (which may list millions of entries) is streamed up from its
    /// spool file and appears only once complete, never whole in memory.
    pub async fn put_manifest(&self, m: &Manifest) -> anyhow::Result<()> {
        let hashed = m.clone();
        let sha256 = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let mut w = HashingWriter::new(io::sink());
            hashed.write_to(&mut w)?;
            Ok(w.finish().1)
        })
        .await
        .context("manifest thread panicked")??;
        let checksum_path = Self::checksum_path(&m.plan, &m.backup_id);
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.inner
            .put_opts(&checksum_path, PutPayload::from(checksum_line(&sha256).into_bytes()), opts)
            .await
            .map_err(|e| {
                self.annotate(
                    e,
                    format!("cannot write {checksum_path} of backup {} to store `{}`", m.backup_id, self.name),
                )
            })?;

        let path = Self::manifest_path(&m.plan, &m.backup_id);
        let failed = |e: anyhow::Error| {
            e.context(format!("cannot write {path} of backup {} to store `{}`", m.backup_id, self.name))
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let produced = m.clone();
        let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let mut w = HashingWriter::new(io::BufWriter::with_capacity(UPLOAD_CHUNK, ChannelWriter(tx)));
            produced.write_to(&mut w)?;
            let (mut out, sha256, _) = w.finish();
            out.flush()?;
            Ok(sha256)
        });
        let mut upload = self.upload(&path);
        let mut upload_error = None;
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = upload.put(chunk).await {
                upload_error = Some(e);
                break;
            }
        }
        drop(rx);
        let produced = producer.await.context("manifest thread panicked")?;
        if let Some(e) = upload_error {
            upload.abort().await.ok();
            return Err(
                self.annotate(e, format!("cannot write {path} of backup {} to store `{}`", m.backup_id, self.name))
            );
        }
        match produced {
            Ok(sent) if sent == sha256 => {}
            Ok(sent) => {
                upload.abort().await.ok();
                return Err(failed(anyhow::anyhow!(
                    "its bytes changed while they were written (sha256 {sent}, checksummed as {sha256}): its spool file was modified"
                )));
            }
            Err(e) => {
                upload.abort().await.ok();
                return Err(failed(e));
            }
        }
        upload.shutdown().await.map_err(|e| {
            self.annotate(e, format!("cannot write {path} of backup {} to store `{}`", m.backup_id, self.name))
        })?;
        Ok(())
    }

    /// An object's bytes, or `None` when it does not exist.
    async fn get_bytes(&self, path: &ObjPath) -> anyhow::Result<Option<Bytes>> {
        match self.inner.get(path).await {
            Ok(r) => Ok(Some(
                r.bytes()
                    .await
                    .map_err(|e| self.annotate(e, format!("cannot read {path} from store `{}`", self.name)))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.annotate(e, format!("cannot read {path} from store `{}`", self.name))),
        }
    }

    /// An object as a stream of chunks, or `None` when it does not exist.
    async fn get_stream(&self, path: &ObjPath) -> anyhow::Result<Option<BoxStream<'static, io::Result<Bytes>>>> {
        let result = match self.inner.get(path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.annotate(e, format!("cannot fetch {path} from store `{}`", self.name))),
        };
        match result.payload {
            // object_store streams a local file in 8 KiB reads, each a trip to the
            // blocking pool; 1 MiB reads keep a restore from a local store disk-bound.
            object_store::GetResultPayload::File(file, _) => {
                let file = tokio::fs::File::from_std(file);
                Ok(Some(Box::pin(tokio_util::io::ReaderStream::with_capacity(file, UPLOAD_CHUNK))))
            }
            object_store::GetResultPayload::Stream(s) => Ok(Some(Box::pin(s.map_err(io::Error::other)))),
        }
    }

    /// The manifest of one backup, used only once its bytes match their checksum
    /// and its fields match the folder it was read from. Its bytes are copied to
    /// a local temporary file while they are hashed; its entries are read from
    /// that copy, the bytes that were proven.
    pub async fn read_manifest(&self, plan: &str, backup_id: &str) -> anyhow::Result<Manifest> {
        let path = Self::manifest_path(plan, backup_id);
        let Some(mut stream) = self.get_stream(&path).await? else {
            bail!(
                "backup {backup_id} of plan `{plan}` has no manifest in store `{}`: it is incomplete or was deleted; `drdrill backups list` shows what exists",
                self.name
            )
        };
        let (file, spool) = tempfile::Builder::new()
            .prefix("drdrill-manifest-")
            .tempfile()
            .context("cannot create a temporary file for a manifest: check TMPDIR")?
            .into_parts();
        let mut out = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| self.annotate(e, format!("cannot read {path} from store `{}`", self.name)))?;
            hasher.update(&chunk);
            out.write_all(&chunk).await.context("cannot write a manifest's temporary copy")?;
        }
        out.flush().await.context("cannot write a manifest's temporary copy")?;
        drop(out);
        let sha256 = hex_digest(hasher);
        let checksum_path = Self::checksum_path(plan, backup_id);
        let checksum = self.get_bytes(&checksum_path).await?;
        let damaged = |why: String| anyhow::anyhow!("manifest {path} in store `{}` is damaged: {why}", self.name);
        if let Some(sum) = &checksum
            && sum[..] != *checksum_line(&sha256).as_bytes()
        {
            return Err(damaged(format!(
                "its bytes have sha256 {sha256} but {checksum_path} says {:?}; restore an older backup",
                String::from_utf8_lossy(sum).trim_end()
            )));
        }
        let m = tokio::task::spawn_blocking(move || Manifest::from_spool(spool))
            .await
            .context("manifest thread panicked")?
            .map_err(|e| damaged(format!("{e:#}")))?;
        match (m.format, &checksum) {
            (MANIFEST_FORMAT | OBJECT_FORMAT, Some(_)) | (LEGACY_FORMAT, _) => {}
            (MANIFEST_FORMAT | OBJECT_FORMAT, None) => {
                return Err(damaged(format!(
                    "{checksum_path}, which every format {OBJECT_FORMAT} or {MANIFEST_FORMAT} manifest has, is missing"
                )));
            }
            (other, _) => bail!(
                "manifest {path} has format {other}; this drdrill reads formats {LEGACY_FORMAT} to {MANIFEST_FORMAT}: upgrade drdrill"
            ),
        }
        check_binding(&m, plan, backup_id, Utc::now()).map_err(|e| damaged(format!("{e:#}")))?;
        Ok(m)
    }

    /// Every backup folder under `plan` (or all plans), oldest first.
    pub async fn list(&self, plan: Option<&str>) -> anyhow::Result<Vec<Listing>> {
        let mut out = Vec::new();
        for ((plan, backup_id), (has_manifest, stored_bytes)) in self.scan(plan).await? {
            let (manifest, manifest_error) = if has_manifest {
                match self.read_manifest(&plan, &backup_id).await {
                    Ok(m) => (Some(m), None),
                    Err(e) => (None, Some(format!("{e:#}"))),
                }
            } else {
                (None, None)
            };
            out.push(Listing { plan, backup_id, manifest, manifest_error, stored_bytes });
        }
        Ok(out)
    }

    /// Backup folders by (plan, id), oldest first, with whether each has a
    /// manifest and how many bytes it stores; no manifest is read.
    async fn scan(
        &self,
        plan: Option<&str>,
    ) -> anyhow::Result<std::collections::BTreeMap<(String, String), (bool, u64)>> {
        let prefix = plan.map(ObjPath::from);
        let objects: Vec<_> = self
            .inner
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.annotate(e, format!("cannot list store `{}` ({})", self.name, self.describe)))?;
        let mut found: std::collections::BTreeMap<(String, String), (bool, u64)> = Default::default();
        for meta in objects {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() != 3 {
                continue;
            }
            let key = (parts[0].as_ref().to_string(), parts[1].as_ref().to_string());
            let entry = found.entry(key).or_default();
            entry.1 += meta.size;
            if parts[2].as_ref() == MANIFEST_NAME {
                entry.0 = true;
            }
        }
        Ok(found)
    }

    /// The backup of `plan` with the newest verified creation time. A manifest
    /// is usable only if its `created_at` is the time its id names and not in
    /// the future, so reading them in id order, newest first, and stopping at
    /// the first usable one finds it without reading every (possibly big)
    /// manifest; a planted `9999…` folder is damage, never the newest.
    pub async fn newest_complete(&self, plan: &str) -> anyhow::Result<Newest> {
        let found = self.scan(Some(plan)).await?;
        let mut newest = Newest::default();
        for ((plan, backup_id), _) in found.into_iter().rev().filter(|(_, (has_manifest, _))| *has_manifest) {
            match self.read_manifest(&plan, &backup_id).await {
                Ok(m) => {
                    newest.manifest = Some(m);
                    break;
                }
                Err(e) => {
                    tracing::warn!(%backup_id, "skipping a backup with an unusable manifest: {e:#}");
                    newest.damaged.push((backup_id, format!("{e:#}")));
                }
            }
        }
        Ok(newest)
    }

    /// Removes the leftovers of uploads that were killed (`payload.tar.zst#3`:
    /// object_store's local staging files, which listings do not show) once they
    /// are older than `older_than`, so they cannot belong to an upload still
    /// running. Returns what it removed, relative to the store. Stores without
    /// a local folder have nothing to sweep: S3 expires incomplete multipart
    /// uploads by a bucket lifecycle rule.
    pub async fn remove_stale_uploads(
        &self,
        plan: &str,
        older_than: std::time::Duration,
    ) -> anyhow::Result<Vec<String>> {
        let Some(root) = self.local_root.clone() else { return Ok(Vec::new()) };
        let plan = plan.to_string();
        tokio::task::spawn_blocking(move || sweep_staging(&root, &plan, older_than))
            .await
            .context("sweep thread panicked")?
    }

    /// Deletes one backup: the manifest first, so the backup stops existing before
    /// its payload goes and an interrupted delete leaves only an incomplete folder.
    pub async fn delete_backup(&self, plan: &str, backup_id: &str) -> anyhow::Result<()> {
        let prefix = ObjPath::from(format!("{plan}/{backup_id}"));
        let manifest = Self::manifest_path(plan, backup_id);
        match self.inner.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.annotate(e, format!("cannot delete {manifest} from store `{}`", self.name))),
        }
        let objects: Vec<_> = self
            .inner
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.annotate(e, format!("cannot list {prefix} in store `{}`", self.name)))?;
        for meta in objects {
            match self.inner.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(self.annotate(e, format!("cannot delete {} from store `{}`", meta.location, self.name)));
                }
            }
        }
        Ok(())
    }

    /// The payload as a stream of chunks, never whole in memory.
    /// A buffered upload to `path`, in parts of S3's minimum size, two in
    /// flight: parts in flight are memory, and object_store's default of eight
    /// put a 30 MiB spike on a million-entry manifest (peak RSS 67 MiB, not 38).
    pub fn upload(&self, path: &ObjPath) -> BufWriter {
        BufWriter::with_capacity(self.inner.clone(), path.clone(), UPLOAD_PART).with_max_concurrency(2)
    }

    pub async fn payload_stream(&self, m: &Manifest) -> anyhow::Result<BoxStream<'static, io::Result<Bytes>>> {
        let path = Self::payload_path(&m.plan, &m.backup_id, &m.payload.name);
        self.get_stream(&path).await?.with_context(|| {
            format!(
                "payload {path} of backup {} is missing from store `{}` although its manifest exists: the backup is damaged; restore an older one",
                m.backup_id, self.name
            )
        })
    }
}

/// Sends what is written to it down a channel, one chunk per write.
struct ChannelWriter(tokio::sync::mpsc::Sender<Bytes>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the store stopped accepting the manifest"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Chunks of a manifest moved at once, and its upload's part size (S3's minimum).
const UPLOAD_CHUNK: usize = 1024 * 1024;
const UPLOAD_PART: usize = 5 * 1024 * 1024;

/// Whether `name` is a local staging file: `<object>#<digits>`.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(object, n)| !object.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn sweep_staging(root: &std::path::Path, plan: &str, older_than: std::time::Duration) -> anyhow::Result<Vec<String>> {
    let plan_dir = root.join(plan);
    let folders = match std::fs::read_dir(&plan_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", plan_dir.display())),
    };
    let now = std::time::SystemTime::now();
    let mut removed = Vec::new();
    for folder in folders {
        let folder = folder?.path();
        let Ok(files) = std::fs::read_dir(&folder) else { continue };
        let before = removed.len();
        for file in files {
            let file = file?;
            let name = file.file_name();
            let Some(name) = name.to_str().filter(|n| is_staging_name(n)) else { continue };
            let meta = file.metadata()?;
            let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
            if !meta.is_file() || age <= older_than {
                continue;
            }
            match std::fs::remove_file(file.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", file.path().display())),
            }
            let id = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            removed.push(format!("{plan}/{id}/{name}"));
        }
        // A folder that held only a killed upload is not a backup at all.
        if removed.len() > before {
            std::fs::remove_dir(&folder).ok();
        }
    }
    removed.sort();
    Ok(removed)
}

/// A new backup id: UTC time to the millisecond, so ids sort by age, plus a
/// few random bits so two runs in the same millisecond do not collide.
pub fn new_backup_id(at: DateTime<Utc>) -> String {
    let noise =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
            ^ std::process::id().rotate_left(16))
            & 0xffff;
    format!("{}-{noise:04x}", at.format(ID_TIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_time_and_staging_names_are_recognised() {
        let at = Utc::now();
        let id = new_backup_id(at);
        assert_eq!(id_time(&id).unwrap().format(ID_TIME).to_string(), at.format(ID_TIME).to_string());
        for bad in ["9999", "99999999T999999.999Z-ffff", "20250101T000000.000Z-xyz1", "latest"] {
            assert!(id_time(bad).is_none(), "{bad}");
        }
        assert!(is_staging_name("payload.tar.zst#12") && is_staging_name("manifest.json#1"));
        assert!(!is_staging_name("payload.tar.zst") && !is_staging_name("a#b1") && !is_staging_name("#1"));
    }
}
