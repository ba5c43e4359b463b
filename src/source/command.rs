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
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Restored, Source, SourceBackup};
use crate::diag::{Diagnostic, TomlDoc};
use crate::store::Manifest;

pub const KIND: &str = "command";

/// How much of a failing command's stderr is kept in the error.
const STDERR_TAIL: u64 = 2048;
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
    let src: CommandSource = doc.deserialize(&value)?;
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
    fn shell(&self, cmd: &str) -> Process {
        let mut p = Process::new("sh");
        p.arg("-c").arg(cmd);
        p
    }

    /// Environment of `restore` and `cleanup`.
    fn restore_env(&self, p: &mut Process, dest: &Path, port: u16) {
        let scratch = dest.parent().unwrap_or(dest);
        p.current_dir(dest)
            .env("DRDRILL_SCRATCH", scratch)
            .env("DRDRILL_RESTORE", dest)
            .env("DRDRILL_PORT", port.to_string());
        if let Some(id) = crate::scratch::run_id_of(scratch) {
            p.env("DRDRILL_RUN_ID", id.to_string());
        }
    }
}

impl Source for CommandSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("command `{}`", self.backup)
    }

    fn preflight(&self) -> anyhow::Result<()> {
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

    fn backup(&self, staging: &Path, out: &mut dyn Write) -> anyhow::Result<SourceBackup> {
        let err_path = staging.join("backup-command.stderr");
        let mut p = self.shell(&self.backup);
        if let Some(dir) = &self.workdir {
            p.current_dir(dir);
        }
        // The command may have started writing before it runs; the point is taken first.
        let consistency_point = Utc::now();
        let mut child = p
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&err_path)?)
            .spawn()
            .context("cannot start `sh` for the backup command")?;
        let mut stdout = child.stdout.take().context("backup command has no stdout")?;
        let copied = io::copy(&mut stdout, out);
        drop(stdout);
        let status = finish(&mut child, copied.is_err())?;
        let copied = copied.context("streaming the backup command's output to the store failed")?;
        if !status.success() {
            bail!("backup command `{}` exited with {status}: {}", self.backup, tail(&err_path));
        }
        if copied == 0 {
            bail!(
                "backup command `{}` wrote nothing to stdout: it must write the backup there; stderr: {}",
                self.backup,
                tail(&err_path)
            );
        }
        Ok(SourceBackup { files: Vec::new(), consistency_point, skipped: Vec::new() })
    }

    fn restore(&self, input: &mut dyn Read, dest: &Path, _manifest: &Manifest) -> anyhow::Result<Restored> {
        let port = free_port()?;
        fs::write(dest.join(PORT_FILE), port.to_string())?;
        let log = dest.parent().unwrap_or(dest).join("restore-command.log");
        let log_file = fs::File::create(&log)?;
        let mut p = self.shell(&self.restore);
        self.restore_env(&mut p, dest, port);
        // Output goes to a file so a chatty command cannot block on a full pipe.
        let mut child = p
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("cannot start `sh` for the restore command")?;
        let mut stdin = child.stdin.take().context("restore command has no stdin")?;
        let copied = io::copy(input, &mut stdin);
        drop(stdin);
        // A command that stops reading early shows up as a broken pipe: its exit
        // status and stderr say why, so they win over the pipe error.
        let copied = match copied {
            // The payload itself failed (store, checksum, cancel): that is the cause.
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                finish(&mut child, true)?;
                return Err(e).context("reading the backup from the store failed");
            }
            other => other,
        };
        let status = finish(&mut child, false)?;
        if !status.success() {
            bail!("restore command `{}` exited with {status}: {}", self.restore, tail(&log));
        }
        let bytes = copied.with_context(|| format!("feeding the backup to `{}` failed", self.restore))?;
        Ok(Restored { path: dest.to_path_buf(), files: 0, bytes })
    }

    fn replicate(&self, _dest: &Path) -> anyhow::Result<PathBuf> {
        bail!("a command source cannot be replicated into scratch: use `kind = \"declare\"` or a `command` failure")
    }

    fn cleanup(&self, scratch: &Path) -> anyhow::Result<Option<String>> {
        let Some(cmd) = &self.cleanup else { return Ok(None) };
        let dest = scratch.join("restore");
        let Ok(port) = fs::read_to_string(dest.join(PORT_FILE)) else {
            return Ok(None); // restore never started: nothing to stop
        };
        let port: u16 = port.trim().parse().unwrap_or(0);
        let log = scratch.join("cleanup-command.log");
        let log_file = fs::File::create(&log)?;
        let mut p = self.shell(cmd);
        self.restore_env(&mut p, &dest, port);
        let status = p
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .status()
            .context("cannot start `sh` for the cleanup command")?;
        if !status.success() {
            bail!("cleanup command `{cmd}` exited with {status}: {}", tail(&log));
        }
        Ok(Some(format!("cleanup command `{cmd}` ran")))
    }
}

/// Waits for the child; kills it first when streaming already failed, so a
/// command whose output nobody reads any more cannot hang the run.
fn finish(child: &mut Child, kill: bool) -> anyhow::Result<std::process::ExitStatus> {
    if kill {
        let _ = child.kill();
    }
    child.wait().context("cannot wait for the command")
}

/// A free TCP port on 127.0.0.1 for a restored service.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// The last part of a log, for error messages.
pub(crate) fn tail(path: &Path) -> String {
    let Ok(mut f) = fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(STDERR_TAIL)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).trim().to_string();
    if text.is_empty() { "(no output)".into() } else { text }
}
