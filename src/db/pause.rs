//! Emergency stops: the daemon's scheduler paused by someone, with why, until
//! someone resumes it. Kept in the database so that a pause survives a restart
//! (a stop that a crash or a deploy silently lifted would be no stop), and kept
//! after resumption, so the record shows every stop and who lifted it.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Db, parse_ts, ts};

/// One pause of the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pause {
    pub id: i64,
    pub paused_at: DateTime<Utc>,
    pub paused_by: String,
    pub reason: String,
    /// The runs the stop aborted.
    pub aborted_runs: Vec<i64>,
    pub resumed_at: Option<DateTime<Utc>>,
    pub resumed_by: Option<String>,
}

const SELECT: &str =
    "SELECT id, paused_at, paused_by, reason, aborted_runs, resumed_at, resumed_by FROM scheduler_pauses";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Pause> {
    let aborted: String = r.get(4)?;
    let resumed: Option<String> = r.get(5)?;
    Ok(Pause {
        id: r.get(0)?,
        paused_at: parse_ts(&r.get::<_, String>(1)?),
        paused_by: r.get(2)?,
        reason: r.get(3)?,
        // Written only by `add_aborted` below; unreadable text means none.
        aborted_runs: serde_json::from_str(&aborted).unwrap_or_default(),
        resumed_at: resumed.as_deref().map(parse_ts),
        resumed_by: r.get(6)?,
    })
}

impl Db {
    /// The pause in force, if any.
    pub fn current_pause(&self) -> anyhow::Result<Option<Pause>> {
        let conn = self.conn();
        Ok(conn.query_row(&format!("{SELECT} WHERE resumed_at IS NULL"), [], from_row).optional()?)
    }

    /// Pauses the scheduler; when it already is, the pause in force is kept
    /// (the first stop's who and why stay on record) and returned with `false`.
    pub fn pause_scheduler(&self, by: &str, reason: &str, at: DateTime<Utc>) -> anyhow::Result<(Pause, bool)> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(p) = tx.query_row(&format!("{SELECT} WHERE resumed_at IS NULL"), [], from_row).optional()? {
            return Ok((p, false));
        }
        tx.execute(
            "INSERT INTO scheduler_pauses (paused_at, paused_by, reason) VALUES (?1, ?2, ?3)",
            params![ts(at), by, reason],
        )?;
        let id = tx.last_insert_rowid();
        let p = tx.query_row(&format!("{SELECT} WHERE id = ?1"), [id], from_row)?;
        tx.commit()?;
        Ok((p, true))
    }

    /// Adds runs that pause `id` aborted to its record; returns the record.
    pub fn add_aborted(&self, id: i64, runs: &[i64]) -> anyhow::Result<Pause> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let text: String =
            tx.query_row("SELECT aborted_runs FROM scheduler_pauses WHERE id = ?1", [id], |r| r.get(0))?;
        let mut all: Vec<i64> = serde_json::from_str(&text).unwrap_or_default();
        for r in runs {
            if !all.contains(r) {
                all.push(*r);
            }
        }
        tx.execute(
            "UPDATE scheduler_pauses SET aborted_runs = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(&all)?],
        )?;
        let p = tx.query_row(&format!("{SELECT} WHERE id = ?1"), [id], from_row)?;
        tx.commit()?;
        Ok(p)
    }

    /// Ends the pause in force, recording who ended it; `None` if there was none.
    pub fn resume_scheduler(&self, by: &str, at: DateTime<Utc>) -> anyhow::Result<Option<Pause>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(open) = tx.query_row(&format!("{SELECT} WHERE resumed_at IS NULL"), [], from_row).optional()? else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE scheduler_pauses SET resumed_at = ?2, resumed_by = ?3 WHERE id = ?1",
            params![open.id, ts(at), by],
        )?;
        let p = tx.query_row(&format!("{SELECT} WHERE id = ?1"), [open.id], from_row)?;
        tx.commit()?;
        Ok(Some(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_stays_until_resumed_and_a_second_stop_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let db = Db::open(&path).unwrap();
        assert_eq!(db.current_pause().unwrap(), None);
        let (p, new) = db.pause_scheduler("alice", "prod is on fire", Utc::now()).unwrap();
        assert!(new);
        db.add_aborted(p.id, &[3, 4]).unwrap();
        db.add_aborted(p.id, &[4, 5]).unwrap();
        let (again, new) = db.pause_scheduler("bob", "me too", Utc::now()).unwrap();
        assert!(!new);
        assert_eq!((again.paused_by.as_str(), again.aborted_runs), ("alice", vec![3, 4, 5]));
        drop(db);
        // Survives closing and reopening, as it must survive a daemon restart.
        let db = Db::open(&path).unwrap();
        assert_eq!(db.current_pause().unwrap().map(|p| p.reason), Some("prod is on fire".into()));
        let done = db.resume_scheduler("carol", Utc::now()).unwrap().unwrap();
        assert_eq!((done.id, done.resumed_by.as_deref()), (p.id, Some("carol")));
        assert_eq!(db.current_pause().unwrap(), None);
        assert_eq!(db.resume_scheduler("carol", Utc::now()).unwrap(), None);
        // A new stop after a resume is a new record.
        let (next, new) = db.pause_scheduler("dave", "again", Utc::now()).unwrap();
        assert!(new && next.id != p.id);
    }
}
