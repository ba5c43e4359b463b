//! The overview's Nodes panel, in fleet mode only: every node of the fleet as
//! `drdrill fleet status` reads it from the bucket. The read is bounded by
//! [`READ_LIMIT`]: a slow or unreachable store makes the panel say why, never
//! the page wait for it.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::layout::{at_text, e};
use crate::daemon::fleet::FleetNode;
use crate::duration::format_duration;
use crate::fleet::status::{self, FleetStatus, NodeState};

/// How long GET / waits for the bucket. Short: the panel is one part of the page.
pub const READ_LIMIT: Duration = Duration::from_millis(1500);

/// The fleet's status, or why it cannot be shown (secrets scrubbed).
pub async fn read(node: &FleetNode) -> Result<FleetStatus, String> {
    match tokio::time::timeout(READ_LIMIT, status::read(&node.fleet)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(err)) => Err(crate::redact::scrub(&format!("{err:#}")).into_owned()),
        Err(_) => Err(format!(
            "store `{}` ({}) did not answer within {}",
            node.fleet.store.name,
            node.fleet.store.describe,
            format_duration(READ_LIMIT)
        )),
    }
}

/// The panel; `me` is this daemon's node name.
pub fn panel(out: &mut String, fleet: &Result<FleetStatus, String>, me: &str, now: DateTime<Utc>) {
    out.push_str(r#"<h2>Nodes</h2><div id="nodes-panel">"#);
    let s = match fleet {
        Ok(s) => s,
        Err(why) => {
            let _ = write!(
                out,
                r#"<p class="stale" id="nodes-unavailable">fleet status unavailable: {}</p></div>"#,
                e(why)
            );
            return;
        }
    };
    if s.nodes.is_empty() {
        out.push_str("<p>No node has written a heartbeat yet.</p></div>");
        return;
    }
    out.push_str(r#"<table id="nodes"><thead><tr><th>node</th><th>state</th><th>last heartbeat</th><th>holds now</th><th>last ran</th><th>drdrill</th></tr></thead><tbody>"#);
    for n in &s.nodes {
        let state = status::node_state(s, n, now);
        let class = match state {
            NodeState::Alive => "ok",
            NodeState::Stale => "stale",
            NodeState::Fenced => "failed",
        };
        let age = status::heartbeat_age(n, now)
            .map(|a| format!("{} ago", format_duration(Duration::from_secs(a.as_secs()))))
            .unwrap_or_else(|| "unreadable time".into());
        let holds = if n.claims.is_empty() { "-".to_string() } else { e(&n.claims.join("; ")) };
        // `recent` is newest first: the first result of this node is its last run.
        let last = match s.recent.iter().find(|r| r.node == n.node) {
            Some(r) => format!("{}: {} ({})", e(&r.plan), e(&r.status), e(&at_text(&r.finished_at))),
            None => "-".into(),
        };
        let version = if n.version.is_empty() { "unknown".to_string() } else { e(&n.version) };
        let _ = write!(
            out,
            r#"<tr data-node="{name}"><td>{name}{me}</td><td><span class="{class}">{state}</span></td><td>{beat} ({age})</td><td>{holds}</td><td>{last}</td><td>{version}</td></tr>"#,
            name = e(&n.node),
            me = if n.node == me { r#" <span class="small">(this daemon)</span>"# } else { "" },
            state = state.as_str(),
            beat = e(&at_text(&n.heartbeat_at)),
            age = e(&age),
        );
    }
    out.push_str("</tbody></table></div>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::claim::FiringResult;
    use crate::fleet::status::NodeStatus;

    const HOSTILE: &str = "<script>alert(1)</script>&\"";

    /// Anyone who can write to the bucket writes what the panel shows.
    #[test]
    fn every_string_from_the_bucket_is_escaped_and_an_unreadable_fleet_says_why() {
        let now = crate::report::rfc("2026-01-01T00:01:00Z").unwrap();
        let n = NodeStatus {
            node: "a".into(),
            version: HOSTILE.into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            heartbeat_at: "2026-01-01T00:00:58Z".into(),
            lease_ms: 10_000,
            claims: vec![HOSTILE.into()],
            takeovers: 0,
        };
        let r = FiringResult {
            plan: HOSTILE.into(),
            instant: "2026-01-01T00:00:30Z".into(),
            attempt: 1,
            node: "a".into(),
            run_id: 1,
            status: "passed".into(),
            reason: None,
            finished_at: "2026-01-01T00:00:40Z".into(),
            takeover_of: None,
        };
        let fleet = FleetStatus { nodes: vec![n], current: vec![], takeovers: vec![], recent: vec![r] };
        let mut out = String::new();
        panel(&mut out, &Ok(fleet), "a", now);
        assert!(!out.contains("<script>"), "{out}");
        assert_eq!(out.matches("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;").count(), 3, "{out}");
        assert!(out.contains(r#"<span class="ok">alive</span>"#) && out.contains("(2.00s ago)"), "{out}");

        let mut out = String::new();
        panel(&mut out, &Err(format!("cannot list fleet/nodes: {HOSTILE}")), "a", now);
        assert!(out.contains("fleet status unavailable: cannot list fleet/nodes: &lt;script&gt;"), "{out}");
    }
}
