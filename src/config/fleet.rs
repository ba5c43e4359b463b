//! `[fleet]`: several daemons sharing one bucket, each firing run by one of them.

use std::time::Duration;

use serde::Deserialize;

use crate::diag::{Bounded, limit};
use crate::duration::HOUR;

limit!(
    /// Renewals go out three times a lease; a takeover waits a whole one.
    pub Lease: Duration = "[fleet] lease", Duration::from_secs(1), Duration::from_secs(HOUR)
);

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// A configured S3 store every node reaches: claims, heartbeats and evidence live there.
    pub store: String,
    /// This node's name in the fleet and in its evidence (default: the hostname).
    pub node: Option<String>,
    /// How long a claim lives without renewal before a peer takes the firing over.
    #[serde(default = "default_lease")]
    pub lease: Bounded<Lease>,
}

fn default_lease() -> Bounded<Lease> {
    Bounded::of(Duration::from_secs(60))
}

impl FleetConfig {
    /// The node's name: the configured one or the hostname.
    pub fn node(&self) -> String {
        self.node.clone().unwrap_or_else(crate::net::hostname)
    }

    /// Why a node name cannot name objects in the bucket, if it cannot.
    pub fn node_problem(&self) -> Option<String> {
        let n = self.node();
        let ok = !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        (!ok).then(|| format!("node name {n:?} must be 1-64 letters, digits, `-`, `_` or `.`"))
    }
}
