//! Where backups live: every store kind is an `object_store` behind [`Store`].
//!
//! Layout of one backup, readable without drdrill:
//!
//! ```text
//! <plan>/<backup-id>/payload.<format>.zst   the data, a plain zstd stream
//! <plan>/<backup-id>/manifest.json          sha256 of the payload and of each file
//! ```
//!
//! Contract, for every kind: the payload is written first and the manifest last,
//! with create-only semantics, so a backup without a manifest does not exist (it is
//! listed as incomplete and never restored). Objects are never modified in place.
//! A missing object is reported as "not found", never as an empty payload.

pub mod local;
pub mod retention;
pub mod s3;

use std::fmt::Debug;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::DeValue;

use crate::diag::{Diagnostic, KindParser, TomlDoc};

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
}

/// Turns a store error's text into its fix, if known.
pub type Hinter = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The store kinds. A new kind is one file and one line here.
const KINDS: &[KindParser<Box<dyn StoreSpec>>] = &[(local::KIND, local::parse), (s3::KIND, s3::parse)];

pub fn parse_spec(doc: &TomlDoc, name: &str, value: &Spanned<DeValue>) -> Result<Box<dyn StoreSpec>, Diagnostic> {
    doc.parse_kind(value, &format!("store `{name}`"), KINDS)
}

/// Metadata of one backup; the JSON is the contract with restore tools.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub plan: String,
    pub backup_id: String,
    pub source_kind: String,
    pub created_at: DateTime<Utc>,
    /// The newest instant whose data the backup is known to hold (RPO without a canary).
    pub consistency_point: DateTime<Utc>,
    pub drdrill_version: String,
    pub payload: PayloadInfo,
    pub files: Vec<FileEntry>,
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

pub const MANIFEST_FORMAT: u32 = 1;
const MANIFEST_NAME: &str = "manifest.json";

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
}

impl Store {
    pub fn open(name: &str, spec: &dyn StoreSpec) -> anyhow::Result<Store> {
        let inner = spec.build().with_context(|| format!("cannot open store `{name}` ({})", spec.describe()))?;
        Ok(Store { name: name.to_string(), describe: spec.describe(), inner, hinter: spec.hinter() })
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

    /// Writes the manifest; this is what makes a backup exist.
    pub async fn put_manifest(&self, m: &Manifest) -> anyhow::Result<()> {
        // Compact: with one entry per file a pretty manifest of a large tree is
        // mostly indentation, held in memory while it is written.
        let json = serde_json::to_vec(m)?;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.inner.put_opts(&Self::manifest_path(&m.plan, &m.backup_id), PutPayload::from(json), opts).await.map_err(
            |e| self.annotate(e, format!("cannot write manifest of backup {} to store `{}`", m.backup_id, self.name)),
        )?;
        Ok(())
    }

    pub async fn read_manifest(&self, plan: &str, backup_id: &str) -> anyhow::Result<Manifest> {
        let path = Self::manifest_path(plan, backup_id);
        let bytes = match self.inner.get(&path).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => bail!(
                "backup {backup_id} of plan `{plan}` has no manifest in store `{}`: it is incomplete or was deleted; `drdrill backups list` shows what exists",
                self.name
            ),
            Err(e) => return Err(self.annotate(e, format!("cannot read manifest from store `{}`", self.name))),
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("manifest {path} in store `{}` is not valid JSON", self.name))?;
        if m.format != MANIFEST_FORMAT {
            bail!("manifest {path} has format {}, this drdrill reads format {MANIFEST_FORMAT}", m.format);
        }
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

    /// The newest backup of `plan` that has a readable manifest. Ids start with
    /// their UTC creation time, so manifests are read newest first and only
    /// until one is usable: a large tree's manifest is big.
    pub async fn newest_complete(&self, plan: &str) -> anyhow::Result<Option<Manifest>> {
        let found = self.scan(Some(plan)).await?;
        for ((plan, backup_id), _) in found.into_iter().rev().filter(|(_, (has_manifest, _))| *has_manifest) {
            match self.read_manifest(&plan, &backup_id).await {
                Ok(m) => return Ok(Some(m)),
                Err(e) => tracing::warn!(%backup_id, "skipping a backup with an unreadable manifest: {e:#}"),
            }
        }
        Ok(None)
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
    pub async fn payload_stream(&self, m: &Manifest) -> anyhow::Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let path = Self::payload_path(&m.plan, &m.backup_id, &m.payload.name);
        let result = match self.inner.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => bail!(
                "payload {path} of backup {} is missing from store `{}` although its manifest exists: the backup is damaged; restore an older one",
                m.backup_id,
                self.name
            ),
            Err(e) => return Err(self.annotate(e, format!("cannot fetch {path} from store `{}`", self.name))),
        };
        match result.payload {
            // object_store streams a local file in 8 KiB reads, each a trip to the
            // blocking pool; 1 MiB reads keep a restore from a local store disk-bound.
            object_store::GetResultPayload::File(file, _) => {
                let file = tokio::fs::File::from_std(file);
                Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(file, 1024 * 1024)))
            }
            object_store::GetResultPayload::Stream(s) => Ok(Box::pin(s.map_err(std::io::Error::other))),
        }
    }
}

/// A new backup id: UTC time to the millisecond, so ids sort by age, plus a
/// few random bits so two runs in the same millisecond do not collide.
pub fn new_backup_id(at: DateTime<Utc>) -> String {
    let noise =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
            ^ std::process::id().rotate_left(16))
            & 0xffff;
    format!("{}-{noise:04x}", at.format("%Y%m%dT%H%M%S%.3fZ"))
}
