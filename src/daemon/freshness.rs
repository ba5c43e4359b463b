//! Freshness without a drill: for every plan that restores a backup made
//! outside the drill (`mode = "existing"` or `"latest"`), the daemon looks at
//! the newest backup every `[daemon] freshness_interval`. When it is older than
//! the plan's RPO target the plan is `stale`: a disaster now would lose more
//! than the target allows, whatever the next drill says. One `stale-backup`
//! alert goes out per stale episode (the backup alerted for is kept in the
//! results database, so a restart does not repeat it); `/metrics`, `drdrill
//! status` and `GET /api/plans` show it.
//!
//! A plan is looked at again exactly when its newest backup would cross the
//! target, so it turns stale on time and not up to an interval late. Each look
//! lists the repository like a drill does ([`crate::engine::Engine::inventory`]):
//! its tool runs in a scratch folder of its own, bounded in time, at most a few
//! at once, never on the scheduler's task.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::Daemon;
use super::plans::PlanSet;
use crate::alert::{Event, Notice};
use crate::cancel::Cancel;
use crate::duration::format_duration;
use crate::engine::Inventory;
use crate::plan::{BackupMode, Plan};

/// A listing that takes longer than this is stopped and counts as an error.
const LOOK_BUDGET: Duration = Duration::from_secs(120);

/// Listings at once: each may be a restic or pgBackRest process.
const MAX_LOOKS: usize = 4;

/// What `drdrill status`, `GET /api/plans` and `/metrics` show of one plan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FreshView {
    /// Where its backups are (`restic:/srv/restic`, or a store's name).
    pub repository: Option<String>,
    /// The last look that listed the backups (or tried to).
    pub checked_at: Option<DateTime<Utc>>,
    pub newest_id: Option<String>,
    /// What the newest backup's data is consistent as of.
    pub newest_at: Option<DateTime<Utc>>,
    pub rpo_target_ms: u64,
    /// The newest backup was older than the RPO target at the last look (or
    /// there was none).
    pub stale: bool,
    pub stale_since: Option<DateTime<Utc>>,
    /// Why the last look could not list the backups.
    pub error: Option<String>,
}

impl FreshView {
    /// The newest backup's age at `now`.
    pub fn age(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.newest_at.map(|t| (now - t).to_std().unwrap_or(Duration::ZERO))
    }
}

struct Watched {
    plan: Arc<Plan>,
    next: Instant,
    looking: bool,
    view: FreshView,
}

/// Every watched plan's freshness, shared by the task and the API.
pub struct Freshness {
    plans: Mutex<BTreeMap<String, Watched>>,
    wake: Notify,
    /// Set by a reload: every plan is looked at again at once.
    relook: std::sync::atomic::AtomicBool,
    looks: Arc<Semaphore>,
    /// Set when the daemon stops: listings in progress are cut short.
    stop: Cancel,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness {
            plans: Mutex::default(),
            wake: Notify::new(),
            relook: Default::default(),
            looks: Arc::new(Semaphore::new(MAX_LOOKS)),
            stop: Cancel::new(),
        }
    }
}

/// Whether the daemon watches `plan`'s backups: those made outside its drills.
fn watched(plan: &Plan) -> bool {
    matches!(plan.backup.mode, BackupMode::Existing | BackupMode::Latest)
}

