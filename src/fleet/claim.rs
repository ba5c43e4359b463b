//! One run per firing: claims, renewals, fencing and takeovers.
//!
//! A firing (plan, scheduled instant) is claimed by a create-only write of
//! `fleet/claims/<plan>/<instant>/<attempt>`, a key every node derives the same
//! way from the schedule; only the node whose create succeeds runs it. While it
//! runs, the holder renews its claim with `If-Match` on the ETag it last got.
//! The attempt number is the fencing token: before each destructive failure
//! and before the result is written, the holder renews again, and a refused
//! renewal means another node holds the firing now, so it stops.
//!
//! A peer that saw the same ETag on the newest claim for a whole lease, on its
//! own monotonic clock (no clock sync assumed), takes over: it first marks that
//! claim superseded with `If-Match` on the ETag it watched (so the holder's next
//! renewal fails, and two peers cannot both succeed), then creates the next
//! attempt. The result is written once, create-only, beside the claims, so even
//! a stalled holder whose last fence check passed cannot record a second one.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Fleet, Put, json};
use crate::clock::Started;

/// How an instant is spelled in a key: sortable, no `:`.
const INSTANT_KEY: &str = "%Y%m%dT%H%M%S%.3fZ";
const RESULT: &str = "result";

/// A due firing: a plan at its scheduled instant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Firing {
    pub plan: String,
    pub at: DateTime<Utc>,
}

impl Firing {
    pub fn instant_key(&self) -> String {
        self.at.format(INSTANT_KEY).to_string()
    }

    fn dir(&self) -> object_store::path::Path {
        Fleet::path(&["claims", &self.plan, &self.instant_key()])
    }

    pub fn claim_path(&self, attempt: u32) -> object_store::path::Path {
        Fleet::path(&["claims", &self.plan, &self.instant_key(), &format!("{attempt:06}")])
    }

    pub fn result_path(&self) -> object_store::path::Path {
        Fleet::path(&["claims", &self.plan, &self.instant_key(), RESULT])
    }
}

impl std::fmt::Display for Firing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} firing of `{}`", crate::db::ts(self.at), self.plan)
    }
}

/// A node and the attempt it held.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub node: String,
    pub attempt: u32,
}

/// The claim object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claim {
    pub plan: String,
    /// The scheduled instant, RFC 3339.
    pub instant: String,
    pub attempt: u32,
    pub node: String,
    pub version: String,
    pub claimed_at: String,
    pub renewed_at: String,
    pub renewals: u64,
    /// Set on a takeover: whose claim this one replaced.
    pub previous: Option<Holder>,
    /// Set by the node that took the firing over.
    pub superseded_by: Option<Holder>,
}

/// The firing's outcome, written once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FiringResult {
    pub plan: String,
    pub instant: String,
    pub attempt: u32,
    pub node: String,
    pub run_id: i64,
    pub status: String,
    pub reason: Option<String>,
    pub finished_at: String,
    pub takeover_of: Option<Holder>,
}

fn new_claim(fleet: &Fleet, firing: &Firing, attempt: u32, previous: Option<Holder>) -> Claim {
    let now = crate::db::ts(Utc::now());
    Claim {
        plan: firing.plan.clone(),
        instant: crate::db::ts(firing.at),
        attempt,
        node: fleet.node.clone(),
        version: crate::VERSION.into(),
        claimed_at: now.clone(),
        renewed_at: now,
        renewals: 0,
        previous,
        superseded_by: None,
    }
}

/// The outcome of trying to claim a firing.
pub enum Claimed {
    /// This node runs it.
    Won(Arc<Held>),
    /// Another node does; watch it in case it dies.
    Lost(Watch),
    /// It already has a result.
    Done,
}

/// Claims `firing` (attempt 1).
pub async fn claim(fleet: &Arc<Fleet>, firing: Firing) -> anyhow::Result<Claimed> {
    let c = new_claim(fleet, &firing, 1, None);
    let path = firing.claim_path(1);
    match fleet.create(&path, json(&c)).await? {
        Put::Done(etag) => Ok(Claimed::Won(Arc::new(Held::new(fleet.clone(), firing, c, etag)))),
        Put::Refused => match latest(fleet, &firing).await? {
            Latest::Finished => Ok(Claimed::Done),
            Latest::Claimed { attempt, etag, holder } => Ok(Claimed::Lost(Watch::new(firing, attempt, etag, holder))),
            // Refused, yet nothing is there: it was cleaned away; nothing to run.
            Latest::Nothing => Ok(Claimed::Done),
        },
    }
}

