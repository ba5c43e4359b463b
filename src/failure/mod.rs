//! How a drill starts its incident. The instant the first failure is injected is
//! T_fail, from which RTO and RPO are measured. One file per kind.
//!
//! Contract: `prepare` runs before T_fail and may take time (it is not part of
//! RTO); `inject` is the incident itself and returns what it did, for the record;
//! `rollback` always runs after the drill, in reverse order, whatever happened.

pub mod declare;
pub mod delete;

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;
use toml::de::DeValue;

use crate::diag::{Diagnostic, TomlDoc};
use crate::source::Source;

pub trait Failure: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    /// Whether it touches anything outside drdrill's own scratch space.
    fn destructive(&self) -> bool;
    fn describe(&self) -> String;
    fn prepare(&self, _ctx: &FailureCtx) -> anyhow::Result<()> {
        Ok(())
    }
    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String>;
    fn rollback(&self, _ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}

pub struct FailureCtx {
    pub source: Arc<dyn Source>,
    /// A private folder in the run's scratch space.
    pub scratch: PathBuf,
}

type ParseFn = fn(&TomlDoc, Spanned<DeValue>) -> Result<Arc<dyn Failure>, Diagnostic>;

/// The failure kinds. A new kind is one file and one line here.
const KINDS: &[(&str, ParseFn)] = &[(declare::KIND, declare::parse), (delete::KIND, delete::parse)];

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

pub fn parse(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<Arc<dyn Failure>, Diagnostic> {
    let (kind, rest) = doc.split_kind(value, "failure", &kind_names())?;
    let parse = KINDS.iter().find(|(k, _)| *k == kind).map(|(_, p)| p).expect("kind was checked");
    parse(doc, rest)
}
