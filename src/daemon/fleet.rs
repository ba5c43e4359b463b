//! The daemon's side of fleet mode: a due firing is claimed before it runs,
//! the claim is renewed while it runs and checked before each destructive
//! failure and before recording, firings of dead peers are taken over, and
//! every finished run's evidence is shipped to the bucket.
//!
//! The protocol itself is `crate::fleet`; this file only connects it to runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Daemon, Declined, Extra};
use crate::clock::Started;
use crate::config::{Config, FleetConfig};
use crate::db::Db;
use crate::duration::format_duration;
use crate::engine::Fence;
use crate::fleet::Fleet;
use crate::fleet::claim::{self, Claimed, Firing, Held, Watch, Watched};
use crate::fleet::evidence::{FiringRef, Shipper};
use crate::fleet::status::{self, NodeStatus};
use crate::plan::Plan;

/// This node's part in the fleet.
pub struct FleetNode {
    pub fleet: Arc<Fleet>,
    shipper: Shipper,
    /// One shipment at a time: records go out in order.
    shipping: tokio::sync::Mutex<()>,
    watches: Mutex<Vec<Watch>>,
    held: Mutex<BTreeMap<Firing, Arc<Held>>>,
    takeovers: AtomicU64,
    started_at: String,
}

impl FleetNode {
    /// Probes the store (refusing one whose preconditions do not hold) and
    /// publishes this node's key.
    pub async fn join(config: &Config, f: &FleetConfig, db: &Db) -> anyhow::Result<FleetNode> {
        let fleet = Arc::new(Fleet::open(config, f).await?);
        let shipper = Shipper::start(&fleet, db).await?;
        tracing::info!(
            node = %fleet.node,
            "fleet mode: store `{}` ({}) passed the conditional-write probe; lease {}",
            fleet.store.name,
            fleet.store.describe,
            format_duration(fleet.lease)
        );
        Ok(FleetNode {
            fleet,
            shipper,
            shipping: tokio::sync::Mutex::new(()),
            watches: Mutex::new(Vec::new()),
            held: Mutex::new(BTreeMap::new()),
            takeovers: AtomicU64::new(0),
            started_at: crate::db::ts(Utc::now()),
        })
    }

    /// Waits (at most `limit`) until every firing this node ran has its
    /// result in the bucket: a node stopping between the end of a run and its
    /// result would leave the firing to be taken over and run again.
    pub async fn settle(&self, limit: Duration) {
        let start = Started::now();
        while !self.held.lock().unwrap_or_else(|p| p.into_inner()).is_empty() && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ship(&self, db: &Db) {
        let _one = self.shipping.lock().await;
        if let Err(e) = self.shipper.ship(&self.fleet, db).await {
            tracing::error!(node = %self.fleet.node, "fleet: cannot ship evidence to the bucket: {e:#}");
        }
    }

    async fn beat(&self) {
        let claims = self.held.lock().unwrap_or_else(|p| p.into_inner()).keys().map(|f| f.to_string()).collect();
        let s = NodeStatus {
            node: self.fleet.node.clone(),
            version: crate::VERSION.into(),
            started_at: self.started_at.clone(),
            heartbeat_at: crate::db::ts(Utc::now()),
            lease_ms: self.fleet.lease.as_millis() as u64,
            claims,
            takeovers: self.takeovers.load(Ordering::SeqCst),
        };
        if let Err(e) = status::beat(&self.fleet, &s).await {
            tracing::warn!(node = %self.fleet.node, "fleet: heartbeat not written: {e:#}");
        }
    }
}

/// A due firing in fleet mode: claim it, and run it if this node won.
pub fn fire(daemon: &Arc<Daemon>, plan: Arc<Plan>, at: DateTime<Utc>) {
    let Some(node) = daemon.fleet.clone() else { return };
    let daemon = daemon.clone();
    tokio::spawn(async move {
        let firing = Firing { plan: plan.name.clone(), at };
        match claim::claim(&node.fleet, firing.clone()).await {
            Ok(Claimed::Won(held)) => {
                tracing::info!(node = %node.fleet.node, "fleet: claimed {firing} (attempt 1)");
                run_held(daemon, node, plan, held, "schedule", None).await;
            }
            Ok(Claimed::Lost(w)) => {
                tracing::debug!(node = %node.fleet.node, "fleet: {firing} is claimed by {}", w.holder);
                node.watches.lock().unwrap_or_else(|p| p.into_inner()).push(w);
            }
            Ok(Claimed::Done) => {}
            Err(e) => tracing::error!(node = %node.fleet.node, "fleet: cannot claim {firing}: {e:#}"),
        }
    });
}

/// Runs a firing this node holds: renewing the claim while it runs, fenced
/// before destructive failures and recording, its result written once.
async fn run_held(
    daemon: Arc<Daemon>,
    node: Arc<FleetNode>,
    plan: Arc<Plan>,
    held: Arc<Held>,
    trigger: &str,
    notes: Option<String>,
) {
    let firing = held.firing.clone();
    node.held.lock().unwrap_or_else(|p| p.into_inner()).insert(firing.clone(), held.clone());
    let fence = {
        let held = held.clone();
        Fence(Arc::new(move |before: &str| {
            let (held, before) = (held.clone(), before.to_string());
            Box::pin(async move { held.check(&before).await })
        }))
    };
    let (done_tx, done_rx) = oneshot::channel();
    let extra = Extra { fence: Some(fence), notes, done: Some(done_tx) };
    match daemon.start_with(plan.clone(), trigger, extra) {
        Ok(_) => {
            let renewer = tokio::spawn(renew_while_running(daemon.clone(), plan.name.clone(), held.clone()));
            let report = done_rx.await.ok().flatten();
            renewer.abort();
            if let Some(r) = report {
                let c = held.claim();
                node.shipper.note_firing(
                    r.run_id,
                    FiringRef {
                        plan: c.plan.clone(),
                        instant: c.instant.clone(),
                        attempt: c.attempt,
                        takeover_of: c.previous.clone(),
                    },
                );
                if let Err(why) = held.finish(r.run_id, r.status.as_str(), r.reason.clone()).await {
                    tracing::error!(node = %node.fleet.node, run = r.run_id, "fleet: late write refused: {why}");
                }
            }
        }
        Err(declined @ (Declined::Busy(_) | Declined::Paused(_))) => {
            let why = format!("not started: {declined}");
            daemon.skip(&plan, trigger, &why);
            if let Err(e) = held.finish(0, "skipped", Some(why)).await {
                tracing::error!(node = %node.fleet.node, "fleet: {e}");
            }
        }
        // Not run and no result: a peer takes it over after the lease.
        Err(Declined::Stopping) => {}
    }
    node.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&firing);
    node.ship(&daemon.engine.db).await;
}

