//! Numbered schema migrations. Append new ones; never edit one that has shipped.
//!
//! A database whose schema is newer than this build knows (written by a newer
//! drdrill) is refused before anything is written to it.

use anyhow::Context;
use rusqlite::Connection;

/// The SQL of each migration, in order; [`FOLLOW_UPS`] adds data changes that
/// need Rust.
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
    // 4: who owns a running run (pid, its start time in clock ticks, the boot),
    // so start-up recovery touches only runs whose process died; and when the
    // head log beside the database was started (see `headlog`).
    "ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
     ALTER TABLE runs ADD COLUMN owner_started INTEGER;
     ALTER TABLE runs ADD COLUMN owner_boot TEXT;
     CREATE TABLE evidence_head_log (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        created_at TEXT NOT NULL,
        from_seq INTEGER NOT NULL
     );
     CREATE TRIGGER evidence_head_log_update BEFORE UPDATE ON evidence_head_log
        BEGIN SELECT RAISE(ABORT, 'the head log marker is append-only'); END;
     CREATE TRIGGER evidence_head_log_delete BEFORE DELETE ON evidence_head_log
        BEGIN SELECT RAISE(ABORT, 'the head log marker is append-only'); END;",
    // 5: alerts through more than email: each queued message names its channel.
    "ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';",
    // 6: overdue plans: when the daemon first loaded each plan (a plan that never
    // ran is overdue counted from then), and the period last alerted, so an
    // overdue plan raises one alert per period across restarts.
    "CREATE TABLE plan_watch (
        plan TEXT PRIMARY KEY,
        first_loaded_at TEXT NOT NULL,
        overdue_alerted_at TEXT
     );",
    // 7: signed evidence: each record's signature by the node's key, and when
    // signing started (see `signing`). Records keep hashing exactly as before.
    "CREATE TABLE evidence_signatures (
        seq INTEGER PRIMARY KEY REFERENCES evidence (seq),
        key TEXT NOT NULL,
        signature TEXT NOT NULL
     );
     CREATE TRIGGER evidence_signatures_update BEFORE UPDATE ON evidence_signatures
        BEGIN SELECT RAISE(ABORT, 'evidence signatures are append-only'); END;
     CREATE TRIGGER evidence_signatures_delete BEFORE DELETE ON evidence_signatures
        BEGIN SELECT RAISE(ABORT, 'evidence signatures are append-only'); END;
     CREATE TABLE evidence_signing (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        started_at TEXT NOT NULL,
        key TEXT NOT NULL,
        from_seq INTEGER NOT NULL
     );
     CREATE TRIGGER evidence_signing_update BEFORE UPDATE ON evidence_signing
        BEGIN SELECT RAISE(ABORT, 'the signing marker is append-only'); END;
     CREATE TRIGGER evidence_signing_delete BEFORE DELETE ON evidence_signing
        BEGIN SELECT RAISE(ABORT, 'the signing marker is append-only'); END;",
    // 8: stale backups: the newest backup a plan was alerted stale for ('' for
    // none at all), so a restart during a stale episode does not alert again.
    "ALTER TABLE plan_watch ADD COLUMN stale_alerted_for TEXT;",
    // 9: emergency stops: each pause of the daemon's scheduler (who, when,
    // why, the runs it aborted) and its resumption; at most one is open.
    "CREATE TABLE scheduler_pauses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        paused_at TEXT NOT NULL,
        paused_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        aborted_runs TEXT NOT NULL DEFAULT '[]',
        resumed_at TEXT,
        resumed_by TEXT
     );
     CREATE UNIQUE INDEX scheduler_pauses_one_open ON scheduler_pauses ((resumed_at IS NULL))
        WHERE resumed_at IS NULL;",
];

type FollowUp = fn(&rusqlite::Transaction) -> anyhow::Result<()>;

/// Run in the same transaction as the migration of the same number.
const FOLLOW_UPS: &[(i64, FollowUp)] = &[(4, chain_skipped_runs)];

/// Skipped runs got no evidence record before migration 4, so verification
/// called every untouched history with a skip broken. They get their records
/// now, built from their rows as they are at the upgrade.
fn chain_skipped_runs(tx: &rusqlite::Transaction) -> anyhow::Result<()> {
    let ids: Vec<i64> = tx
        .prepare(
            "SELECT id FROM runs r WHERE status = 'skipped'
               AND NOT EXISTS (SELECT 1 FROM evidence e WHERE e.run_id = r.id) ORDER BY id",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        super::evidence::append(tx, id)?;
    }
    Ok(())
}

/// The newest schema version this build knows.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    let current: i64 = conn.query_row("SELECT coalesce(max(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    anyhow::ensure!(
        current <= LATEST,
        "its schema version is {current}, but this drdrill ({}) knows schema versions up to {LATEST}: it was written by a newer drdrill. Nothing was changed; upgrade drdrill, or point `database` in the config at another file",
        crate::VERSION
    );
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql).with_context(|| format!("migration {version}"))?;
        for (_, follow_up) in FOLLOW_UPS.iter().filter(|(v, _)| *v == version) {
            follow_up(&tx).with_context(|| format!("migration {version}"))?;
        }
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
        assert_eq!(v, LATEST);
    }

    #[test]
    fn a_newer_schema_is_refused_untouched() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        c.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 'later')", [LATEST + 5]).unwrap();
        let e = migrate(&mut c).unwrap_err().to_string();
        assert!(
            e.contains(&format!("schema version is {}", LATEST + 5)) && e.contains(&format!("up to {LATEST}")),
            "{e}"
        );
    }
}
