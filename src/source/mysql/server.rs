//! Throwaway MariaDB (or MySQL) servers in a run's restore folder: found
//! tools, a fresh data folder (`mariadb-install-db`, or `mysqld
//! --initialize-insecure`), the server started on a free loopback port with
//! its socket in the folder and nothing else listening, reached through
//! [`MyConn`], and stopped from its pid file alone at the end of the run.
//! Shared by the `mysql` source and the `objects` adapter's `mysqldump` files.
//!
//! Clients never get a password on their command line (where `ps` shows it)
//! or in `MYSQL_PWD`: every connection reads a defaults file of its own,
//! mode 0600, in scratch or a private temporary file.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::cancel::Cancel;
use crate::context::RunCtx;
use crate::net::free_port;
use crate::proc::{Background, Cmd};
use crate::restored::{Restored, Shape, SqlClient};
use crate::source::postgres::cluster::{ClusterRunner, path_str};

/// For messages and [`crate::restored::Yields`].
pub const DIALECT: &str = "MariaDB/MySQL";
/// The OS user that owns throwaway servers when drdrill runs as root.
const SERVER_OS_USER: &str = "mysql";
/// The account checks and the team's application use in a throwaway server.
pub const CHECK_USER: &str = "drdrill";
/// Inside the restore folder.
const DATA_DIR: &str = "data";
const SOCKET: &str = "mysql.sock";
const PID_FILE: &str = "mariadbd.pid";
const ERROR_LOG: &str = "mariadbd.log";
/// root over the socket, for drdrill itself.
const ADMIN_DEFAULTS: &str = "admin.cnf";
/// The check account over TCP; `MYSQL_HOME` points at its folder, so a plain
/// `mariadb -e "..."` in a command check reaches the restored database.
pub const CLIENT_DEFAULTS: &str = "my.cnf";
pub const CONNECTION_FILE: &str = "connection.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        }
    }
}

/// The programs drdrill runs: the client and dump tool for a backup, the
/// server (and its installer) for a restore.
#[derive(Debug, Clone)]
pub struct Tools {
    pub client: PathBuf,
    pub dump: PathBuf,
    pub flavor: Flavor,
    /// `mariadb-dump  Ver 10.19 Distrib 10.11.14-MariaDB, ...`, first line.
    pub version: String,
}

/// The server side, needed only to restore.
#[derive(Debug, Clone)]
pub struct ServerTools {
    pub server: PathBuf,
    /// `mariadb-install-db`; absent for MySQL, whose server initializes itself.
    pub install: Option<PathBuf>,
    pub flavor: Flavor,
    pub version: String,
}

