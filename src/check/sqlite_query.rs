//! `kind = "sqlite-query"`: runs SQL on the restored database and compares the
//! first column of the first row with an expectation such as `>= 1` or `= 'ok'`.

use std::path::PathBuf;

use rusqlite::types::ValueRef;
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

pub use super::expect::{Actual, Expectation};
use super::{Check, CheckCtx, Need};
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "sqlite-query";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteQuery {
    pub sql: String,
    pub expect: Expectation,
    pub path: Option<PathBuf>,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Check>, Diagnostic> {
    let c: SqliteQuery = doc.deserialize(&value)?;
    super::relative_path(doc, &value, c.path.as_deref())?;
    Ok(std::sync::Arc::new(c))
}

impl Check for SqliteQuery {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("{} expect {}", self.sql, self.expect)
    }

    fn needs(&self) -> Need {
        Need::File { path_given: self.path.is_some() }
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        let (conn, _interrupt) = ctx.open_sqlite(self.path.as_deref())?;
        let actual = conn
            .query_row(&self.sql, [], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Null => Actual::Null,
                    ValueRef::Integer(i) => Actual::Number(i as f64),
                    ValueRef::Real(r) => Actual::Number(r),
                    ValueRef::Text(t) => Actual::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Actual::Text(format!("<{} byte blob>", b.len())),
                })
            })
            .map_err(|e| format!("query failed: {e}"))?;
        let observed = format!("{} -> {actual} (expected {})", self.sql, self.expect);
        if self.expect.matches(&actual) { Ok(observed) } else { Err(observed) }
    }
}
