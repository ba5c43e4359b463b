//! The evidence chain's status for the console, verified once per chain head:
//! a full verification (links, hashes, every record's signature) of a long
//! history takes seconds, and pages are loaded far more often than runs end.
//! When the head moves, only the records added since are read; the whole
//! chain is read again at most [`FULL_EVERY`] after the last whole reading,
//! so a record altered behind drdrill's back (the tables refuse updates, but
//! a `sqlite3` shell can drop their triggers) shows on the console within that
//! time, as it does at once in `drdrill evidence verify`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::db::evidence::Verified;

/// The longest the console trusts records it verified once.
pub const FULL_EVERY: Duration = Duration::from_secs(3600);

/// The chain's head and how it verified.
pub type Status = (Option<(i64, String)>, Result<Verified, String>);

pub struct ChainCache {
    last: Mutex<Option<(Status, Instant)>>,
    full_every: Duration,
}

impl Default for ChainCache {
    fn default() -> Self {
        ChainCache { last: Mutex::default(), full_every: FULL_EVERY }
    }
}

impl ChainCache {
    /// The chain's status now: verified again only when its head moved, from
    /// the head verified before when it verified and is recent enough.
    pub fn status(&self, db: &Db) -> anyhow::Result<Status> {
        let head = db.evidence_head()?;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let verified = match last.as_ref() {
            Some((s, _)) if s.0 == head => return Ok(s.clone()),
            // A chain verified from genesis has as many records as its newest
            // number (which may be past the head read with it).
            Some(((_, Ok(before)), whole))
                if whole.elapsed() < self.full_every && head.as_ref().is_some_and(|h| h.0 > before.records as i64) =>
            {
                (db.verify_chain_after(before, before.records as i64)?, *whole)
            }
            _ => (db.verify_chain()?, Instant::now()),
        };
        let status = (head, verified.0.map_err(|b| b.to_string()));
        *last = Some((status.clone(), verified.1));
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish_runs(db: &Db, n: usize) {
        for _ in 0..n {
            let new = crate::db::NewRun {
                plan: "p",
                plan_file: "",
                plan_sha256: "ab",
                description: "",
                trigger: "manual",
                host: "here",
                started_at: chrono::Utc::now(),
            };
            let id = db.start_run(&new).unwrap();
            let end = crate::db::RunEnd { status: "passed".into(), ..Default::default() };
            db.finish_run(id, &end, &[], &[], &[]).unwrap();
        }
    }

    /// Rewrites record #`seq` behind drdrill's back, as a `sqlite3` shell can.
    fn alter(db: &Db, seq: i64) {
        db.with_conn(|c| {
            c.execute_batch(&format!(
                "DROP TRIGGER IF EXISTS evidence_append_only_update;
                 UPDATE evidence SET record = replace(record, '\"passed\"', '\"failed\"') WHERE seq = {seq};"
            ))
        })
        .unwrap()
    }

    #[test]
    fn a_moved_head_is_verified_from_the_last_one_and_agrees_with_a_whole_reading() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("d.db")).unwrap();
        let cache = ChainCache::default();
        finish_runs(&db, 3);
        assert_eq!(cache.status(&db).unwrap().1.unwrap().records, 3);
        for more in [1, 4] {
            finish_runs(&db, more);
            let (head, verified) = cache.status(&db).unwrap();
            assert_eq!(head, db.evidence_head().unwrap());
            assert_eq!(verified, db.verify_chain().unwrap().map_err(|b| b.to_string()));
        }
        // A record added since the last look is read, altered or not.
        finish_runs(&db, 2);
        alter(&db, 10);
        let broken = cache.status(&db).unwrap().1.unwrap_err();
        assert!(broken.contains("#10") && broken.contains("altered"), "{broken}");

        // One read before is trusted until the next whole reading.
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("d.db")).unwrap();
        let (trusting, strict) =
            (ChainCache::default(), ChainCache { full_every: Duration::ZERO, ..Default::default() });
        finish_runs(&db, 3);
        assert!(trusting.status(&db).unwrap().1.is_ok() && strict.status(&db).unwrap().1.is_ok());
        alter(&db, 2);
        finish_runs(&db, 1);
        assert!(trusting.status(&db).unwrap().1.is_ok(), "read again before FULL_EVERY");
        let broken = strict.status(&db).unwrap().1.unwrap_err();
        assert!(broken.contains("#2") && broken.contains("altered"), "{broken}");
    }
}
