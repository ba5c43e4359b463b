//! `from = "pgbackrest"`: backups in a pgBackRest stanza, restored with
//! `pgbackrest restore` into a throwaway cluster in scratch (pgBackRest checks
//! every file against its backup manifest as it restores), then started on a
//! free loopback port so that PostgreSQL replays the WAL archive to its end:
//! the restore holds everything the archive holds, not only the base backup.
//!
//! With `target` (`"T_fail - 5m"`, or a time), it recovers to that point in
//! time instead (`--type=time`, then promotes): the backup chosen is one that
//! ended before the target, and the restore says which time it recovered to,
//! so the drill can prove that it holds every marker up to the target and
//! none after it, and measure RPO against the target.
//!
//! Read-only: the restored cluster runs with `archive_mode = off` (it never
//! pushes WAL into the team's repository), and pgBackRest's lock and log files
//! go to the run's scratch folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Access, Existing, Found};
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};
use crate::restored::{RecoveryTarget, Restored, Yields};
use crate::source::Source;
use crate::source::postgres::cluster::{self, ClusterRunner, Throwaway, path_str};

pub const KIND: &str = "pgbackrest";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgBackRest {
    pub stanza: String,
    /// The team's pgbackrest.conf (repository paths, credentials).
    pub config: Option<PathBuf>,
    /// The database checks run in (default: the `[source]` database, else `postgres`).
    pub database: Option<String>,
    /// The role checks connect as in the restored cluster (its superuser).
    #[serde(default = "default_user")]
    pub user: String,
    /// The pgbackrest binary.
    #[serde(default = "default_bin")]
    pub bin: PathBuf,
    /// Folder with the PostgreSQL server tools matching the backups' version.
    pub bin_dir: Option<PathBuf>,
    /// Recover to this point in time instead of the end of the archive.
    pub target: Option<RecoveryTarget>,
}

