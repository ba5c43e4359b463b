//! `kind = "command"` (destructive): a user script is the incident; its
//! optional `rollback` script undoes it. drdrill cannot see what a script
//! touches, so the config must allow command failures explicitly.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx, Target, Undo};
use crate::diag::{Diagnostic, TomlDoc};
use crate::proc::Reap;

pub const KIND: &str = "command";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFailure {
    run: String,
    rollback: Option<String>,
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
        // Logged first: a script that fails or is killed halfway still gets its rollback.
        if let Some(script) = &self.rollback {
            ctx.undo.push(KIND, RunRollback { script: script.clone() });
        }
        // What the incident script starts (a load generator, ...) lives until its rollback.
        ctx.shell(&self.run, "failure-command", Reap::Until(ctx.run.groups.clone()))
    }
}

#[derive(Debug)]
struct RunRollback {
    script: String,
}

impl Undo for RunRollback {
    fn rollback(&self, ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        // It puts production back: what it starts is production's, not the drill's.
        Ok(Some(ctx.shell(&self.script, "failure-rollback", Reap::Never)?))
    }
}
