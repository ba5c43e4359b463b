//! Queued alerts in the results database, one row per channel, so a message
//! survives a dead server or a restart and is retried with backoff.

use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::db::{Db, ts};

/// A message as one channel sends it, before it is addressed: recipients,
/// URLs and keys come from the config at send time.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The event's name (the row's `kind`), for channels that route or rank by it.
    pub event: String,
    pub subject: String,
    pub body: String,
    /// File name and bytes.
    pub attachment: Option<(String, Vec<u8>)>,
}

#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    /// The channel it was queued for.
    pub channel: String,
    pub attempts: i64,
    pub message: Outgoing,
}

/// Backoff after `attempts` failures: 1 min doubling, at most 1 h.
fn backoff(attempts: i64) -> chrono::Duration {
    let d = crate::backoff::Backoff::after(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(3600),
        attempts.clamp(0, 31) as u32,
    );
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1))
}

pub fn enqueue(db: &Db, kind: &str, channel: &str, m: &Outgoing) -> anyhow::Result<i64> {
    db.with_conn(|c| {
        let now = ts(Utc::now());
        c.execute(
            "INSERT INTO outbox (kind, created_at, subject, body, attachment_name, attachment, attempts, next_attempt_at, channel)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?2, ?7)",
            params![
                kind,
                now,
                m.subject,
                m.body,
                m.attachment.as_ref().map(|a| &a.0),
                m.attachment.as_ref().map(|a| &a.1),
                channel
            ],
        )?;
        Ok(c.last_insert_rowid())
    })
}

pub fn due(db: &Db, now: DateTime<Utc>) -> anyhow::Result<Vec<OutboxEntry>> {
    db.with_conn(|c| {
        let mut stmt = c.prepare(
            "SELECT id, attempts, subject, body, attachment_name, attachment, channel, kind FROM outbox
             WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([ts(now)], |r| {
            let name: Option<String> = r.get(4)?;
            let bytes: Option<Vec<u8>> = r.get(5)?;
            Ok(OutboxEntry {
                id: r.get(0)?,
                channel: r.get(6)?,
                attempts: r.get(1)?,
                message: Outgoing {
                    event: r.get(7)?,
                    subject: r.get(2)?,
                    body: r.get(3)?,
                    attachment: name.zip(bytes),
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

pub fn mark_sent(db: &Db, id: i64) -> anyhow::Result<()> {
    db.with_conn(|c| {
        c.execute(
            "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            params![id, ts(Utc::now())],
        )?;
        Ok(())
    })
}

pub fn mark_failed(db: &Db, id: i64, error: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    db.with_conn(|c| {
        let attempts: i64 = c.query_row("SELECT attempts FROM outbox WHERE id = ?1", [id], |r| r.get(0))?;
        c.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
            params![id, error, ts(now + backoff(attempts))],
        )?;
        Ok(())
    })
}

/// Messages not yet delivered.
pub fn pending(db: &Db) -> anyhow::Result<usize> {
    db.with_conn(|c| {
        Ok(c.query_row("SELECT count(*) FROM outbox WHERE sent_at IS NULL", [], |r| r.get::<_, i64>(0))? as usize)
    })
}

/// Makes every queued message due now: for `drdrill notify flush`.
pub fn make_all_due(db: &Db) -> anyhow::Result<()> {
    db.with_conn(|c| {
        c.execute("UPDATE outbox SET next_attempt_at = ?1 WHERE sent_at IS NULL", [ts(Utc::now())])?;
        Ok(())
    })
}
