//! Errors in plan and config files, reported as `file:line:col: message` plus a fix.
//!
//! TOML is parsed once into a tree that keeps byte spans ([`TomlDoc`]), and every
//! section is deserialized from that tree, so even a typo inside `[[check]]` or a
//! bad duration deep in a kind-specific table points at its own line.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// Separates a message from its fix inside one string (a serde error carries only
/// one): [`TomlDoc::from_toml_error`] splits it into the diagnostic's two parts,
/// and printed unsplit it still reads as the message with its fix below.
pub const FIX: &str = "\n  fix: ";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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
        // A scalar's own error has no span: it is the value's.
        T::deserialize(ValueDeserializer::from(value.clone())).map_err(|e| self.error_at(e, value.span()))
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

    /// A path a plan names, resolved against the plan's base ([`crate::paths::plan_base`]).
    pub fn plan_path(&self, p: &Path) -> PathBuf {
        crate::paths::in_plan(&self.file, p)
    }

    pub fn at(&self, span: Range<usize>, message: String, fix: Option<String>) -> Diagnostic {
        diag_at(&self.file, self.text, span, message, fix)
    }

    pub fn from_toml_error(&self, e: toml::de::Error) -> Diagnostic {
        self.error_at(e, 0..0)
    }

    /// A toml error at its own span, else at `fallback`.
    fn error_at(&self, e: toml::de::Error, fallback: Range<usize>) -> Diagnostic {
        let span = e.span().unwrap_or(fallback);
        if let Some((message, fix)) = e.message().split_once(FIX) {
            return self.at(span, message.to_string(), Some(fix.to_string()));
        }
        let message = e.message().to_string();
        let fix = fix_for(&message);
        self.at(span, message, fix)
    }
}

/// Reads a table one key at a time, so that a bad value hides neither the other
/// keys' problems nor an unknown key: every problem of the table is collected.
pub struct Keys<'d, 'a> {
    doc: &'d TomlDoc<'a>,
    table: Option<&'d DeTable<'a>>,
    span: Range<usize>,
    fields: &'static [&'static str],
    errors: Vec<Diagnostic>,
}

impl<'d, 'a> Keys<'d, 'a> {
    /// The keys of `value`, which takes `fields`; `what` names it if it is not a table.
    pub fn new(
        doc: &'d TomlDoc<'a>,
        value: &'d Spanned<DeValue<'a>>,
        what: &str,
        fields: &'static [&'static str],
    ) -> Self {
        let mut keys = Keys { doc, table: None, span: value.span(), fields, errors: Vec::new() };
        match value.get_ref() {
            DeValue::Table(t) => keys.table = Some(t),
            _ => keys.errors.push(doc.at(
                value.span(),
                format!("{what} must be a table"),
                Some(format!("write it as a [{what}] section")),
            )),
        }
        keys
    }

    /// The value at `key` as written, for tables parsed elsewhere (kinds, arrays).
    pub fn raw(&self, key: &str) -> Option<&'d Spanned<DeValue<'a>>> {
        debug_assert!(self.fields.contains(&key), "{key} is not declared");
        self.table?.get(key)
    }

    /// `key` is in the table, valid or not.
    pub fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// The value of an optional key; `None` when absent or invalid (then the
    /// problem is recorded).
    pub fn opt<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let value = self.raw(key)?;
        match self.doc.deserialize(value) {
            Ok(v) => Some(v),
            Err(d) => {
                self.errors.push(d);
                None
            }
        }
    }

    /// The value of a required key; a missing one is reported as serde would.
    pub fn req<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        self.require(key)?;
        self.opt(key)
    }

    /// The value at a required key as written; a missing one is reported.
    pub fn require(&mut self, key: &str) -> Option<&'d Spanned<DeValue<'a>>> {
        let value = self.raw(key);
        if value.is_none() && self.table.is_some() {
            self.errors.push(self.doc.at(
                self.span.start..self.span.start,
                format!("missing field `{key}`"),
                Some(format!("add `{key} = ...` to this table")),
            ));
        }
        value
    }

    /// Adds problems found outside (a kind table, a cross-check).
    pub fn push(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// Every problem found, unknown keys included (worded as serde words them,
    /// so they get the same "did you mean" fix).
    pub fn finish(mut self) -> Vec<Diagnostic> {
        for (key, _) in self.table.into_iter().flatten() {
            if !self.fields.contains(&key.get_ref().as_ref()) {
                let expected: Vec<String> = self.fields.iter().map(|f| format!("`{f}`")).collect();
                let message = format!("unknown field `{}`, expected one of {}", key.get_ref(), expected.join(", "));
                let fix = fix_for(&message);
                self.errors.push(self.doc.at(key.span(), message, fix));
            }
        }
        self.errors
    }
}

/// The allowed range of one setting, as a type for [`Bounded`]; declare one
/// with [`limit!`] next to the setting it bounds.
pub trait Limit {
    type Value: Setting;
    /// The setting as its file spells it, for messages: `[probe] interval`.
    const KEY: &'static str;
    const MIN: Self::Value;
    const MAX: Self::Value;
}

