//! The one way integration tests get a throwaway drdrill working folder and
//! drive the real `drdrill` binary in it.
//!
//! A [`Workspace`] is a temporary folder that plays a user's checkout: `drills/`
//! for plans, `config/drdrill.toml` when the test gives a config (otherwise the
//! embedded defaults put the results DB, store and scratch under `./var`). The
//! binary runs with the folder as its working directory and no inherited
//! `DRDRILL_CONFIG` or `RUST_LOG`, so the folder alone decides what it does.
//!
//! Servers come from `scripts/test`, which exports `DRDRILL_TEST_*` variables;
//! [`env`] reads one and fails (never skips) without it.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository checkout the tests belong to (its example drills and config).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A throwaway drdrill working folder, removed with everything in it when dropped.
pub struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Workspace {
    /// An empty working folder with an empty `drills/` and no config file, so the
    /// embedded defaults apply (everything under ./var).
    ///
    /// It is made under DRDRILL_TEST_ROOT when set, with mode 0755: throwaway
    /// PostgreSQL clusters run as the postgres user inside its scratch folder
    /// and must reach it. The path is canonical, so tests may compare it with
    /// paths drdrill resolves.
    pub fn empty() -> Workspace {
        let dir = match std::env::var_os("DRDRILL_TEST_ROOT") {
            Some(root) => tempfile::Builder::new().prefix("drdrill-it-").tempdir_in(root),
            None => tempfile::Builder::new().prefix("drdrill-it-").tempdir(),
        }
        .expect("a temporary folder for the workspace");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("drills")).unwrap();
        Workspace { _dir: dir, root }
    }

    /// A workspace holding a copy of the repository's whole `drills/` folder.
    pub fn with_example_drills() -> Workspace {
        let ws = Workspace::empty();
        copy_dir(&repo().join("drills"), &ws.join("drills"));
        ws
    }

    /// A workspace with `config` as its `config/drdrill.toml`.
    pub fn with_config(config: &str) -> Workspace {
        let ws = Workspace::empty();
        ws.write_config(config);
        ws
    }

    /// A workspace holding only the quickstart plan and its seed, as a new user
    /// following the README has.
    pub fn quickstart() -> Workspace {
        let ws = Workspace::empty();
        ws.copy_from_repo(&["drills/quickstart.toml", "drills/quickstart/orders.sql"]);
        ws
    }

    /// The quickstart workspace after three finished runs: passed, passed, and
    /// failed (its RTO target set to 1ms).
    pub fn quickstart_history() -> Workspace {
        let ws = Workspace::quickstart();
        assert_eq!(ws.run_quickstart(), 0);
        assert_eq!(ws.run_quickstart(), 0);
        ws.set_rto_target("1ms");
        assert_eq!(ws.run_quickstart(), 1);
        ws
    }

    /// Copies files (relative to the repository root) to the same place here.
    pub fn copy_from_repo(&self, files: &[&str]) {
        for rel in files {
            let to = self.join(rel);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(repo().join(rel), &to).unwrap_or_else(|e| panic!("copy {rel} from the repository: {e}"));
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `text` to `rel`, making its folders; returns the full path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    /// Writes `drills/NAME.toml`, so `drdrill run NAME` finds it.
    pub fn write_plan(&self, name: &str, text: &str) -> PathBuf {
        self.write(&format!("drills/{name}.toml"), text)
    }

    /// Writes (or replaces) `config/drdrill.toml`, the config the binary finds by default.
    pub fn write_config(&self, text: &str) -> PathBuf {
        self.write("config/drdrill.toml", text)
    }

    /// Writes (or replaces) a config that names every path absolutely, all under
    /// this folder (results DB and scratch in `var/`, plans in `drills/`, the
    /// `local` store in `var/store`), with `safety` as the body of its [safety] table.
    pub fn write_safety_config(&self, safety: &str) -> PathBuf {
        let r = self.root.display();
        self.write_config(&format!(
            "database = \"{r}/var/drdrill.db\"\nplans = \"{r}/drills\"\nscratch = \"{r}/var/scratch\"\n\
             [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n[safety]\n{safety}\n"
        ))
    }

    /// Sets the quickstart plan's RTO target, e.g. "1ms" to make the next run fail.
    pub fn set_rto_target(&self, target: &str) {
        let file = self.join("drills/quickstart.toml");
        let text = fs::read_to_string(&file).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("rto = ") {
                out += &format!("rto = \"{target}\"\n");
            } else {
                out += line;
                out.push('\n');
            }
        }
        fs::write(file, out).unwrap();
    }

    /// The real binary, run here with a clean environment.
    ///
    /// DRDRILL_TEST_BIN names a copy of the binary, for when several worktrees
    /// share one target folder and another build may replace target/debug/drdrill.
    pub fn cmd(&self) -> Command {
        let bin = std::env::var_os("DRDRILL_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_drdrill")));
        let mut c = Command::new(bin);
        c.current_dir(&self.root).env_remove("DRDRILL_CONFIG").env_remove("RUST_LOG");
        c
    }

    /// Runs drdrill with `args` to completion.
    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs drdrill with `args` and extra `envs`; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
        let out = self.cmd().args(args).envs(envs.iter().copied()).output().unwrap();
        (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
    }

    /// `drdrill run PLAN --json`: exit code, the parsed report and stderr.
    pub fn drill_report(&self, plan: &str, envs: &[(&str, &str)]) -> (i32, Value, String) {
        let (code, out, err) = self.run(&["run", plan, "--json"], envs);
        let report = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("run {plan}: no JSON report ({e}); stdout: {out}\nstderr: {err}"));
        (code, report, err)
    }

    /// `drdrill run PLAN --json`: the report, with the exit code checked against its status.
    pub fn drill(&self, plan: &str, envs: &[(&str, &str)]) -> Value {
        let (code, report, _) = self.drill_report(plan, envs);
        let passed = report["status"] == "passed";
        assert_eq!(code, if passed { 0 } else { 1 }, "{report:#}");
        report
    }

    /// Runs the quickstart drill and returns its exit code (0 or 1: it finished).
    pub fn run_quickstart(&self) -> i32 {
        let out = self.output(&["run", "quickstart"]);
        let code = out.status.code().unwrap_or(-1);
        assert!(code == 0 || code == 1, "run did not finish: {}", stderr(&out));
        code
    }

    /// The newest recorded run as `drdrill show --json` prints it.
    pub fn last_run(&self) -> Value {
        let out = self.output(&["history", "--json"]);
        let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = runs[0]["id"].as_i64().expect("a run was recorded");
        let out = self.output(&["show", "--json", &id.to_string()]);
        assert!(out.status.success(), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// How many runs `drdrill history` knows (0 when there is no results DB yet).
    pub fn recorded_runs(&self) -> usize {
        if !self.db_path().exists() {
            return 0;
        }
        let out = self.output(&["history", "--json"]);
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap().len()
    }

    /// `drdrill backups list --json ARGS`, which must succeed.
    pub fn backups(&self, args: &[&str], envs: &[(&str, &str)]) -> Vec<Value> {
        let mut all = vec!["backups", "list", "--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.run(&all, envs);
        assert_eq!(code, 0, "{out} {err}");
        serde_json::from_str(&out).unwrap()
    }

    /// The backup folders of `plan` in the default local store, oldest first.
    pub fn backup_dirs(&self, plan: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.join(&format!("var/store/{plan}")))
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The results DB of the embedded defaults.
    pub fn db_path(&self) -> PathBuf {
        self.join("var/drdrill.db")
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db_path()).unwrap()
    }

    /// Run folders left in scratch (there must be none after any run).
    pub fn scratch_leftovers(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.join("var/scratch")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Runs SQL on the results DB through the real sqlite3 tool, as a tamperer
    /// would; it must succeed. Returns its trimmed stdout.
    pub fn sqlite3(&self, sql: &str) -> String {
        let out = self.sqlite3_output(sql);
        assert!(out.status.success(), "sqlite3 {sql}: {}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// Like [`Workspace::sqlite3`], for SQL that is expected to fail.
    pub fn sqlite3_output(&self, sql: &str) -> Output {
        Command::new("sqlite3")
            .arg(self.db_path())
            .arg(sql)
            .output()
            .expect("the sqlite3 tool is missing: run scripts/test (scripts/services/05-sqlite3.sh installs it)")
    }
}

/// A variable exported by scripts/services; absent means the servers were not started.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this test needs the servers that `scripts/test` starts; run scripts/test")
    })
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Status, stdout and stderr of a finished process, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status, stdout(o), stderr(o))
}

