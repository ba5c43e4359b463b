//! Re-building evidence records from the rows of their runs: one run (when a
//! record is appended) or every run of a range (when the chain is verified),
//! always the same way.
//!
//! Each table is read with one query ordered by run id and the rows are handed
//! out run by run, so verifying a million records costs six sequential scans
//! instead of six indexed look-ups per record, and holds one run's rows at a
//! time instead of the whole history.

use rusqlite::{Connection, Row};

use super::evidence::{
    EvidenceBackup, EvidenceCheck, EvidenceGate, EvidenceMeasurement, EvidencePhase, EvidenceRecord, fixed_ms,
    note_line,
};

type RowIter<'a, T> = Box<dyn Iterator<Item = rusqlite::Result<(i64, T)>> + 'a>;

/// The rows of one table, ordered by run id, handed out one run at a time.
struct ByRun<'a, T> {
    rows: std::iter::Peekable<RowIter<'a, T>>,
}

impl<'a, T> ByRun<'a, T> {
    fn new(rows: RowIter<'a, T>) -> Self {
        ByRun { rows: rows.peekable() }
    }

    /// The rows of `run_id`; rows of earlier runs not asked for (runs without
    /// a record) are passed over.
    fn take(&mut self, run_id: i64) -> rusqlite::Result<Vec<T>> {
        let mut out = Vec::new();
        while let Some(next) = self.rows.next_if(|r| r.as_ref().map_or(true, |(id, _)| *id <= run_id)) {
            let (id, row) = next?;
            if id == run_id {
                out.push(row);
            }
        }
        Ok(out)
    }
}

/// A note as stored: (seq, at, author, text).
type NoteRow = (i64, String, String, String);

/// The rows of the runs `lo..=hi`, read in run id order. Ask for records with
/// increasing run ids.
pub(super) struct Rows<'a> {
    runs: ByRun<'a, EvidenceRecord>,
    measurements: ByRun<'a, EvidenceMeasurement>,
    checks: ByRun<'a, EvidenceCheck>,
    phases: ByRun<'a, EvidencePhase>,
    notes: ByRun<'a, NoteRow>,
    gates: ByRun<'a, EvidenceGate>,
}

/// Statements of [`Rows`]; they must outlive the rows read from them.
pub(super) struct Statements<'c> {
    runs: rusqlite::CachedStatement<'c>,
    measurements: rusqlite::CachedStatement<'c>,
    checks: rusqlite::CachedStatement<'c>,
    phases: rusqlite::CachedStatement<'c>,
    notes: rusqlite::CachedStatement<'c>,
    gates: rusqlite::CachedStatement<'c>,
}

