//! Fleet evidence: every node ships each finished run's evidence record to the
//! bucket (create-only, under its own name), so the whole fleet's history can
//! be reported and verified offline from the bucket alone.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::claim::Holder;
use super::{Fleet, Put, json};
use crate::db::Db;
use crate::db::bundle::{self, NodeStatement, NodeVerified, SignedEntry, SignedHead};
use crate::db::evidence::ChainEntry;
use crate::db::signing::NodePublic;

/// The firing a record ran for, as the node that ran it knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FiringRef {
    pub plan: String,
    pub instant: String,
    pub attempt: u32,
    /// Set on a takeover: the node (and attempt) whose claim went unrenewed.
    pub takeover_of: Option<Holder>,
}

/// `fleet/evidence/<node>/<seq>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Shipped {
    pub node: String,
    pub firing: Option<FiringRef>,
    pub entry: SignedEntry,
}

fn record_path(node: &str, seq: i64) -> object_store::path::Path {
    Fleet::path(&["evidence", node, &format!("{seq:010}.json")])
}

/// Ships this node's records, remembering how far it got.
pub struct Shipper {
    shipped: Mutex<i64>,
    firings: Mutex<HashMap<i64, FiringRef>>,
}

impl Shipper {
    /// Publishes the node's public key and finds what was shipped before.
    pub async fn start(fleet: &Fleet, db: &Db) -> anyhow::Result<Shipper> {
        let key = db.key().ok_or_else(|| anyhow::anyhow!("fleet mode needs the node's evidence signing key"))?;
        let public = key.public();
        fleet.overwrite(&Fleet::path(&["nodes", &fleet.node, "key.pub"]), public.openssh().into_bytes().into()).await?;
        let shipped = fleet
            .list(&Fleet::path(&["evidence", &fleet.node]))
            .await?
            .iter()
            .filter_map(|o| o.location.filename()?.strip_suffix(".json")?.parse::<i64>().ok())
            .max()
            .unwrap_or(0);
        Ok(Shipper { shipped: Mutex::new(shipped), firings: Mutex::new(HashMap::new()) })
    }

    /// Remembers which firing run `run_id` was, for its shipped record.
    pub fn note_firing(&self, run_id: i64, firing: FiringRef) {
        self.firings.lock().unwrap_or_else(|p| p.into_inner()).insert(run_id, firing);
    }

    /// Ships every record not shipped yet, then the signed head.
    pub async fn ship(&self, fleet: &Fleet, db: &Db) -> anyhow::Result<usize> {
        let Some(key) = db.key() else { return Ok(0) };
        let from = *self.shipped.lock().unwrap_or_else(|p| p.into_inner()) + 1;
        let entries = bundle::signed_entries(db, from)?;
        let mut count = 0;
        for entry in entries {
            let seq = entry.seq;
            let firing = self.firings.lock().unwrap_or_else(|p| p.into_inner()).remove(&entry.record.run_id);
            let doc = Shipped { node: fleet.node.clone(), firing, entry };
            if let Put::Refused = fleet.create(&record_path(&fleet.node, seq), json(&doc)).await? {
                let there = fleet.get_json::<Shipped>(&record_path(&fleet.node, seq)).await?;
                if there.map(|(s, _)| s.entry.hash) != Some(doc.entry.hash.clone()) {
                    anyhow::bail!(
                        "the bucket already holds another record #{seq} of node {}: two nodes use the name {}, or this node's database was replaced; give each node its own `[fleet] node`",
                        fleet.node,
                        fleet.node
                    );
                }
            }
            *self.shipped.lock().unwrap_or_else(|p| p.into_inner()) = seq;
            count += 1;
        }
        let head = bundle::signed_head(db, key)?;
        fleet.overwrite(&Fleet::path(&["nodes", &fleet.node, "head.json"]), json(&head)).await?;
        Ok(count)
    }
}

