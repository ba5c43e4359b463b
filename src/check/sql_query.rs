//! `kind = "sql-query"`: runs SQL on a restored SQL server (the throwaway
//! cluster of a `postgres` source, ...) and compares the first column of the
//! first row with an expectation, as `sqlite-query` does.
//!
//! It fits any restore that yields a SQL service and goes through that
//! service's own client (for PostgreSQL, the psql of the tools that restored
//! the cluster), so client and server versions always match.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::expect::{Actual, Expectation};
use super::{Check, CheckCtx, Need};
use crate::diag::{Diagnostic, TomlDoc};

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

    fn needs(&self) -> Need {
        Need::Sql
    }

    /// A server that was just started may not answer yet.
    fn retries(&self) -> bool {
        true
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        let sql = ctx.restored.sql.as_ref().ok_or("the restore yields no SQL service")?;
        let value = sql
            .query_first(&self.sql, self.database.as_deref(), &ctx.run.cancel)
            .map_err(|e| format!("query failed: {e:#}"))?;
        let actual = Actual::from_text(value.as_deref());
        let observed = format!("{} -> {actual} (expected {})", self.sql, self.expect);
        if self.expect.matches(&actual) { Ok(observed) } else { Err(observed) }
    }
}