/// The measurement `name` (rto, rpo, ...) of a JSON report.
pub fn measurement(report: &Value, name: &str) -> Value {
    named(report, "measurements", name)
}

/// The first phase called `name` (prepare, backup, failure, ...) of a JSON report.
pub fn phase(report: &Value, name: &str) -> Value {
    named(report, "phases", name)
}

fn named(report: &Value, list: &str, name: &str) -> Value {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {report:#}"))
        .iter()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in the {list} of {report:#}"))
}

/// Why a JSON report's run failed ("" when it did not).
pub fn reason(report: &Value) -> String {
    report["reason"].as_str().unwrap_or("").to_string()
}

/// A plan from drills/ with some text replaced, e.g. to point it at a test server.
pub fn example_plan(file: &str, replace: &[(&str, &str)]) -> String {
    let mut text = fs::read_to_string(repo().join("drills").join(file)).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{file} no longer contains {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// A name no other test (or earlier run against the same server) uses; only
/// letters, digits and `_` besides `prefix`, so it can name a database.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), n % 1_000_000_000)
}

/// The hex SHA-256 of a file's content.
pub fn sha256(path: &Path) -> String {
    drdrill::hashing::sha256_file(path).unwrap().0
}

/// A backup folder's `manifest.json` (format 3: a header line, then one entry
/// per line) as one JSON object with its entries under `files`, the shape
/// formats 1 and 2 had, for tests that read or edit it.
pub fn manifest_json(dir: &Path) -> Value {
    let text = fs::read_to_string(dir.join("manifest.json")).unwrap();
    let mut lines = text.lines();
    let mut m: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(m["format"], drdrill::store::MANIFEST_FORMAT, "not a format 3 manifest: {m}");
    m["files"] = lines.map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<Value>>().into();
    m
}

/// Writes `m` (shaped as [`manifest_json`] gives it) into `dir` as a format 3
/// manifest with its checksum beside it, as an attacker with store access
/// could. Its `totals` stay as given; without them they are counted.
pub fn write_manifest_json(dir: &Path, m: &Value) {
    let mut header = m.clone();
    let files = header.as_object_mut().unwrap().remove("files").unwrap_or_default();
    let files = files.as_array().cloned().unwrap_or_default();
    if header.get("totals").is_none() {
        let sizes: Vec<u64> =
            files.iter().filter(|f| f["kind"] == "file").map(|f| f["size"].as_u64().unwrap_or(0)).collect();
        header["totals"] =
            serde_json::json!({"entries": files.len(), "files": sizes.len(), "bytes": sizes.iter().sum::<u64>()});
    }
    let mut text = serde_json::to_string(&header).unwrap() + "\n";
    for f in &files {
        text += &(serde_json::to_string(f).unwrap() + "\n");
    }
    fs::write(dir.join("manifest.json"), &text).unwrap();
    fs::write(dir.join("manifest.json.sha256"), drdrill::store::manifest_checksum(text.as_bytes())).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Everything that must survive a backup and restore, per entry: kind, mode,
/// mtime (seconds), size and content hash, symlink target.
pub fn tree_fingerprint(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let mode = m.mode() & 0o7777;
        let fp = if m.file_type().is_symlink() {
            format!("symlink {} mtime {}", fs::read_link(e.path()).unwrap().display(), m.mtime())
        } else if m.is_dir() {
            format!("dir {mode:o} mtime {}", m.mtime())
        } else {
            let (sha, size) = drdrill::hashing::sha256_file(e.path()).unwrap();
            format!("file {mode:o} mtime {} size {size} {sha}", m.mtime())
        };
        out.push((rel, fp));
    }
    out
}

/// A tree with everything a directory source must keep: nested and empty
/// folders, symlinks (relative, absolute, dangling), modes, mtimes, non-ASCII
/// and spaced names, empty and multi-megabyte files, a read-only folder.
pub fn make_tricky_tree(root: &Path) {
    use std::os::unix::fs::symlink;
    let set_mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    fs::create_dir_all(root.join("ünïcødé")).unwrap();
    fs::write(root.join("a/b/c/deep.txt"), b"deep\n").unwrap();
    fs::write(root.join("ünïcødé/日本語 ファイル.txt"), "こんにちは\n").unwrap();
    fs::write(root.join("with space.txt"), b"spaces in names\n").unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fs::write(root.join("a/big.bin"), &big).unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    set_mode(&root.join("run.sh"), 0o755);
    fs::write(root.join("secret"), b"k").unwrap();
    set_mode(&root.join("secret"), 0o600);
    fs::write(root.join("readonly.txt"), b"ro").unwrap();
    set_mode(&root.join("readonly.txt"), 0o444);
    fs::create_dir_all(root.join("locked")).unwrap();
    fs::write(root.join("locked/inside.txt"), b"inside a read-only folder").unwrap();
    symlink("a/b/c/deep.txt", root.join("link-relative")).unwrap();
    symlink("/etc/hostname", root.join("link-absolute")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();
    symlink("a/b", root.join("link-to-dir")).unwrap();
    // Fixed, distinct mtimes, set last (children first) so they stick.
    let mut all: Vec<PathBuf> =
        walkdir::WalkDir::new(root).min_depth(1).into_iter().map(|e| e.unwrap().path().to_path_buf()).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        let t = filetime::FileTime::from_unix_time(1_600_000_000 + i as i64 * 3600, 0);
        if fs::symlink_metadata(p).unwrap().file_type().is_symlink() {
            filetime::set_symlink_file_times(p, t, t).unwrap();
        } else {
            filetime::set_file_times(p, t, t).unwrap();
        }
    }
    set_mode(&root.join("locked"), 0o555);
    let t = filetime::FileTime::from_unix_time(1_500_000_000, 0);
    filetime::set_file_times(root.join("locked"), t, t).unwrap();
}

/// Starts `c` with stdin and stderr piped; stderr lines arrive on the receiver.
pub fn spawn(mut c: Command) -> (Child, Receiver<String>) {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a stderr line containing `needle`; returns every line seen.
pub fn expect_line(rx: &Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let until = Instant::now() + WAIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return;
                }
            }
            Err(_) => panic!("no line containing {needle:?} on stderr; saw:\n{}", seen.join("\n")),
        }
    }
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("drdrill did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes whose command line contains `marker` (a unique argument a test
/// gave them), so a test can prove that a run left none of its processes behind.
pub fn processes_with(marker: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) == Some("Z"));
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(marker)
        })
        .collect()
}

