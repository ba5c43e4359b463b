//! `kind = "postgres"`: one PostgreSQL database, dumped with `pg_dump -Fc` and
//! restored into a throwaway cluster in the run's scratch folder.
//!
//! Backup streams pg_dump's stdout straight into the payload; pg_dump reads in
//! one repeatable-read snapshot, so the dump is consistent while the application
//! keeps writing. Restore runs `initdb` into `<restore>/pgdata` (as the `postgres`
//! OS user when drdrill runs as root, since initdb refuses root), starts it with
//! `pg_ctl` on a free loopback port with its socket in the restore folder, and
//! `pg_restore`s into a database of the source's name. The restore yields a SQL
//! service ([`PgConn`], also written to `<restore>/connection.json` for people
//! and scripts) and `PG*` variables for command checks. [`Source::cleanup`]
//! stops the cluster at the end of every run, found from its `postmaster.pid` alone.
//!
//! The password never appears in the plan: it is read from `password_env` or
//! `password_file` when needed and handed to the tools as `PGPASSWORD`, which
//! no log, record or error message ever includes.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::DeValue;

use super::{Canary, Restored, Source, SourceBackup, Yields};
use crate::cancel::Cancel;
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};
use crate::net::free_port;
use crate::proc::Cmd;
use crate::restored::{Shape, SqlClient};
use crate::store::Manifest;

pub const KIND: &str = "postgres";

/// The canary's side table in the protected database.
pub const CANARY_TABLE: &str = "_drdrill_canary";
/// What checks read to reach the restored cluster.
pub const CONNECTION_FILE: &str = "connection.json";
const DATA_DIR: &str = "pgdata";
/// The OS user that owns throwaway clusters when drdrill runs as root.
const CLUSTER_OS_USER: &str = "postgres";
/// The superuser created in throwaway clusters.
const CLUSTER_SUPERUSER: &str = "postgres";
/// Stands for SQL NULL in psql output; no real value contains it.
const NULL_MARK: &str = "\u{1}NULL\u{1}";
const FIELD_SEP: &str = "\u{1f}";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub database: String,
    pub user: String,
    /// Environment variable holding the password (its name, not the password).
    pub password_env: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Folder with pg_dump, pg_restore, psql, initdb and pg_ctl; found when absent.
    pub bin_dir: Option<PathBuf>,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    5432
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Source>, Diagnostic> {
    let src: PostgresSource = doc.deserialize(&value)?;
    let bad = |msg: &str, fix: &str| Err(doc.at(value.span(), msg.into(), Some(fix.into())));
    if src.database.is_empty() || src.user.is_empty() {
        return bad("postgres source needs `database` and `user`", "set both in [source]");
    }
    if src.password_env.is_some() && src.password_file.is_some() {
        return bad(
            "postgres source sets both `password_env` and `password_file`",
            "keep one: the password comes from one place",
        );
    }
    Ok(Arc::new(src))
}

/// How to reach a restored cluster; written to [`CONNECTION_FILE`] by restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgConn {
    /// Socket folder (or host name).
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    /// The psql of the tools that restored it, so checks use a matching client.
    pub psql: PathBuf,
}

impl PgConn {
    /// The first column of the first row of `sql`; `None` for NULL. No rows is an error.
    pub fn query_first(&self, sql: &str, password: Option<&str>, cancel: &Cancel) -> anyhow::Result<Option<String>> {
        let text = self.execute(sql, password, cancel)?;
        let line = text.lines().next().context("the query returned no rows")?;
        let first = line.split(FIELD_SEP).next().unwrap_or("");
        Ok((first != NULL_MARK).then(|| first.to_string()))
    }

    /// Runs `sql` (one `-c`, so one transaction) and returns psql's bare output.
    pub fn execute(&self, sql: &str, password: Option<&str>, cancel: &Cancel) -> anyhow::Result<String> {
        let mut out = Vec::new();
        let done = psql(&self.psql, &self.host, self.port, &self.user, &self.dbname, password)
            .args(["-P", &format!("null={NULL_MARK}"), "-F", FIELD_SEP, "-c", sql])
            .run_reading(cancel, &mut out)?;
        if !done.success() {
            bail!("{}", done.tail_or_none());
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// What command checks get to reach it with `psql`.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), self.host.clone()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), self.user.clone()),
            ("PGDATABASE".into(), self.dbname.clone()),
            ("DRDRILL_PORT".into(), self.port.to_string()),
        ]
    }
}

