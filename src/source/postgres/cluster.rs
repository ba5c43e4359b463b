//! Throwaway PostgreSQL clusters in a run's restore folder: found tools,
//! created (`initdb`) or taken from a restored data folder (pgBackRest),
//! started on a free loopback port with their socket in the folder, reached
//! through [`PgConn`], and stopped from the folder alone at the end of the run.
//! Shared by the `postgres` source and the existing-backup adapters that
//! restore PostgreSQL (pgBackRest, `pg_dump` files).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::cancel::Cancel;
use crate::context::RunCtx;
use crate::net::free_port;
use crate::proc::{Cmd, Reap};
use crate::restored::{Restored, Shape, SqlClient};

/// What checks read to reach the restored cluster.
pub const CONNECTION_FILE: &str = "connection.json";
/// The cluster's data folder inside the restore folder.
pub const DATA_DIR: &str = "pgdata";
/// The OS user that owns throwaway clusters when drdrill runs as root.
const CLUSTER_OS_USER: &str = "postgres";
/// The superuser created in throwaway clusters.
pub const CLUSTER_SUPERUSER: &str = "postgres";
/// Stands for SQL NULL in psql output; no real value contains it.
const NULL_MARK: &str = "\u{1}NULL\u{1}";
const FIELD_SEP: &str = "\u{1f}";

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
    pub fn env(&self) -> Vec<(String, String)> {
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
pub(crate) fn psql(bin: &Path, host: &str, port: u16, user: &str, db: &str, password: Option<&str>) -> Cmd {
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
pub struct Tools {
    pub dir: PathBuf,
    pub major: u32,
    pub version: String,
}

const TOOL_NAMES: [&str; 5] = ["pg_dump", "pg_restore", "psql", "initdb", "pg_ctl"];

impl Tools {
    pub fn path(&self, tool: &str) -> PathBuf {
        self.dir.join(tool)
    }

    /// Finds the tools: `bin_dir`, else the newest /usr/lib/postgresql/*/bin,
    /// else the folder of `pg_ctl` on PATH. Every tool must exist and report the
    /// same major version.
    pub fn find(bin_dir: Option<&Path>) -> anyhow::Result<Tools> {
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

/// Whether process `pid` exists (and is not a zombie we could reap: postgres is
/// started by pg_ctl, so it is never our child).
fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

pub fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("path {} is not UTF-8", p.display()))
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs the server-side tools as the server's OS user: directly when drdrill
/// is not root, through `runuser` when it is (initdb, postgres and mariadbd
/// refuse root). Throwaway MariaDB servers use it with the `mysql` user.
pub struct ClusterRunner {
    user: &'static str,
    /// uid/gid of `user` when drdrill runs as root.
    switch_to: Option<(u32, u32)>,
}

impl ClusterRunner {
    pub fn new() -> anyhow::Result<ClusterRunner> {
        ClusterRunner::for_user(CLUSTER_OS_USER, "PostgreSQL", "apt-get install postgresql")
    }

    /// Runs as OS user `user` when drdrill is root; `server` and `install` name
    /// the server and how to get the package that creates the user.
    pub fn for_user(user: &'static str, server: &str, install: &str) -> anyhow::Result<ClusterRunner> {
        if unsafe { libc::geteuid() } != 0 {
            return Ok(ClusterRunner { user, switch_to: None });
        }
        let name = std::ffi::CString::new(user)?;
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if pw.is_null() {
            bail!(
                "drdrill runs as root and {server} refuses to run as root, but there is no `{user}` OS user to run the throwaway server: install {server} (`{install}`) or run drdrill as a normal user"
            );
        }
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        Ok(ClusterRunner { user, switch_to: Some((uid, gid)) })
    }

    pub fn cmd(&self, ctx: &RunCtx, program: &Path) -> Cmd {
        let label = format!("`{}`", program.file_name().unwrap_or_default().to_string_lossy());
        match self.switch_to {
            None => ctx.cmd(program).label(label),
            Some(_) => ctx.cmd("runuser").args(["-u", self.user, "--"]).arg(program).label(label),
        }
    }

    /// Hands `dest` to the cluster's user and lets it reach `dest` through the
    /// run folder (traverse only: it still cannot list or read the run folder).
    pub fn prepare_dirs(&self, run_dir: &Path, dest: &Path) -> anyhow::Result<()> {
        let Some((uid, gid)) = self.switch_to else { return Ok(()) };
        let mode = fs::metadata(run_dir)?.permissions().mode();
        fs::set_permissions(run_dir, fs::Permissions::from_mode(mode | 0o001))?;
        std::os::unix::fs::chown(dest, Some(uid), Some(gid))?;
        fs::set_permissions(dest, fs::Permissions::from_mode(0o700))?;
        let reach =
            Cmd::new("runuser").args(["-u", self.user, "--", "test", "-w", path_str(dest)?]).run(&Cancel::new())?;
        if !reach.success() {
            bail!(
                "the `{}` OS user cannot reach {}: every folder above the scratch root needs o+x (e.g. `chmod o+x` on them), or set `scratch` in the config to a folder under one that is traversable",
                self.user,
                dest.display()
            );
        }
        Ok(())
    }

    /// Hands a file drdrill created to the cluster's user.
    pub fn give(&self, path: &Path) -> anyhow::Result<()> {
        if let Some((uid, gid)) = self.switch_to {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    /// Creates a log file the cluster's user can write.
    pub fn touch_owned(&self, path: &Path) -> anyhow::Result<()> {
        fs::File::create(path)?;
        if let Some((uid, gid)) = self.switch_to {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        Ok(())
    }
}

/// A cluster in `<restore>/pgdata`, run as the cluster's OS user.
pub struct Throwaway {
    pub tools: Tools,
    pub runner: ClusterRunner,
    /// The restore folder: socket, logs and connection file live here.
    pub dest: PathBuf,
}

impl Throwaway {
    /// Finds the tools and hands the run's restore folder to the cluster's user.
    pub fn prepare(ctx: &RunCtx, bin_dir: Option<&Path>) -> anyhow::Result<Throwaway> {
        let tools = Tools::find(bin_dir)?;
        let runner = ClusterRunner::new()?;
        let dest = ctx.restore_dir();
        // The server's socket path must fit in sockaddr_un (107 bytes).
        if dest.as_os_str().len() + 20 > 107 {
            bail!(
                "scratch path {} is too long for a PostgreSQL socket (max about 85 characters): set `scratch` in the config to a shorter folder",
                dest.display()
            );
        }
        runner.prepare_dirs(&ctx.run_dir, &dest)?;
        Ok(Throwaway { tools, runner, dest })
    }

    pub fn data(&self) -> PathBuf {
        self.dest.join(DATA_DIR)
    }

    /// A tool run as the cluster's user (pgBackRest, initdb, pg_ctl).
    pub fn cmd(&self, ctx: &RunCtx, program: &Path) -> Cmd {
        self.runner.cmd(ctx, program)
    }

    /// A fresh, empty cluster.
    pub fn initdb(&self, ctx: &RunCtx) -> anyhow::Result<()> {
        let log = self.dest.join("initdb.log");
        self.runner.touch_owned(&log)?;
        let data = self.data();
        let done = self
            .cmd(ctx, &self.tools.path("initdb"))
            .args(["-D", path_str(&data)?, "-A", "trust", "-U", CLUSTER_SUPERUSER, "--no-sync", "-E", "UTF8"])
            .arg("--locale=C.UTF-8")
            .log(&log)
            .run(&ctx.cancel)?;
        if !done.success() {
            bail!(
                "initdb of the throwaway cluster in {} failed ({}): {}",
                data.display(),
                done.status,
                done.tail_or_none()
            );
        }
        Ok(())
    }

    /// Starts the cluster in `pgdata` on a free loopback port, its socket in the
    /// restore folder and no other way in. A restored data folder may lack the
    /// config files that Debian keeps in /etc: they are created. Returns the port.
    pub fn start(&self, ctx: &RunCtx) -> anyhow::Result<u16> {
        let data = self.data();
        let port = free_port()?;
        let conf_file = data.join("postgresql.conf");
        if !conf_file.exists() {
            fs::write(&conf_file, "")?;
            self.runner.give(&conf_file)?;
        }
        // Its own access rules: a restored cluster's own would ask for the team's
        // passwords. The socket folder is private to drdrill, as initdb's trust is.
        let hba = data.join("drdrill_hba.conf");
        fs::write(&hba, "local all all trust\nhost all all 127.0.0.1/32 trust\n")?;
        self.runner.give(&hba)?;
        // Appended last, so these win over whatever the restored file said.
        let conf = format!(
            "\n# drdrill throwaway cluster\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nfull_page_writes = off\nsynchronous_commit = off\nhba_file = '{}'\n",
            path_str(&self.dest)?.replace('\'', "''"),
            path_str(&hba)?.replace('\'', "''"),
        );
        fs::OpenOptions::new().append(true).open(data.join("postgresql.conf"))?.write_all(conf.as_bytes())?;
        let server_log = self.dest.join("postgres.log");
        self.runner.touch_owned(&server_log)?;
        // The postmaster is stopped by `stop` from its pid file, whatever happened.
        let done = self
            .cmd(ctx, &self.tools.path("pg_ctl"))
            .args(["-D", path_str(&data)?, "-l", path_str(&server_log)?, "-w", "-t", "600", "start"])
            .reap(Reap::Until(ctx.groups.clone()))
            .run(&ctx.cancel)?;
        if !done.success() {
            bail!(
                "pg_ctl could not start the throwaway cluster on port {port}: {} {}",
                done.tail_or_none(),
                crate::proc::tail(&server_log)
            );
        }
        Ok(port)
    }

    /// How to reach database `dbname` of the started cluster.
    pub fn conn(&self, port: u16, dbname: &str, user: &str) -> anyhow::Result<PgConn> {
        Ok(PgConn {
            host: path_str(&self.dest)?.to_string(),
            port,
            dbname: dbname.to_string(),
            user: user.to_string(),
            psql: self.tools.path("psql"),
        })
    }

    /// What the restore yields: the SQL service, its connection file for people
    /// and scripts, and `PG*` variables for command checks.
    pub fn restored(&self, conn: PgConn, bytes: u64) -> anyhow::Result<Restored> {
        let conn_file = self.dest.join(CONNECTION_FILE);
        fs::write(&conn_file, serde_json::to_vec_pretty(&conn)?)?;
        let mut r = Restored::new(conn_file, self.dest.clone(), Shape::Service, 0, bytes);
        r.env = conn.env();
        r.sql = Some(Arc::new(conn));
        Ok(r)
    }
}

/// Stops the cluster a restore started below the run's folder, found from its
/// `postmaster.pid` alone: pg_ctl first, signals if the tools are gone.
pub fn stop(ctx: &RunCtx, bin_dir: Option<&Path>) -> anyhow::Result<Option<String>> {
    let data = ctx.restore_dir().join(DATA_DIR);
    let pid_file = data.join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&pid_file) else { return Ok(None) };
    let pid: i32 = text.lines().next().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    let port = text.lines().nth(3).unwrap_or("?").trim().to_string();
    if let (Ok(tools), Ok(runner)) = (Tools::find(bin_dir), ClusterRunner::new()) {
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
        let dir = tempfile::tempdir().unwrap();
        for (tool, version) in [("pg_dump", "15.4"), ("pg_restore", "15.4"), ("psql", "15.4"), ("initdb", "16.1")] {
            let p = dir.path().join(tool);
            fs::write(&p, format!("#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\n")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let e = Tools::find(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("pg_dump is 15.4 but initdb is 16.1") && e.contains("bin_dir"), "{e}");
    }
}
