//! Errors in plan and config files, reported as `file:line:col: message` plus a fix.
//!
//! TOML is parsed once into a tree that keeps byte spans ([`TomlDoc`]), and every
//! section is deserialized from that tree, so even a typo inside `[[check]]` or a
//! bad duration deep in a kind-specific table points at its own line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub fix: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

/// One or more diagnostics for one file; the error type of loading a plan or config.
#[derive(Debug)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A registry line: a kind's name and the parser of its table (the table
/// without its `kind` key).
pub type KindParser<T> = (&'static str, fn(&TomlDoc, Spanned<DeValue>) -> Result<T, Diagnostic>);

/// A parsed TOML file that remembers where everything came from.
pub struct TomlDoc<'a> {
    pub file: PathBuf,
    pub text: &'a str,
    root: Spanned<DeValue<'a>>,
}

impl<'a> TomlDoc<'a> {
    pub fn parse(file: &Path, text: &'a str) -> Result<Self, Diagnostic> {
        let parsed = DeTable::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            Diagnostic {
                fix: Some("this is not valid TOML; see https://toml.io for the syntax".into()),
                ..diag_at(file, text, span, e.message().to_string(), None)
            }
        })?;
        let span = parsed.span();
        Ok(TomlDoc { file: file.to_path_buf(), text, root: Spanned::new(span, DeValue::Table(parsed.into_inner())) })
    }

    pub fn root(&self) -> &Spanned<DeValue<'a>> {
        &self.root
    }

    /// The value at `key` of the top-level table.
    pub fn get(&self, key: &str) -> Option<&Spanned<DeValue<'a>>> {
        self.root.get_ref().get(key)
    }

    /// Deserializes any value of this document, keeping spans for errors.
    pub fn deserialize<T: DeserializeOwned>(&self, value: &Spanned<DeValue<'a>>) -> Result<T, Diagnostic> {
        T::deserialize(ValueDeserializer::from(value.clone())).map_err(|e| self.from_toml_error(e))
    }

    /// For a table with a `kind` key: the kind, and the table without it, ready to
    /// deserialize into that kind's own config struct.
    pub fn split_kind(
        &self,
        value: &Spanned<DeValue<'a>>,
        what: &str,
        kinds: &[&str],
    ) -> Result<(String, Spanned<DeValue<'a>>), Diagnostic> {
        let span = value.span();
        let DeValue::Table(table) = value.get_ref() else {
            return Err(self.at(span, format!("{what} must be a table"), None));
        };
        let mut table = table.clone();
        let known = kinds.join(" | ");
        let Some(kind) = table.remove("kind") else {
            return Err(self.at(
                span,
                format!("{what} has no `kind`"),
                Some(format!("add `kind = \"...\"` with one of: {known}")),
            ));
        };
        let kind_span = kind.span();
        let Some(name) = kind.get_ref().as_str() else {
            return Err(self.at(kind_span, format!("{what} `kind` must be a string"), None));
        };
        if !kinds.contains(&name) {
            let fix = match closest(name, kinds) {
                Some(k) => format!("did you mean `{k}`? kinds are: {known}"),
                None => format!("kinds are: {known}"),
            };
            return Err(self.at(kind_span, format!("unknown {what} kind `{name}`"), Some(fix)));
        }
        Ok((name.to_string(), Spanned::new(span, DeValue::Table(table))))
    }

    /// Parses a kind table (`[source]`, `[[check]]`, ...) with the parser its
    /// `kind` names in `kinds`: the one dispatch every registry shares.
    pub fn parse_kind<T>(
        &self,
        value: &Spanned<DeValue<'a>>,
        what: &str,
        kinds: &[KindParser<T>],
    ) -> Result<T, Diagnostic> {
        let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
        let (kind, rest) = self.split_kind(value, what, &names)?;
        let parse = kinds.iter().find(|(k, _)| *k == kind).map(|(_, p)| p).expect("split_kind checked the kind");
        parse(self, rest)
    }

    pub fn at(&self, span: Range<usize>, message: String, fix: Option<String>) -> Diagnostic {
        diag_at(&self.file, self.text, span, message, fix)
    }

    pub fn from_toml_error(&self, e: toml::de::Error) -> Diagnostic {
        let message = e.message().to_string();
        let fix = fix_for(&message);
        self.at(e.span().unwrap_or(0..0), message, fix)
    }
}

fn diag_at(file: &Path, text: &str, span: Range<usize>, message: String, fix: Option<String>) -> Diagnostic {
    let (line, col) = line_col(text, span.start);
    Diagnostic { file: file.to_path_buf(), line, col, message, fix }
}

/// Turns serde's wording into the next thing the user should type.
fn fix_for(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`')?;
        let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return Some(match closest(field, &allowed) {
            Some(k) => format!("did you mean `{k}`?"),
            None if allowed.is_empty() => "remove this key: this table takes none".to_string(),
            None => format!("remove it; allowed keys here: {}", allowed.join(", ")),
        });
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next()?;
        return Some(format!("add `{field} = ...` to this table"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        return Some(format!("use one of: {}", expected.join(", ")));
    }
    if message.starts_with("invalid type") {
        return Some("check this value's type: strings need quotes, durations are strings like \"5m\"".into());
    }
    None
}

/// The closest of `candidates` to `word`, if it is plausibly a typo of it.
pub fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, t.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(t, t.rfind('=').unwrap()), (2, 4));
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(closest("sorce", &["name", "source", "check"]), Some("source"));
        assert_eq!(closest("zzzzzz", &["name", "source"]), None);
        let fix = fix_for("unknown field `sorce`, expected one of `name`, `source`").unwrap();
        assert_eq!(fix, "did you mean `source`?");
    }
}
