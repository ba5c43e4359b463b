//! `drdrill note RUN TEXT`: an operator's timestamped remark on a run, from any
//! terminal, while the run goes on or afterwards.

use chrono::Utc;
use drdrill::config::Config;
use drdrill::db::RunNote;

use super::history::open_db;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub fn cmd_note(config: &Config, run_id: i64, text: &str, author: Option<String>, json: bool) -> anyhow::Result<u8> {
    let text = text.trim();
    if text.is_empty() {
        let fix = format!("drdrill note {run_id} \"what you saw\"");
        return Ok(super::fail(json, EXIT_BAD_INPUT, "the note is empty", Some(&fix)));
    }
    let db = open_db(config)?;
    let author = author.unwrap_or_else(super::operator);
    let note = RunNote { at: Utc::now(), author, text: text.into() };
    if let Err(e) = db.add_note(run_id, &note) {
        return Ok(super::fail(json, EXIT_BAD_INPUT, &format!("{e:#}"), Some("`drdrill history` lists the runs")));
    }
    if json {
        super::print_json(&serde_json::json!({
            "run_id": run_id, "at": drdrill::db::ts(note.at), "author": note.author, "text": note.text,
        }))?;
        return Ok(EXIT_PASSED);
    }
    println!("note added to run {run_id} at {}", drdrill::db::ts(note.at));
    Ok(EXIT_PASSED)
}
