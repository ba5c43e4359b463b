//! What backups a plan has now, by the same path its drills choose from: the
//! team's repository through the plan's adapter (`mode = "existing"`), else the
//! plan's complete backups in its store. For looks between drills (the
//! daemon's freshness check, `drdrill coverage`), which only read.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{Engine, blocking};
use crate::cancel::Cancel;
use crate::context::RunCtx;
use crate::existing::{Access, Found};
use crate::plan::Plan;

/// A plan's backups as seen now.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Where they are, as runs record it in `store`: the adapter's repository
    /// (`restic:/srv/restic`), or the store's name.
    pub repository: String,
    /// Oldest first; `time` is what the data is consistent as of.
    pub backups: Vec<Found>,
}

impl Inventory {
    pub fn newest(&self) -> Option<&Found> {
        self.backups.last()
    }

    /// The backups a drill with this `window` chooses among, as
    /// [`crate::existing::choose`] does: those this young, and the newest always.
    pub fn in_window(&self, window: Option<Duration>, now: DateTime<Utc>) -> Vec<&Found> {
        let cutoff = window.and_then(|w| chrono::Duration::from_std(w).ok()).map(|w| now - w);
        let newest = self.newest().map(|n| &n.id);
        self.backups.iter().filter(|f| cutoff.is_none_or(|c| f.time >= c) || Some(&f.id) == newest).collect()
    }
}

impl Engine {
    /// Lists `plan`'s backups. An adapter gets a scratch folder of its own for
    /// the tool's cache and locks, removed afterwards; it is stopped after
    /// `budget` or when `cancel` is set.
    pub async fn inventory(
        &self,
        plan: &Plan,
        purpose: &str,
        budget: Duration,
        cancel: Cancel,
    ) -> anyhow::Result<Inventory> {
        let Some(existing) = plan.existing.clone() else {
            let store = self.open_store(plan.store_name())?;
            let listing = store.list(Some(&plan.name)).await?;
            let mut backups: Vec<Found> = listing
                .into_iter()
                .filter_map(|l| {
                    let m = l.manifest?;
                    Some(Found { time: m.consistency_point, label: format!("backup {}", l.backup_id), id: l.backup_id })
                })
                .collect();
            backups.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
            return Ok(Inventory { repository: store.name.clone(), backups });
        };
        let store = existing.store().map(|name| self.open_store(name)).transpose()?;
        let scratch = self.scratch.create_look(purpose)?;
        let ctx = RunCtx { cancel: cancel.clone(), ..RunCtx::detached(scratch.path().to_path_buf(), budget) };
        let timer = tokio::spawn(async move {
            tokio::time::sleep(budget).await;
            cancel.cancel_because(&format!(
                "listing the backups took longer than {}",
                crate::duration::format_duration(budget)
            ));
        });
        let (e, source) = (existing.clone(), plan.source.clone());
        let listed = blocking(move || {
            let at = Access { ctx: &ctx, source: source.as_ref(), store: store.as_ref(), t_fail: None };
            let found = e.list(&at);
            ctx.groups.kill_all();
            found
        })
        .await;
        timer.abort();
        scratch.cleanup()?;
        let mut backups = listed.with_context(|| format!("cannot list the backups in {}", existing.repository()))?;
        backups.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok(Inventory { repository: existing.repository(), backups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_window_holds_young_backups_and_always_the_newest() {
        let at = |d| Utc.with_ymd_and_hms(2026, 11, d, 3, 0, 0).unwrap();
        let f = |id: &str, d| Found { id: id.into(), time: at(d), label: id.into() };
        let inv = Inventory { repository: "r".into(), backups: vec![f("a", 1), f("b", 10), f("c", 20)] };
        let now = at(30);
        let ids = |w| inv.in_window(w, now).iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(None), ["a", "b", "c"]);
        assert_eq!(ids(Some(Duration::from_secs(25 * 86400))), ["b", "c"]);
        assert_eq!(ids(Some(Duration::from_secs(86400))), ["c"], "the newest is always a candidate");
    }
}