/// What the bucket says about a firing now.
#[derive(Debug, PartialEq)]
pub enum Latest {
    Finished,
    Claimed { attempt: u32, etag: Option<String>, holder: String },
    Nothing,
}

pub async fn latest(fleet: &Fleet, firing: &Firing) -> anyhow::Result<Latest> {
    let objects = fleet.list(&firing.dir()).await?;
    if objects.iter().any(|o| o.location.filename() == Some(RESULT)) {
        return Ok(Latest::Finished);
    }
    let newest =
        objects.iter().filter_map(|o| Some((o.location.filename()?.parse::<u32>().ok()?, o))).max_by_key(|(a, _)| *a);
    let Some((attempt, _)) = newest else { return Ok(Latest::Nothing) };
    // The listing's ETag may be older than the object's; the GET's is current.
    match fleet.get_json::<Claim>(&firing.claim_path(attempt)).await? {
        Some((c, etag)) => Ok(Latest::Claimed { attempt, etag, holder: c.node }),
        None => Ok(Latest::Nothing),
    }
}

/// A firing another node holds, watched on this node's monotonic clock.
#[derive(Debug)]
pub struct Watch {
    pub firing: Firing,
    pub attempt: u32,
    pub etag: Option<String>,
    pub holder: String,
    since: Started,
}

/// What a watched firing needs.
#[derive(Debug, PartialEq)]
pub enum Watched {
    /// Its holder is alive (or the lease has not passed yet).
    Waiting,
    /// The same ETag for a whole lease: take it over.
    Due,
    /// It has its result: stop watching.
    Finished,
}

impl Watch {
    pub fn new(firing: Firing, attempt: u32, etag: Option<String>, holder: String) -> Watch {
        Watch { firing, attempt, etag, holder, since: Started::now() }
    }

    /// Looks at the bucket again.
    pub async fn poll(&mut self, fleet: &Fleet) -> anyhow::Result<Watched> {
        match latest(fleet, &self.firing).await? {
            Latest::Finished | Latest::Nothing => Ok(Watched::Finished),
            Latest::Claimed { attempt, etag, holder } => {
                if attempt != self.attempt || etag != self.etag {
                    *self = Watch::new(self.firing.clone(), attempt, etag, holder);
                    return Ok(Watched::Waiting);
                }
                Ok(if self.since.elapsed() >= fleet.lease { Watched::Due } else { Watched::Waiting })
            }
        }
    }

    /// How long the watched ETag has not changed.
    pub fn unchanged_for(&self) -> std::time::Duration {
        self.since.elapsed()
    }
}

/// Takes a watched firing over: marks its newest claim superseded (If-Match
/// on the watched ETag), then creates the next attempt. `None` if the holder
/// renewed meanwhile or another peer was quicker.
pub async fn take_over(fleet: &Arc<Fleet>, w: &Watch) -> anyhow::Result<Option<Arc<Held>>> {
    let Some(etag) = &w.etag else { return Ok(None) };
    let old_path = w.firing.claim_path(w.attempt);
    let Some((mut old, now_etag)) = fleet.get_json::<Claim>(&old_path).await? else { return Ok(None) };
    // A claim already marked superseded whose next attempt never appeared (the
    // peer died in between) is taken over the same way: its ETag decides.
    if now_etag.as_ref() != Some(etag) {
        return Ok(None);
    }
    let next = w.attempt + 1;
    old.superseded_by = Some(Holder { node: fleet.node.clone(), attempt: next });
    if let Put::Refused = fleet.update(&old_path, etag, json(&old)).await? {
        return Ok(None);
    }
    let c = new_claim(fleet, &w.firing, next, Some(Holder { node: old.node.clone(), attempt: w.attempt }));
    match fleet.create(&w.firing.claim_path(next), json(&c)).await? {
        Put::Done(etag) => Ok(Some(Arc::new(Held::new(fleet.clone(), w.firing.clone(), c, etag)))),
        Put::Refused => Ok(None),
    }
}

