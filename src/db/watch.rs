//! What the daemon watches between runs: when each plan was first loaded, its
//! last passed run, the overdue period last alerted, the backup last alerted
//! stale; and the figures
//! `/metrics` shows about each plan's newest run.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Db, parse_ts, ts};

/// One check of a plan's newest run that ran checks.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckDuration {
    pub plan: String,
    /// 1-based position in the plan's checks.
    pub seq: i64,
    pub kind: String,
    pub duration_ms: f64,
}

impl Db {
    /// When the daemon first loaded `plan` (recorded now if it never had).
    pub fn plan_first_loaded(&self, plan: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO plan_watch (plan, first_loaded_at) VALUES (?1, ?2)",
            params![plan, ts(now)],
        )?;
        let t: String =
            conn.query_row("SELECT first_loaded_at FROM plan_watch WHERE plan = ?1", [plan], |r| r.get(0))?;
        Ok(parse_ts(&t))
    }

    /// When `plan`'s newest passed run finished.
    pub fn last_passed(&self, plan: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        // `+status` keeps SQLite on runs_by_plan: with the status index it read
        // every passed run of every plan, and the console asks this per plan
        // (1,000 plans over 100,000 runs took minutes).
        let t: Option<String> = self.conn().query_row(
            "SELECT max(coalesce(finished_at, started_at)) FROM runs WHERE plan = ?1 AND +status = 'passed'",
            [plan],
            |r| r.get(0),
        )?;
        Ok(t.as_deref().map(parse_ts))
    }

    /// Whether `plan` has any run that is not `skipped`.
    pub fn has_run(&self, plan: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM runs WHERE plan = ?1 AND +status != 'skipped' LIMIT 1", [plan], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The start of the overdue period `plan` was last alerted for.
    pub fn overdue_alerted(&self, plan: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        let t: Option<Option<String>> = self
            .conn()
            .query_row("SELECT overdue_alerted_at FROM plan_watch WHERE plan = ?1", [plan], |r| r.get(0))
            .optional()?;
        Ok(t.flatten().as_deref().map(parse_ts))
    }

    pub fn set_overdue_alerted(&self, plan: &str, period: DateTime<Utc>) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO plan_watch (plan, first_loaded_at, overdue_alerted_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (plan) DO UPDATE SET overdue_alerted_at = ?2",
            params![plan, ts(period)],
        )?;
        Ok(())
    }

    /// The newest backup `plan` was last alerted stale for (`""` for none at
    /// all), while that stale episode lasts.
    pub fn stale_alerted(&self, plan: &str) -> anyhow::Result<Option<String>> {
        let t: Option<Option<String>> = self
            .conn()
            .query_row("SELECT stale_alerted_for FROM plan_watch WHERE plan = ?1", [plan], |r| r.get(0))
            .optional()?;
        Ok(t.flatten())
    }

    /// Records the stale episode alerted for (`Some(newest backup id)`), or its end (`None`).
    pub fn set_stale_alerted(&self, plan: &str, backup: Option<&str>, now: DateTime<Utc>) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO plan_watch (plan, first_loaded_at, stale_alerted_for) VALUES (?1, ?2, ?3)
             ON CONFLICT (plan) DO UPDATE SET stale_alerted_for = ?3",
            params![plan, ts(now), backup],
        )?;
        Ok(())
    }

    /// When each plan's newest finished run (not a skipped firing) finished.
    pub fn last_run_times(&self) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT plan, max(coalesce(finished_at, started_at)) FROM runs
             WHERE status NOT IN ('running', 'skipped') GROUP BY plan",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.map(|r| r.map(|(p, t)| (p, parse_ts(&t)))).collect::<Result<_, _>>()?)
    }

    /// The checks of each plan's newest finished run that ran any.
    pub fn last_check_durations(&self) -> anyhow::Result<Vec<CheckDuration>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT r.plan, c.seq, c.kind, c.duration_ms FROM checks c JOIN runs r ON r.id = c.run_id
             WHERE c.attempts > 0 AND r.id = (
               SELECT max(r2.id) FROM runs r2 WHERE r2.plan = r.plan AND r2.status NOT IN ('running', 'skipped')
                 AND EXISTS (SELECT 1 FROM checks c2 WHERE c2.run_id = r2.id AND c2.attempts > 0))
             ORDER BY r.plan, c.seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CheckDuration { plan: r.get(0)?, seq: r.get::<_, i64>(1)? + 1, kind: r.get(2)?, duration_ms: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