impl Freshness {
    /// After a reload: follows the plan set and looks at every plan again now
    /// (a person who reloads wants to see the backups as they are).
    pub fn wake(&self) {
        self.relook.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Stops the task's listings (the daemon is stopping).
    pub fn stop(&self) {
        self.stop.cancel_because("the daemon is stopping");
        self.wake.notify_one();
    }

    fn plans(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Watched>> {
        self.plans.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn view(&self, plan: &str) -> Option<FreshView> {
        self.plans().get(plan).map(|w| w.view.clone())
    }

    /// Every watched plan's view, by name.
    pub fn views(&self) -> BTreeMap<String, FreshView> {
        self.plans().iter().map(|(n, w)| (n.clone(), w.view.clone())).collect()
    }

    /// Follows the plan set: every plan is looked at now (keeping what was
    /// seen, so a reload starts no new stale episode), a removed one is dropped.
    fn sync(&self, set: &PlanSet, now: Instant) {
        let mut plans = self.plans();
        plans.retain(|name, _| set.plans.get(name).is_some_and(|e| watched(&e.plan)));
        for (name, entry) in set.plans.iter().filter(|(_, e)| watched(&e.plan)) {
            let target = entry.plan.targets.rpo.0.as_millis() as u64;
            match plans.get_mut(name) {
                Some(w) => {
                    w.plan = entry.plan.clone();
                    w.view.rpo_target_ms = target;
                    w.next = now;
                }
                None => {
                    let view = FreshView {
                        repository: None,
                        checked_at: None,
                        newest_id: None,
                        newest_at: None,
                        rpo_target_ms: target,
                        stale: false,
                        stale_since: None,
                        error: None,
                    };
                    plans.insert(name.clone(), Watched { plan: entry.plan.clone(), next: now, looking: false, view });
                }
            }
        }
    }

    fn take_due(&self, now: Instant) -> Vec<Arc<Plan>> {
        let mut due = Vec::new();
        for w in self.plans().values_mut().filter(|w| w.next <= now && !w.looking) {
            w.looking = true;
            due.push(w.plan.clone());
        }
        due
    }

    fn next_due(&self) -> Option<Instant> {
        self.plans().values().filter(|w| !w.looking).map(|w| w.next).min()
    }

    /// Records a look; says when it began or ended a stale episode (the first
    /// look after a start that finds the plan fresh ends any episode a
    /// previous daemon recorded).
    fn finished(
        &self,
        plan: &Plan,
        result: anyhow::Result<Inventory>,
        interval: Duration,
        now: DateTime<Utc>,
    ) -> Option<Turned> {
        let mut plans = self.plans();
        let w = plans.get_mut(&plan.name)?;
        w.looking = false;
        let first = w.view.checked_at.is_none();
        let target = plan.targets.rpo.0;
        let v = &mut w.view;
        v.checked_at = Some(now);
        match result {
            Ok(inv) => {
                v.repository = Some(inv.repository.clone());
                v.error = None;
                v.newest_id = inv.newest().map(|f| f.id.clone());
                v.newest_at = inv.newest().map(|f| f.time);
            }
            Err(e) => {
                let text = crate::redact::scrub(&crate::errors::explain(&e)).into_owned();
                if v.error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(plan = %plan.name, "freshness: cannot list the backups: {text}");
                }
                v.error = Some(text);
            }
        }
        // A failed listing keeps what was seen last: no newer backup could be
        // seen either, so the age keeps growing. Without any listing yet, nothing is known.
        let known = v.newest_at.is_some() || v.error.is_none();
        let age = v.age(now);
        let stale = known && age.is_none_or(|a| a > target);
        let was = v.stale;
        v.stale = stale;
        // Look again at the next interval, or when the newest backup turns too old if that is sooner.
        let mut next = Instant::now() + interval;
        if let (false, Some(a)) = (stale, age) {
            next = next.min(Instant::now() + (target - a) + Duration::from_millis(1));
        }
        w.next = next;
        match (was, stale) {
            (false, true) => {
                v.stale_since = Some(now);
                let notice = stale_notice(plan, v, age, interval, now);
                tracing::warn!(plan = %plan.name, "freshness: {}", notice.title);
                Some(Turned::Stale(notice))
            }
            (true, false) => {
                tracing::info!(
                    plan = %plan.name,
                    "freshness: fresh again: newest backup {} from {}",
                    v.newest_id.as_deref().unwrap_or("-"),
                    v.newest_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                );
                v.stale_since = None;
                Some(Turned::Fresh)
            }
            (false, false) if first && known => Some(Turned::Fresh),
            _ => None,
        }
    }
}

/// What a look changed about a plan's stale episode.
#[derive(Debug)]
enum Turned {
    Stale(Stale),
    Fresh,
}

/// The alert of a stale episode, before it becomes a [`Notice`].
#[derive(Debug)]
struct Stale {
    title: String,
    text: String,
    details: serde_json::Value,
    /// The newest backup it is about (`""`: none at all): the episode's identity.
    backup: String,
}

fn stale_notice(plan: &Plan, v: &FreshView, age: Option<Duration>, interval: Duration, now: DateTime<Utc>) -> Stale {
    let target = format_duration(plan.targets.rpo.0);
    let repo = v.repository.as_deref().unwrap_or("its repository");
    let (title, newest) = match (age, &v.newest_id, v.newest_at) {
        (Some(a), Some(id), Some(t)) => (
            format!("{} STALE: newest backup is {} old (RPO target {target})", plan.name, format_duration(a)),
            format!(
                "The newest backup of plan `{}` in {repo} is {id}, from {}: {} old at {}.",
                plan.name,
                t.to_rfc3339(),
                format_duration(a),
                now.to_rfc3339()
            ),
        ),
        _ => (
            format!("{} STALE: no backup (RPO target {target})", plan.name),
            format!("Plan `{}` has no complete backup in {repo} at {}.", plan.name, now.to_rfc3339()),
        ),
    };
    let listing = match &v.error {
        Some(e) => format!("\nThe last look could not list the backups, so this is what was seen before: {e}\n"),
        None => String::new(),
    };
    Stale {
        title,
        text: format!(
            "{newest}\nThat is more than the plan's RPO target of {target}: a disaster now would lose more data than the target allows. Check the job that makes these backups.\n{listing}\nSeen by the daemon's freshness check (every {}); `drdrill status` shows the plan as STALE until a newer backup is there. This alert is sent once per stale episode.\n",
            format_duration(interval)
        ),
        details: serde_json::json!({
            "repository": v.repository,
            "newest_id": v.newest_id,
            "newest_at": v.newest_at,
            "age_ms": age.map(|a| a.as_millis() as u64),
            "rpo_target_ms": v.rpo_target_ms,
            "list_error": v.error,
        }),
        backup: v.newest_id.clone().unwrap_or_default(),
    }
}

/// Sends the alert of a stale episode that began, unless a previous daemon
/// sent it for the same backup already; records an episode that ended.
fn record(d: &Daemon, plan: &Plan, turned: Turned) {
    let db = &d.engine.db;
    let result = match turned {
        Turned::Fresh => db.set_stale_alerted(&plan.name, None, Utc::now()),
        Turned::Stale(s) => match db.stale_alerted(&plan.name) {
            Ok(Some(b)) if b == s.backup => {
                tracing::info!(plan = %plan.name, "freshness: the stale alert for this backup went out before a restart");
                Ok(())
            }
            _ => {
                let mut notice = Notice::about(&d.alerts, Event::StaleBackup, &plan.name, &s.title, &s.text);
                notice.details = s.details;
                if crate::alert::queue(&d.alerts, db, &notice) {
                    d.mail.notify_one();
                }
                db.set_stale_alerted(&plan.name, Some(&s.backup), Utc::now())
            }
        },
    };
    if let Err(e) = result {
        tracing::error!(plan = %plan.name, "cannot record the plan's stale episode: {e:#}");
    }
}

/// How long the task sleeps when no plan is watched: a reload wakes it anyway.
const IDLE: Duration = Duration::from_secs(3600);

pub async fn run(daemon: Arc<Daemon>) {
    let fresh = &daemon.freshness;
    let interval = daemon.config.daemon.freshness_interval.0;
    let mut look = true;
    loop {
        if daemon.is_stopping() {
            return;
        }
        let now = Instant::now();
        if look || fresh.relook.swap(false, std::sync::atomic::Ordering::SeqCst) {
            fresh.sync(&daemon.plans(), now);
        }
        for plan in fresh.take_due(now) {
            let d = daemon.clone();
            tokio::spawn(async move {
                let looks = d.freshness.looks.clone();
                let _permit = looks.acquire_owned().await;
                // A token of its own (the look's budget cancels it), cancelled by a stop too.
                let cancel = Cancel::new();
                let _linked = {
                    let c = cancel.clone();
                    d.freshness.stop.on_cancel(move || {
                        c.cancel_because("the daemon is stopping");
                    })
                };
                let result = d.engine.inventory(&plan, "freshness", LOOK_BUDGET, cancel).await;
                if let Some(turned) = d.freshness.finished(&plan, result, interval, Utc::now()) {
                    let (d, plan) = (d.clone(), plan.clone());
                    if let Err(e) = tokio::task::spawn_blocking(move || record(&d, &plan, turned)).await {
                        tracing::error!("recording a stale episode panicked: {e}");
                    }
                }
                // The loop's next wake-up depends on what this look saw.
                d.freshness.wake.notify_one();
            });
        }
        let until = fresh.next_due().unwrap_or(now + IDLE);
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = fresh.wake.notified() => {}
        }
        look = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::existing::Found;

    fn set(mode: &str) -> PlanSet {
        let text = format!(
            "[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"d\"\n[backup]\nmode = \"{mode}\"\n[[check]]\nkind = \"tree-matches-source\"\n"
        );
        let plan = Plan::parse(std::path::Path::new("p.toml"), &text, &Config::defaults()).unwrap();
        let mut s = PlanSet::default();
        s.plans.insert(plan.name.clone(), super::super::plans::PlanEntry { plan: Arc::new(plan), next: None });
        s
    }

    fn inv(age: chrono::Duration, now: DateTime<Utc>) -> anyhow::Result<Inventory> {
        Ok(Inventory {
            repository: "local".into(),
            backups: vec![Found { id: "b1".into(), time: now - age, label: "backup b1".into() }],
        })
    }

    #[test]
    fn one_alert_per_stale_episode_and_errors_keep_what_was_seen() {
        let f = Freshness::default();
        let set = set("latest");
        f.sync(&set, Instant::now());
        let plan = set.plans["p"].plan.clone();
        let every = Duration::from_secs(300);
        let now = Utc::now();
        let look = |result| {
            assert_eq!(f.take_due(Instant::now() + Duration::from_secs(86400)).len(), 1);
            f.finished(&plan, result, every, now)
        };
        assert!(
            matches!(look(inv(chrono::Duration::minutes(30), now)), Some(Turned::Fresh)),
            "the first look ends any old episode"
        );
        assert!(!f.view("p").unwrap().stale);
        // The next look is when the backup turns an hour old, not an interval later.
        let wait = f.next_due().unwrap() - Instant::now();
        assert!(wait > Duration::from_secs(250) && wait <= every, "{wait:?}");

        let Some(Turned::Stale(alert)) = look(inv(chrono::Duration::minutes(61), now)) else {
            panic!("turning stale alerts")
        };
        assert_eq!(alert.title, "p STALE: newest backup is 1h 1m old (RPO target 1h)");
        assert!(alert.text.contains("b1") && alert.text.contains("local"), "{}", alert.text);
        assert_eq!((alert.backup.as_str(), &alert.details["age_ms"]), ("b1", &serde_json::json!(61 * 60 * 1000)));
        assert!(look(inv(chrono::Duration::minutes(70), now)).is_none(), "still stale: no second alert");
        // The repository cannot be listed: the last seen backup is still too old, no new episode.
        assert!(look(Err(anyhow::anyhow!("repository offline"))).is_none());
        let v = f.view("p").unwrap();
        assert!(v.stale && v.error.as_deref() == Some("repository offline") && v.newest_id.as_deref() == Some("b1"));
        // A new backup ends the episode; the next one alerts again.
        assert!(matches!(look(inv(chrono::Duration::minutes(1), now)), Some(Turned::Fresh)));
        assert!(!f.view("p").unwrap().stale && f.view("p").unwrap().stale_since.is_none());
        assert!(look(inv(chrono::Duration::minutes(2), now)).is_none(), "fresh and fresh: nothing to record");
        assert!(matches!(look(inv(chrono::Duration::hours(2), now)), Some(Turned::Stale(_))));
    }

    #[test]
    fn only_plans_whose_backups_are_made_elsewhere_are_watched_and_unknown_is_not_stale() {
        let f = Freshness::default();
        f.sync(&set("fresh"), Instant::now());
        assert!(f.views().is_empty(), "a fresh plan's drills make its backups");
        let set = set("latest");
        f.sync(&set, Instant::now());
        let plan = set.plans["p"].plan.clone();
        let (every, now) = (Duration::from_secs(300), Utc::now());
        assert_eq!(f.take_due(Instant::now()).len(), 1);
        assert!(f.take_due(Instant::now()).is_empty(), "one look at a time per plan");
        assert!(f.finished(&plan, Err(anyhow::anyhow!("no such bucket")), every, now).is_none());
        let v = f.view("p").unwrap();
        assert!(!v.stale && v.error.is_some(), "never listed: unknown, not stale: {v:?}");
        // Listed, and there is no backup at all: stale.
        f.take_due(Instant::now() + every);
        let empty = Ok(Inventory { repository: "local".into(), backups: Vec::new() });
        let Some(Turned::Stale(alert)) = f.finished(&plan, empty, every, now) else { panic!("no backup is stale") };
        assert!(alert.title.contains("STALE: no backup") && alert.backup.is_empty(), "{alert:?}");
    }
}
