//! Heartbeats and the fleet's state as the bucket holds it: who is alive, what
//! is claimed now, and which firings were taken over.

use serde::{Deserialize, Serialize};

use super::claim::{Claim, FiringResult};
use super::{Fleet, json};

/// `fleet/nodes/<node>/status.json`, rewritten by its node every third of a lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub node: String,
    pub version: String,
    pub started_at: String,
    pub heartbeat_at: String,
    pub lease_ms: u64,
    /// The firings this node holds now.
    pub claims: Vec<String>,
    /// Firings this node took over since it started.
    pub takeovers: u64,
}

pub async fn beat(fleet: &Fleet, status: &NodeStatus) -> anyhow::Result<()> {
    fleet.overwrite(&Fleet::path(&["nodes", &fleet.node, "status.json"]), json(status)).await
}

/// The whole fleet, read from the bucket.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    pub nodes: Vec<NodeStatus>,
    /// The newest claim of each firing that has no result yet.
    pub current: Vec<Claim>,
    /// Every claim that replaced another node's.
    pub takeovers: Vec<Claim>,
    /// Results of firings, newest first, at most 50.
    pub recent: Vec<FiringResult>,
}

pub async fn read(fleet: &Fleet) -> anyhow::Result<FleetStatus> {
    let mut nodes = Vec::new();
    for o in fleet.list(&Fleet::path(&["nodes"])).await? {
        if o.location.filename() == Some("status.json")
            && let Some((s, _)) = fleet.get_json::<NodeStatus>(&o.location).await?
        {
            nodes.push(s);
        }
    }
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    // claims/<plan>/<instant>/<attempt or result>
    let mut firings: std::collections::BTreeMap<(String, String), (Option<u32>, bool)> = Default::default();
    let mut takeover_paths = Vec::new();
    for o in fleet.list(&Fleet::path(&["claims"])).await? {
        let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
        let [_, _, plan, instant, last] = parts.as_slice() else { continue };
        let f = firings.entry((plan.clone(), instant.clone())).or_default();
        match last.parse::<u32>() {
            Ok(a) => {
                f.0 = f.0.max(Some(a));
                if a > 1 {
                    takeover_paths.push(o.location.clone());
                }
            }
            Err(_) => f.1 = true,
        }
    }
    let mut current = Vec::new();
    let mut recent = Vec::new();
    for ((plan, instant), (attempt, finished)) in firings.iter().rev() {
        if *finished {
            if recent.len() < 50
                && let Some((r, _)) =
                    fleet.get_json::<FiringResult>(&Fleet::path(&["claims", plan, instant, "result"])).await?
            {
                recent.push(r);
            }
            continue;
        }
        if let Some(a) = attempt
            && let Some((c, _)) =
                fleet.get_json::<Claim>(&Fleet::path(&["claims", plan, instant, &format!("{a:06}")])).await?
        {
            current.push(c);
        }
    }
    let mut takeovers = Vec::new();
    for p in takeover_paths {
        if let Some((c, _)) = fleet.get_json::<Claim>(&p).await? {
            takeovers.push(c);
        }
    }
    Ok(FleetStatus { nodes, current, takeovers, recent })
}
