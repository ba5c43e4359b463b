//! `kind = "sqlite-query"`: runs SQL on the restored database and compares the
//! first column of the first row with an expectation such as `>= 1` or `= 'ok'`.

use std::cmp::Ordering;
use std::fmt;
use std::path::PathBuf;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Deserializer};
use toml::Spanned;
use toml::de::DeValue;

use super::{Check, CheckCtx};
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

/// `OP VALUE`: OP is one of `=`, `==`, `!=`, `<`, `<=`, `>`, `>=`; VALUE is a
/// number or a quoted string. A bare number means `=`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub op: Op,
    pub value: Expected,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Number(f64),
    Text(String),
}

impl Expectation {
    pub fn parse(text: &str) -> Result<Expectation, String> {
        let t = text.trim();
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("==", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ];
        let (op, rest) =
            ops.iter().find_map(|(s, op)| t.strip_prefix(s).map(|r| (*op, r.trim()))).unwrap_or((Op::Eq, t));
        let value = if let Some(s) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            Expected::Text(s.to_string())
        } else if let Some(s) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Expected::Text(s.to_string())
        } else if let Ok(n) = rest.parse::<f64>() {
            Expected::Number(n)
        } else {
            return Err(format!(
                "invalid expectation {text:?}: write an operator and a value, like \">= 1\", \"= 42\" or \"= 'ok'\""
            ));
        };
        Ok(Expectation { op, value })
    }

    /// Whether `actual` (the query's first column) meets this expectation.
    pub fn matches(&self, actual: &Actual) -> bool {
        let ord = match (&self.value, actual) {
            (Expected::Number(e), Actual::Number(a)) => a.partial_cmp(e),
            (Expected::Text(e), Actual::Text(a)) => Some(a.as_str().cmp(e.as_str())),
            (Expected::Number(e), Actual::Text(a)) => a.trim().parse::<f64>().ok().and_then(|a| a.partial_cmp(e)),
            (Expected::Text(e), Actual::Number(a)) => e.parse::<f64>().ok().and_then(|e| a.partial_cmp(&e)),
            (_, Actual::Null) => None,
        };
        let Some(ord) = ord else { return false };
        match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        };
        match &self.value {
            Expected::Number(n) => write!(f, "{op} {n}"),
            Expected::Text(s) => write!(f, "{op} '{s}'"),
        }
    }
}

impl<'de> Deserialize<'de> for Expectation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Expectation::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Actual {
    Number(f64),
    Text(String),
    Null,
}

impl fmt::Display for Actual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actual::Number(n) => write!(f, "{n}"),
            Actual::Text(s) => write!(f, "'{s}'"),
            Actual::Null => f.write_str("NULL"),
        }
    }
}

impl Check for SqliteQuery {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("{} expect {}", self.sql, self.expect)
    }

    fn fits(&self, source_kind: &str) -> Result<(), String> {
        super::fits_sqlite_file(KIND, source_kind, self.path.is_some())
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        let db = ctx.resolve(self.path.as_deref())?;
        if !db.is_file() {
            return Err(format!("{} does not exist in the restore", db.display()));
        }
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations() {
        let ge = Expectation::parse(">= 3").unwrap();
        assert!(ge.matches(&Actual::Number(3.0)) && ge.matches(&Actual::Number(4.0)));
        assert!(!ge.matches(&Actual::Number(2.0)) && !ge.matches(&Actual::Null));
        let eq = Expectation::parse("= 'ok'").unwrap();
        assert!(eq.matches(&Actual::Text("ok".into())) && !eq.matches(&Actual::Text("no".into())));
        assert!(Expectation::parse("42").unwrap().matches(&Actual::Number(42.0)));
        assert!(Expectation::parse("!= 0").unwrap().matches(&Actual::Number(1.0)));
        assert!(Expectation::parse("about five").is_err());
    }
}