/// Runs `cmd`, which must succeed; returns its stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A live PostgreSQL cluster of its own that archives WAL into a pgBackRest
/// repository, as a team runs it; stopped when dropped.
pub struct Archived {
    pub dir: PathBuf,
    pub bin: String,
    pub port: u16,
    pub conf: PathBuf,
}

impl Archived {
    pub fn start(ws: &Workspace) -> Archived {
        let bin = env("DRDRILL_TEST_PG_BIN");
        let dir = ws.join("pgb");
        fs::create_dir_all(&dir).unwrap();
        sh(Command::new("chown").arg("postgres:").arg(&dir));
        let port = free_port();
        let conf = dir.join("pgbackrest.conf");
        fs::write(
            &conf,
            format!(
                "[global]\nrepo1-path={d}/repo\nlog-path={d}\nlock-path={d}\nlog-level-console=warn\nlog-level-file=off\nstart-fast=y\njob-retry=0\n\
                 [main]\npg1-path={d}/data\npg1-port={port}\npg1-socket-path={d}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        sh(Command::new("chown").arg("postgres:").arg(&conf));
        let as_pg = |program: &str, args: &[&str]| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]).args(args);
            sh(&mut c)
        };
        let data = dir.join("data");
        as_pg(&format!("{bin}/initdb"), &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        let settings = format!(
            "port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{d}'\nwal_level = replica\narchive_mode = on\n\
             archive_command = 'pgbackrest --config={c} --stanza=main archive-push %p'\narchive_timeout = 1\nfsync = off\n",
            d = dir.display(),
            c = conf.display()
        );
        let mut f = fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut f, settings.as_bytes()).unwrap();
        as_pg(
            &format!("{bin}/pg_ctl"),
            &["-D", data.to_str().unwrap(), "-l", dir.join("pg.log").to_str().unwrap(), "-w", "start"],
        );
        let a = Archived { dir, bin, port, conf };
        a.pgbackrest(&["stanza-create"]);
        a
    }

    pub fn pgbackrest(&self, args: &[&str]) -> String {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "pgbackrest"])
            .arg(format!("--config={}", self.conf.display()))
            .arg("--stanza=main")
            .args(args);
        sh(&mut c)
    }

    pub fn sql(&self, sql: &str) -> String {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(format!("{}/psql", self.bin))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-c", sql]);
        sh(&mut c).trim().to_string()
    }

    /// A plan drilling the stanza's backups, whose check counts the 300 orders
    /// the WAL archive holds.
    pub fn plan(&self, name: &str) -> String {
        self.plan_with(
            name,
            "",
            "[[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"= 300\"\n",
        )
    }

    /// A plan drilling the stanza's backups, with `extra` tables (a `[probe]`)
    /// and `checks`.
    pub fn plan_with(&self, name: &str, extra: &str, checks: &str) -> String {
        format!(
            "name = \"{name}\"\ntimeout = \"3m\"\n[targets]\nrto = \"2m\"\nrpo = \"1d\"\n[source]\nkind = \"postgres\"\nhost = \"{d}\"\n\
             port = {port}\ndatabase = \"postgres\"\nuser = \"postgres\"\n[backup]\nmode = \"existing\"\nfrom = \"pgbackrest\"\n\
             [backup.pgbackrest]\nstanza = \"main\"\nconfig = \"{c}\"\n{extra}{checks}",
            d = self.dir.display(),
            port = self.port,
            c = self.conf.display()
        )
    }
}

