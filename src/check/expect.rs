//! The expectation syntax shared by the query checks (`sqlite-query`,
//! `sql-query`): the first column of the first row against `OP VALUE`.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer};

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

impl Actual {
    /// A value printed as text by a client (psql): numbers compare as numbers.
    pub fn from_text(text: Option<&str>) -> Actual {
        match text {
            None => Actual::Null,
            Some(t) => match t.trim().parse::<f64>() {
                Ok(n) => Actual::Number(n),
                Err(_) => Actual::Text(t.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations() {
        assert_eq!(Actual::from_text(Some("12")), Actual::Number(12.0));
        assert_eq!(Actual::from_text(None), Actual::Null);
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
