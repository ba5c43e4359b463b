//! `kind = "command"`: a shell command that exits 0 when the restore is good.
//! It runs in the run's scratch folder with `DRDRILL_SCRATCH`, `DRDRILL_RUN_ID`
//! and `DRDRILL_RESTORE` (the restored file or tree) in its environment, plus
//! `DRDRILL_PORT` (and `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` for a restored
//! PostgreSQL) when the restore started a service.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Check, CheckCtx};
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "command";

/// How much of the command's output is kept with the run.
const OUTPUT_TAIL: u64 = 2048;

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

    fn fits(&self, _source_kind: &str) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        // Output goes to a file, not a pipe, so a chatty command cannot block on a
        // full pipe while we wait for it.
        let log_path = ctx.scratch.join("check-command.log");
        let log = fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let mut child = Process::new("sh")
            .arg("-c")
            .arg(&self.run)
            .current_dir(&ctx.scratch)
            .env("DRDRILL_SCRATCH", &ctx.scratch)
            .env("DRDRILL_RUN_ID", ctx.run_id.to_string())
            .env("DRDRILL_RESTORE", &ctx.restored)
            .envs(restored_service_env(&ctx.restored))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start `sh`: {e}"))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= ctx.deadline || ctx.cancel.is_cancelled() => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("`{}` was still running at the run's deadline; killed", self.run));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("cannot wait for `{}`: {e}", self.run)),
            }
        };
        let output = tail(&log_path);
        if status.success() {
            Ok(if output.is_empty() { "exit 0".into() } else { output })
        } else {
            Err(format!("`{}` exited with {status}: {output}", self.run))
        }
    }
}

/// How to reach a service the restore started: `PGHOST`.. for a throwaway
/// PostgreSQL cluster (so `psql -c ...` just works), `DRDRILL_PORT` for the port
/// a command source's restore was given.
fn restored_service_env(restored: &std::path::Path) -> Vec<(String, String)> {
    use crate::source::{command::PORT_FILE, postgres};
    if restored.file_name().is_some_and(|n| n == postgres::CONNECTION_FILE)
        && let Ok(c) = postgres::PgConn::load(restored)
    {
        return vec![
            ("PGHOST".into(), c.host),
            ("PGPORT".into(), c.port.to_string()),
            ("PGUSER".into(), c.user),
            ("PGDATABASE".into(), c.dbname),
            ("DRDRILL_PORT".into(), c.port.to_string()),
        ];
    }
    match fs::read_to_string(restored.join(PORT_FILE)) {
        Ok(port) => vec![("DRDRILL_PORT".into(), port.trim().to_string())],
        Err(_) => Vec::new(),
    }
}

pub(crate) fn tail(path: &std::path::Path) -> String {
    let Ok(mut f) = fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(OUTPUT_TAIL)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim().to_string()
}
