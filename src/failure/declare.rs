//! `kind = "declare"`: marks the incident time and touches nothing. The safe
//! default for drills against production.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx};
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "declare";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Declare {}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Failure>, Diagnostic> {
    let d: Declare = doc.deserialize(&value)?;
    Ok(std::sync::Arc::new(d))
}

impl Failure for Declare {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destructive(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        "declare the incident (nothing is touched)".into()
    }

    fn inject(&self, _ctx: &FailureCtx) -> anyhow::Result<String> {
        Ok("incident declared; nothing touched".into())
    }
}
