//! The results database: every run, its phases, measurements and check outcomes.
//!
//! SQLite in WAL mode so the CLI can read history while the daemon writes, with
//! numbered migrations recorded in `schema_migrations` so an old database is
//! upgraded in place, never recreated; a database from a newer drdrill is
//! refused. Beside it live the evidence head log ([`headlog`]), the node's
//! signing key ([`signing`]) and space kept in reserve for recording a run's
//! end on a full disk ([`reserve`]).

pub mod bundle;
pub mod evidence;
pub mod headlog;
mod migrations;
pub mod owner;
pub mod pause;
mod rebuild;
pub mod reserve;
pub mod signing;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

pub use crate::record::{CheckRecord, GateRecord, Measurement, PhaseRecord, RunNote};

/// Chain entries of runs started at or after ?1 (RFC 3339, or NULL), of plan ?2
/// (or NULL for all), in chain order.
const ENTRIES_SQL: &str = "SELECT e.seq, e.prev_hash, e.hash, e.record FROM evidence e JOIN runs r ON r.id = e.run_id
     WHERE (?1 IS NULL OR r.started_at >= ?1) AND (?2 IS NULL OR r.plan = ?2) ORDER BY e.seq";
/// [`ENTRIES_SQL`] of every plan from after chain entry ?2 on (a range of the primary key).
const ENTRIES_AFTER_SQL: &str =
    "SELECT e.seq, e.prev_hash, e.hash, e.record FROM evidence e JOIN runs r ON r.id = e.run_id
     WHERE e.seq > ?2 AND (?1 IS NULL OR r.started_at >= ?1) ORDER BY e.seq";

pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
    head_log: PathBuf,
    reserve: PathBuf,
    /// Signs every record as it is appended; `None` only where no config is
    /// at hand (tests, benchmarks).
    key: Option<Arc<signing::NodeKey>>,
}

/// A run found `running` whose process is gone, now recorded `aborted`.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub run_id: i64,
    pub plan: String,
    pub reason: String,
}

/// Timestamps are stored as RFC 3339 UTC text with milliseconds: sortable and
/// readable with the sqlite3 tool.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Clone, Serialize)]
pub struct NewRun<'a> {
    pub plan: &'a str,
    pub plan_file: &'a str,
    pub plan_sha256: &'a str,
    pub description: &'a str,
    pub trigger: &'a str,
    pub host: &'a str,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct RunEnd {
    pub status: String,
    pub reason: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub t_fail: Option<DateTime<Utc>>,
    pub backup_mode: Option<String>,
    pub store: Option<String>,
    pub backup_id: Option<String>,
    pub backup_sha256: Option<String>,
    pub backup_created_at: Option<DateTime<Utc>>,
}

/// One line of `drdrill history`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub plan: String,
    pub trigger: String,
    pub status: String,
    pub reason: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub rto_ms: Option<f64>,
    pub rto_target_ms: Option<f64>,
    pub rpo_ms: Option<f64>,
    pub rpo_target_ms: Option<f64>,
    pub backup_id: Option<String>,
}

/// The drills that restored one backup.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RestoreTests {
    /// When the newest of them started.
    pub last_at: DateTime<Utc>,
    pub last_run: i64,
    /// Its outcome: a restore that worked may still have failed its checks.
    pub last_status: String,
    pub times: u64,
}

/// What `/metrics` reports about one plan.
#[derive(Debug, Clone, Default)]
pub struct PlanStats {
    pub plan: String,
    /// Finished runs by status (`passed`, `failed`, `aborted`, `skipped`).
    pub runs_by_status: Vec<(String, u64)>,
    /// Newest measured (value, target) in milliseconds.
    pub last_rto_ms: Option<(f64, Option<f64>)>,
    pub last_rpo_ms: Option<(f64, Option<f64>)>,
    pub last_success: Option<DateTime<Utc>>,
}

