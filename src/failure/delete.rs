//! `kind = "delete"`: deletes a scratch replica of the source, so the drill
//! really loses the data it must then restore, while production stays untouched.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx};
use crate::diag::{Diagnostic, TomlDoc};
use crate::scratch::force_remove;

pub const KIND: &str = "delete";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    #[serde(skip)]
    replica: Mutex<Option<PathBuf>>,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Failure>, Diagnostic> {
    let d: Delete = doc.deserialize(&value)?;
    Ok(std::sync::Arc::new(d))
}

impl Failure for Delete {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destructive(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        "delete a scratch replica of the source (production untouched)".into()
    }

    fn prepare(&self, ctx: &FailureCtx) -> anyhow::Result<()> {
        let replica = ctx
            .source
            .replicate(&ctx.scratch)
            .with_context(|| format!("cannot make a scratch replica of {}", ctx.source.describe()))?;
        *self.replica.lock().expect("not poisoned") = Some(replica);
        Ok(())
    }

    fn inject(&self, _ctx: &FailureCtx) -> anyhow::Result<String> {
        let replica = self.replica.lock().expect("not poisoned").clone().context("replica was not prepared")?;
        let entries = walkdir::WalkDir::new(&replica).into_iter().count();
        force_remove(&replica).with_context(|| format!("cannot delete replica {}", replica.display()))?;
        if replica.exists() {
            bail!("replica {} still exists after deletion", replica.display());
        }
        Ok(format!("deleted scratch replica {} ({entries} entries); production untouched", replica.display()))
    }
}
