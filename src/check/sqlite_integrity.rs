//! `kind = "sqlite-integrity"`: `PRAGMA integrity_check` on the restored database.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Check, CheckCtx, Need};
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "sqlite-integrity";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteIntegrity {
    /// Database file inside a restored folder; not needed for a sqlite source.
    pub path: Option<PathBuf>,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Check>, Diagnostic> {
    let c: SqliteIntegrity = doc.deserialize(&value)?;
    super::relative_path(doc, &value, c.path.as_deref())?;
    Ok(std::sync::Arc::new(c))
}

impl Check for SqliteIntegrity {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("PRAGMA integrity_check on {}", p.display()),
            None => "PRAGMA integrity_check".into(),
        }
    }

    fn needs(&self) -> Need {
        Need::File { path_given: self.path.is_some() }
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        let (conn, _interrupt) = ctx.open_sqlite(self.path.as_deref())?;
        let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(|e| e.to_string())?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| format!("integrity_check could not run: {e}"))?;
        if rows == ["ok"] {
            Ok("ok".into())
        } else {
            Err(format!("integrity_check found problems: {}", rows.join("; ")))
        }
    }
}
