//! `from = "borg"`: archives in a borg repository, restored with
//! `borg extract` (which checks every chunk's hash, and its MAC in an
//! encrypted repository, as it reads it).
//!
//! Read-only: list and extract take borg's shared read lock, never the
//! exclusive one, unless the plan says `bypass_lock = true` (for a repository on
//! read-only media). Borg's cache, keys and security state go to the run's
//! scratch folder, so nothing of the user's `~/.config/borg` is touched.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{NaiveDateTime, Utc};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Access, Existing, Found, Secret, count_tree, restored_as};
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};
use crate::proc::Cmd;
use crate::restored::{Restored, Yields};
use crate::source::Source;

pub const KIND: &str = "borg";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Borg {
    /// Anything borg accepts as a repository (`/srv/borg`, `ssh://...`).
    pub repository: String,
    pub passphrase_file: Option<PathBuf>,
    pub passphrase_env: Option<String>,
    /// Archive names to consider, as a shell glob (`app-*`).
    #[serde(rename = "match")]
    pub glob: Option<String>,
    /// The folder (or file) inside the archives, as borg stores it (no leading
    /// `/`); default: the source's path without its leading `/`.
    pub path: Option<PathBuf>,
    /// Read without borg's shared lock; only for a repository nothing writes to.
    #[serde(default)]
    pub bypass_lock: bool,
    #[serde(default = "default_bin")]
    pub bin: PathBuf,
}

fn default_bin() -> PathBuf {
    "borg".into()
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Existing>, Diagnostic> {
    let mut b: Borg = doc.deserialize(&value)?;
    b.passphrase_file = b.passphrase_file.map(|f| doc.plan_path(&f));
    b.repository = super::local_repository(doc, &b.repository);
    let bad = |msg: &str, fix: &str| Err(doc.at(value.span(), msg.into(), Some(fix.into())));
    if b.repository.trim().is_empty() {
        return bad("[backup.borg] `repository` is empty", "set it to the repository borg uses");
    }
    if b.passphrase_file.is_some() && b.passphrase_env.is_some() {
        return bad("[backup.borg] sets both `passphrase_file` and `passphrase_env`", "keep one");
    }
    if b.path.as_ref().is_some_and(|p| p.is_absolute()) {
        return bad(
            "[backup.borg] `path` must be relative, as borg stores it",
            "drop the leading `/` (borg stores /srv/data as srv/data)",
        );
    }
    Ok(Arc::new(b))
}

#[derive(Debug, Deserialize)]
struct Listing {
    archives: Vec<Archive>,
}

#[derive(Debug, Deserialize)]
struct Archive {
    name: String,
    /// Naive local time of the borg process: drdrill runs borg with TZ=UTC.
    time: String,
}

impl Borg {
    fn cmd(&self, ctx: &RunCtx, log: &str) -> anyhow::Result<Cmd> {
        let secret = Secret { file: self.passphrase_file.clone(), env: self.passphrase_env.clone() };
        let mut c = ctx
            .cmd(&self.bin)
            .label(format!("`{}`", self.bin.display()))
            .log(ctx.run_dir.join(log))
            .env("TZ", "UTC")
            .env("BORG_BASE_DIR", ctx.run_dir.join("borg"))
            // A fresh base folder knows no repository: answering borg's
            // "unknown repository" questions is what a first read needs.
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
        if let Some(p) = secret.read("borg passphrase")? {
            c = c.env("BORG_PASSPHRASE", p);
        }
        Ok(c)
    }

    fn lock_args(&self) -> &'static [&'static str] {
        if self.bypass_lock { &["--bypass-lock"] } else { &[] }
    }

    fn path(&self, source: &dyn Source) -> Option<PathBuf> {
        self.path.clone().or_else(|| {
            source.live_tree().map(|t| t.path).and_then(|p| p.strip_prefix("/").ok().map(|p| p.to_path_buf()))
        })
    }

    fn diagnose(&self, tail: &str) -> String {
        let fix = if tail.contains("passphrase supplied") || tail.contains("passphrase is incorrect") {
            "the passphrase does not open the repository: check passphrase_file or passphrase_env".to_string()
        } else if tail.contains("does not exist") || tail.contains("is not a valid repository") {
            format!("there is no borg repository at {}: fix `repository` in [backup.borg]", self.repository)
        } else {
            return tail.to_string();
        };
        format!("{fix} (borg: {tail})")
    }
}