/// Everything recorded about one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub summary: RunSummary,
    pub plan_sha256: String,
    pub host: String,
    pub version: String,
    pub t_fail: Option<String>,
    pub backup_sha256: Option<String>,
    pub phases: Vec<PhaseRecord>,
    pub measurements: Vec<Measurement>,
    pub checks: Vec<CheckRecord>,
    pub gates: Vec<GateRecord>,
    pub notes: Vec<RunNote>,
    /// The run's evidence record once it finished: what the chain vouches for,
    /// where `gates` and `notes` above are the rows as they are now.
    pub evidence: Option<evidence::ChainEntry>,
}

pub(crate) fn parse_ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

impl Db {
    /// The results database of `config`, its records signed with the node's
    /// key (`[evidence] key_file`, created on first use).
    pub fn open_for(config: &crate::config::Config) -> anyhow::Result<Db> {
        let path = config.evidence.key_path(&config.database);
        let (key, _) = signing::NodeKey::load_or_create(&path, &config.node())?;
        Self::open_with(&config.database, Some(Arc::new(key)))
    }

    /// The results database of `config` for reading: the node's key is used
    /// if it exists and can be read (to check signatures), never created; a
    /// user who may read the database but not the key still reads history.
    pub fn open_reading(config: &crate::config::Config) -> anyhow::Result<Db> {
        let path = config.evidence.key_path(&config.database);
        let key = if path.exists() {
            match signing::NodeKey::load_or_create(&path, &config.node()) {
                Ok((k, _)) => Some(Arc::new(k)),
                Err(e) => {
                    tracing::warn!("signatures are not checked: {e:#}");
                    None
                }
            }
        } else {
            None
        };
        Self::open_with(&config.database, key)
    }

    /// A database whose records are not signed (tests and benchmarks).
    pub fn open(path: &Path) -> anyhow::Result<Db> {
        Self::open_with(path, None)
    }

