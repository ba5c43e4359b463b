//! The head log: `<database>.evidence-heads`, a text file beside the results
//! database that gets one line per evidence record appended, after the record
//! is committed: `#<seq> <hash> run <id> at <time>`, followed, where the node
//! signs its evidence, by `count <n> sig <hex>`: the head with its count,
//! signed (see [`super::signing::head_message`]).
//!
//! Deleting the newest runs together with their records leaves a chain that
//! is valid in itself; only a copy of its head kept elsewhere shows it got
//! shorter. Verification therefore requires every logged record to be in the
//! chain with the logged hash. The file is only ever appended to (`O_APPEND`,
//! one write per line), so concurrent writers cannot tear lines. A line that
//! is missing because the process died between commit and append is harmless:
//! the log then lags, and only records newer than its last line are
//! unprotected until the next one.
//!
//! The database remembers that the log was started (`evidence_head_log`), so a
//! deleted log is a break too, rather than silently started afresh.

use std::fs;
use std::io::{self, BufRead, Write};

use anyhow::Context;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::evidence::Break;

/// Where the head log of the database at `db` lives.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".evidence-heads");
    PathBuf::from(name)
}

/// One record's line, as [`append`] writes it; `key` signs the head it names.
pub fn line(seq: i64, hash: &str, run_id: i64, key: Option<&super::signing::NodeKey>) -> String {
    let signed = key
        .map(|k| format!(" count {seq} sig {}", k.sign(&super::signing::head_message(seq, hash))))
        .unwrap_or_default();
    format!("#{seq} {hash} run {run_id} at {}{signed}\n", super::ts(chrono::Utc::now()))
}

/// Appends one record's line; `key` signs the head it names.
pub fn append(log: &Path, seq: i64, hash: &str, run_id: i64, key: Option<&super::signing::NodeKey>) -> io::Result<()> {
    let line = line(seq, hash, run_id, key);
    let mut f = fs::OpenOptions::new().create(true).append(true).open(log)?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// Starts the log of a database that has none yet, with its current head
/// (a database from before the head log, or a new one). Once started, a
/// missing log is left missing, for verification to report.
pub fn ensure(conn: &Connection, log: &Path, key: Option<&super::signing::NodeKey>) -> anyhow::Result<()> {
    if started(conn)?.is_some() {
        return Ok(());
    }
    let head: Option<(i64, String, i64)> = conn
        .query_row("SELECT seq, hash, run_id FROM evidence ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    match &head {
        Some((seq, hash, run)) => append(log, *seq, hash, *run, key)?,
        None => drop(fs::OpenOptions::new().create(true).append(true).open(log)?),
    }
    conn.execute(
        "INSERT OR IGNORE INTO evidence_head_log (id, created_at, from_seq) VALUES (1, ?1, ?2)",
        params![super::ts(chrono::Utc::now()), head.map(|h| h.0).unwrap_or(0)],
    )?;
    Ok(())
}

/// When the log was started, if it was.
fn started(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT created_at FROM evidence_head_log WHERE id = 1", [], |r| r.get(0)).optional()
}

/// Compares the log with the chain (already verified: contiguous from #1),
/// reading the log a line at a time. Returns the newest logged record, or the
/// first disagreement.
pub fn check(conn: &Connection, log: &Path) -> anyhow::Result<Result<Option<i64>, Break>> {
    let Some(since) = started(conn)? else { return Ok(Ok(None)) };
    let broken = |seq: Option<i64>, run_id: Option<i64>, problem: String| Ok(Err(Break { seq, run_id, problem }));
    let file = match fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return broken(
                None,
                None,
                format!(
                    "the head log {} is missing (it is kept beside the database since {since}): it was deleted, or the database was copied without it, so records cut from the end of the chain would go unnoticed; if the database was moved on purpose, move the head log with it",
                    log.display()
                ),
            );
        }
        Err(e) => anyhow::bail!("cannot read the head log {}: {e}", log.display()),
    };
    let head: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM evidence", [], |r| r.get(0))?;
    let mut at = conn.prepare("SELECT hash, run_id FROM evidence WHERE seq = ?1")?;
    let mut newest = None;
    for (n, line) in io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read the head log {}", log.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let Some((seq, hash, run_id)) = parse(&line) else {
            return broken(
                None,
                None,
                format!("line {} of the head log {} is not a head line: the log was edited", n + 1, log.display()),
            );
        };
        let row: Option<(String, i64)> = at.query_row([seq], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let Some((stored, stored_run)) = row.filter(|_| seq >= 1 && seq <= head) else {
            return broken(
                Some(seq),
                Some(run_id),
                format!(
                    "the head log {} says this record was written (hash {hash}), but the chain ends at record #{head}: records were deleted from the end of the chain (if the database was replaced on purpose, move the head log aside with it)",
                    log.display()
                ),
            );
        };
        if stored != hash {
            return broken(
                Some(seq),
                Some(stored_run),
                format!(
                    "its hash is {stored}, but the head log {} says it was written with hash {hash}: the chain was rewritten from here on",
                    log.display()
                ),
            );
        }
        newest = newest.max(Some(seq));
    }
    Ok(Ok(newest))
}

/// One line of the head log, with its signed head if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadLine {
    pub seq: i64,
    pub hash: String,
    pub count: Option<i64>,
    pub signature: Option<String>,
}

/// Hands every head line of the log to `f` with its number among them (from
/// 1), one at a time, until `f` returns false; none if the log does not
/// exist. Lines that do not parse are left to [`check`] to name.
pub fn for_each_head(log: &Path, mut f: impl FnMut(usize, HeadLine) -> bool) -> anyhow::Result<()> {
    let file = match fs::File::open(log) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => anyhow::bail!("cannot read the head log {}: {e}", log.display()),
    };
    let mut n = 0;
    for line in io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read the head log {}", log.display()))?;
        let Some((seq, hash, _)) = parse(&line) else { continue };
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |w: &str| words.iter().position(|x| *x == w).and_then(|i| words.get(i + 1)).map(|s| s.to_string());
        n += 1;
        let head = HeadLine {
            seq,
            hash: hash.to_string(),
            count: after("count").and_then(|c| c.parse().ok()),
            signature: after("sig"),
        };
        if !f(n, head) {
            break;
        }
    }
    Ok(())
}

fn parse(line: &str) -> Option<(i64, &str, i64)> {
    let mut f = line.split_whitespace();
    let seq = f.next()?.strip_prefix('#')?.parse().ok()?;
    let hash = f.next().filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    (f.next()? == "run").then_some(())?;
    let run_id = f.next()?.parse().ok()?;
    Some((seq, hash, run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_garbage_does_not() {
        let h = "a".repeat(64);
        assert_eq!(parse(&format!("#3 {h} run 7 at 2026-01-01T00:00:00.000Z")), Some((3, h.as_str(), 7)));
        assert_eq!(parse("#3 abc run 7"), None);
        assert_eq!(parse(&format!("3 {h} run 7")), None);
    }
}
