//! Fleet mode: several daemons with the same plans share one S3 bucket, and
//! each scheduled firing is run by exactly one of them.
//!
//! Everything the nodes agree on is an object in the bucket, written with S3's
//! conditional writes, so no node talks to another and no clock sync is assumed:
//!
//! ```text
//! fleet/claims/<plan>/<instant>/<attempt>   a claim: created with If-None-Match: *, renewed with If-Match
//! fleet/claims/<plan>/<instant>/result      the firing's outcome, created once
//! fleet/nodes/<node>/status.json            heartbeat: version, current claims, takeovers
//! fleet/nodes/<node>/key.pub                the node's evidence public key
//! fleet/nodes/<node>/head.json              its signed evidence head
//! fleet/evidence/<node>/<seq>.json          every evidence record of the node, created once
//! ```
//!
//! [`probe`] proves the store honours those preconditions before a node joins;
//! [`claim`] is the firing protocol (claim, renew, fence, take over);
//! [`evidence`] ships records to the bucket and reads the whole fleet's back;
//! [`status`] is the heartbeat.

pub mod claim;
pub mod evidence;
pub mod probe;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{Config, FleetConfig};
use crate::store::Store;

/// Where every fleet object lives in the bucket.
pub const PREFIX: &str = "fleet";

/// One node's handle on the fleet's bucket.
pub struct Fleet {
    pub node: String,
    pub lease: Duration,
    pub store: Store,
    inner: Arc<dyn ObjectStore>,
}

/// The outcome of a conditional write.
#[derive(Debug)]
pub enum Put {
    /// Written; the new ETag.
    Done(Option<String>),
    /// The precondition failed: the object exists (create) or changed (update).
    Refused,
}

impl Fleet {
    /// Opens the fleet's store for `config`'s `[fleet]`, without probing it.
    pub fn open_unprobed(config: &Config, fleet: &FleetConfig) -> anyhow::Result<Fleet> {
        let spec = config
            .stores
            .get(&fleet.store)
            .with_context(|| format!("[fleet] store = {:?} is not configured in {}", fleet.store, config.origin()))?;
        anyhow::ensure!(
            spec.local_root().is_none(),
            "[fleet] store = {:?} in {} is a local folder store ({}): fleet mode needs an S3 store every node reaches",
            fleet.store,
            config.origin(),
            spec.describe()
        );
        let store = Store::open(&fleet.store, spec.as_ref())?;
        Ok(Fleet { node: fleet.node(), lease: fleet.lease.get(), inner: store.object_store(), store })
    }

    /// Opens the fleet's store and probes its conditional writes: a store that
    /// would let two nodes run one firing is refused, naming what it does wrong.
    pub async fn open(config: &Config, fleet: &FleetConfig) -> anyhow::Result<Fleet> {
        let f = Self::open_unprobed(config, fleet)?;
        probe::run(&f)
            .await
            .with_context(|| format!("fleet mode refused for store `{}` ({})", f.store.name, f.store.describe))?;
        Ok(f)
    }

    pub fn path(parts: &[&str]) -> ObjPath {
        let mut s = PREFIX.to_string();
        for p in parts {
            s.push('/');
            s.push_str(p);
        }
        ObjPath::from(s)
    }

    fn err(&self, e: object_store::Error, what: String) -> anyhow::Error {
        self.store.annotate(e, what)
    }

    /// Creates `path` only if it does not exist (`If-None-Match: *`).
    pub async fn create(&self, path: &ObjPath, body: Bytes) -> anyhow::Result<Put> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.inner.put_opts(path, PutPayload::from(body), opts).await {
            Ok(r) => Ok(Put::Done(r.e_tag)),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Ok(Put::Refused)
            }
            Err(e) => Err(self.err(e, format!("cannot create {path} in the fleet's store"))),
        }
    }

    /// Replaces `path` only if its ETag is still `etag` (`If-Match`).
    pub async fn update(&self, path: &ObjPath, etag: &str, body: Bytes) -> anyhow::Result<Put> {
        let version = UpdateVersion { e_tag: Some(etag.to_string()), version: None };
        let opts = PutOptions { mode: PutMode::Update(version), ..Default::default() };
        match self.inner.put_opts(path, PutPayload::from(body), opts).await {
            Ok(r) => Ok(Put::Done(r.e_tag)),
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Ok(Put::Refused),
            Err(e) => Err(self.err(e, format!("cannot update {path} in the fleet's store"))),
        }
    }

    /// Writes `path` whatever is there (objects only their owner writes).
    pub async fn overwrite(&self, path: &ObjPath, body: Bytes) -> anyhow::Result<()> {
        self.inner
            .put(path, PutPayload::from(body))
            .await
            .map_err(|e| self.err(e, format!("cannot write {path} to the fleet's store")))?;
        Ok(())
    }

    /// An object's bytes and ETag, or `None` if it does not exist.
    pub async fn get(&self, path: &ObjPath) -> anyhow::Result<Option<(Bytes, Option<String>)>> {
        match self.inner.get(path).await {
            Ok(r) => {
                let etag = r.meta.e_tag.clone();
                let bytes = r.bytes().await.map_err(|e| self.err(e, format!("cannot read {path}")))?;
                Ok(Some((bytes, etag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e, format!("cannot read {path} from the fleet's store"))),
        }
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &ObjPath) -> anyhow::Result<Option<(T, Option<String>)>> {
        match self.get(path).await? {
            Some((bytes, etag)) => {
                let v = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{path} in the fleet's store is not what drdrill writes there"))?;
                Ok(Some((v, etag)))
            }
            None => Ok(None),
        }
    }

    /// Every object below `prefix`, with its ETag.
    pub async fn list(&self, prefix: &ObjPath) -> anyhow::Result<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        self.inner
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.err(e, format!("cannot list {prefix} in the fleet's store")))
    }

    pub async fn delete(&self, path: &ObjPath) {
        let _ = self.inner.delete(path).await;
    }
}

/// JSON bytes of a fleet object.
pub fn json<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("fleet objects always serialize"))
}
