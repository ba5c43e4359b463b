//! `kind = "command"`: the user's own tool makes and restores the backup, for
//! anything drdrill has no kind for (MySQL, Redis, etcd, ...). The `backup`
//! command writes the backup to stdout; the `restore` command reads it from stdin.
//! Both are streamed through drdrill (zstd + sha256 + store) and never held
//! whole. The optional `cleanup` command stops whatever `restore` started.
//!
//! `restore` and `cleanup` run in the restore folder with `DRDRILL_SCRATCH` (the
//! run's scratch folder), `DRDRILL_RUN_ID`, `DRDRILL_RESTORE` (the restore folder)
//! and `DRDRILL_PORT` (a free loopback port, the same for both) in their
//! environment. The port is also written to `<restore>/.drdrill-port` for checks.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use chrono::Utc;
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Restored, Source, SourceBackup, Yields};
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};
use crate::proc::{Cmd, Reap};
use crate::store::{Entries, Manifest};

pub const KIND: &str = "command";

/// Where the restore's port is kept for `cleanup` and for checks.
pub const PORT_FILE: &str = ".drdrill-port";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSource {
    /// Shell command that writes the backup to stdout.
    pub backup: String,
    /// Shell command that reads the backup from stdin and restores it.
    pub restore: String,
    /// Shell command that stops what `restore` started; runs at every run's end.
    pub cleanup: Option<String>,
    /// Folder the backup command runs in (default: drdrill's working directory).
    pub workdir: Option<PathBuf>,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Source>, Diagnostic> {
    let mut src: CommandSource = doc.deserialize(&value)?;
    src.workdir = src.workdir.map(|w| doc.plan_path(&w));
    for (key, cmd) in [("backup", &src.backup), ("restore", &src.restore)] {
        if cmd.trim().is_empty() {
            return Err(doc.at(
                value.span(),
                format!("command source has an empty `{key}`"),
                Some(format!("set `{key} = \"...\"` to a shell command")),
            ));
        }
    }
    Ok(Arc::new(src))
}

impl CommandSource {
    /// `restore` and `cleanup` run in the restore folder with its port.
    fn in_restore(&self, ctx: &RunCtx, script: &str, port: u16) -> Cmd {
        let dest = ctx.restore_dir();
        ctx.shell(script).dir(&dest).env("DRDRILL_RESTORE", &dest).env("DRDRILL_PORT", port.to_string())
    }
}

impl Source for CommandSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("command `{}`", self.backup)
    }

    /// Its restore may start a service on DRDRILL_PORT for the checks to probe.
    fn yields(&self) -> Yields {
        Yields::tree(false).with_endpoint()
    }

    fn preflight(&self, _ctx: &RunCtx) -> anyhow::Result<()> {
        if let Some(dir) = &self.workdir
            && !dir.is_dir()
        {
            bail!("workdir {} of the command source is not a folder: fix `workdir` in [source]", dir.display());
        }
        Ok(())
    }

    fn payload_format(&self) -> &'static str {
        "stream"
    }

    fn backup(&self, ctx: &RunCtx, out: &mut dyn Write) -> anyhow::Result<SourceBackup> {
        let mut cmd = ctx
            .shell(&self.backup)
            .label(format!("backup command `{}`", self.backup))
            .log(ctx.staging().join("backup-command.stderr"));
        if let Some(dir) = &self.workdir {
            cmd = cmd.dir(dir);
        }
        // The command may have started writing before it runs; the point is taken first.
        let consistency_point = Utc::now();
        let done = cmd.run_reading(&ctx.cancel, out)?;
        done.check()?;
        if done.bytes == 0 {
            bail!(
                "backup command `{}` wrote nothing to stdout: it must write the backup there; stderr: {}",
                self.backup,
                done.tail_or_none()
            );
        }
        Ok(SourceBackup { entries: Entries::none(), consistency_point, skipped: Vec::new() })
    }

    fn restore(&self, ctx: &RunCtx, input: &mut dyn Read, _manifest: &Manifest) -> anyhow::Result<Restored> {
        let dest = ctx.restore_dir();
        let port = crate::net::free_port()?;
        fs::write(dest.join(PORT_FILE), port.to_string())?;
        // What it starts for the checks lives until the run's cleanup.
        let done = self
            .in_restore(ctx, &self.restore, port)
            .label(format!("restore command `{}`", self.restore))
            .log(ctx.run_dir.join("restore-command.log"))
            .reap(Reap::Until(ctx.groups.clone()))
            .run_feeding(&ctx.cancel, input)?;
        done.check()?;
        let mut restored = Restored::tree(dest, 0, done.bytes);
        restored.env.push(("DRDRILL_PORT".into(), port.to_string()));
        Ok(restored)
    }

    fn cleanup(&self, ctx: &RunCtx) -> anyhow::Result<Option<String>> {
        let Some(script) = &self.cleanup else { return Ok(None) };
        let Ok(port) = fs::read_to_string(ctx.restore_dir().join(PORT_FILE)) else {
            return Ok(None); // restore never started: nothing to stop
        };
        let port: u16 = port.trim().parse().unwrap_or(0);
        self.in_restore(ctx, script, port)
            .label(format!("cleanup command `{script}`"))
            .log(ctx.run_dir.join("cleanup-command.log"))
            .run(&ctx.cancel)?
            .check()?;
        Ok(Some(format!("cleanup command `{script}` ran")))
    }
}