/// The restored cluster as a SQL service for checks.
impl SqlClient for PgConn {
    fn query_first(&self, sql: &str, database: Option<&str>, cancel: &Cancel) -> anyhow::Result<Option<String>> {
        match database {
            Some(db) => PgConn { dbname: db.to_string(), ..self.clone() }.query_first(sql, None, cancel),
            None => PgConn::query_first(self, sql, None, cancel),
        }
    }
}

/// A psql that never prompts, stops at the first error and prints bare values.
fn psql(bin: &Path, host: &str, port: u16, user: &str, db: &str, password: Option<&str>) -> Cmd {
    let mut c = Cmd::new(bin)
        .label(format!("psql on {host}:{port}"))
        .args(["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", host, "-p", &port.to_string(), "-U", user, "-d", db])
        .env("PGCONNECT_TIMEOUT", "10");
    if let Some(p) = password {
        c = c.env("PGPASSWORD", p);
    }
    c
}

/// The PostgreSQL programs drdrill runs, all from one folder so their versions match.
#[derive(Debug, Clone)]
struct Tools {
    dir: PathBuf,
    major: u32,
    version: String,
}

const TOOL_NAMES: [&str; 5] = ["pg_dump", "pg_restore", "psql", "initdb", "pg_ctl"];

impl Tools {
    fn path(&self, tool: &str) -> PathBuf {
        self.dir.join(tool)
    }

    /// Finds the tools: `bin_dir`, else the newest /usr/lib/postgresql/*/bin,
    /// else the folder of `pg_ctl` on PATH. Every tool must exist and report the
    /// same major version.
    fn find(bin_dir: Option<&Path>) -> anyhow::Result<Tools> {
        let dir = match bin_dir {
            Some(d) => d.to_path_buf(),
            None => default_bin_dir().context(
                "PostgreSQL server tools (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH: install them (`apt-get install postgresql`) or set `bin_dir` in [source]",
            )?,
        };
        let mut found: Option<(String, String, u32)> = None;
        for tool in TOOL_NAMES {
            let path = dir.join(tool);
            if !path.is_file() {
                bail!(
                    "{tool} not found in {} (version found: none): install the PostgreSQL tools there (`apt-get install postgresql`) or point `bin_dir` in [source] at a folder holding {}",
                    dir.display(),
                    TOOL_NAMES.join(", ")
                );
            }
            let (version, major) = tool_version(&path)?;
            match &found {
                None => found = Some((tool.to_string(), version, major)),
                Some((first, v, m)) if *m != major => bail!(
                    "mismatched PostgreSQL tools in {}: {first} is {v} but {tool} is {version}; install one PostgreSQL version's tools there or set `bin_dir` to a folder whose tools match",
                    dir.display()
                ),
                Some(_) => {}
            }
        }
        let (_, version, major) = found.expect("five tools were checked");
        Ok(Tools { dir, major, version })
    }
}

fn default_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.join("pg_ctl").is_file())
}