/// One node's evidence as the bucket holds it.
#[derive(Debug, Clone)]
pub struct NodeChain {
    pub node: String,
    pub public_key: Option<String>,
    pub head: Option<SignedHead>,
    /// In sequence order.
    pub shipped: Vec<Shipped>,
}

/// Every node's shipped evidence.
pub async fn read(fleet: &Fleet) -> anyhow::Result<Vec<NodeChain>> {
    let mut by_node: std::collections::BTreeMap<String, NodeChain> = Default::default();
    let chain = |node: &str| NodeChain { node: node.to_string(), public_key: None, head: None, shipped: Vec::new() };
    for o in fleet.list(&Fleet::path(&["evidence"])).await? {
        let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
        let [_, _, node, _] = parts.as_slice() else { continue };
        if let Some((s, _)) = fleet.get_json::<Shipped>(&o.location).await? {
            by_node.entry(node.clone()).or_insert_with(|| chain(node)).shipped.push(s);
        }
    }
    for o in fleet.list(&Fleet::path(&["nodes"])).await? {
        let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
        let [_, _, node, file] = parts.as_slice() else { continue };
        match file.as_str() {
            "key.pub" => {
                if let Some((b, _)) = fleet.get(&o.location).await? {
                    by_node.entry(node.clone()).or_insert_with(|| chain(node)).public_key =
                        Some(String::from_utf8_lossy(&b).trim().to_string());
                }
            }
            "head.json" => {
                if let Some((h, _)) = fleet.get_json::<SignedHead>(&o.location).await? {
                    by_node.entry(node.clone()).or_insert_with(|| chain(node)).head = Some(h);
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<NodeChain> = by_node.into_values().collect();
    for n in &mut out {
        n.shipped.sort_by_key(|s| s.entry.seq);
    }
    Ok(out)
}

/// Every shipped record of the fleet, oldest run first, as chain entries for a report.
pub fn entries(chains: &[NodeChain]) -> Vec<ChainEntry> {
    let mut all: Vec<ChainEntry> = chains.iter().flat_map(|c| c.shipped.iter().map(|s| s.entry.entry())).collect();
    all.sort_by(|a, b| a.record.started_at.cmp(&b.record.started_at).then(a.record.host.cmp(&b.record.host)));
    all
}

/// Verifies one node's shipped chain from record #1 to its signed head, with
/// its published key (which must be in `trusted`, when given).
pub fn verify(chain: &NodeChain, trusted: Option<&[NodePublic]>) -> Result<NodeVerified, String> {
    let key = chain.public_key.clone().ok_or("the node published no key (fleet/nodes/<node>/key.pub is missing)")?;
    let head =
        chain.head.clone().ok_or("the node published no signed head (fleet/nodes/<node>/head.json is missing)")?;
    if let Some(first) = chain.shipped.first()
        && first.entry.seq != 1
    {
        return Err(format!("records #1 to #{} are missing from the bucket", first.entry.seq - 1));
    }
    for (i, s) in chain.shipped.iter().enumerate() {
        if s.entry.seq != i as i64 + 1 {
            return Err(format!("record #{} is missing from the bucket", i + 1));
        }
    }
    let records: Vec<SignedEntry> =
        chain.shipped.iter().filter(|s| s.entry.seq <= head.count).map(|s| s.entry.clone()).collect();
    if (records.len() as i64) < head.count {
        return Err(format!(
            "its signed head counts {} record(s), but the bucket holds {}: records were deleted from the bucket",
            head.count,
            records.len()
        ));
    }
    let trusted_key = match trusted {
        Some(keys) => {
            Some(keys.iter().find(|k| k.node == chain.node).ok_or("the node has no key in the allowed signers given")?)
        }
        None => None,
    };
    let public = NodePublic::from_openssh(&chain.node, &key).map_err(|e| format!("{e:#}"))?;
    let statement =
        NodeStatement { node: chain.node.clone(), public_key: key, fingerprint: public.fingerprint(), head, records };
    bundle::verify_node(&statement, trusted_key)
}
