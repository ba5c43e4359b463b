//! `kind = "command"` (destructive): a user script is the incident; its
//! optional `rollback` script undoes it. drdrill cannot see what a script
//! touches, so the config must allow command failures explicitly.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx, Target, run_shell};
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "command";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFailure {
    run: String,
    rollback: Option<String>,
    #[serde(skip)]
    started: AtomicBool,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Failure>, Diagnostic> {
    let c: CommandFailure = doc.deserialize(&value)?;
    if c.run.trim().is_empty() {
        return Err(doc.at(
            value.span(),
            "command failure has an empty `run`".into(),
            Some("set `run = \"...\"`".into()),
        ));
    }
    Ok(std::sync::Arc::new(c))
}

impl Failure for CommandFailure {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destructive(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        match &self.rollback {
            Some(r) => format!("run `{}`; rollback runs `{r}`", self.run),
            None => format!("run `{}` (no rollback script)", self.run),
        }
    }

    fn targets(&self) -> Vec<Target> {
        vec![Target::Command(self.run.clone())]
    }

    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String> {
        // Set first: a script that fails or is killed halfway still gets its rollback.
        self.started.store(true, Ordering::SeqCst);
        run_shell(&self.run, ctx, "failure-command")
    }

    fn rollback(&self, ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        if !self.started.swap(false, Ordering::SeqCst) {
            return Ok(None);
        }
        let Some(script) = &self.rollback else { return Ok(None) };
        Ok(Some(run_shell(script, ctx, "failure-rollback")?))
    }
}