fn search_dirs(bin_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = bin_dir {
        return vec![d.to_path_buf()];
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    for d in ["/usr/sbin", "/usr/bin", "/usr/libexec", "/usr/local/mysql/bin"] {
        if !dirs.iter().any(|x| x == Path::new(d)) {
            dirs.push(d.into());
        }
    }
    dirs
}

fn find_one(bin_dir: Option<&Path>, names: &[&str]) -> Option<PathBuf> {
    let dirs = search_dirs(bin_dir);
    names.iter().find_map(|n| dirs.iter().map(|d| d.join(n)).find(|p| p.is_file()))
}

fn missing(what: &str, names: &[&str], bin_dir: Option<&Path>, package: &str) -> anyhow::Error {
    let where_ = match bin_dir {
        Some(d) => d.display().to_string(),
        None => "PATH, /usr/sbin or /usr/libexec".into(),
    };
    anyhow::anyhow!(
        "{what} ({}) not found in {where_}: install it (`apt-get install {package}`) or set `bin_dir` in the plan to the folder holding it",
        names.join(" or ")
    )
}

fn version_of(path: &Path) -> anyhow::Result<String> {
    let mut out = Vec::new();
    Cmd::new(path).arg("--version").timeout(Duration::from_secs(10)).run_reading(&Cancel::new(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).lines().next().unwrap_or("").trim().to_string())
}

fn flavor_of(version: &str) -> Flavor {
    if version.contains("MariaDB") { Flavor::MariaDb } else { Flavor::MySql }
}

/// `mariadbd  Ver 10.11.14-MariaDB-0+deb12u2 for ...` -> `MariaDB 10.11.14`.
fn short_version(banner: &str) -> String {
    let flavor = flavor_of(banner).name();
    let mut words = banner.split_whitespace();
    match words.position(|w| w == "Ver").and_then(|_| words.next()) {
        Some(v) => format!("{flavor} {}", v.split('-').next().unwrap_or(v)),
        None => flavor.to_string(),
    }
}

impl Tools {
    pub fn find(bin_dir: Option<&Path>) -> anyhow::Result<Tools> {
        const CLIENTS: [&str; 2] = ["mariadb", "mysql"];
        const DUMPS: [&str; 2] = ["mariadb-dump", "mysqldump"];
        let client =
            find_one(bin_dir, &CLIENTS).ok_or_else(|| missing("the client", &CLIENTS, bin_dir, "mariadb-client"))?;
        let dump =
            find_one(bin_dir, &DUMPS).ok_or_else(|| missing("the dump tool", &DUMPS, bin_dir, "mariadb-client"))?;
        let version = version_of(&dump)?;
        Ok(Tools { client, dump, flavor: flavor_of(&version), version })
    }
}

impl ServerTools {
    pub fn find(bin_dir: Option<&Path>) -> anyhow::Result<ServerTools> {
        const SERVERS: [&str; 2] = ["mariadbd", "mysqld"];
        let server =
            find_one(bin_dir, &SERVERS).ok_or_else(|| missing("the server", &SERVERS, bin_dir, "mariadb-server"))?;
        let version = version_of(&server)?;
        let flavor = flavor_of(&version);
        let install = find_one(bin_dir, &["mariadb-install-db", "mysql_install_db"]);
        if flavor == Flavor::MariaDb && install.is_none() {
            return Err(missing("the installer", &["mariadb-install-db"], bin_dir, "mariadb-server"));
        }
        Ok(ServerTools { server, install: install.filter(|_| flavor == Flavor::MariaDb), flavor, version })
    }
}

/// Where a client connects: a TCP host or a socket file.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Socket(PathBuf),
}