/// Declares a [`Limit`]: `limit!(pub Name: Duration = "[section] key", MIN, MAX);`
macro_rules! limit {
    ($(#[$doc:meta])* $vis:vis $name:ident: $ty:ty = $key:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis struct $name;
        impl $crate::diag::Limit for $name {
            type Value = $ty;
            const KEY: &'static str = $key;
            const MIN: $ty = $min;
            const MAX: $ty = $max;
        }
    };
}
pub(crate) use limit;

/// What a bounded setting can hold: durations and whole numbers.
pub trait Setting: Copy + PartialOrd {
    /// Reads a value of the right type and how the file wrote it, for messages;
    /// the value is `None` when it does not fit this type (so no range).
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<(Option<Self>, String), D::Error>;
    /// For people: `5m`, `3`.
    fn human(&self) -> String;
}

impl Setting for Duration {
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<(Option<Self>, String), D::Error> {
        let text = String::deserialize(d)?;
        // However long: the range check says what is too long in this setting's terms.
        let d = crate::duration::parse_any(&text).map_err(D::Error::custom)?;
        Ok((Some(d), format!("{text:?}")))
    }
    fn human(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

macro_rules! integer_setting {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            fn read<'de, D: Deserializer<'de>>(d: D) -> Result<(Option<Self>, String), D::Error> {
                let n = i64::deserialize(d)?;
                Ok((<$t>::try_from(n).ok(), n.to_string()))
            }
            fn human(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_setting!(usize, u32, u64, i32);

/// A setting whose value lies in `L`'s range: checked as the file is read, so an
/// absurd value is an error at its line that names the range, instead of an
/// overflow or a flood in the middle of a run.
pub struct Bounded<L: Limit>(pub L::Value, PhantomData<L>);

impl<L: Limit> Bounded<L> {
    /// A value the code chooses (a default); it must lie in the range.
    pub fn of(v: L::Value) -> Self {
        debug_assert!(L::MIN <= v && v <= L::MAX, "{} default {} is out of its range", L::KEY, v.human());
        Bounded(v, PhantomData)
    }

    pub fn get(&self) -> L::Value {
        self.0
    }
}

fn out_of_range<L: Limit>(written: &str) -> String {
    let (min, max) = (L::MIN.human(), L::MAX.human());
    let key = L::KEY.rsplit(' ').next().unwrap_or(L::KEY);
    format!("{} = {written} is out of range {min} to {max}{FIX}set `{key}` to a value from {min} to {max}", L::KEY)
}

impl<'de, L: Limit> Deserialize<'de> for Bounded<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match L::Value::read(d)? {
            (Some(v), _) if L::MIN <= v && v <= L::MAX => Ok(Bounded(v, PhantomData)),
            (_, written) => Err(D::Error::custom(out_of_range::<L>(&written))),
        }
    }
}

impl<L: Limit> Clone for Bounded<L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<L: Limit> Copy for Bounded<L> {}
impl<L: Limit> PartialEq for Bounded<L> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<L: Limit> fmt::Debug for Bounded<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.human())
    }
}
impl<L: Limit> fmt::Display for Bounded<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.human())
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

    limit!(Tries: u32 = "[t] tries", 1, 5);
    limit!(Wait: Duration = "[t] wait", Duration::from_millis(100), Duration::from_secs(60));

    #[derive(Deserialize)]
    struct T {
        tries: Bounded<Tries>,
        wait: Option<Bounded<Wait>>,
    }

    #[test]
    fn bounded_settings_name_their_range_at_the_value() {
        let doc = TomlDoc::parse(Path::new("t.toml"), "tries = 9\nwait = \"1s\"\n").unwrap();
        let e = doc.deserialize::<T>(doc.root()).err().unwrap();
        assert_eq!((e.line, e.col), (1, 9), "{e}");
        assert_eq!(e.message, "[t] tries = 9 is out of range 1 to 5");
        assert_eq!(e.fix.as_deref(), Some("set `tries` to a value from 1 to 5"));
        // Too large for the type is out of range too, not a type error.
        let doc = TomlDoc::parse(Path::new("t.toml"), "tries = 9223372036854775807\n").unwrap();
        assert!(doc.deserialize::<T>(doc.root()).err().unwrap().message.contains("out of range 1 to 5"));
        let doc = TomlDoc::parse(Path::new("t.toml"), "tries = 2\nwait = \"999999999999h\"\n").unwrap();
        let e = doc.deserialize::<T>(doc.root()).err().unwrap();
        assert_eq!(e.message, "[t] wait = \"999999999999h\" is out of range 100ms to 1m", "{e}");
        let doc = TomlDoc::parse(Path::new("t.toml"), "tries = 2\nwait = \"1m\"\n").unwrap();
        let t = doc.deserialize::<T>(doc.root()).unwrap();
        assert_eq!((t.tries.get(), t.wait.unwrap().0), (2, Duration::from_secs(60)));
    }

    #[test]
    fn keys_report_every_problem_of_a_table() {
        let doc = TomlDoc::parse(Path::new("t.toml"), "a = \"x\"\nbee = 1\n").unwrap();
        let mut keys = Keys::new(&doc, doc.root(), "t", &["a", "b", "c"]);
        assert_eq!(keys.opt::<u32>("a"), None);
        assert_eq!(keys.req::<u32>("c"), None);
        let errors: Vec<String> = keys.finish().iter().map(|d| d.to_string()).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("t.toml:1:5: invalid type"), "{errors:?}");
        assert!(errors[1].starts_with("t.toml:1:1: missing field `c`"), "{errors:?}");
        assert!(
            errors[2].starts_with("t.toml:2:1: unknown field `bee`") && errors[2].contains("did you mean `b`?"),
            "{errors:?}"
        );
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(closest("sorce", &["name", "source", "check"]), Some("source"));
        assert_eq!(closest("zzzzzz", &["name", "source"]), None);
        let fix = fix_for("unknown field `sorce`, expected one of `name`, `source`").unwrap();
        assert_eq!(fix, "did you mean `source`?");
    }
}