impl Existing for Borg {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn repository(&self) -> String {
        format!("borg:{}", crate::redact::url(&self.repository))
    }

    fn describe(&self) -> String {
        let m = self.glob.as_ref().map(|g| format!(" (archives {g})")).unwrap_or_default();
        format!("borg repository {}{m}", crate::redact::url(&self.repository))
    }

    fn yields(&self, source: &dyn Source) -> Yields {
        match source.yields().shape {
            crate::restored::Shape::File => Yields::file(),
            _ => Yields::tree(source.live_tree().is_some()),
        }
    }

    fn preflight(&self, ctx: &RunCtx) -> anyhow::Result<()> {
        let mut out = Vec::new();
        ctx.cmd(&self.bin).log(ctx.run_dir.join("borg-version.log")).arg("--version").run_reading(&ctx.cancel, &mut out).map_err(|e| {
            e.context("borg is needed to drill borg backups: install it (`apt-get install borgbackup`) or set `bin` in [backup.borg]")
        })?;
        let text = String::from_utf8_lossy(&out);
        let parts: Vec<u32> =
            text.split_whitespace().nth(1).unwrap_or("").split('.').filter_map(|p| p.parse().ok()).collect();
        if parts.len() < 2 || (parts[0], parts[1]) < (1, 1) {
            bail!("{} is too old; drdrill needs borg 1.1 or newer (for --json): upgrade borgbackup", text.trim());
        }
        Ok(())
    }

    fn list(&self, at: &Access) -> anyhow::Result<Vec<Found>> {
        let ctx = at.ctx;
        let mut cmd = self.cmd(ctx, "borg-list.log")?.arg("list").args(self.lock_args()).arg("--json");
        if let Some(g) = &self.glob {
            cmd = cmd.args(["--glob-archives", g]);
        }
        let mut out = Vec::new();
        let done = cmd.arg(&self.repository).run_reading(&ctx.cancel, &mut out)?;
        if !done.success() {
            bail!("cannot list the archives of {}: {}", self.repository, self.diagnose(done.tail_or_none()));
        }
        let listing: Listing =
            serde_json::from_slice(&out).context("`borg list --json` printed something that is not its JSON")?;
        let mut found = Vec::new();
        for a in listing.archives {
            let time = NaiveDateTime::parse_from_str(&a.time, "%Y-%m-%dT%H:%M:%S%.f")
                .with_context(|| format!("borg archive {} has a time drdrill cannot read: {}", a.name, a.time))?
                .and_utc();
            found.push(Found { label: format!("archive {}", a.name), id: a.name, time: time.with_timezone(&Utc) });
        }
        if found.is_empty() {
            let m = self.glob.as_ref().map(|g| format!(" matching {g}")).unwrap_or_default();
            bail!("no borg archive{m} in {}: `borg list {}` lists what there is", self.repository, self.repository);
        }
        Ok(found)
    }

    fn restore(&self, at: &Access, found: &Found) -> anyhow::Result<Restored> {
        let (ctx, source) = (at.ctx, at.source);
        let dest = ctx.restore_dir();
        let path = self.path(source).context("borg needs `path` in [backup.borg]: the folder the archives hold")?;
        let done = self
            .cmd(ctx, "borg-extract.log")?
            .dir(&dest)
            .arg("extract")
            .args(self.lock_args())
            .arg(format!("{}::{}", self.repository, found.id))
            .arg(&path)
            .run(&ctx.cancel)?;
        if !done.success() {
            bail!("borg extract of archive {} failed: {}", found.id, self.diagnose(done.tail_or_none()));
        }
        // borg recreates the stored path below the folder it runs in.
        let parent = path.parent().map(|p| dest.join(p)).unwrap_or(dest.clone());
        let mut restored = restored_as(source, &parent, &path);
        if !restored.path.exists() {
            bail!(
                "borg extracted nothing at {} from archive {}: does `path` name what the archive holds?",
                restored.path.display(),
                found.id
            );
        }
        (restored.files, restored.bytes) = count_tree(&restored.path);
        Ok(restored)
    }
}
