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

/// How a node looks from the bucket. `drdrill fleet status` and the console's
/// Nodes panel both use [`node_state`], so they never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Heartbeating, and none of its firings was taken from it.
    Alive,
    /// No heartbeat for three leases (or an unreadable one): dead, stalled or cut off.
    Stale,
    /// Heartbeating, but a firing it held was taken over since it started:
    /// its renewals are refused, so it must not go on with that run.
    Fenced,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Stale => "stale",
            NodeState::Fenced => "fenced",
        }
    }
}

/// How old `n`'s last heartbeat is at `now` (`None` if its time is unreadable;
/// zero if the node's clock is ahead of this one).
pub fn heartbeat_age(n: &NodeStatus, now: chrono::DateTime<chrono::Utc>) -> Option<std::time::Duration> {
    crate::report::rfc(&n.heartbeat_at).map(|t| (now - t).to_std().unwrap_or_default())
}

/// `n`'s state in `fleet` at `now` (see [`NodeState`]). Silence wins over
/// fencing: a stale node's old takeovers say nothing about it now.
pub fn node_state(fleet: &FleetStatus, n: &NodeStatus, now: chrono::DateTime<chrono::Utc>) -> NodeState {
    let silent = heartbeat_age(n, now).is_none_or(|age| age.as_millis() > 3 * u128::from(n.lease_ms));
    if silent {
        return NodeState::Stale;
    }
    let started = crate::report::rfc(&n.started_at);
    let taken_from_this_run = fleet.takeovers.iter().any(|c| {
        c.previous.as_ref().is_some_and(|p| p.node == n.node)
            && match (started, crate::report::rfc(&c.claimed_at)) {
                (Some(s), Some(t)) => t >= s,
                // Unreadable times: assume it concerns this run, the cautious reading.
                _ => true,
            }
    });
    if taken_from_this_run { NodeState::Fenced } else { NodeState::Alive }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::claim::Holder;

    fn node(name: &str, started: &str, beat: &str) -> NodeStatus {
        NodeStatus {
            node: name.into(),
            version: "1".into(),
            started_at: started.into(),
            heartbeat_at: beat.into(),
            lease_ms: 10_000,
            claims: vec![],
            takeovers: 0,
        }
    }

    fn takeover(from: &str, at: &str) -> Claim {
        Claim {
            plan: "p".into(),
            instant: "2026-01-01T00:00:00Z".into(),
            attempt: 2,
            node: "other".into(),
            version: "1".into(),
            claimed_at: at.into(),
            renewed_at: at.into(),
            renewals: 0,
            previous: Some(Holder { node: from.into(), attempt: 1 }),
            superseded_by: None,
        }
    }

    #[test]
    fn a_node_is_stale_after_three_silent_leases_and_fenced_only_for_takeovers_of_its_current_run() {
        let now = crate::report::rfc("2026-01-01T00:01:00Z").unwrap();
        let a = node("a", "2026-01-01T00:00:00Z", "2026-01-01T00:00:55Z");
        let silent = node("s", "2026-01-01T00:00:00Z", "2026-01-01T00:00:29Z");
        let garbled = node("g", "2026-01-01T00:00:00Z", "yesterday");
        let mut fleet = FleetStatus { nodes: vec![], current: vec![], takeovers: vec![], recent: vec![] };
        assert_eq!(node_state(&fleet, &a, now), NodeState::Alive);
        assert_eq!(node_state(&fleet, &silent, now), NodeState::Stale);
        assert_eq!(node_state(&fleet, &garbled, now), NodeState::Stale);
        fleet.takeovers.push(takeover("a", "2025-12-31T23:59:00Z"));
        assert_eq!(node_state(&fleet, &a, now), NodeState::Alive, "taken over before this run started");
        fleet.takeovers.push(takeover("a", "2026-01-01T00:00:30Z"));
        assert_eq!(node_state(&fleet, &a, now), NodeState::Fenced);
        fleet.takeovers.push(takeover("s", "2026-01-01T00:00:30Z"));
        assert_eq!(node_state(&fleet, &silent, now), NodeState::Stale);
        assert_eq!(heartbeat_age(&a, now), Some(std::time::Duration::from_secs(5)));
    }
}
