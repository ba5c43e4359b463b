//! `kind = "command"`: a shell command that exits 0 when the restore is good.
//! It runs in the run's scratch folder with `DRDRILL_SCRATCH`, `DRDRILL_RUN_ID`
//! and `DRDRILL_RESTORE` (the restored file or tree) in its environment, plus
//! `DRDRILL_PORT` (and `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` for a restored
//! PostgreSQL) when the restore started a service.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Check, CheckCtx, Need};
use crate::cancel::Cancel;
use crate::diag::{Diagnostic, TomlDoc};
use crate::proc::Cmd;

pub const KIND: &str = "command";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    pub run: String,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Check>, Diagnostic> {
    parse_command(doc, &value).map(|c| std::sync::Arc::new(c) as std::sync::Arc<dyn Check>)
}

/// The check itself, for callers that run it outside the checks (safeguards).
pub fn parse_command(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<CommandCheck, Diagnostic> {
    let c: CommandCheck = doc.deserialize(value)?;
    if c.run.trim().is_empty() {
        return Err(doc.at(
            value.span(),
            "command check has an empty `run`".into(),
            Some("set `run = \"...\"`".into()),
        ));
    }
    Ok(c)
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
        let cmd = run
            .shell(&self.run)
            .dir(&run.run_dir)
            .env("DRDRILL_RESTORE", &ctx.restored.path)
            .envs(ctx.restored.env.iter().map(|(k, v)| (k, v)))
            .log(run.run_dir.join("check-command.log"));
        self.judge(cmd, &run.cancel)
    }
}

impl CommandCheck {
    /// Runs `cmd` (this check's script, set up by the caller) and judges it:
    /// exit 0 passes with its output, anything else fails with it. A check and
    /// a safeguard both run this.
    pub fn judge(&self, cmd: Cmd, cancel: &Cancel) -> Result<String, String> {
        let done = cmd.run(cancel).map_err(|e| format!("{e:#}"))?;
        if done.success() {
            Ok(if done.tail.is_empty() { "exit 0".into() } else { done.tail })
        } else {
            Err(format!("`{}` exited with {}: {}", self.run, done.status, done.tail_or_none()))
        }
    }
}
