//! `from = "restic"`: snapshots in a restic repository, restored with
//! `restic restore --verify` (restic checks every blob's hash as it reads it,
//! `--verify` reads the restored files back), and with `deep = true` a
//! `restic check --read-data-subset` first.
//!
//! Read-only: every call passes `--no-lock` (restic writes a lock file into the
//! repository otherwise) and keeps its cache in the run's scratch folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Access, Existing, Found, Secret, count_tree, restored_as};
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};
use crate::proc::Cmd;
use crate::restored::{Restored, Yields};
use crate::source::Source;

pub const KIND: &str = "restic";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restic {
    /// Anything `restic -r` accepts: a folder, `s3:...`, `rest:...`, `sftp:...`.
    pub repository: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Filters, as restic names them.
    pub host: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The backed-up folder (or file) as the snapshot lists it; default: the source's path.
    pub path: Option<PathBuf>,
    /// Also run `restic check --read-data-subset` before restoring.
    #[serde(default)]
    pub deep: bool,
    /// What `deep` reads: a percentage (`"10%"`) or a part (`"1/5"`).
    #[serde(default = "default_subset")]
    pub deep_subset: String,
    /// The restic binary (default: `restic` on PATH).
    #[serde(default = "default_bin")]
    pub bin: PathBuf,
}

fn default_subset() -> String {
    "100%".into()
}
fn default_bin() -> PathBuf {
    "restic".into()
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Existing>, Diagnostic> {
    let mut r: Restic = doc.deserialize(&value)?;
    r.password_file = r.password_file.map(|f| doc.plan_path(&f));
    r.repository = super::local_repository(doc, &r.repository);
    let bad = |msg: &str, fix: &str| Err(doc.at(value.span(), msg.into(), Some(fix.into())));
    if r.repository.trim().is_empty() {
        return bad("[backup.restic] `repository` is empty", "set it to what you pass to `restic -r`");
    }
    match (&r.password_file, &r.password_env) {
        (Some(_), Some(_)) => return bad("[backup.restic] sets both `password_file` and `password_env`", "keep one"),
        (None, None) => {
            return bad(
                "[backup.restic] needs the repository password",
                "add `password_file = \"/etc/drdrill/restic.pass\"` or `password_env = \"RESTIC_PASSWORD\"`",
            );
        }
        _ => {}
    }
    let subset_ok = r.deep_subset.strip_suffix('%').map_or_else(
        || r.deep_subset.split_once('/').is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok()),
        |p| p.parse::<f64>().is_ok_and(|p| p > 0.0 && p <= 100.0),
    );
    if !subset_ok {
        return bad(
            "[backup.restic] `deep_subset` is not a percentage or a part",
            "e.g. `deep_subset = \"10%\"` or `\"1/5\"`",
        );
    }
    Ok(Arc::new(r))
}

/// One entry of `restic snapshots --json`.
#[derive(Debug, Deserialize)]
struct Snapshot {
    id: String,
    short_id: Option<String>,
    time: DateTime<Utc>,
    #[serde(default)]
    paths: Vec<String>,
    hostname: Option<String>,
}

impl Restic {
    /// The restic binary, nothing else: enough for `restic version`.
    fn tool(&self, ctx: &RunCtx, log: &str) -> Cmd {
        ctx.cmd(&self.bin).label(format!("`{}`", self.bin.display())).log(ctx.run_dir.join(log))
    }

    /// restic on the repository, read-only, with its password.
    fn cmd(&self, ctx: &RunCtx, log: &str) -> anyhow::Result<Cmd> {
        let secret = Secret { file: self.password_file.clone(), env: self.password_env.clone() };
        let password = secret.read("restic password")?.unwrap_or_default();
        Ok(self
            .tool(ctx, log)
            .args(["--no-lock", "-r", &self.repository])
            .env("RESTIC_PASSWORD", password)
            .env("RESTIC_CACHE_DIR", ctx.run_dir.join("restic-cache")))
    }

    /// The folder the snapshots must list, and so the one restored.
    fn path(&self, source: Option<&dyn Source>) -> Option<PathBuf> {
        self.path.clone().or_else(|| source.and_then(|s| s.live_tree().map(|t| t.path)))
    }

    /// Turns restic's own words into the fix.
    fn diagnose(&self, tail: &str) -> String {
        let fix = if tail.contains("wrong password") {
            format!("the password from {} does not open the repository", self.password_origin())
        } else if tail.contains("unable to open config file") || tail.contains("Is there a repository") {
            format!("there is no restic repository at {}: fix `repository` in [backup.restic]", self.repository)
        } else {
            return tail.to_string();
        };
        format!("{fix} (restic: {tail})")
    }

    fn password_origin(&self) -> String {
        match (&self.password_file, &self.password_env) {
            (Some(f), _) => format!("password_file {}", f.display()),
            (_, Some(v)) => format!("password_env {v}"),
            _ => "nowhere".into(),
        }
    }