/// Renews three times a lease; a refused renewal aborts the run, since
/// another node holds the firing now.
async fn renew_while_running(daemon: Arc<Daemon>, plan: String, held: Arc<Held>) {
    let every = held_lease(&daemon) / 3;
    loop {
        tokio::time::sleep(every).await;
        if let Err(why) = held.renew().await {
            if held.fenced().is_some() {
                tracing::error!(plan = %plan, "fleet: aborting the run: {why}");
                if let Some(a) = daemon.active().get(&plan) {
                    a.abort.cancel_because(&why);
                }
                return;
            }
            tracing::warn!(plan = %plan, "fleet: {why}; trying again");
        }
    }
}

fn held_lease(daemon: &Daemon) -> Duration {
    daemon.fleet.as_ref().map(|n| n.fleet.lease).unwrap_or(Duration::from_secs(60))
}

/// Heartbeats, takeovers of dead peers' firings, and shipping evidence of
/// runs that did not go through a claim (manual, skipped, recovered).
pub async fn worker(daemon: Arc<Daemon>) {
    let Some(node) = daemon.fleet.clone() else { return };
    let lease = node.fleet.lease;
    let tick = (lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut last_beat: Option<Started> = None;
    node.ship(&daemon.engine.db).await;
    loop {
        if daemon.is_stopping() {
            return;
        }
        if last_beat.is_none_or(|b| b.elapsed() >= lease / 3) {
            node.beat().await;
            node.ship(&daemon.engine.db).await;
            last_beat = Some(Started::now());
        }
        let watches = std::mem::take(&mut *node.watches.lock().unwrap_or_else(|p| p.into_inner()));
        let mut keep = Vec::new();
        for mut w in watches {
            match w.poll(&node.fleet).await {
                Ok(Watched::Finished) => {}
                Ok(Watched::Waiting) => keep.push(w),
                Ok(Watched::Due) => match take_over(&daemon, &node, &w).await {
                    Ok(true) => {}
                    Ok(false) => keep.push(w),
                    Err(e) => {
                        tracing::error!(node = %node.fleet.node, "fleet: cannot take over {}: {e:#}", w.firing);
                        keep.push(w);
                    }
                },
                Err(e) => {
                    tracing::warn!(node = %node.fleet.node, "fleet: cannot look at {}: {e:#}", w.firing);
                    keep.push(w);
                }
            }
        }
        node.watches.lock().unwrap_or_else(|p| p.into_inner()).extend(keep);
        tokio::time::sleep(tick).await;
    }
}

/// Takes over a firing whose holder stopped renewing; whether this node did.
async fn take_over(daemon: &Arc<Daemon>, node: &Arc<FleetNode>, w: &Watch) -> anyhow::Result<bool> {
    let Some(plan) = daemon.plans().plans.get(&w.firing.plan).map(|e| e.plan.clone()) else {
        tracing::warn!(node = %node.fleet.node, "fleet: {} cannot be taken over: no such plan here", w.firing);
        return Ok(true);
    };
    let Some(held) = claim::take_over(&node.fleet, w).await? else { return Ok(false) };
    node.takeovers.fetch_add(1, Ordering::SeqCst);
    let note = format!(
        "fleet: takeover of {} from node {} (attempt {}): its claim went unrenewed for {} on this node's clock; this run is attempt {}",
        w.firing,
        w.holder,
        w.attempt,
        format_duration(w.unchanged_for()),
        held.attempt()
    );
    tracing::warn!(node = %node.fleet.node, "{note}");
    tokio::spawn(run_held(daemon.clone(), node.clone(), plan, held, "takeover", Some(note)));
    Ok(true)
}