/// Writes a client defaults file (mode 0600): `[client]` for every tool, and
/// `[mysql]` (the interactive client only) for the default database, which
/// the dump tool would refuse.
pub fn write_defaults(
    path: &Path,
    at: &Endpoint,
    user: &str,
    password: Option<&str>,
    database: Option<&str>,
) -> anyhow::Result<()> {
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let mut text = String::from("[client]\n");
    match at {
        Endpoint::Tcp { host, port } => text += &format!("host={}\nport={port}\nprotocol=TCP\n", quote(host)),
        Endpoint::Socket(s) => text += &format!("socket={}\nprotocol=SOCKET\n", quote(path_str(s)?)),
    }
    text += &format!("user={}\n", quote(user));
    if let Some(p) = password {
        text += &format!("password={}\n", quote(p));
    }
    if let Some(db) = database {
        text += &format!("[mysql]\ndatabase={}\n", quote(db));
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot write client settings {}", path.display()))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// A connection through the client and a defaults file.
#[derive(Debug, Clone)]
pub struct MyConn {
    pub client: PathBuf,
    pub defaults: PathBuf,
    /// The database queries run in unless they name another.
    pub database: Option<String>,
    /// For messages: `the throwaway server on port 41234`.
    pub label: String,
}

impl MyConn {
    /// The client with this connection's settings (they must come first).
    pub fn cmd(&self) -> Cmd {
        Cmd::new(&self.client)
            .arg(format!("--defaults-file={}", self.defaults.display()))
            .args(["--connect-timeout=10", "--batch"])
            .label(format!("{} on {}", self.client.file_name().unwrap_or_default().to_string_lossy(), self.label))
    }

    /// Runs `sql` and returns the client's XML output.
    pub fn execute(&self, sql: &str, database: Option<&str>, cancel: &Cancel) -> anyhow::Result<String> {
        let mut c = self.cmd().arg("--xml");
        if let Some(db) = database.or(self.database.as_deref()) {
            c = c.arg(format!("--database={db}"));
        }
        let mut out = Vec::new();
        let done = c.arg("-e").arg(sql).run_reading(cancel, &mut out)?;
        if !done.success() {
            bail!("{}", done.tail_or_none());
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The first column of the first row; `None` for NULL; no rows is an error.
    pub fn first(&self, sql: &str, database: Option<&str>, cancel: &Cancel) -> anyhow::Result<Option<String>> {
        let xml = self.execute(sql, database, cancel)?;
        first_field(&xml).context("the query returned no rows")
    }
}

impl SqlClient for MyConn {
    fn query_first(&self, sql: &str, database: Option<&str>, cancel: &Cancel) -> anyhow::Result<Option<String>> {
        self.first(sql, database, cancel)
    }
}

/// The first `<field>` of the first `<row>` of the client's `--xml` output:
/// `Some(None)` for SQL NULL (`xsi:nil="true"`), which the tab-separated
/// output cannot tell from the text `NULL`.
fn first_field(xml: &str) -> Option<Option<String>> {
    let row = xml.find("<row>")?;
    let rest = &xml[row..];
    let start = rest.find("<field")?;
    let rest = &rest[start..];
    let tag_end = rest.find('>')?;
    let tag = &rest[..tag_end];
    if tag.contains("xsi:nil=\"true\"") {
        return Some(None);
    }
    if tag.ends_with('/') {
        return Some(Some(String::new()));
    }
    let body = &rest[tag_end + 1..];
    let end = body.find("</field>")?;
    Some(Some(unescape_xml(&body[..end])))
}

fn unescape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out += &rest[..i];
        let after = &rest[i..];
        let Some(semi) = after.find(';') else {
            out += after;
            return out;
        };
        let entity = &after[1..semi];
        let ch = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out += &after[..=semi],
        }
        rest = &after[semi + 1..];
    }
    out + rest
}

/// 24 random hex characters, for the check account of a throwaway server.
fn random_password() -> anyhow::Result<String> {
    let mut b = [0u8; 12];
    fs::File::open("/dev/urandom")?.read_exact(&mut b).context("cannot read /dev/urandom")?;
    Ok(hex::encode(b))
}

pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub fn quote_str(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// A server in `<restore>/data`, run as the `mysql` OS user when drdrill is root.
pub struct Throwaway {
    pub tools: Tools,
    pub server: ServerTools,
    pub runner: ClusterRunner,
    /// The restore folder: data, socket, pid file, logs and defaults files.
    pub dest: PathBuf,
}

/// A started throwaway server.
pub struct Running {
    pub port: u16,
    pub admin: MyConn,
    pub process: Background,
    /// How long the data folder and the start took, for the record.
    pub timings: Vec<(&'static str, Duration)>,
}

impl Running {
    /// Adds how long a step took, for the restore's note.
    pub fn took(&mut self, step: &'static str, since: Instant) {
        self.timings.push((step, since.elapsed()));
    }
}

impl Throwaway {
    /// Finds the tools and hands the run's restore folder to the server's user.
    pub fn prepare(ctx: &RunCtx, bin_dir: Option<&Path>) -> anyhow::Result<Throwaway> {
        let tools = Tools::find(bin_dir)?;
        let server = ServerTools::find(bin_dir)?;
        let runner = ClusterRunner::for_user(SERVER_OS_USER, server.flavor.name(), "apt-get install mariadb-server")?;
        let dest = ctx.restore_dir();
        // The socket path must fit in sockaddr_un (107 bytes).
        if dest.join(SOCKET).as_os_str().len() > 107 {
            bail!(
                "scratch path {} is too long for a {} socket (max about 95 characters): set `scratch` in the config to a shorter folder",
                dest.display(),
                server.flavor.name()
            );
        }
        runner.prepare_dirs(&ctx.run_dir, &dest)?;
        Ok(Throwaway { tools, server, runner, dest })
    }

    fn data(&self) -> PathBuf {
        self.dest.join(DATA_DIR)
    }

    /// An empty data folder with the system tables.
    pub fn install(&self, ctx: &RunCtx) -> anyhow::Result<()> {
        let data = self.data();
        let log = self.dest.join("install.log");
        self.runner.touch_owned(&log)?;
        let cmd = match &self.server.install {
            Some(install) => self.runner.cmd(ctx, install).args([
                "--no-defaults",
                &format!("--datadir={}", path_str(&data)?),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]),
            None => self.runner.cmd(ctx, &self.server.server).args([
                "--no-defaults",
                "--initialize-insecure",
                &format!("--datadir={}", path_str(&data)?),
            ]),
        };
        let done = cmd.log(&log).run(&ctx.cancel)?;
        if !done.success() {
            bail!(
                "cannot create the throwaway {} data folder {} ({}): {}",
                self.server.flavor.name(),
                data.display(),
                done.status,
                done.tail_or_none()
            );
        }
        Ok(())
    }

    /// Starts the server on a free loopback port, its socket in the restore
    /// folder, and waits until it answers. It lives until the run's cleanup
    /// ([`stop`], and the run's process groups after that).
    pub fn start(&self, ctx: &RunCtx) -> anyhow::Result<Running> {
        let port = free_port()?;
        let tmp = self.dest.join("tmp");
        fs::create_dir_all(&tmp)?;
        self.runner.give(&tmp)?;
        let error_log = self.dest.join(ERROR_LOG);
        self.runner.touch_owned(&error_log)?;
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", path_str(&self.data())?),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", path_str(&self.dest.join(SOCKET))?),
            format!("--pid-file={}", path_str(&self.dest.join(PID_FILE))?),
            format!("--log-error={}", path_str(&error_log)?),
            format!("--tmpdir={}", path_str(&tmp)?),
            format!("--secure-file-priv={}", path_str(&tmp)?),
            "--skip-name-resolve".into(),
            "--skip-log-bin".into(),
            // Restored events must never change the data while it is checked.
            "--event-scheduler=DISABLED".into(),
            "--local-infile=0".into(),
            "--max-allowed-packet=1G".into(),
            // A throwaway copy: durability only slows the load.
            "--innodb-flush-log-at-trx-commit=0".into(),
            "--innodb-doublewrite=0".into(),
        ];
        if self.server.flavor == Flavor::MySql {
            // MySQL's X protocol listens on every interface unless told not to.
            args.push("--mysqlx=OFF".into());
        }
        let process = self
            .runner
            .cmd(ctx, &self.server.server)
            .args(&args)
            .label(format!("the throwaway {} server on port {port}", self.server.flavor.name()))
            .log(self.dest.join("mariadbd.out"))
            .start_kept(&ctx.groups)?;
        let admin_file = self.dest.join(ADMIN_DEFAULTS);
        write_defaults(&admin_file, &Endpoint::Socket(self.dest.join(SOCKET)), "root", None, None)?;
        let admin = MyConn {
            client: self.tools.client.clone(),
            defaults: admin_file,
            database: None,
            label: format!("the throwaway server on port {port}"),
        };
        loop {
            if let Err(why) = process.running() {
                bail!("{why}; its error log: {}", crate::proc::tail(&error_log));
            }
            if self.dest.join(SOCKET).exists() && admin.first("SELECT 1", None, &ctx.cancel).is_ok() {
                break;
            }
            if ctx.cancel.sleep(Duration::from_millis(100)) {
                bail!("cancelled while the throwaway {} server started", self.server.flavor.name());
            }
        }
        Ok(Running { port, admin, process, timings: Vec::new() })
    }

    /// A fresh server with the dump loaded: install, start, load, each timed
    /// for the restore's note (the server's start and stop are orchestration,
    /// the load is the restore proper).
    pub fn install_start_load(
        &self,
        ctx: &RunCtx,
        database: Option<&str>,
        input: &mut dyn Read,
    ) -> anyhow::Result<(Running, u64)> {
        let t = Instant::now();
        self.install(ctx)?;
        let installed = t.elapsed();
        let t = Instant::now();
        let mut running = self.start(ctx)?;
        running.timings.push(("data folder", installed));
        running.took("start", t);
        let t = Instant::now();
        let bytes = self.load(ctx, &running, database, input)?;
        running.took("dump loaded", t);
        Ok((running, bytes))
    }

    /// The check account (a random password, in the client defaults file only)
    /// and no other way in over TCP: the installer's passwordless root
    /// accounts for 127.0.0.1 and the host name are dropped.
    pub fn accounts(&self, ctx: &RunCtx, running: &Running, database: Option<&str>) -> anyhow::Result<MyConn> {
        let password = random_password()?;
        crate::redact::register(&password);
        let others = running
            .admin
            .first(
                "SELECT IFNULL(GROUP_CONCAT(CONCAT(QUOTE(User), '@', QUOTE(Host))), '') FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'",
                None,
                &ctx.cancel,
            )?
            .unwrap_or_default();
        let mut sql = String::new();
        if !others.is_empty() {
            sql += &format!("DROP USER {others}; ");
        }
        for host in ["127.0.0.1", "localhost"] {
            sql += &format!(
                "CREATE USER '{CHECK_USER}'@'{host}' IDENTIFIED BY {pw}; GRANT ALL PRIVILEGES ON *.* TO '{CHECK_USER}'@'{host}'; ",
                pw = quote_str(&password)
            );
        }
        running
            .admin
            .execute(&sql, None, &ctx.cancel)
            .context("cannot create the check account in the throwaway server")?;
        let file = self.dest.join(CLIENT_DEFAULTS);
        let at = Endpoint::Tcp { host: "127.0.0.1".into(), port: running.port };
        write_defaults(&file, &at, CHECK_USER, Some(&password), database)?;
        Ok(MyConn {
            client: self.tools.client.clone(),
            defaults: file,
            database: database.map(str::to_string),
            label: running.admin.label.clone(),
        })
    }

    /// Feeds a dump (SQL text, as the dump tool writes it) to the client,
    /// stopping at the first error; `database` is created first, for dumps made
    /// without `--databases`. Returns the bytes fed.
    pub fn load(
        &self,
        ctx: &RunCtx,
        running: &Running,
        database: Option<&str>,
        input: &mut dyn Read,
    ) -> anyhow::Result<u64> {
        let mut c = running.admin.cmd();
        if let Some(db) = database {
            running
                .admin
                .execute(&format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(db)), None, &ctx.cancel)
                .context("cannot create the database in the throwaway server")?;
            c = c.arg(format!("--database={db}"));
        }
        let done = c
            .args(["--binary-mode", "--max-allowed-packet=1G"])
            .label(format!("loading the dump into {}", running.admin.label))
            .log(ctx.run_dir.join("mysql-load.log"))
            .run_feeding(&ctx.cancel, input)
            .context("reading the dump from the store failed")?;
        if !done.success() {
            let gone = running
                .process
                .running()
                .err()
                .map(|e| format!("; {e}; its error log: {}", crate::proc::tail(&self.dest.join(ERROR_LOG))))
                .unwrap_or_default();
            bail!(
                "the dump does not load into {} ({}): {}{gone}",
                self.server.flavor.name(),
                done.status,
                done.tail_or_none()
            );
        }
        Ok(done.bytes)
    }

    /// What the restore yields: the SQL service (root over the socket, for
    /// drdrill), the connection file for people and scripts, the variables a
    /// `command` check or an application needs, and the server's liveness.
    pub fn restored(&self, running: Running, check: MyConn, bytes: u64) -> anyhow::Result<Restored> {
        #[derive(Serialize)]
        struct Connection<'a> {
            host: &'a str,
            port: u16,
            socket: PathBuf,
            user: &'a str,
            database: Option<&'a str>,
            defaults_file: &'a Path,
            server: &'a str,
        }
        let conn_file = self.dest.join(CONNECTION_FILE);
        let c = Connection {
            host: "127.0.0.1",
            port: running.port,
            socket: self.dest.join(SOCKET),
            user: CHECK_USER,
            database: check.database.as_deref(),
            defaults_file: &check.defaults,
            server: &self.server.version,
        };
        fs::write(&conn_file, serde_json::to_vec_pretty(&c)?)?;
        let mut r = Restored::new(conn_file, self.dest.clone(), Shape::Service, 0, bytes);
        let port = running.port.to_string();
        r.env = vec![
            ("MYSQL_HOST".into(), "127.0.0.1".into()),
            ("MYSQL_TCP_PORT".into(), port.clone()),
            ("MYSQL_HOME".into(), path_str(&self.dest)?.to_string()),
            ("DRDRILL_MYSQL_DEFAULTS".into(), path_str(&check.defaults)?.to_string()),
            ("DRDRILL_MYSQL_USER".into(), CHECK_USER.into()),
            ("DRDRILL_PORT".into(), port),
        ];
        if let Some(db) = &check.database {
            r.env.push(("DRDRILL_MYSQL_DATABASE".into(), db.clone()));
        }
        let took: Vec<String> = running
            .timings
            .iter()
            .map(|(step, d)| format!("{step} {}", crate::duration::format_duration(*d)))
            .collect();
        r.note = Some(format!("throwaway {}: {}", short_version(&self.server.version), took.join(", ")));
        let admin = MyConn { database: check.database.clone(), ..running.admin };
        r.sql = Some(Arc::new(admin));
        r.services.push(Arc::new(ServerLiveness { process: running.process, log: self.dest.join(ERROR_LOG) }));
        Ok(r)
    }
}