fn default_user() -> String {
    "postgres".into()
}
fn default_bin() -> PathBuf {
    "pgbackrest".into()
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Existing>, Diagnostic> {
    let p: PgBackRest = doc.deserialize(&value)?;
    if p.stanza.trim().is_empty() || p.stanza.contains(char::is_whitespace) {
        return Err(doc.at(
            value.span(),
            format!("[backup.pgbackrest] `stanza` {:?} is not a stanza name", p.stanza),
            Some("set `stanza` to the name in your pgbackrest.conf, e.g. `stanza = \"main\"`".into()),
        ));
    }
    Ok(Arc::new(p))
}

#[derive(Debug, Deserialize)]
struct Stanza {
    name: String,
    #[serde(default)]
    backup: Vec<Backup>,
    status: Option<Status>,
}

#[derive(Debug, Deserialize)]
struct Status {
    code: i64,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Backup {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    timestamp: Stamps,
    #[serde(default)]
    error: bool,
}

#[derive(Debug, Deserialize)]
struct Stamps {
    stop: i64,
}

impl PgBackRest {
    /// pgbackrest as the cluster's OS user, its lock and log files in a
    /// folder of the run's own (`state`).
    fn cmd(&self, ctx: &RunCtx, runner: &ClusterRunner, state: &Path, log: &str) -> anyhow::Result<crate::proc::Cmd> {
        let dest = state;
        let mut c = runner
            .cmd(ctx, &self.bin)
            .label(format!("`{}`", self.bin.display()))
            .log(ctx.run_dir.join(log))
            .arg(format!("--stanza={}", self.stanza))
            .arg(format!("--lock-path={}", path_str(dest)?))
            .arg(format!("--log-path={}", path_str(dest)?))
            .args(["--log-level-file=off", "--log-level-console=warn"]);
        if let Some(conf) = &self.config {
            c = c.arg(format!("--config={}", path_str(conf)?));
        }
        Ok(c)
    }

    fn diagnose(&self, tail: &str) -> String {
        if tail.contains("does not exist") && tail.contains("stanza") || tail.contains("missing stanza") {
            return format!(
                "stanza `{}` does not exist in the pgBackRest repository: fix `stanza` (or `config`) in [backup.pgbackrest]; `pgbackrest info` lists the stanzas (pgbackrest: {tail})",
                self.stanza
            );
        }
        tail.to_string()
    }
}

impl Existing for PgBackRest {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn repository(&self) -> String {
        format!("pgbackrest:{}", self.stanza)
    }

    fn describe(&self) -> String {
        let conf = self.config.as_ref().map(|c| format!(" ({})", c.display())).unwrap_or_default();
        let to = self.target.map(|t| format!(", recovering to {t}")).unwrap_or_default();
        format!("pgBackRest stanza {}{conf}{to}", self.stanza)
    }

    fn yields(&self, _source: &dyn Source) -> Yields {
        Yields::sql_service("PostgreSQL")
    }

    fn preflight(&self, ctx: &RunCtx) -> anyhow::Result<()> {
        let mut out = Vec::new();
        crate::proc::Cmd::new(&self.bin).arg("version").run_reading(&ctx.cancel, &mut out).map_err(|e| {
            e.context("pgbackrest is needed to drill pgBackRest backups: install it (`apt-get install pgbackrest`) or set `bin` in [backup.pgbackrest]")
        })?;
        cluster::Tools::find(self.bin_dir.as_deref())?;
        Ok(())
    }

    fn list(&self, at: &Access) -> anyhow::Result<Vec<Found>> {
        let ctx = at.ctx;
        let runner = ClusterRunner::new()?;
        let state = ctx.run_dir.join("pgbackrest");
        std::fs::create_dir_all(&state)?;
        runner.give(&state)?;
        let mut out = Vec::new();
        let done = self
            .cmd(ctx, &runner, &state, "pgbackrest-info.log")?
            .args(["info", "--output=json"])
            .run_reading(&ctx.cancel, &mut out)?;
        if !done.success() {
            bail!("cannot list the backups of stanza {}: {}", self.stanza, self.diagnose(done.tail_or_none()));
        }
        let stanzas: Vec<Stanza> = serde_json::from_slice(&out)
            .context("`pgbackrest info --output=json` printed something that is not its JSON")?;
        let stanza = stanzas.into_iter().find(|s| s.name == self.stanza).with_context(|| {
            format!("stanza `{}` does not exist in the pgBackRest repository: fix `stanza` in [backup.pgbackrest]; `pgbackrest info` lists the stanzas", self.stanza)
        })?;
        if let Some(st) = stanza.status.as_ref().filter(|s| s.code != 0 && stanza.backup.is_empty()) {
            bail!("stanza `{}`: {} (pgbackrest status {})", self.stanza, st.message, st.code);
        }
        let found: Vec<Found> = stanza
            .backup
            .iter()
            .filter(|b| !b.error)
            .filter_map(|b| {
                let time = Utc.timestamp_opt(b.timestamp.stop, 0).single()?;
                Some(Found { id: b.label.clone(), time, label: format!("{} backup {}", b.kind, b.label) })
            })
            .collect();
        if found.is_empty() {
            bail!(
                "stanza `{}` has no usable backup yet: run `pgbackrest --stanza={} backup`",
                self.stanza,
                self.stanza
            );
        }
        // Recovery can only go forward from a backup's end. Backups are chosen
        // before the incident, and T_fail comes later, so a backup that ended
        // before the target resolved now ends before the real one too.
        if let Some(target) = self.target {
            let bound = target.resolve(Utc::now());
            let newest = found.iter().map(|f| f.time).max();
            let found: Vec<Found> = found.into_iter().filter(|f| f.time <= bound).collect();
            if found.is_empty() {
                bail!(
                    "no backup of stanza `{}` ended before the recovery target {target} ({}); the newest ended at {}: take backups earlier, or move `target` later",
                    self.stanza,
                    bound.to_rfc3339(),
                    newest.map(|t| t.to_rfc3339()).unwrap_or_default()
                );
            }
            return Ok(found);
        }
        Ok(found)
    }

    fn restore(&self, at: &Access, found: &Found) -> anyhow::Result<Restored> {
        let (ctx, source) = (at.ctx, at.source);
        let target = match self.target {
            None => None,
            Some(t @ RecoveryTarget::At(_)) => Some(t.resolve(Utc::now())),
            Some(t) => {
                Some(t.resolve(at.t_fail.context("the recovery target needs T_fail, and no failure happened yet")?))
            }
        };
        let cluster = Throwaway::prepare(ctx, self.bin_dir.as_deref())?;
        let data = cluster.data();
        let mut cmd = self
            .cmd(ctx, &cluster.runner, &cluster.dest, "pgbackrest-restore.log")?
            .arg(format!("--pg1-path={}", path_str(&data)?))
            .arg(format!("--set={}", found.id))
            // The restored server must never archive into the team's repository.
            .arg("--archive-mode=off");
        cmd = match target {
            None => cmd.arg("--type=default"),
            Some(t) => cmd.args(["--type=time", &format!("--target={}", recovery_time(t)), "--target-action=promote"]),
        };
        let done = cmd.arg("restore").run(&ctx.cancel)?;
        if !done.success() {
            bail!("pgbackrest restore of backup {} failed: {}", found.id, self.diagnose(done.tail_or_none()));
        }
        let port = cluster.start(ctx)?;
        let database = self
            .database
            .clone()
            .or_else(|| source.database_name().map(str::to_string))
            .unwrap_or_else(|| "postgres".into());
        let conn = cluster.conn(port, &database, &self.user)?;
        // Connections are accepted while the archive is still replayed: wait for
        // the end of recovery (the end of the archive, or the target, where it
        // promotes). A target the archive does not reach stops the server.
        loop {
            match conn.query_first("SELECT pg_is_in_recovery()", None, &ctx.cancel) {
                Ok(Some(v)) if v == "f" => break,
                Ok(_) => {}
                Err(e) if ctx.cancel.is_cancelled() => return Err(e),
                // pg_ctl returned once the server ran: without its pid file it has exited.
                Err(e) if !data.join("postmaster.pid").exists() => {
                    bail!(
                        "the restored cluster stopped while replaying the archive{}: {e:#}; {}",
                        target.map(|t| format!(" towards the target {}", recovery_time(t))).unwrap_or_default(),
                        crate::proc::tail(&cluster.dest.join("postgres.log"))
                    )
                }
                Err(_) => {}
            }
            if ctx.cancel.sleep(Duration::from_millis(100)) {
                bail!("cancelled while the restored cluster replayed the WAL archive");
            }
        }
        let (_, bytes) = super::count_tree(&data);
        let mut restored = cluster.restored(conn, bytes)?;
        restored.target = target;
        Ok(restored)
    }

    fn cleanup(&self, ctx: &RunCtx) -> anyhow::Result<Option<String>> {
        cluster::stop(ctx, self.bin_dir.as_deref())
    }
}

/// A time as PostgreSQL's `recovery_target_time` reads it, to the microsecond.
fn recovery_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_written_as_postgres_reads_them() {
        let t = DateTime::parse_from_rfc3339("2026-11-30T12:05:00.25Z").unwrap().with_timezone(&Utc);
        assert_eq!(recovery_time(t), "2026-11-30 12:05:00.250000+00");
    }
}