    fn open_with(path: &Path, key: Option<Arc<signing::NodeKey>>) -> anyhow::Result<Db> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| {
                format!(
                    "cannot create {} for the results database: make it writable or set `database` in the config",
                    parent.display()
                )
            })?;
        }
        let conn =
            Connection::open(path).with_context(|| format!("cannot open results database {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "wal")
            .with_context(|| format!("{} is not a usable SQLite database", path.display()))?;
        // NORMAL is durable across application crashes in WAL mode; only a power
        // loss can roll back the last commits, never corrupt the file.
        conn.pragma_update(None, "synchronous", "normal")?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        let mut conn = conn;
        migrations::migrate(&mut conn).with_context(|| format!("cannot use results database {}", path.display()))?;
        if let Some(key) = &key {
            let signed = signing::ensure_started(&mut conn, key)
                .with_context(|| format!("cannot start signing evidence in {}", path.display()))?;
            if signed > 0 {
                tracing::warn!(
                    "signed the {signed} evidence record(s) of {} that predate signing with key {} ({}): they are vouched for as they are now",
                    path.display(),
                    key.public().fingerprint(),
                    key.path().display()
                );
            }
        }
        let head_log = headlog::path_for(path);
        if let Err(e) = headlog::ensure(&conn, &head_log, key.as_deref()) {
            tracing::warn!("cannot start the evidence head log {}: {e:#}", head_log.display());
        }
        let reserve = reserve::path_for(path);
        if let Err(e) = reserve::ensure(&reserve) {
            tracing::warn!(
                "cannot keep {} bytes in reserve at {} for recording runs on a full disk: {e}",
                reserve::RESERVE_BYTES,
                reserve.display()
            );
        }
        Ok(Db { conn: Mutex::new(conn), path: path.to_path_buf(), head_log, reserve, key })
    }

    /// The database file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frees the space kept in reserve, for a write that found the disk full;
    /// whether there was any to free.
    pub fn release_reserve(&self) -> bool {
        let freed = reserve::release(&self.reserve);
        if freed {
            tracing::warn!("the disk of {} is full: using the space kept in reserve", self.path.display());
        }
        freed
    }

    /// Allocates the reserve again (after [`Db::release_reserve`]) if there is room.
    pub fn restore_reserve(&self) {
        let _ = reserve::ensure(&self.reserve);
    }

    /// Appends a committed record's head to the head log. After the commit, so
    /// the log never names a record the chain lacks; a failure only makes it lag.
    fn log_head(&self, entry: &evidence::ChainEntry) {
        if let Err(e) =
            headlog::append(&self.head_log, entry.seq, &entry.hash, entry.record.run_id, self.key.as_deref())
        {
            tracing::warn!(
                "evidence record #{} is committed, but the head log {} could not be appended to: {e}",
                entry.seq,
                self.head_log.display()
            );
        }
    }

    /// Signs a record just appended, in its transaction.
    fn sign(&self, tx: &Connection, entry: &evidence::ChainEntry) -> anyhow::Result<()> {
        if let Some(key) = &self.key {
            signing::sign_record(tx, key, entry.seq, &entry.hash)?;
        }
        Ok(())
    }

    /// The node's signing key, if records are signed.
    pub fn key(&self) -> Option<&signing::NodeKey> {
        self.key.as_deref()
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn schema_version(&self) -> anyhow::Result<i64> {
        Ok(self.conn().query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0))?)
    }

    /// Records a run as `running` before anything happens, so a crash leaves a
    /// trace that start-up can mark as aborted.
    pub fn start_run(&self, r: &NewRun) -> anyhow::Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO plans (name, file, sha256, description, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(name) DO UPDATE SET file = excluded.file, sha256 = excluded.sha256,
               description = excluded.description, updated_at = excluded.updated_at",
            params![r.plan, r.plan_file, r.plan_sha256, r.description, ts(r.started_at)],
        )?;
        // The recording process owns the run until it finishes it.
        let owner = owner::Owner::current();
        tx.execute(
            "INSERT INTO runs (plan, plan_sha256, trigger, status, started_at, host, version, owner_pid, owner_started, owner_boot)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                r.plan,
                r.plan_sha256,
                r.trigger,
                ts(r.started_at),
                r.host,
                crate::VERSION,
                owner.as_ref().map(|o| o.pid),
                owner.as_ref().map(|o| o.started as i64),
                owner.as_ref().map(|o| o.boot.as_str()),
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    pub fn add_phase(&self, run_id: i64, p: &PhaseRecord) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO phases (run_id, seq, name, started_at, duration_ms, status, detail)
             VALUES (?1, (SELECT count(*) FROM phases WHERE run_id = ?1), ?2, ?3, ?4, ?5, ?6)",
            params![run_id, p.name, ts(p.started_at), p.duration_ms, p.status, p.detail],
        )?;
        Ok(())
    }

    /// Adds an operator note to a run (running or finished: a post-mortem remark counts too).
    pub fn add_note(&self, run_id: i64, note: &RunNote) -> anyhow::Result<()> {
        let changed = self.conn().execute(
            "INSERT INTO run_notes (run_id, seq, at, author, text)
             SELECT ?1, (SELECT count(*) FROM run_notes WHERE run_id = ?1), ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)",
            params![run_id, ts(note.at), note.author, note.text],
        )?;
        anyhow::ensure!(changed == 1, "no run {run_id} to add a note to");
        Ok(())
    }

    pub fn add_gate(&self, run_id: i64, g: &GateRecord) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO gate_approvals (run_id, gate, waiting_since, decided_at, outcome, decided_by, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![run_id, g.gate, ts(g.waiting_since), ts(g.decided_at), g.outcome, g.decided_by, g.note],
        )?;
        Ok(())
    }

    /// Writes the outcome, checks and measurements in one transaction: a run is
    /// either finished with all its evidence or still `running`. `phases` is
    /// the whole timeline: phases [`Db::add_phase`] could not write as they
    /// ended (a full disk) are written here, so the record still holds them.
    pub fn finish_run(
        &self,
        run_id: i64,
        end: &RunEnd,
        phases: &[PhaseRecord],
        checks: &[CheckRecord],
        measurements: &[Measurement],
    ) -> anyhow::Result<()> {
        let mut conn = self.conn();
        // Immediate: two processes finishing runs at once must not both read
        // the same chain head.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let written: i64 = tx.query_row("SELECT count(*) FROM phases WHERE run_id = ?1", [run_id], |r| r.get(0))?;
        for p in phases.iter().skip(written as usize) {
            tx.execute(
                "INSERT INTO phases (run_id, seq, name, started_at, duration_ms, status, detail)
                 VALUES (?1, (SELECT count(*) FROM phases WHERE run_id = ?1), ?2, ?3, ?4, ?5, ?6)",
                params![run_id, p.name, ts(p.started_at), p.duration_ms, p.status, p.detail],
            )?;
        }
        for (seq, c) in checks.iter().enumerate() {
            tx.execute(
                "INSERT INTO checks (run_id, seq, kind, description, passed, attempts, duration_ms, output)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![run_id, seq as i64, c.kind, c.description, c.passed, c.attempts, c.duration_ms, c.output],
            )?;
        }
        for m in measurements {
            tx.execute(
                "INSERT INTO measurements (run_id, name, value_ms, target_ms, method, met) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run_id, m.name, m.value_ms, m.target_ms, m.method, m.met],
            )?;
        }
        let changed = tx.execute(
            "UPDATE runs SET status = ?2, reason = ?3, finished_at = ?4, t_fail = ?5, backup_mode = ?6, store = ?7,
               backup_id = ?8, backup_sha256 = ?9, backup_created_at = ?10
             WHERE id = ?1 AND status = 'running'",
            params![
                run_id,
                end.status,
                end.reason,
                end.finished_at.map(ts),
                end.t_fail.map(ts),
                end.backup_mode,
                end.store,
                end.backup_id,
                end.backup_sha256,
                end.backup_created_at.map(ts),
            ],
        )?;
        anyhow::ensure!(changed == 1, "run {run_id} is not running any more; not overwriting its record");
        let entry = evidence::append(&tx, run_id)?;
        self.sign(&tx, &entry)?;
        tx.commit()?;
        drop(conn);
        self.log_head(&entry);
        Ok(())
    }

    /// Marks runs left `running` by a process that died as `aborted`, each with
    /// its evidence record. Runs whose owner lives, and runs of other hosts, are
    /// left alone. `found_by` names who found them (for the reason);
    /// `cause_of` gives what the dead process left saying why it could not
    /// record the run, if it left anything.
    pub fn recover_stale_runs(
        &self,
        found_by: &str,
        cause_of: impl Fn(i64) -> Option<String>,
    ) -> anyhow::Result<Vec<Recovered>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let candidates: Vec<(i64, String, String, String, Option<owner::Owner>)> = tx
            .prepare(
                "SELECT id, plan, trigger, host, owner_pid, owner_started, owner_boot FROM runs
                 WHERE status = 'running' ORDER BY id",
            )?
            .query_map([], |r| {
                let owner = match (r.get::<_, Option<i64>>(4)?, r.get::<_, Option<i64>>(5)?, r.get(6)?) {
                    (Some(pid), Some(started), Some(boot)) => {
                        Some(owner::Owner { pid: pid as u32, started: started as u64, boot })
                    }
                    _ => None,
                };
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, owner))
            })?
            .collect::<Result<_, _>>()?;
        let mut recovered = Vec::new();
        let mut entries = Vec::new();
        for (run_id, plan, trigger, host, owner) in candidates {
            if owner::liveness_of(&host, owner.as_ref()) != owner::Liveness::Dead {
                continue;
            }
            // "daemon stopped" is what this reason said before owners were
            // recorded; alerts and searches of the history may look for it.
            let who = if trigger == "manual" { "`drdrill run` stopped" } else { "daemon stopped" };
            let pid = owner.as_ref().map(|o| format!(" (pid {}, no longer running)", o.pid)).unwrap_or_default();
            let reason = match cause_of(run_id) {
                Some(cause) => format!("{who}{pid} without recording the run's result: {cause}; found by {found_by}"),
                None => format!("{who}{pid} while the run was in progress; found by {found_by}"),
            };
            tx.execute(
                "UPDATE runs SET status = 'aborted', reason = ?2, finished_at = ?3 WHERE id = ?1",
                params![run_id, reason, ts(Utc::now())],
            )?;
            // An aborted run is finished too: it gets its evidence record.
            let entry = evidence::append(&tx, run_id)?;
            self.sign(&tx, &entry)?;
            entries.push(entry);
            recovered.push(Recovered { run_id, plan, reason });
        }
        tx.commit()?;
        drop(conn);
        for e in &entries {
            self.log_head(e);
        }
        Ok(recovered)
    }

    /// Whether run `id` is recorded as `running` (then its scratch and
    /// quarantine are in use). When unsure, says yes: nothing is removed on doubt.
    pub fn is_running(&self, id: i64) -> bool {
        self.conn()
            .query_row("SELECT status FROM runs WHERE id = ?1", [id], |r| r.get::<_, String>(0))
            .optional()
            .map(|s| s.as_deref() == Some("running"))
            .unwrap_or(true)
    }

    /// Records a run that was due but not started (the previous one was still
    /// running, firings were missed while the daemon was down, or the guard
    /// refused it), with why. It is finished, so it gets its evidence record.
    pub fn record_skipped(&self, r: &NewRun, reason: &str) -> anyhow::Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO runs (plan, plan_sha256, trigger, status, reason, started_at, finished_at, host, version)
             VALUES (?1, ?2, ?3, 'skipped', ?4, ?5, ?5, ?6, ?7)",
            params![r.plan, r.plan_sha256, r.trigger, reason, ts(r.started_at), r.host, crate::VERSION],
        )?;
        let id = tx.last_insert_rowid();
        let entry = evidence::append(&tx, id)?;
        self.sign(&tx, &entry)?;
        tx.commit()?;
        drop(conn);
        self.log_head(&entry);
        Ok(id)
    }

    /// When each backup of `repository` (as runs record it in `store`) was last
    /// restored by a drill of `plan`: the restore step finished, whatever the checks said.
    pub fn last_restored(
        &self,
        plan: &str,
        repository: &str,
    ) -> anyhow::Result<std::collections::HashMap<String, DateTime<Utc>>> {
        Ok(self.restore_tests(plan, repository)?.into_iter().map(|(id, t)| (id, t.last_at)).collect())
    }

    /// Every backup of `repository` that a drill of `plan` restored (the
    /// restore step finished), with how often, when last and in which run.
    pub fn restore_tests(
        &self,
        plan: &str,
        repository: &str,
    ) -> anyhow::Result<std::collections::HashMap<String, RestoreTests>> {
        let conn = self.conn();
        // The newest run per backup comes from the row max() picks (SQLite's bare columns).
        let mut stmt = conn.prepare(
            "SELECT r.backup_id, max(r.started_at), r.id, r.status, count(*) FROM runs r
             WHERE r.plan = ?1 AND r.store = ?2 AND r.backup_id IS NOT NULL
               AND EXISTS (SELECT 1 FROM phases p WHERE p.run_id = r.id AND p.name = 'restore' AND p.status = 'ok')
             GROUP BY r.backup_id",
        )?;
        let rows = stmt.query_map(params![plan, repository], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?, r.get::<_, i64>(4)?))
        })?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (id, at, last_run, last_status, times) = row?;
            out.insert(id, RestoreTests { last_at: parse_ts(&at), last_run, last_status, times: times as u64 });
        }
        Ok(out)
    }

    /// Plans with at least one drill whose restore step finished, of any backup.
    pub fn drilled_plans(&self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT DISTINCT r.plan FROM runs r
             WHERE EXISTS (SELECT 1 FROM phases p WHERE p.run_id = r.id AND p.name = 'restore' AND p.status = 'ok')",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the newest run of `plan` (of any status) was started or recorded.
    pub fn last_started(&self, plan: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        let text: Option<String> =
            self.conn().query_row("SELECT max(started_at) FROM runs WHERE plan = ?1", [plan], |r| r.get(0))?;
        Ok(text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc)))
    }

    /// Per-plan figures for `/metrics`, read from the record so they survive restarts.
    pub fn plan_stats(&self) -> anyhow::Result<Vec<PlanStats>> {
        let conn = self.conn();
        let mut stats = std::collections::BTreeMap::<String, PlanStats>::new();
        let mut stmt =
            conn.prepare("SELECT plan, status, count(*) FROM runs WHERE status != 'running' GROUP BY plan, status")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
            let (plan, status, n) = row?;
            let s = stats.entry(plan.clone()).or_insert_with(|| PlanStats { plan, ..Default::default() });
            s.runs_by_status.push((status, n as u64));
        }
        // The newest measured value of each plan's RTO and RPO, with the target it had.
        let mut stmt = conn.prepare(
            "SELECT r.plan, m.name, m.value_ms, m.target_ms FROM measurements m JOIN runs r ON r.id = m.run_id
             WHERE m.name IN ('rto', 'rpo') AND m.value_ms IS NOT NULL AND r.id = (
               SELECT max(r2.id) FROM runs r2 JOIN measurements m2 ON m2.run_id = r2.id
               WHERE r2.plan = r.plan AND m2.name = m.name AND m2.value_ms IS NOT NULL)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, f64>(2)?, r.get::<_, Option<f64>>(3)?))
        })?;
        for row in rows {
            let (plan, name, value, target) = row?;
            let s = stats.entry(plan.clone()).or_insert_with(|| PlanStats { plan, ..Default::default() });
            let slot = if name == "rto" { &mut s.last_rto_ms } else { &mut s.last_rpo_ms };
            *slot = Some((value, target));
        }
        let mut stmt = conn.prepare("SELECT plan, max(finished_at) FROM runs WHERE status = 'passed' GROUP BY plan")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))? {
            let (plan, at) = row?;
            let s = stats.entry(plan.clone()).or_insert_with(|| PlanStats { plan, ..Default::default() });
            s.last_success = at.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc));
        }
        Ok(stats.into_values().collect())
    }

    /// Verifies the whole evidence chain against the database's rows.
    pub fn verify_evidence(&self) -> anyhow::Result<Result<evidence::Verified, evidence::Break>> {
        let public = self.key.as_ref().map(|k| k.public());
        evidence::verify_db(&self.conn(), Some(&self.head_log), public.as_ref())
    }

    /// The head log beside the database.
    pub fn head_log(&self) -> &Path {
        &self.head_log
    }

    /// Verifies links and hashes from genesis (not records against rows): fast,
    /// for reports.
    pub fn verify_chain(&self) -> anyhow::Result<Result<evidence::Verified, evidence::Break>> {
        let public = self.key.as_ref().map(|k| k.public());
        evidence::verify_chain(&self.conn(), Some(&self.head_log), public.as_ref())
    }

    /// [`Db::verify_chain`] reading only the records after #`seq`, those up
    /// to it having verified as `before`.
    pub fn verify_chain_after(
        &self,
        before: &evidence::Verified,
        seq: i64,
    ) -> anyhow::Result<Result<evidence::Verified, evidence::Break>> {
        let public = self.key.as_ref().map(|k| k.public());
        evidence::verify_chain_after(&self.conn(), Some(&self.head_log), public.as_ref(), before, seq)
    }

    /// The newest chain entry's sequence number and hash.
    pub fn evidence_head(&self) -> anyhow::Result<Option<(i64, String)>> {
        Ok(evidence::head(&self.conn())?)
    }

    /// Chain entries of runs started at or after `since` (RFC 3339), optionally of
    /// one plan, in chain order. Records are parsed from what was hashed, so a
    /// report shows exactly the evidence, never a later edit of the run rows.
    pub fn evidence_entries(
        &self,
        since: Option<&str>,
        plan: Option<&str>,
    ) -> anyhow::Result<Vec<evidence::ChainEntry>> {
        self.query_entries(ENTRIES_SQL, params![since, plan])
    }

    /// Every chain entry from `seq` on, whatever its plan: a slice that verifies
    /// on its own (an export filtered by plan would otherwise have holes).
    pub fn evidence_from_seq(&self, seq: i64) -> anyhow::Result<Vec<evidence::ChainEntry>> {
        self.query_entries(
            "SELECT seq, prev_hash, hash, record FROM evidence WHERE seq >= ?1 ORDER BY seq",
            params![seq],
        )
    }

    /// The evidence record of run `run_id`, if it has one.
    pub fn evidence_of(&self, run_id: i64) -> anyhow::Result<Option<evidence::ChainEntry>> {
        Ok(self
            .query_entries("SELECT seq, prev_hash, hash, record FROM evidence WHERE run_id = ?1", params![run_id])?
            .pop())
    }

    /// The entries [`Db::evidence_entries`] returns, handed to `f` one at a
    /// time in chain order, so a report over a million runs holds one record at
    /// a time instead of all of them. Stops at the first error `f` returns.
    pub fn for_each_evidence(
        &self,
        since: Option<&str>,
        plan: Option<&str>,
        f: impl FnMut(evidence::ChainEntry) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.each_entry(ENTRIES_SQL, params![since, plan], f)
    }

    /// The entries [`Db::for_each_evidence`] hands over, of every plan, that
    /// were appended after chain entry `after`: how a fold kept between
    /// requests catches up without reading the history again.
    pub fn for_each_evidence_after(
        &self,
        after: i64,
        since: Option<&str>,
        f: impl FnMut(evidence::ChainEntry) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.each_entry(ENTRIES_AFTER_SQL, params![since, after], f)
    }

    fn query_entries(&self, sql: &str, args: impl rusqlite::Params) -> anyhow::Result<Vec<evidence::ChainEntry>> {
        let mut out = Vec::new();
        self.each_entry(sql, args, |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs `sql` (selecting seq, prev_hash, hash, record) and parses each row's record.
    fn each_entry(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        mut f: impl FnMut(evidence::ChainEntry) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(args, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
        })?;
        for row in rows {
            let (seq, prev_hash, hash, text) = row?;
            let record: evidence::EvidenceRecord = serde_json::from_str(&text).with_context(|| {
                format!("evidence record #{seq} is not readable: run `drdrill evidence verify` to find what changed")
            })?;
            f(evidence::ChainEntry { seq, prev_hash, hash, record })?;
        }
        Ok(())
    }

    /// The plan file each plan last ran from, by plan name.
    pub fn plan_files(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name, file FROM plans")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Runs the closure on the connection; for tests and benchmarks that seed data.
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(&mut self.conn())
    }

    pub fn runs(&self, plan: Option<&str>, limit: usize) -> anyhow::Result<Vec<RunSummary>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare(&format!("{SUMMARY_SELECT} WHERE (?1 IS NULL OR r.plan = ?1) ORDER BY r.id DESC LIMIT ?2"))?;
        let rows = stmt.query_map(params![plan, limit as i64], summary_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn run_detail(&self, id: i64) -> anyhow::Result<Option<RunDetail>> {
        let conn = self.conn();
        let summary =
            conn.query_row(&format!("{SUMMARY_SELECT} WHERE r.id = ?1"), [id], summary_from_row).optional()?;
        let Some(summary) = summary else { return Ok(None) };
        let (plan_sha256, host, version, t_fail, backup_sha256) = conn.query_row(
            "SELECT plan_sha256, host, version, t_fail, backup_sha256 FROM runs WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        let phases = conn
            .prepare("SELECT name, started_at, duration_ms, status, detail FROM phases WHERE run_id = ?1 ORDER BY seq")?
            .query_map([id], |r| {
                let started: String = r.get(1)?;
                Ok(PhaseRecord {
                    name: r.get(0)?,
                    started_at: DateTime::parse_from_rfc3339(&started)
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_default(),
                    duration_ms: r.get(2)?,
                    status: r.get(3)?,
                    detail: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let measurements = conn
            .prepare(
                "SELECT name, value_ms, target_ms, method, met FROM measurements WHERE run_id = ?1 ORDER BY rowid",
            )?
            .query_map([id], |r| {
                Ok(Measurement {
                    name: r.get(0)?,
                    value_ms: r.get(1)?,
                    target_ms: r.get(2)?,
                    method: r.get(3)?,
                    met: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let checks = conn
            .prepare("SELECT kind, description, passed, attempts, duration_ms, output FROM checks WHERE run_id = ?1 ORDER BY seq")?
            .query_map([id], |r| {
                Ok(CheckRecord {
                    kind: r.get(0)?,
                    description: r.get(1)?,
                    passed: r.get(2)?,
                    attempts: r.get(3)?,
                    duration_ms: r.get(4)?,
                    output: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let gates = conn
            .prepare(
                "SELECT gate, waiting_since, decided_at, outcome, decided_by, note FROM gate_approvals
                 WHERE run_id = ?1 ORDER BY waiting_since",
            )?
            .query_map([id], |r| {
                Ok(GateRecord {
                    gate: r.get(0)?,
                    waiting_since: parse_ts(&r.get::<_, String>(1)?),
                    decided_at: parse_ts(&r.get::<_, String>(2)?),
                    outcome: r.get(3)?,
                    decided_by: r.get(4)?,
                    note: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let notes = conn
            .prepare("SELECT at, author, text FROM run_notes WHERE run_id = ?1 ORDER BY seq")?
            .query_map([id], |r| {
                Ok(RunNote { at: parse_ts(&r.get::<_, String>(0)?), author: r.get(1)?, text: r.get(2)? })
            })?
            .collect::<Result<_, _>>()?;
        drop(conn);
        let evidence = self.evidence_of(id)?;
        Ok(Some(RunDetail {
            evidence,
            summary,
            plan_sha256,
            host,
            version,
            t_fail,
            backup_sha256,
            phases,
            measurements,
            checks,
            gates,
            notes,
        }))
    }
}

const SUMMARY_SELECT: &str = "SELECT r.id, r.plan, r.trigger, r.status, r.reason, r.started_at, r.finished_at,
    (SELECT value_ms FROM measurements m WHERE m.run_id = r.id AND m.name = 'rto'),
    (SELECT target_ms FROM measurements m WHERE m.run_id = r.id AND m.name = 'rto'),
    (SELECT value_ms FROM measurements m WHERE m.run_id = r.id AND m.name = 'rpo'),
    (SELECT target_ms FROM measurements m WHERE m.run_id = r.id AND m.name = 'rpo'),
    r.backup_id
  FROM runs r";

fn summary_from_row(r: &rusqlite::Row) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        id: r.get(0)?,
        plan: r.get(1)?,
        trigger: r.get(2)?,
        status: r.get(3)?,
        reason: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        rto_ms: r.get(7)?,
        rto_target_ms: r.get(8)?,
        rpo_ms: r.get(9)?,
        rpo_target_ms: r.get(10)?,
        backup_id: r.get(11)?,
    })
}