/// The server process, and its error log for the cause once it is gone.
#[derive(Debug)]
struct ServerLiveness {
    process: Background,
    log: PathBuf,
}

impl crate::restored::Liveness for ServerLiveness {
    fn running(&self) -> Result<(), String> {
        match self.process.exited() {
            None => Ok(()),
            Some(status) => Err(format!(
                "{} {}; the end of its error log: {}",
                self.process.label,
                crate::proc::ended(status),
                crate::proc::tail(&self.log)
            )),
        }
    }
}

/// The pid in `<restore>/mariadbd.pid`, if that process is still our server
/// (its command line names this data folder: a pid reused after a kill is
/// never signalled).
fn server_pid(data: &Path) -> Option<i32> {
    let pid_file = data.parent()?.join(PID_FILE);
    let pid: i32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let needle = format!("--datadir={}", data.display());
    String::from_utf8_lossy(&cmdline).split('\0').any(|a| a == needle).then_some(pid)
}

/// Stops the server a restore started below the run's folder, from its pid
/// file alone: SIGTERM (a clean shutdown), SIGKILL if it does not stop.
/// `Ok(None)` when no server was ever started there.
pub fn stop(ctx: &RunCtx) -> anyhow::Result<Option<String>> {
    let dest = ctx.restore_dir();
    let data = dest.join(DATA_DIR);
    if !dest.join(PID_FILE).exists() {
        return Ok(None);
    }
    let Some(pid) = server_pid(&data) else {
        return Ok(Some("throwaway MariaDB/MySQL server had already stopped".into()));
    };
    let alive = || unsafe { libc::kill(pid, 0) == 0 } && server_pid(&data) == Some(pid);
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(30);
    while alive() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let until = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive() {
            bail!("throwaway MariaDB/MySQL server (pid {pid}, data {}) does not stop", data.display());
        }
        return Ok(Some(format!("throwaway MariaDB/MySQL server (pid {pid}) killed: it ignored SIGTERM for 30s")));
    }
    Ok(Some(format!("throwaway MariaDB/MySQL server (pid {pid}) stopped")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_output_tells_null_from_the_text_null() {
        let xml = "<?xml version=\"1.0\"?>\n<resultset statement=\"x\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n  <row>\n\t<field name=\"a\" xsi:nil=\"true\" />\n\t<field name=\"b\">2</field>\n  </row>\n</resultset>\n";
        assert_eq!(first_field(xml), Some(None));
        let xml = "<resultset>\n  <row>\n\t<field name=\"a\">NULL &lt;&amp;&gt; &#233;</field>\n  </row>\n</resultset>";
        assert_eq!(first_field(xml), Some(Some("NULL <&> é".into())));
        assert_eq!(first_field("<resultset statement=\"x\"></resultset>"), None);
        assert_eq!(
            first_field("<resultset><row><field name=\"a\"></field></row></resultset>"),
            Some(Some(String::new()))
        );
    }

    #[test]
    fn versions_are_shortened_for_the_record() {
        let b = "/usr/sbin/mariadbd  Ver 10.11.14-MariaDB-0+deb12u2 for debian-linux-gnu on x86_64 (Debian 12)";
        assert_eq!(short_version(b), "MariaDB 10.11.14");
        assert_eq!(
            short_version("/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"),
            "MySQL 8.0.36"
        );
    }

    #[test]
    fn defaults_files_are_private_and_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.cnf");
        write_defaults(&f, &Endpoint::Tcp { host: "db".into(), port: 3307 }, "app", Some("p\"w#1"), Some("shop"))
            .unwrap();
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        let text = fs::read_to_string(&f).unwrap();
        assert!(text.contains("password=\"p\\\"w#1\"") && text.contains("[mysql]\ndatabase=\"shop\""), "{text}");
    }
}
