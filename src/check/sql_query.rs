//! `kind = "sql-query"`: runs SQL on the restored PostgreSQL database (the
//! throwaway cluster of a `postgres` source) and compares the first column of
//! the first row with an expectation, as `sqlite-query` does.
//!
//! It goes through the psql of the tools that restored the cluster (named in
//! the connection file), so client and server versions always match and no
//! second PostgreSQL client lives inside drdrill.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::expect::{Actual, Expectation};
use super::{Check, CheckCtx};
use crate::diag::{Diagnostic, TomlDoc};
use crate::source::postgres::PgConn;

pub const KIND: &str = "sql-query";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlQuery {
    pub sql: String,
    pub expect: Expectation,
    /// Another database of the restored cluster (default: the restored one).
    pub database: Option<String>,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Check>, Diagnostic> {
    let c: SqlQuery = doc.deserialize(&value)?;
    if c.sql.trim().is_empty() {
        return Err(doc.at(
            value.span(),
            "sql-query has an empty `sql`".into(),
            Some("set `sql = \"SELECT ...\"`".into()),
        ));
    }
    Ok(std::sync::Arc::new(c))
}

impl Check for SqlQuery {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("{} expect {}", self.sql, self.expect)
    }

    fn fits(&self, source_kind: &str) -> Result<(), String> {
        match source_kind {
            crate::source::postgres::KIND => Ok(()),
            other => Err(format!(
                "{KIND} queries a restored PostgreSQL database, but the source is `{other}`; use sqlite-query for SQLite"
            )),
        }
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        let mut conn = PgConn::load(&ctx.restored).map_err(|e| format!("{e:#}"))?;
        if let Some(db) = &self.database {
            conn.dbname = db.clone();
        }
        let value = conn.query_first(&self.sql, None).map_err(|e| format!("query failed: {e:#}"))?;
        let actual = Actual::from_text(value.as_deref());
        let observed = format!("{} -> {actual} (expected {})", self.sql, self.expect);
        if self.expect.matches(&actual) { Ok(observed) } else { Err(observed) }
    }
}
