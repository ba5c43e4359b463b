//! The evidence chain: one hash-chained record per finished run.
//!
//! `hash = sha256(prev_hash || canonical record)`, where the canonical record is
//! the compact JSON of [`EvidenceRecord`]. Its fields are a fixed struct order and
//! only strings, integers, booleans and nulls: durations are fixed-point strings
//! (`"1234.567"` ms) so no float formatting can make two encoders disagree.
//!
//! Every finished run has a record: passed, failed, aborted and skipped alike.
//!
//! Verification checks three things per record: the link to the previous hash,
//! the hash of the stored record, and (against a database) that the record still
//! matches the run's rows in `runs`/`measurements`/`checks`/`phases` (and, from
//! format 2 on, `run_notes` and `gate_approvals`). Editing any of them, deleting
//! a record, or deleting a run is named by run id. Deleting the newest records
//! leaves a shorter chain that is valid in itself: the head log beside the
//! database ([`super::headlog`]) is what catches that, and the node's
//! signatures ([`super::signing`]) catch a chain recomputed after an edit.
//!
//! Each record is re-built with the format it was written in, so records of
//! older drdrill versions keep verifying after an upgrade.

use std::fmt;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hashing::hex_digest;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bumped if the record's fields ever change, so old records still verify with
/// the encoding they were written with.
///
/// - 1: notes until `finished_at` as one string of `[time] author: text` lines.
/// - 2: every note recorded before the record, whatever its time, escaped so
///   that no note can pass for two or for another author's; and every
///   approval gate decision (`gates`).
pub const RECORD_FORMAT: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRecord {
    pub format: u32,
    pub run_id: i64,
    pub plan: String,
    /// sha256 of the plan file as run.
    pub plan_sha256: String,
    pub drdrill_version: String,
    pub host: String,
    /// `manual`, `schedule`, `api`, ...
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The incident time; `null` when the run ended before a failure was injected.
    pub t_fail: Option<String>,
    /// `passed`, `failed`, `aborted` or `skipped`.
    pub result: String,
    pub reason: Option<String>,
    /// RTO, RPO and the RTO shares, sorted by name.
    pub measurements: Vec<EvidenceMeasurement>,
    pub checks: Vec<EvidenceCheck>,
    pub phases: Vec<EvidencePhase>,
    pub backup: EvidenceBackup,
    /// Operator notes, one per line as `[time] author: text`. Format 1: those
    /// timed until `finished_at`. Format 2: every note recorded before the
    /// record was written, with `\`, line breaks (and `]` in the time, `:` in
    /// the author) escaped by a `\`, so no note can pass for two or for
    /// another author's. Later remarks stay in `run_notes`, outside the chain.
    pub notes: Option<String>,
    /// Format 2 on: who let the run past each approval gate, and when. Absent
    /// (not empty) in format 1, whose records never held it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Vec<EvidenceGate>>,
}