impl Drop for Archived {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{}/pg_ctl", self.bin))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How long tests wait for something a daemon or a run should do.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `f` until it returns `Some`, failing with `what` after [`WAIT`].
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_until(what, WAIT, f)
}

/// Polls `f` every 100ms until it returns `Some`, failing with `what` after `limit`.
pub fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `drdrill daemon` running in a workspace on its own port; killed when dropped.
pub struct RunningDaemon {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Workspace {
    /// Writes a config that names every path under this folder (as
    /// [`Workspace::write_safety_config`] does) with the API on a free loopback
    /// port, `extra` appended; returns the port.
    pub fn write_daemon_config(&self, extra: &str) -> u16 {
        let port = free_port();
        let r = self.root.display();
        self.write_config(&format!(
            "database = \"{r}/var/drdrill.db\"\nplans = \"{r}/drills\"\nscratch = \"{r}/var/scratch\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{r}/var/api-token\"\n\
             [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n{extra}\n"
        ));
        port
    }

    /// Starts `drdrill daemon` with the config of [`Workspace::write_daemon_config`]
    /// and waits until its API answers.
    pub fn spawn_daemon(&self, port: u16) -> RunningDaemon {
        let log = self.join("daemon.log");
        let file = fs::File::create(&log).unwrap();
        let child = self
            .cmd()
            .arg("daemon")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .spawn()
            .unwrap();
        let mut d = RunningDaemon { child, port, log };
        wait_until("the daemon to answer /healthz", Duration::from_secs(60), || {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("daemon exited with {status} before it was ready:\n{}", d.log());
            }
            reqwest::blocking::get(d.url("/healthz")).ok().filter(|r| r.status().is_success())
        });
        d
    }
}

impl RunningDaemon {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path` as text; it must succeed.
    pub fn text(&self, path: &str) -> String {
        let r = reqwest::blocking::get(self.url(path)).unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.text().unwrap()
    }

    /// `GET path` as JSON; it must succeed.
    pub fn get(&self, path: &str) -> Value {
        serde_json::from_str(&self.text(path)).unwrap()
    }

    /// The plan `name` as `GET /api/plans` shows it.
    pub fn plan(&self, name: &str) -> Value {
        let all = self.get("/api/plans");
        all["plans"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap_or_else(|| {
            panic!("no plan {name} in /api/plans: {all:#}");
        })
    }

    /// The value of one sample of `/metrics`, `None` when it is not there.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.text("/metrics");
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            ref other => panic!("{name}: unexpected {other:?}"),
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
