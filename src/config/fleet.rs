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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(fleet: &str) -> Result<Config, String> {
        let text = format!(
            "[stores.s3]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\n[fleet]\n{fleet}\n"
        );
        Config::parse(Path::new("c.toml"), &text).map_err(|d| d.to_string())
    }

    #[test]
    fn the_fleet_section_names_an_s3_store_a_node_and_a_lease() {
        let c = parse("store = \"s3\"\nnode = \"host-a\"\nlease = \"5s\"").unwrap();
        let f = c.fleet.as_ref().unwrap();
        assert_eq!((f.node(), f.lease.get()), ("host-a".to_string(), std::time::Duration::from_secs(5)));
        assert_eq!(c.node(), "host-a");
        assert_eq!(parse("store = \"s3\"").unwrap().fleet.unwrap().lease.get().as_secs(), 60);
        let e = parse("store = \"local\"").unwrap_err();
        assert!(e.contains("c.toml:5") && e.contains("local folder store"), "{e}");
        let e = parse("store = \"nope\"").unwrap_err();
        assert!(e.contains("not a configured store"), "{e}");
        assert!(parse("store = \"s3\"\nlease = \"10ms\"").unwrap_err().contains("[fleet] lease"));
        assert!(parse("store = \"s3\"\nnode = \"a/b\"").unwrap_err().contains("node name"));
    }
}
