//! `kind = "command"`: a shell command that exits 0 when the restore is good.
//! It runs in the run's scratch folder with `DRDRILL_SCRATCH`, `DRDRILL_RUN_ID`
//! and `DRDRILL_RESTORE` (the restored file or tree) in its environment, plus
//! `DRDRILL_PORT` (and `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` for a restored
//! PostgreSQL) when the restore started a service.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Check, CheckCtx, Need};
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "command";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    pub run: String,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Check>, Diagnostic> {
    let c: CommandCheck = doc.deserialize(&value)?;
    if c.run.trim().is_empty() {
        return Err(doc.at(
            value.span(),
            "command check has an empty `run`".into(),
            Some("set `run = \"...\"`".into()),
        ));
    }
    Ok(std::sync::Arc::new(c))
}

impl Check for CommandCheck {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        self.run.clone()
    }

    fn needs(&self) -> Need {
        Need::Any
    }

    /// It may wait for a service the restore started.
    fn retries(&self) -> bool {
        true
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        let run = &ctx.run;
        let done = run
            .shell(&self.run)
            .dir(&run.run_dir)
            .env("DRDRILL_RESTORE", &ctx.restored.path)
            .envs(ctx.restored.env.iter().map(|(k, v)| (k, v)))
            .log(run.run_dir.join("check-command.log"))
            .run(&run.cancel)
            .map_err(|e| format!("{e:#}"))?;
        if done.success() {
            Ok(if done.tail.is_empty() { "exit 0".into() } else { done.tail })
        } else {
            Err(format!("`{}` exited with {}: {}", self.run, done.status, done.tail))
        }
    }
}