impl<'c> Statements<'c> {
    pub(super) fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Statements {
            runs: conn.prepare_cached(
                "SELECT id, plan, plan_sha256, version, host, trigger, started_at, finished_at, t_fail, status, reason,
                        backup_mode, store, backup_id, backup_sha256, backup_created_at
                 FROM runs WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
            )?,
            measurements: conn.prepare_cached(
                "SELECT run_id, name, value_ms, target_ms, method, met FROM measurements
                 WHERE run_id BETWEEN ?1 AND ?2 ORDER BY run_id, name",
            )?,
            checks: conn.prepare_cached(
                "SELECT run_id, kind, description, passed, attempts, duration_ms, output FROM checks
                 WHERE run_id BETWEEN ?1 AND ?2 ORDER BY run_id, seq",
            )?,
            phases: conn.prepare_cached(
                "SELECT run_id, name, started_at, duration_ms, status, detail FROM phases
                 WHERE run_id BETWEEN ?1 AND ?2 ORDER BY run_id, seq",
            )?,
            notes: conn.prepare_cached(
                "SELECT run_id, seq, at, author, text FROM run_notes WHERE run_id BETWEEN ?1 AND ?2 ORDER BY run_id, seq",
            )?,
            gates: conn.prepare_cached(
                "SELECT run_id, gate, waiting_since, decided_at, outcome, decided_by, note FROM gate_approvals
                 WHERE run_id BETWEEN ?1 AND ?2 ORDER BY run_id, waiting_since, gate",
            )?,
        })
    }

    /// Starts reading the rows of runs `lo..=hi`.
    pub(super) fn rows(&mut self, lo: i64, hi: i64) -> rusqlite::Result<Rows<'_>> {
        fn iter<'s, T: 'static>(
            stmt: &'s mut rusqlite::CachedStatement<'_>,
            lo: i64,
            hi: i64,
            f: fn(&Row<'_>) -> rusqlite::Result<T>,
        ) -> rusqlite::Result<ByRun<'s, T>> {
            let rows = stmt.query_map([lo, hi], move |r| Ok((r.get(0)?, f(r)?)))?;
            Ok(ByRun::new(Box::new(rows)))
        }
        Ok(Rows {
            runs: iter(&mut self.runs, lo, hi, run_row)?,
            measurements: iter(&mut self.measurements, lo, hi, |r| {
                Ok(EvidenceMeasurement {
                    name: r.get(1)?,
                    value_ms: r.get::<_, Option<f64>>(2)?.map(fixed_ms),
                    target_ms: r.get::<_, Option<f64>>(3)?.map(fixed_ms),
                    method: r.get(4)?,
                    met: r.get(5)?,
                })
            })?,
            checks: iter(&mut self.checks, lo, hi, |r| {
                Ok(EvidenceCheck {
                    kind: r.get(1)?,
                    description: r.get(2)?,
                    passed: r.get(3)?,
                    attempts: r.get(4)?,
                    duration_ms: fixed_ms(r.get(5)?),
                    output: r.get(6)?,
                })
            })?,
            phases: iter(&mut self.phases, lo, hi, |r| {
                Ok(EvidencePhase {
                    name: r.get(1)?,
                    started_at: r.get(2)?,
                    duration_ms: fixed_ms(r.get(3)?),
                    status: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?,
            notes: iter(&mut self.notes, lo, hi, |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?,
            gates: iter(&mut self.gates, lo, hi, |r| {
                Ok(EvidenceGate {
                    gate: r.get(1)?,
                    waiting_since: r.get(2)?,
                    decided_at: r.get(3)?,
                    outcome: r.get(4)?,
                    decided_by: r.get(5)?,
                    note: r.get(6)?,
                })
            })?,
        })
    }
}

/// A run's own row, as a record without its child rows yet.
fn run_row(r: &Row<'_>) -> rusqlite::Result<EvidenceRecord> {
    Ok(EvidenceRecord {
        format: 0,
        run_id: r.get(0)?,
        plan: r.get(1)?,
        plan_sha256: r.get(2)?,
        drdrill_version: r.get(3)?,
        host: r.get(4)?,
        trigger: r.get(5)?,
        started_at: r.get(6)?,
        finished_at: r.get(7)?,
        t_fail: r.get(8)?,
        result: r.get(9)?,
        reason: r.get(10)?,
        measurements: Vec::new(),
        checks: Vec::new(),
        phases: Vec::new(),
        backup: EvidenceBackup {
            mode: r.get(11)?,
            store: r.get(12)?,
            id: r.get(13)?,
            sha256: r.get(14)?,
            created_at: r.get(15)?,
        },
        notes: None,
        gates: None,
    })
}

impl Rows<'_> {
    /// The record of `run_id` as `format` spells it, or `None` if the run has
    /// no row. `notes_upto` (format 2) takes only the first notes by sequence:
    /// as many as the stored record holds, since remarks may be added after
    /// the run. Run ids must be asked in increasing order.
    pub(super) fn record(
        &mut self,
        run_id: i64,
        format: u32,
        notes_upto: Option<usize>,
    ) -> rusqlite::Result<Option<EvidenceRecord>> {
        // Every table is advanced past the run, whether or not its row exists.
        let base = self.runs.take(run_id)?.pop();
        let measurements = self.measurements.take(run_id)?;
        let checks = self.checks.take(run_id)?;
        let phases = self.phases.take(run_id)?;
        let notes = self.notes.take(run_id)?;
        let gates = self.gates.take(run_id)?;
        let Some(mut rec) = base else { return Ok(None) };
        rec.format = format;
        rec.measurements = measurements;
        rec.checks = checks;
        rec.phases = phases;
        if format == 1 {
            // Format 1 took the notes timed until `finished_at` and joined them
            // unescaped (SQLite's group_concat, which gave NULL for none); kept
            // exactly, so its records still hash the same.
            let lines: Vec<String> = notes
                .iter()
                .filter(|(_, at, _, _)| rec.finished_at.as_deref().is_none_or(|f| at.as_str() <= f))
                .map(|(_, at, author, text)| format!("[{at}] {author}: {text}"))
                .collect();
            rec.notes = (!lines.is_empty()).then(|| lines.join("\n"));
        } else if format >= 2 {
            let upto = notes_upto.map(|n| n as i64).unwrap_or(i64::MAX);
            let lines: Vec<String> = notes
                .iter()
                .filter(|(seq, ..)| *seq < upto)
                .map(|(_, at, author, text)| note_line(at, author, text))
                .collect();
            rec.notes = (!lines.is_empty()).then(|| lines.join("\n"));
            rec.gates = Some(gates);
        }
        Ok(Some(rec))
    }
}