/// A claim this node holds while it runs the firing.
pub struct Held {
    fleet: Arc<Fleet>,
    pub firing: Firing,
    state: Mutex<(Claim, Option<String>)>,
    fenced: Mutex<Option<String>>,
    /// One renewal at a time: two at once would send the same ETag, and the
    /// second, refused, would look like a takeover.
    renewing: tokio::sync::Mutex<()>,
}

impl Held {
    fn new(fleet: Arc<Fleet>, firing: Firing, claim: Claim, etag: Option<String>) -> Held {
        Held {
            fleet,
            firing,
            state: Mutex::new((claim, etag)),
            fenced: Mutex::new(None),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn claim(&self) -> Claim {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    pub fn attempt(&self) -> u32 {
        self.claim().attempt
    }

    /// Why this node no longer holds the firing, once it knows.
    pub fn fenced(&self) -> Option<String> {
        self.fenced.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Renews the claim with `If-Match`. A refused renewal fences this node
    /// for good: another node holds the firing now.
    pub async fn renew(&self) -> Result<(), String> {
        let _one = self.renewing.lock().await;
        if let Some(why) = self.fenced() {
            return Err(why);
        }
        let (mut claim, etag) = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(etag) = etag else { return Err("the store gave no ETag for this node's claim".into()) };
        claim.renewed_at = crate::db::ts(Utc::now());
        claim.renewals += 1;
        let path = self.firing.claim_path(claim.attempt);
        match self.fleet.update(&path, &etag, json(&claim)).await {
            Ok(Put::Done(new)) => {
                *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (claim, new);
                Ok(())
            }
            Ok(Put::Refused) => {
                let by = match self.fleet.get_json::<Claim>(&path).await {
                    Ok(Some((c, _))) => c.superseded_by.map(|h| format!(" by {} (attempt {})", h.node, h.attempt)),
                    _ => None,
                };
                let why = format!(
                    "{} was taken over{}: this node's claim (attempt {}) was not renewed in time",
                    self.firing,
                    by.unwrap_or_default(),
                    claim.attempt
                );
                *self.fenced.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                Err(why)
            }
            Err(e) => Err(format!("cannot renew the claim on {}: {}", self.firing, crate::errors::explain(&e))),
        }
    }

    /// The fencing check: renews, and says why not to go on if it cannot.
    pub async fn check(&self, before: &str) -> Result<(), String> {
        self.renew().await.map_err(|why| {
            tracing::error!(node = %self.fleet.node, "fleet: not going on with {before}: {why}");
            format!("fleet: stopped before {before}: {why}")
        })
    }

    /// Writes the firing's result once, after a last fencing check.
    pub async fn finish(&self, run_id: i64, status: &str, reason: Option<String>) -> Result<(), String> {
        self.check("writing the result").await?;
        let c = self.claim();
        let r = FiringResult {
            plan: c.plan,
            instant: c.instant,
            attempt: c.attempt,
            node: c.node,
            run_id,
            status: status.into(),
            reason,
            finished_at: crate::db::ts(Utc::now()),
            takeover_of: c.previous,
        };
        match self.fleet.create(&self.firing.result_path(), json(&r)).await {
            Ok(Put::Done(_)) => Ok(()),
            Ok(Put::Refused) => Err(format!("{} already has a result: this node's write was refused", self.firing)),
            Err(e) => Err(format!("cannot write the result of {}: {}", self.firing, crate::errors::explain(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_derives_the_same_keys_for_a_firing() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.600Z").unwrap().with_timezone(&Utc);
        let f = Firing { plan: "orders".into(), at };
        assert_eq!(f.claim_path(1).as_ref(), "fleet/claims/orders/20260102T030405.600Z/000001");
        assert_eq!(f.claim_path(12).as_ref(), "fleet/claims/orders/20260102T030405.600Z/000012");
        assert_eq!(f.result_path().as_ref(), "fleet/claims/orders/20260102T030405.600Z/result");
        assert_eq!(f.to_string(), "the 2026-01-02T03:04:05.600Z firing of `orders`");
    }
}