    fn filters(&self) -> String {
        let mut f = Vec::new();
        if let Some(h) = &self.host {
            f.push(format!("of host {h}"));
        }
        if !self.tags.is_empty() {
            f.push(format!("with tag {}", self.tags.join(",")));
        }
        f.join(" ")
    }
}

impl Existing for Restic {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn repository(&self) -> String {
        format!("restic:{}", crate::redact::url(&self.repository))
    }

    fn describe(&self) -> String {
        let f = self.filters();
        format!(
            "restic repository {}{}",
            crate::redact::url(&self.repository),
            if f.is_empty() { String::new() } else { format!(" ({f})") }
        )
    }

    fn yields(&self, source: &dyn Source) -> Yields {
        match source.yields().shape {
            crate::restored::Shape::File => Yields::file(),
            _ => Yields::tree(source.live_tree().is_some()),
        }
    }

    fn preflight(&self, ctx: &RunCtx) -> anyhow::Result<()> {
        let mut out = Vec::new();
        let done = self.tool(ctx, "restic-version.log").arg("version").run_reading(&ctx.cancel, &mut out).map_err(|e| {
            e.context("restic is needed to drill restic backups: install it (`apt-get install restic`) or set `bin` in [backup.restic]")
        })?;
        done.check()?;
        let text = String::from_utf8_lossy(&out);
        let version = text.split_whitespace().nth(1).unwrap_or("");
        let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        if parts.len() < 2 || (parts[0], parts[1]) < (0, 14) {
            bail!("restic {version} is too old (found: {}); drdrill needs 0.14 or newer: upgrade restic", text.trim());
        }
        Ok(())
    }

    fn list(&self, at: &Access) -> anyhow::Result<Vec<Found>> {
        let ctx = at.ctx;
        let source = at.source;
        let mut cmd = self.cmd(ctx, "restic-snapshots.log")?.args(["snapshots", "--json"]);
        if let Some(h) = &self.host {
            cmd = cmd.args(["--host", h]);
        }
        for t in &self.tags {
            cmd = cmd.args(["--tag", t]);
        }
        let mut out = Vec::new();
        let done = cmd.run_reading(&ctx.cancel, &mut out)?;
        if !done.success() {
            bail!("cannot list the snapshots of {}: {}", self.repository, self.diagnose(done.tail_or_none()));
        }
        let snaps: Vec<Snapshot> =
            serde_json::from_slice(&out).context("`restic snapshots --json` printed something that is not its JSON")?;
        let want = self.path(Some(source));
        let found: Vec<Found> = snaps
            .into_iter()
            .filter(|s| want.as_ref().is_none_or(|p| s.paths.iter().any(|sp| Path::new(sp) == p)))
            .map(|s| Found {
                label: format!(
                    "snapshot {} of {}:{}",
                    s.short_id.clone().unwrap_or_else(|| s.id.chars().take(8).collect()),
                    s.hostname.clone().unwrap_or_default(),
                    s.paths.join(",")
                ),
                id: s.id,
                time: s.time,
            })
            .collect();
        if found.is_empty() {
            let path = want.map(|p| format!(" of path {}", p.display())).unwrap_or_default();
            bail!(
                "no restic snapshot {}{path} in {}: `restic -r {} snapshots` lists what there is",
                self.filters(),
                self.repository,
                self.repository
            );
        }
        Ok(found)
    }

    fn restore(&self, at: &Access, found: &Found) -> anyhow::Result<Restored> {
        let (ctx, source) = (at.ctx, at.source);
        if self.deep {
            let done = self
                .cmd(ctx, "restic-check.log")?
                .args(["check", &format!("--read-data-subset={}", self.deep_subset)])
                .run(&ctx.cancel)?;
            if !done.success() {
                bail!("restic check of {} found damage: {}", self.repository, self.diagnose(done.tail_or_none()));
            }
        }
        let dest = ctx.restore_dir();
        let path =
            self.path(Some(source)).context("restic needs `path` in [backup.restic]: the folder the snapshots hold")?;
        let name = path.file_name().context("the restic `path` has no last component to restore")?;
        // A snapshot of an absolute path holds the whole path; one made from a
        // relative path holds only its last component at the top.
        let mut restored = None;
        for inside in [path.strip_prefix("/").unwrap_or(&path), Path::new(name)] {
            let done = self
                .cmd(ctx, "restic-restore.log")?
                .args(["restore", &found.id, "--target"])
                .arg(&dest)
                .arg("--include")
                .arg(Path::new("/").join(inside))
                .arg("--verify")
                .run(&ctx.cancel)?;
            if !done.success() {
                bail!("restic restore of snapshot {} failed: {}", found.id, self.diagnose(done.tail_or_none()));
            }
            let r = restored_as(source, &dest.join(inside.parent().unwrap_or(Path::new(""))), inside);
            if r.path.exists() {
                restored = Some(r);
                break;
            }
        }
        let Some(mut restored) = restored else {
            bail!(
                "restic restored nothing of {} from snapshot {}: does `path` name what the snapshot holds?",
                path.display(),
                found.id
            );
        };
        (restored.files, restored.bytes) = count_tree(&restored.path);
        Ok(restored)
    }
}
