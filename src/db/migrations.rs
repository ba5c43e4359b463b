//! Numbered schema migrations. Append new ones; never edit one that has shipped.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: plans, runs, phases, measurements, checks.
    "CREATE TABLE plans (
        name TEXT PRIMARY KEY,
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
     );
     CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        plan TEXT NOT NULL,
        plan_sha256 TEXT NOT NULL,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'passed', 'failed', 'aborted', 'skipped')),
        reason TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        t_fail TEXT,
        backup_mode TEXT,
        store TEXT,
        backup_id TEXT,
        backup_sha256 TEXT,
        backup_created_at TEXT,
        host TEXT NOT NULL,
        version TEXT NOT NULL
     );
     CREATE INDEX runs_by_plan ON runs (plan, id);
     CREATE INDEX runs_by_status ON runs (status);
     CREATE TABLE phases (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        started_at TEXT NOT NULL,
        duration_ms REAL NOT NULL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, seq)
     );
     CREATE TABLE measurements (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        name TEXT NOT NULL,
        value_ms REAL,
        target_ms REAL,
        method TEXT NOT NULL,
        met INTEGER,
        PRIMARY KEY (run_id, name)
     );
     CREATE TABLE checks (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        description TEXT NOT NULL,
        passed INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        duration_ms REAL NOT NULL,
        output TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
     );",
    // 2: game days: operator notes and approval gates, both timestamped.
    "CREATE TABLE run_notes (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
     );
     CREATE TABLE gate_approvals (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        gate TEXT NOT NULL,
        waiting_since TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('approved', 'aborted')),
        decided_by TEXT NOT NULL,
        note TEXT,
        PRIMARY KEY (run_id, gate)
     );",
    // 3 (evidence): the hash chain, one record per finished run, and
    // the mail outbox (queued alerts and digests, retried until delivered).
    // Triggers make accidental edits fail loudly; a deliberate edit (dropping the
    // triggers) is still caught by `drdrill evidence verify`.
    "CREATE TABLE evidence (
        seq INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL UNIQUE REFERENCES runs (id),
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        record TEXT NOT NULL
     );
     CREATE TRIGGER evidence_append_only_update BEFORE UPDATE ON evidence
        BEGIN SELECT RAISE(ABORT, 'evidence is append-only'); END;
     CREATE TRIGGER evidence_append_only_delete BEFORE DELETE ON evidence
        BEGIN SELECT RAISE(ABORT, 'evidence is append-only'); END;
     CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        attachment_name TEXT,
        attachment BLOB,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at TEXT NOT NULL,
        sent_at TEXT
     );
     CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE sent_at IS NULL;",
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    let current: i64 = conn.query_row("SELECT coalesce(max(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, super::ts(chrono::Utc::now())],
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}
