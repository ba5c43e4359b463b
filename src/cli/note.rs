//! `drdrill note RUN TEXT`: an operator's timestamped remark on a run, from any
//! terminal, while the run goes on or afterwards.

use chrono::Utc;
use drdrill::config::Config;
use drdrill::db::RunNote;

use super::history::open_db;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub fn cmd_note(config: &Config, run_id: i64, text: &str, author: Option<String>) -> anyhow::Result<u8> {
    let text = text.trim();
    if text.is_empty() {
        eprintln!("error: the note is empty\nfix: drdrill note {run_id} \"what you saw\"");
        return Ok(EXIT_BAD_INPUT);
    }
    let db = open_db(config)?;
    let author = author.unwrap_or_else(super::operator);
    let note = RunNote { at: Utc::now(), author, text: text.into() };
    if let Err(e) = db.add_note(run_id, &note) {
        eprintln!("error: {e:#}\nfix: `drdrill history` lists the runs");
        return Ok(EXIT_BAD_INPUT);
    }
    println!("note added to run {run_id} at {}", drdrill::db::ts(note.at));
    Ok(EXIT_PASSED)
}