/// One note as a format-2 record spells it.
pub fn note_line(at: &str, author: &str, text: &str) -> String {
    fn esc(s: &str, also: char) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c == also => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out
    }
    format!("[{}] {}: {}", esc(at, ']'), esc(author, ':'), esc(text, '\n'))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceGate {
    /// The phase the run paused before.
    pub gate: String,
    pub waiting_since: String,
    pub decided_at: String,
    /// `approved` or `aborted`.
    pub outcome: String,
    pub decided_by: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceMeasurement {
    pub name: String,
    /// Milliseconds, fixed-point with three decimals; `null` if not measured.
    pub value_ms: Option<String>,
    pub target_ms: Option<String>,
    pub method: String,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceCheck {
    pub kind: String,
    pub description: String,
    pub passed: bool,
    pub attempts: u32,
    pub duration_ms: String,
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvidencePhase {
    pub name: String,
    pub started_at: String,
    pub duration_ms: String,
    pub status: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBackup {
    pub mode: Option<String>,
    pub store: Option<String>,
    pub id: Option<String>,
    pub sha256: Option<String>,
    /// The backup's consistency point.
    pub created_at: Option<String>,
}

impl EvidenceRecord {
    /// The bytes that are hashed. Serializing a struct of strings, integers and
    /// booleans has one spelling, so this is stable across builds.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("a record of strings and integers always serializes")
    }

    pub fn measurement(&self, name: &str) -> Option<&EvidenceMeasurement> {
        self.measurements.iter().find(|m| m.name == name)
    }

    /// Format 2 on: how many notes the record holds (remarks added later are not in it).
    pub fn note_count(&self) -> Option<usize> {
        (self.format >= 2).then(|| self.notes.as_deref().map_or(0, |n| n.lines().count()))
    }
}

/// Fixed-point milliseconds: the one spelling of a duration inside evidence.
pub fn fixed_ms(ms: f64) -> String {
    format!("{ms:.3}")
}

/// Parses [`fixed_ms`] back for reports.
pub fn parse_ms(s: &str) -> Option<f64> {
    s.parse().ok()
}

pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex_digest(h)
}

/// One link of the chain as stored and exported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChainEntry {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    pub record: EvidenceRecord,
}

impl ChainEntry {
    /// Whether the run was a drill that ran, not a firing that was skipped.
    pub fn ran(&self) -> bool {
        self.record.result != "skipped"
    }
}

/// Builds the record of `run_id` from its rows, in the current format. Used
/// when appending (inside the finishing transaction), so it holds every note
/// and gate decision recorded until then.
pub fn build_record(conn: &Connection, run_id: i64) -> rusqlite::Result<Option<EvidenceRecord>> {
    build(conn, run_id, RECORD_FORMAT, None)
}

/// Builds the record of `run_id` as format `format` spells it. `notes_upto`
/// (format 2) takes only the first notes by sequence: as many as the stored
/// record holds, since remarks may be added after the run.
fn build(
    conn: &Connection,
    run_id: i64,
    format: u32,
    notes_upto: Option<usize>,
) -> rusqlite::Result<Option<EvidenceRecord>> {
    let mut statements = super::rebuild::Statements::prepare(conn)?;
    let mut rows = statements.rows(run_id, run_id)?;
    rows.record(run_id, format, notes_upto)
}

/// Appends the record of `run_id` to the chain. Call inside the transaction that
/// finishes the run, so a run is finished iff its evidence exists.
pub fn append(conn: &Connection, run_id: i64) -> anyhow::Result<ChainEntry> {
    let record = build_record(conn, run_id)?.ok_or_else(|| anyhow::anyhow!("run {run_id} does not exist"))?;
    let prev: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev_hash) = match prev {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let canonical = record.canonical();
    let hash = chain_hash(&prev_hash, &canonical);
    conn.execute(
        "INSERT INTO evidence (seq, run_id, prev_hash, hash, record) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![seq, run_id, prev_hash, hash, canonical],
    )?;
    Ok(ChainEntry { seq, prev_hash, hash, record })
}

/// The first thing found wrong, naming the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    pub seq: Option<i64>,
    pub run_id: Option<i64>,
    pub problem: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.seq, self.run_id) {
            (Some(s), Some(r)) => write!(f, "evidence record #{s} (run {r}): {}", self.problem),
            (None, Some(r)) => write!(f, "run {r}: {}", self.problem),
            (Some(s), None) => write!(f, "evidence record #{s}: {}", self.problem),
            (None, None) => f.write_str(&self.problem),
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verified {
    pub records: usize,
    /// The hash the chain starts from: [`GENESIS`] for a whole chain, or the
    /// previous hash of the first record of an exported slice.
    pub anchor: String,
    pub head: String,
    /// The newest record the head log beside the database confirms; `None`
    /// when no head log was compared (an exported file, or none is kept yet).
    pub logged: Option<i64>,
    /// Every record's signature, checked with this node's key; `None` when
    /// not checked (no key at hand, or the database never signed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<super::signing::SignaturesOk>,
}

/// Checks links and hashes one entry at a time, in chain order, so a chain of
/// any length is verified without holding it.
pub struct Linker {
    require_genesis: bool,
    /// The next record's expected (seq, previous hash).
    expected: Option<(i64, String)>,
    anchor: String,
    count: usize,
}

impl Linker {
    /// The first entry's `prev_hash` is taken as the anchor unless `require_genesis`.
    pub fn new(require_genesis: bool) -> Self {
        Linker { require_genesis, expected: None, anchor: GENESIS.to_string(), count: 0 }
    }

    /// Goes on from a chain verified as `before`, whose newest record is
    /// #`seq`: the next entry must be #`seq + 1` and link to its head.
    pub fn resume(before: &Verified, seq: i64) -> Self {
        Linker {
            require_genesis: true,
            expected: Some((seq + 1, before.head.clone())),
            anchor: before.anchor.clone(),
            count: before.records,
        }
    }

    /// Checks the next entry: its place in the sequence, its link, its hash.
    pub fn push(&mut self, seq: i64, prev_hash: &str, hash: &str, run_id: i64, canonical: &str) -> Result<(), Break> {
        let at = |problem: String| Break { seq: Some(seq), run_id: Some(run_id), problem };
        match &self.expected {
            None => {
                if self.require_genesis && (prev_hash != GENESIS || seq != 1) {
                    return Err(at(format!(
                        "the chain does not start at the genesis record (first record is #{seq} with previous hash {prev_hash}): earlier records were deleted"
                    )));
                }
                self.anchor = prev_hash.to_string();
            }
            Some((s, p)) => {
                if seq != *s {
                    return Err(at(format!("record #{s} is missing (sequence jumps to #{seq}): a record was deleted")));
                }
                if prev_hash != p {
                    return Err(at(format!(
                        "its previous hash {prev_hash} is not the hash of the record before it ({p}): the chain was cut or reordered"
                    )));
                }
            }
        }
        let actual = chain_hash(prev_hash, canonical);
        if actual != hash {
            return Err(at(format!(
                "its content does not match its hash (stored {hash}, recomputed {actual}): the record was altered"
            )));
        }
        self.expected = Some((seq + 1, hash.to_string()));
        self.count += 1;
        Ok(())
    }

    pub fn finish(self) -> Verified {
        Verified {
            records: self.count,
            anchor: self.anchor,
            head: self.expected.map(|(_, h)| h).unwrap_or_else(|| GENESIS.to_string()),
            logged: None,
            signatures: None,
        }
    }
}

/// Verifies links and hashes of a sequence of entries, in order. The first
/// entry's `prev_hash` is taken as the anchor unless `require_genesis`.
pub fn verify_entries<'a>(
    entries: impl IntoIterator<Item = (i64, &'a str, &'a str, i64, &'a str)>,
    require_genesis: bool,
) -> Result<Verified, Break> {
    let mut linker = Linker::new(require_genesis);
    for (seq, prev_hash, hash, run_id, canonical) in entries {
        linker.push(seq, prev_hash, hash, run_id, canonical)?;
    }
    Ok(linker.finish())
}

/// Verifies links and hashes of the whole chain from genesis, that every
/// finished run has a record, and that the chain still holds every head the
/// head log `log` saw, without comparing records with their rows: what a
/// report needs, since it shows the hashed records themselves. Of the
/// signatures, only the newest record's and head's are checked
/// ([`super::signing::Depth::Head`]): a recomputed chain still fails.
pub fn verify_chain(
    conn: &Connection,
    log: Option<&Path>,
    key: Option<&super::signing::NodePublic>,
) -> anyhow::Result<Result<Verified, Break>> {
    verify_chain_from(conn, log, key, Linker::new(true), 0)
}

/// [`verify_chain`] of a chain whose records up to #`seq` verified as
/// `before` (their links and hashes are not read again): for a reader that
/// looks often, such as the console, whose cost then follows the records
/// added since it last looked instead of the whole history.
pub fn verify_chain_after(
    conn: &Connection,
    log: Option<&Path>,
    key: Option<&super::signing::NodePublic>,
    before: &Verified,
    seq: i64,
) -> anyhow::Result<Result<Verified, Break>> {
    verify_chain_from(conn, log, key, Linker::resume(before, seq), seq)
}

fn verify_chain_from(
    conn: &Connection,
    log: Option<&Path>,
    key: Option<&super::signing::NodePublic>,
    linker: Linker,
    after: i64,
) -> anyhow::Result<Result<Verified, Break>> {
    let verified = match verify_links(conn, linker, after)? {
        Ok(v) => v,
        Err(b) => return Ok(Err(b)),
    };
    if let Some(b) = unchained_run(conn)? {
        return Ok(Err(b));
    }
    finish_verification(conn, log, key, super::signing::Depth::Head, verified)
}

/// Links and hashes of the records after #`after`, read one at a time.
fn verify_links(conn: &Connection, mut linker: Linker, after: i64) -> anyhow::Result<Result<Verified, Break>> {
    let mut stmt =
        conn.prepare("SELECT seq, prev_hash, hash, run_id, record FROM evidence WHERE seq > ?1 ORDER BY seq")?;
    let mut rows = stmt.query([after])?;
    while let Some(r) = rows.next()? {
        let (seq, run_id): (i64, i64) = (r.get(0)?, r.get(3)?);
        let (prev, hash, record) = (r.get_ref(1)?.as_str()?, r.get_ref(2)?.as_str()?, r.get_ref(4)?.as_str()?);
        if let Err(b) = linker.push(seq, prev, hash, run_id, record) {
            return Ok(Err(b));
        }
    }
    Ok(Ok(linker.finish()))
}

/// The checks after the chain itself: signatures (a rewritten chain fails
/// them first, whatever the head log says), then the head log.
fn finish_verification(
    conn: &Connection,
    log: Option<&Path>,
    key: Option<&super::signing::NodePublic>,
    depth: super::signing::Depth,
    mut verified: Verified,
) -> anyhow::Result<Result<Verified, Break>> {
    if let Some(key) = key {
        match super::signing::check(conn, key, log, depth)? {
            Ok(signed) => verified.signatures = signed,
            Err(b) => return Ok(Err(b)),
        }
    }
    if let Some(log) = log {
        match super::headlog::check(conn, log)? {
            Ok(logged) => verified.logged = logged,
            Err(b) => return Ok(Err(b)),
        }
    }
    Ok(Ok(verified))
}

fn unchained_run(conn: &Connection) -> anyhow::Result<Option<Break>> {
    let unchained: Option<i64> = conn
        .query_row(
            "SELECT r.id FROM runs r WHERE r.status <> 'running'
               AND NOT EXISTS (SELECT 1 FROM evidence e WHERE e.run_id = r.id) ORDER BY r.id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(unchained.map(|run_id| Break {
        seq: None,
        run_id: Some(run_id),
        problem: "the run is finished but has no evidence record: its record was deleted, or the run predates the evidence chain".into(),
    }))
}

/// The formats this build can re-build from rows.
pub const KNOWN_FORMATS: std::ops::RangeInclusive<u32> = 1..=RECORD_FORMAT;

/// Verifies the whole chain in a database: links, hashes, that every record
/// still matches its run's rows (re-built in the record's own format), that
/// every finished run has a record, and that the chain still holds every head
/// the head log `log` saw (so records cut from its end are named).
///
/// Streaming: the chain is read once in chain order for its links, then once
/// in run order beside one ordered read of each table of run rows, so memory
/// stays flat and no record costs a query of its own.
pub fn verify_db(
    conn: &Connection,
    log: Option<&Path>,
    key: Option<&super::signing::NodePublic>,
) -> anyhow::Result<Result<Verified, Break>> {
    let verified = match verify_links(conn, Linker::new(true), 0)? {
        Ok(v) => v,
        Err(b) => return Ok(Err(b)),
    };
    if let Some(b) = record_against_rows(conn)? {
        return Ok(Err(b));
    }
    if let Some(b) = unchained_run(conn)? {
        return Ok(Err(b));
    }
    finish_verification(conn, log, key, super::signing::Depth::Every, verified)
}

/// The first record, in chain order, that no longer matches its run's rows.
/// Records are compared in run order (the order the run rows are read in),
/// keeping the break with the lowest sequence number, so the verdict is the
/// one a walk in chain order would give.
fn record_against_rows(conn: &Connection) -> anyhow::Result<Option<Break>> {
    let range: Option<(i64, i64)> = conn.query_row("SELECT min(run_id), max(run_id) FROM evidence", [], |r| {
        Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
    })?;
    let Some((lo, hi)) = range else { return Ok(None) };
    let mut statements = super::rebuild::Statements::prepare(conn)?;
    let mut source = statements.rows(lo, hi)?;
    let mut stmt = conn.prepare("SELECT seq, run_id, record FROM evidence ORDER BY run_id")?;
    let mut rows = stmt.query([])?;
    let mut first: Option<Break> = None;
    while let Some(r) = rows.next()? {
        let (seq, run_id): (i64, i64) = (r.get(0)?, r.get(1)?);
        if first.as_ref().is_some_and(|b| b.seq < Some(seq)) {
            continue;
        }
        let canonical = r.get_ref(2)?.as_str()?;
        if let Some(problem) = mismatch(&mut source, run_id, canonical)? {
            first = Some(Break { seq: Some(seq), run_id: Some(run_id), problem });
        }
    }
    Ok(first)
}

/// What is wrong with the stored record `canonical` of `run_id`, if anything.
fn mismatch(source: &mut super::rebuild::Rows<'_>, run_id: i64, canonical: &str) -> anyhow::Result<Option<String>> {
    let stored = match serde_json::from_str::<EvidenceRecord>(canonical) {
        Ok(s) if KNOWN_FORMATS.contains(&s.format) => s,
        Ok(s) => {
            return Ok(Some(format!(
                "its record has format {}, which this drdrill ({}) does not know (it knows {} to {}): verify with the drdrill that wrote it",
                s.format,
                crate::VERSION,
                KNOWN_FORMATS.start(),
                KNOWN_FORMATS.end()
            )));
        }
        Err(e) => {
            return Ok(Some(format!(
                "its record cannot be read ({e}): it was written by a newer drdrill, or altered together with its hash"
            )));
        }
    };
    let Some(now) = source.record(run_id, stored.format, stored.note_count())? else {
        return Ok(Some("its run was deleted from the runs table".into()));
    };
    if now.canonical() != canonical {
        let field = differing_field(&stored, &now);
        return Ok(Some(format!(
            "the run's rows no longer match its evidence record (field `{field}` differs): the database was edited after the run"
        )));
    }
    Ok(None)
}

/// Names every top-level field that differs (inside measurements, checks and
/// phases: the entry and its sub-field), e.g. "`result`, `measurements[2] rpo value_ms`".
pub fn differing_field(a: &EvidenceRecord, b: &EvidenceRecord) -> String {
    let (va, vb) = (serde_json::to_value(a).unwrap_or_default(), serde_json::to_value(b).unwrap_or_default());
    let mut found = Vec::new();
    if let (Some(oa), Some(ob)) = (va.as_object(), vb.as_object()) {
        for (k, x) in oa {
            let Some(y) = ob.get(k).filter(|y| *y != x) else { continue };
            found.push(describe_difference(k, x, y));
        }
    }
    if found.is_empty() { "unknown".into() } else { found.join("`, `") }
}

fn describe_difference(k: &str, x: &serde_json::Value, y: &serde_json::Value) -> String {
    if let (Some(xa), Some(ya)) = (x.as_array(), y.as_array()) {
        for (i, (p, q)) in xa.iter().zip(ya).enumerate() {
            if p != q {
                let name = p.get("name").or_else(|| p.get("kind")).and_then(|n| n.as_str()).unwrap_or("");
                let sub = p
                    .as_object()
                    .and_then(|po| po.iter().find(|(kk, vv)| q.get(kk.as_str()) != Some(vv)))
                    .map(|(kk, _)| kk.clone())
                    .unwrap_or_default();
                return format!("{k}[{i}] {name} {sub}").trim().to_string();
            }
        }
        return format!("{k} (number of entries)");
    }
    if let (Some(xo), Some(yo)) = (x.as_object(), y.as_object())
        && let Some((kk, _)) = xo.iter().find(|(kk, vv)| yo.get(kk.as_str()) != Some(vv))
    {
        return format!("{k}.{kk}");
    }
    k.to_string()
}

/// The newest hash: what an auditor cites.
pub fn head(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    conn.query_row("SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Verifies exported entries (from `drdrill report --format json`) offline.
/// Each record is re-encoded canonically, so an edited field or an added one is
/// caught by the hash.
pub fn verify_exported(entries: &[ChainEntry]) -> Result<Verified, Break> {
    let canon: Vec<String> = entries.iter().map(|e| e.record.canonical()).collect();
    verify_entries(
        entries
            .iter()
            .zip(&canon)
            .map(|(e, c)| (e.seq, e.prev_hash.as_str(), e.hash.as_str(), e.record.run_id, c.as_str())),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format-1 record, as drdrill 0.1 wrote them.
    fn rec(id: i64) -> EvidenceRecord {
        EvidenceRecord {
            format: 1,
            run_id: id,
            plan: "p".into(),
            plan_sha256: "ab".into(),
            drdrill_version: "0.1.0".into(),
            host: "h".into(),
            trigger: "manual".into(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
            t_fail: None,
            result: "passed".into(),
            reason: None,
            measurements: vec![EvidenceMeasurement {
                name: "rto".into(),
                value_ms: Some(fixed_ms(1.5)),
                target_ms: Some(fixed_ms(1000.0)),
                method: "monotonic".into(),
                met: Some(true),
            }],
            checks: vec![],
            phases: vec![],
            backup: EvidenceBackup { mode: None, store: None, id: None, sha256: None, created_at: None },
            notes: None,
            gates: None,
        }
    }

    fn chain(n: i64) -> Vec<ChainEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|i| {
                let record = rec(i);
                let hash = chain_hash(&prev, &record.canonical());
                let e = ChainEntry { seq: i, prev_hash: prev.clone(), hash: hash.clone(), record };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn canonical_encoding_is_fixed_and_round_trips() {
        let r = rec(7);
        let text = r.canonical();
        assert!(text.starts_with(r#"{"format":1,"run_id":7,"plan":"p""#), "{text}");
        assert!(text.contains(r#""value_ms":"1.500""#), "{text}");
        let back: EvidenceRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.canonical(), text);
    }

    #[test]
    fn format_1_records_hash_exactly_as_they_were_written() {
        // The bytes drdrill 0.1 hashed for such a record; they must never change.
        let mut r = rec(7);
        r.notes = Some("[2026-01-01T00:00:01.000Z] alice: go".into());
        let text = r#"{"format":1,"run_id":7,"plan":"p","plan_sha256":"ab","drdrill_version":"0.1.0","host":"h","trigger":"manual","started_at":"2026-01-01T00:00:00.000Z","finished_at":null,"t_fail":null,"result":"passed","reason":null,"measurements":[{"name":"rto","value_ms":"1.500","target_ms":"1000.000","method":"monotonic","met":true}],"checks":[],"phases":[],"backup":{"mode":null,"store":null,"id":null,"sha256":null,"created_at":null},"notes":"[2026-01-01T00:00:01.000Z] alice: go"}"#;
        assert_eq!(r.canonical(), text);
        let back: EvidenceRecord = serde_json::from_str(text).unwrap();
        assert_eq!((back.canonical(), &back.gates), (text.to_string(), &None));
        assert_eq!(back.note_count(), None);
    }

    #[test]
    fn format_2_notes_cannot_pass_for_other_notes() {
        let line = |a: &str, b: &str, c: &str| note_line(a, b, c);
        assert_eq!(
            line("t", "operator (--note)", "game day, observer: J. Doe"),
            "[t] operator (--note): game day, observer: J. Doe"
        );
        // The same words, the author cut elsewhere: another line.
        assert_ne!(line("t", "a: b", "c"), line("t", "a", "b: c"));
        // A note cannot forge a second line, nor a time end early.
        assert_eq!(line("t", "a", "x\n[u] b: approved"), "[t] a: x\\n[u] b: approved");
        assert_ne!(line("t] a: x", "b", "c"), line("t", "a", "x] b: c"));
        assert_eq!(line("t", "a\\", "c"), "[t] a\\\\: c");
        let mut r = rec(7);
        r.format = 2;
        r.notes = Some(format!("{}\n{}", line("t", "a", "one"), line("u", "b", "two\nthree")));
        r.gates = Some(vec![]);
        assert_eq!(r.note_count(), Some(2));
        let text = r.canonical();
        assert!(text.ends_with(r#"\\nthree","gates":[]}"#), "{text}");
        assert_eq!(serde_json::from_str::<EvidenceRecord>(&text).unwrap(), r);
    }

    #[test]
    fn exported_chain_verifies_and_names_the_altered_record() {
        let mut c = chain(5);
        let v = verify_exported(&c).unwrap();
        assert_eq!((v.records, v.anchor.as_str(), v.head.as_str()), (5, GENESIS, c[4].hash.as_str()));
        c[2].record.result = "failed".into();
        let b = verify_exported(&c).unwrap_err();
        assert_eq!((b.seq, b.run_id), (Some(3), Some(3)), "{b}");
        assert!(b.to_string().contains("altered"), "{b}");
    }

    #[test]
    fn runs_aborted_after_a_crash_are_chained_too() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("d.db")).unwrap();
        let host = crate::net::hostname();
        let mut new = crate::db::NewRun {
            plan: "p",
            plan_file: "p.toml",
            plan_sha256: "ab",
            description: "",
            trigger: "manual",
            host: "elsewhere.invalid",
            started_at: chrono::Utc::now(),
        };
        // Another host's run is never judged from here, dead owner or not.
        let foreign = db.start_run(&new).unwrap();
        db.with_conn(|c| c.execute("UPDATE runs SET owner_pid = 0 WHERE id = ?1", [foreign])).unwrap();
        new.host = &host;
        let a = db.start_run(&new).unwrap();
        let b = db.start_run(&new).unwrap();
        let end = crate::db::RunEnd { status: "failed".into(), reason: Some("x".into()), ..Default::default() };
        db.finish_run(b, &end, &[], &[], &[]).unwrap();
        // A run still `running` has no record yet, and that is not a break.
        assert_eq!(db.verify_evidence().unwrap().unwrap().records, 1);
        // Its owner (this process) lives: recovery leaves it alone.
        assert!(db.recover_stale_runs("a test", |_| None).unwrap().is_empty());
        // Now its pid belongs to another process: the owner is gone.
        db.with_conn(|c| c.execute("UPDATE runs SET owner_started = owner_started + 1 WHERE id = ?1", [a])).unwrap();
        let found = db.recover_stale_runs("a test", |_| Some("disk full".into())).unwrap();
        assert_eq!(found.iter().map(|r| r.run_id).collect::<Vec<_>>(), vec![a]);
        assert!(found[0].reason.contains("found by a test") && found[0].reason.contains("disk full"), "{found:?}");
        let v = db.verify_evidence().unwrap().unwrap();
        assert_eq!(v.records, 2);
        let entries = db.evidence_entries(None, None).unwrap();
        assert_eq!(
            entries.iter().map(|e| (e.record.run_id, e.record.result.as_str())).collect::<Vec<_>>(),
            [(b, "failed"), (a, "aborted")]
        );
        assert_eq!(db.evidence_head().unwrap(), Some((2, v.head)));
        assert!(db.is_running(foreign));
    }

    #[test]
    fn a_deleted_record_is_named() {
        let mut c = chain(5);
        c.remove(1);
        let b = verify_exported(&c).unwrap_err();
        assert_eq!(b.seq, Some(3), "{b}");
        assert!(b.to_string().contains("record #2 is missing"), "{b}");
    }
}