/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-1)` -> ("15.18", 15).
fn tool_version(path: &Path) -> anyhow::Result<(String, u32)> {
    let mut out = Vec::new();
    Cmd::new(path).arg("--version").timeout(Duration::from_secs(10)).run_reading(&Cancel::new(), &mut out)?;
    let text = String::from_utf8_lossy(&out);
    parse_version(&text).with_context(|| format!("{} printed an unknown version: {}", path.display(), text.trim()))
}

fn parse_version(text: &str) -> Option<(String, u32)> {
    let v = text.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let major = v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some((v.to_string(), major))
}

impl PostgresSource {
    fn password(&self) -> anyhow::Result<Option<String>> {
        if let Some(var) = &self.password_env {
            let p = std::env::var(var).with_context(|| {
                format!("environment variable {var} (named by `password_env`) is not set: export it for drdrill")
            })?;
            crate::redact::register(&p);
            return Ok(Some(p));
        }
        if let Some(file) = &self.password_file {
            let text = fs::read_to_string(file)
                .with_context(|| format!("cannot read password file {} named by `password_file`", file.display()))?;
            let p = text.lines().next().unwrap_or("").to_string();
            crate::redact::register(&p);
            return Ok(Some(p));
        }
        Ok(None)
    }

    fn live(&self, tools: &Tools) -> PgConn {
        PgConn {
            host: self.host.clone(),
            port: self.port,
            dbname: self.database.clone(),
            user: self.user.clone(),
            psql: tools.path("psql"),
        }
    }

    fn target(&self) -> String {
        format!("database `{}` as `{}` at {}:{}", self.database, self.user, self.host, self.port)
    }
}

impl Source for PostgresSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("postgres {}", self.target())
    }

    fn yields(&self) -> Yields {
        Yields::sql_service("PostgreSQL")
    }

    /// Tools present and matching, the server reachable with these credentials,
    /// and not newer than pg_dump (which refuses to dump newer servers).
    fn preflight(&self, ctx: &RunCtx) -> anyhow::Result<()> {
        let tools = Tools::find(self.bin_dir.as_deref())?;
        let password = self.password()?;
        let num = self
            .live(&tools)
            .query_first("SHOW server_version_num", password.as_deref(), &ctx.cancel)
            .with_context(|| format!("cannot connect to {}", self.target()))?
            .unwrap_or_default();
        let server_major = num.trim().parse::<u32>().map(|n| n / 10000).unwrap_or(0);
        if server_major > tools.major {
            bail!(
                "pg_dump {} in {} cannot dump the PostgreSQL {server_major} server at {}:{}: install the version {server_major} tools (`apt-get install postgresql-{server_major}`) and set `bin_dir` in [source] to their folder",
                tools.version,
                tools.dir.display(),
                self.host,
                self.port
            );
        }
        Ok(())
    }

    fn payload_format(&self) -> &'static str {
        "pgdump"
    }

    fn backup(&self, ctx: &RunCtx, out: &mut dyn Write) -> anyhow::Result<SourceBackup> {
        let tools = Tools::find(self.bin_dir.as_deref())?;
        let password = self.password()?;
        let mut cmd = ctx
            .cmd(tools.path("pg_dump"))
            .label(format!("pg_dump of {}", self.target()))
            .log(ctx.staging().join("pg_dump.stderr"))
            // A lock wait is not I/O: give up on it well before the run's deadline.
            .args(["-Fc", "-w", "--lock-wait-timeout=60s", "-h", &self.host, "-p", &self.port.to_string()])
            .args(["-U", &self.user, "-d", &self.database])
            .env("PGCONNECT_TIMEOUT", "10");
        if let Some(p) = &password {
            cmd = cmd.env("PGPASSWORD", p);
        }
        // pg_dump's snapshot is taken after it connects, so a clock read before
        // it starts is never later than the data it holds.
        let consistency_point = Utc::now();
        let done = cmd.run_reading(&ctx.cancel, out)?;
        if !done.success() {
            bail!("pg_dump of {} failed ({}): {}", self.target(), done.status, done.tail_or_none());
        }
        if done.bytes == 0 {
            bail!("pg_dump of {} wrote nothing: {}", self.target(), done.tail_or_none());
        }
        Ok(SourceBackup { files: Vec::new(), consistency_point, skipped: Vec::new() })
    }

    fn restore(&self, ctx: &RunCtx, input: &mut dyn Read, _manifest: &Manifest) -> anyhow::Result<Restored> {
        let tools = Tools::find(self.bin_dir.as_deref())?;
        let runner = ClusterRunner::new()?;
        let dest = ctx.restore_dir();
        let data = dest.join(DATA_DIR);
        // The server's socket path must fit in sockaddr_un (107 bytes).
        if dest.as_os_str().len() + 20 > 107 {
            bail!(
                "scratch path {} is too long for a PostgreSQL socket (max about 85 characters): set `scratch` in the config to a shorter folder",
                dest.display()
            );
        }
        runner.prepare_dirs(&ctx.run_dir, &dest)?;

        let initdb_log = dest.join("initdb.log");
        runner.touch_owned(&initdb_log)?;
        let done = runner
            .cmd(ctx, &tools.path("initdb"))
            .args(["-D", path_str(&data)?, "-A", "trust", "-U", CLUSTER_SUPERUSER, "--no-sync", "-E", "UTF8"])
            .arg("--locale=C.UTF-8")
            .log(&initdb_log)
            .run(&ctx.cancel)?;
        if !done.success() {
            bail!(
                "initdb of the throwaway cluster in {} failed ({}): {}",
                data.display(),
                done.status,
                done.tail_or_none()
            );
        }

        let port = free_port()?;
        // Settings go into the cluster's own config file, which needs no shell quoting.
        let conf = format!(
            "\n# drdrill throwaway cluster\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nfull_page_writes = off\nsynchronous_commit = off\n",
            path_str(&dest)?.replace('\'', "''")
        );
        fs::OpenOptions::new().append(true).open(data.join("postgresql.conf"))?.write_all(conf.as_bytes())?;
        let server_log = dest.join("postgres.log");
        runner.touch_owned(&server_log)?;
        // The postmaster is stopped by `cleanup` from its pid file, whatever happened.
        let done = runner
            .cmd(ctx, &tools.path("pg_ctl"))
            .args(["-D", path_str(&data)?, "-l", path_str(&server_log)?, "-w", "-t", "60", "start"])
            .reap(crate::proc::Reap::Until(ctx.groups.clone()))
            .run(&ctx.cancel)?;
        if !done.success() {
            bail!(
                "pg_ctl could not start the throwaway cluster on port {port}: {} {}",
                done.tail_or_none(),
                crate::proc::tail(&server_log)
            );
        }

        let conn = PgConn {
            host: path_str(&dest)?.to_string(),
            port,
            dbname: self.database.clone(),
            user: CLUSTER_SUPERUSER.into(),
            psql: tools.path("psql"),
        };
        let admin = PgConn { dbname: "postgres".into(), ..conn.clone() };
        admin
            .execute(&format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(&self.database)), None, &ctx.cancel)
            .context("cannot create the database in the throwaway cluster")?;

        let done = ctx
            .cmd(tools.path("pg_restore"))
            .label("pg_restore into the throwaway cluster")
            .log(ctx.run_dir.join("pg_restore.log"))
            .args(["-w", "--no-owner", "--no-privileges", "--exit-on-error", "-h", &conn.host])
            .args(["-p", &port.to_string(), "-U", CLUSTER_SUPERUSER, "-d", &self.database])
            .run_feeding(&ctx.cancel, input)
            .context("reading the dump from the store failed")?;
        if !done.success() {
            bail!("pg_restore into the throwaway cluster failed ({}): {}", done.status, done.tail_or_none());
        }

        let conn_file = dest.join(CONNECTION_FILE);
        fs::write(&conn_file, serde_json::to_vec_pretty(&conn)?)?;
        Ok(Restored {
            path: conn_file,
            root: dest,
            shape: Shape::Service,
            env: conn.env(),
            sql: Some(Arc::new(conn)),
            files: 0,
            bytes: done.bytes,
        })
    }

    fn cleanup(&self, ctx: &RunCtx) -> anyhow::Result<Option<String>> {
        let data = ctx.restore_dir().join(DATA_DIR);
        let pid_file = data.join("postmaster.pid");
        let Ok(text) = fs::read_to_string(&pid_file) else { return Ok(None) };
        let pid: i32 = text.lines().next().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
        let port = text.lines().nth(3).unwrap_or("?").trim().to_string();
        // pg_ctl first (clean, immediate); signals if the tools are gone.
        if let (Ok(tools), Ok(runner)) = (Tools::find(self.bin_dir.as_deref()), ClusterRunner::new()) {
            let _ = runner
                .cmd(ctx, &tools.path("pg_ctl"))
                .args(["-D", path_str(&data)?, "-m", "immediate", "-w", "-t", "30", "stop"])
                .run(&ctx.cancel);
        }
        if pid > 0 && alive(pid) {
            // SIGQUIT is the postmaster's immediate shutdown; SIGKILL if it ignores that.
            unsafe { libc::kill(pid, libc::SIGQUIT) };
            let until = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                std::thread::sleep(Duration::from_millis(200));
            }
            if alive(pid) {
                bail!("throwaway PostgreSQL (pid {pid}, data {}) does not stop", data.display());
            }
        }
        Ok(Some(format!("throwaway PostgreSQL cluster on port {port} stopped")))
    }

    fn canary(&self) -> Option<Arc<dyn Canary>> {
        Some(Arc::new(PgCanary { src: self.clone() }))
    }
}

/// Whether process `pid` exists (and is not a zombie we could reap: postgres is
/// started by pg_ctl, so it is never our child).
fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("path {} is not UTF-8", p.display()))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs the server-side tools as the cluster's OS user: directly when drdrill
/// is not root, through `runuser` when it is (initdb and postgres refuse root).
struct ClusterRunner {
    /// uid/gid of [`CLUSTER_OS_USER`] when drdrill runs as root.
    switch_to: Option<(u32, u32)>,
}

impl ClusterRunner {
    fn new() -> anyhow::Result<ClusterRunner> {
        if unsafe { libc::geteuid() } != 0 {
            return Ok(ClusterRunner { switch_to: None });
        }
        let name = std::ffi::CString::new(CLUSTER_OS_USER)?;
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if pw.is_null() {
            bail!(
                "drdrill runs as root and PostgreSQL refuses to run as root, but there is no `{CLUSTER_OS_USER}` OS user to run the throwaway cluster: install PostgreSQL (`apt-get install postgresql`) or run drdrill as a normal user"
            );
        }
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        Ok(ClusterRunner { switch_to: Some((uid, gid)) })
    }

    fn cmd(&self, ctx: &RunCtx, program: &Path) -> Cmd {
        let label = format!("`{}`", program.file_name().unwrap_or_default().to_string_lossy());
        match self.switch_to {
            None => ctx.cmd(program).label(label),
            Some(_) => ctx.cmd("runuser").args(["-u", CLUSTER_OS_USER, "--"]).arg(program).label(label),
        }
    }

    /// Hands `dest` to the cluster's user and lets it reach `dest` through the
    /// run folder (traverse only: it still cannot list or read the run folder).
    fn prepare_dirs(&self, run_dir: &Path, dest: &Path) -> anyhow::Result<()> {
        let Some((uid, gid)) = self.switch_to else { return Ok(()) };
        let mode = fs::metadata(run_dir)?.permissions().mode();
        fs::set_permissions(run_dir, fs::Permissions::from_mode(mode | 0o001))?;
        std::os::unix::fs::chown(dest, Some(uid), Some(gid))?;
        fs::set_permissions(dest, fs::Permissions::from_mode(0o700))?;
        let reach = Cmd::new("runuser")
            .args(["-u", CLUSTER_OS_USER, "--", "test", "-w", path_str(dest)?])
            .run(&Cancel::new())?;
        if !reach.success() {
            bail!(
                "the `{CLUSTER_OS_USER}` OS user cannot reach {}: every folder above the scratch root needs o+x (e.g. `chmod o+x` on them), or set `scratch` in the config to a folder under one that is traversable",
                dest.display()
            );
        }
        Ok(())
    }

    /// Creates a log file the cluster's user can write.
    fn touch_owned(&self, path: &Path) -> anyhow::Result<()> {
        fs::File::create(path)?;
        if let Some((uid, gid)) = self.switch_to {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        Ok(())
    }
}

/// Writes markers into the live database with the source's own settings.
struct PgCanary {
    src: PostgresSource,
}

impl Canary for PgCanary {
    fn write_marker(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        let src = &self.src;
        let tools = Tools::find(src.bin_dir.as_deref())?;
        let ms = at.timestamp_millis();
        // Keep the side table small: an hour of markers is plenty to find the newest.
        let sql = format!(
            "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (at_ms bigint NOT NULL); DELETE FROM {CANARY_TABLE} WHERE at_ms < {}; INSERT INTO {CANARY_TABLE} (at_ms) VALUES ({ms})",
            ms - 3_600_000
        );
        src.live(&tools).execute(&sql, src.password()?.as_deref(), &Cancel::new())?;
        Ok(())
    }

    fn newest_marker(&self, restored: &Restored, cancel: &Cancel) -> anyhow::Result<Option<DateTime<Utc>>> {
        let sql = restored.sql.as_ref().context("the restore yields no SQL service to read the canary from")?;
        let exists = sql.query_first(&format!("SELECT to_regclass('{CANARY_TABLE}') IS NOT NULL"), None, cancel)?;
        if exists.as_deref() != Some("t") {
            return Ok(None);
        }
        let ms = sql.query_first(&format!("SELECT max(at_ms) FROM {CANARY_TABLE}"), None, cancel)?;
        Ok(ms.and_then(|m| m.trim().parse::<i64>().ok()).and_then(|ms| Utc.timestamp_millis_opt(ms).single()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_tool_banners() {
        assert_eq!(parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-1.pgdg120+1)"), Some(("15.18".into(), 15)));
        assert_eq!(parse_version("initdb (PostgreSQL) 16beta2"), Some(("16beta2".into(), 16)));
        assert_eq!(parse_version("nonsense"), None);
    }

    #[test]
    fn missing_tools_name_the_tool_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let e = Tools::find(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("pg_dump not found") && e.contains("version found: none") && e.contains("bin_dir"), "{e}");
    }

    #[test]
    fn mismatched_tools_name_both_versions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (tool, version) in [("pg_dump", "15.4"), ("pg_restore", "15.4"), ("psql", "15.4"), ("initdb", "16.1")] {
            let p = dir.path().join(tool);
            fs::write(&p, format!("#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\n")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let e = Tools::find(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("pg_dump is 15.4 but initdb is 16.1") && e.contains("bin_dir"), "{e}");
    }

    #[test]
    fn plans_never_hold_the_password() {
        let cfg = crate::config::Config::defaults();
        let text = "[targets]\nrto = \"1m\"\nrpo = \"1m\"\n[source]\nkind = \"postgres\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"hunter2\"\n[[check]]\nkind = \"sql-query\"\nsql = \"select 1\"\nexpect = \"= 1\"\n";
        let e = crate::plan::Plan::parse(Path::new("p.toml"), text, &cfg).unwrap_err().to_string();
        assert!(e.contains("password"), "{e}");
        assert!(!e.contains("hunter2"), "the password must not be echoed: {e}");
    }
}
