//! Which backups a plan's retention rules delete. Pure, so the rules are tested
//! without a store; [`super::Store::delete_backup`] does the deleting.
//!
//! Rules: only complete backups are considered (an incomplete folder may be an
//! upload still in progress); the newest complete backup is always kept, whatever
//! the rules say, so retention can never leave a plan with nothing to restore.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Listing;

/// `[backup] keep_last` and `max_age` of a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<usize>,
    pub max_age: Option<Duration>,
}

impl Retention {
    pub fn is_set(&self) -> bool {
        self.keep_last.is_some() || self.max_age.is_some()
    }

    /// The backup ids to delete, oldest first. A backup goes when it is beyond
    /// the newest `keep_last` or older than `max_age`, never when it is the newest.
    pub fn expired(&self, listings: &[Listing], now: DateTime<Utc>) -> Vec<String> {
        let mut complete: Vec<(&str, DateTime<Utc>)> =
            listings.iter().filter_map(|l| l.manifest.as_ref().map(|m| (l.backup_id.as_str(), m.created_at))).collect();
        // Newest first; ids break ties since they sort by time too.
        complete.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(a.0)));
        let mut out: Vec<(String, DateTime<Utc>)> = complete
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, (_, at))| {
                let beyond_count = self.keep_last.is_some_and(|n| *i >= n.max(1));
                let too_old = self.max_age.is_some_and(|age| (now - *at).to_std().is_ok_and(|a| a > age));
                beyond_count || too_old
            })
            .map(|(_, (id, at))| (id.to_string(), *at))
            .collect();
        out.sort_by_key(|(_, at)| *at);
        out.into_iter().map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MANIFEST_FORMAT, Manifest, PayloadInfo};

    fn listing(id: &str, hours_ago: i64, complete: bool, now: DateTime<Utc>) -> Listing {
        let at = now - chrono::Duration::hours(hours_ago);
        let manifest = complete.then(|| Manifest {
            format: MANIFEST_FORMAT,
            plan: "p".into(),
            backup_id: id.into(),
            source_kind: "sqlite".into(),
            created_at: at,
            consistency_point: at,
            drdrill_version: "test".into(),
            payload: PayloadInfo {
                name: "payload.tar.zst".into(),
                format: "tar".into(),
                compression: "zstd".into(),
                size: 1,
                sha256: String::new(),
                raw_size: 1,
            },
            skipped: Vec::new(),
            entries: crate::store::Entries::none(),
        });
        Listing { plan: "p".into(), backup_id: id.into(), manifest, manifest_error: None, stored_bytes: 1 }
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let now = Utc::now();
        let l = vec![listing("a", 5, true, now), listing("b", 4, true, now), listing("c", 3, true, now)];
        let r = Retention { keep_last: Some(2), max_age: None };
        assert_eq!(r.expired(&l, now), vec!["a"]);
        // keep_last = 0 still keeps the newest.
        let r = Retention { keep_last: Some(0), max_age: None };
        assert_eq!(r.expired(&l, now), vec!["a", "b"]);
    }

    #[test]
    fn max_age_never_deletes_the_newest_complete() {
        let now = Utc::now();
        let l = vec![listing("a", 100, true, now), listing("b", 90, true, now), listing("c", 1, false, now)];
        let r = Retention { keep_last: None, max_age: Some(Duration::from_secs(3600)) };
        // Both complete backups are too old, but "b" is the newest complete one;
        // the incomplete "c" is neither counted nor deleted.
        assert_eq!(r.expired(&l, now), vec!["a"]);
    }

    #[test]
    fn rules_combine_and_nothing_set_deletes_nothing() {
        let now = Utc::now();
        let l: Vec<_> = (0..6).map(|i| listing(&format!("id{i}"), 10 - i, true, now)).collect();
        let r = Retention { keep_last: Some(4), max_age: Some(Duration::from_secs(7 * 3600)) };
        // Beyond 4: id0, id1. Older than 7h: id0..id2.
        assert_eq!(r.expired(&l, now), vec!["id0", "id1", "id2"]);
        assert!(Retention::default().expired(&l, now).is_empty());
    }
}
