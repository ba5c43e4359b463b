//! Drills of backups made by the tools teams already use, left where they are:
//! restic and borg repositories and a pgBackRest stanza made here by the real
//! tools, and dump files some other job wrote into a store. Each drill passes,
//! leaves the repository byte-identical, fails on a damaged backup with the
//! tool's own words, and says clearly what is wrong with a bad password or
//! filters that match nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Workspace, env, measurement, phase, reason, sha256};

/// Every file below `root` with its sha256: what "byte-identical" compares.
fn repo_state(root: &Path) -> BTreeMap<PathBuf, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(root).unwrap().to_path_buf(), sha256(e.path())))
        .collect()
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A live folder with a few files, nested, like a team's data.
fn live_data(ws: &Workspace) -> PathBuf {
    let data = ws.join("live/app/data");
    fs::create_dir_all(data.join("uploads/2026")).unwrap();
    fs::write(data.join("config.yml"), "listen: 8080\n").unwrap();
    fs::write(data.join("uploads/2026/report.pdf"), vec![7u8; 300_000]).unwrap();
    data
}

fn directory_plan(name: &str, data: &Path, from: &str, table: &str) -> String {
    format!(
        "name = \"{name}\"\ntimeout = \"2m\"\n[targets]\nrto = \"1m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n\
         [backup]\nmode = \"existing\"\nfrom = \"{from}\"\n[backup.{from}]\n{table}\n[[check]]\nkind = \"tree-matches-source\"\n",
        data.display()
    )
}

/// The largest data file of a repository, for damaging it (never a
/// manifest: pgBackRest keeps two and rightly restores from the good one).
fn a_data_file(repo: &Path, under: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(repo.join(under))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().contains("manifest"))
        .map(|e| e.into_path())
        .collect();
    files.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    files.into_iter().next().unwrap_or_else(|| panic!("no file under {under} in {}", repo.display()))
}

fn flip_middle_byte(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    // Packs are read-only files: make them writable for the damage only.
    let mut perms = fs::metadata(file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs::set_permissions(file, perms).unwrap();
    fs::write(file, bytes).unwrap();
}

#[test]
fn restic_snapshots_are_drilled_unchanged_and_damage_or_a_wrong_password_fails() {
    let ws = Workspace::empty();
    let data = live_data(&ws);
    let repo = ws.join("restic-repo");
    let pass = ws.write("restic.pass", "correct horse\n");
    let restic = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.arg("-r").arg(&repo).arg("--password-file").arg(&pass).args(args);
        sh(&mut c)
    };
    restic(&["init", "-q"]);
    restic(&["backup", "-q", "--host", "app1", "--tag", "nightly", data.to_str().unwrap()]);
    restic(&["backup", "-q", "--host", "other", data.to_str().unwrap()]);
    let table = format!(
        "repository = \"{}\"\npassword_file = \"{}\"\nhost = \"app1\"\ntags = [\"nightly\"]",
        repo.display(),
        pass.display()
    );
    ws.write_plan("restic-app", &directory_plan("restic-app", &data, "restic", &table));
    let before = repo_state(&repo);
    let report = ws.drill("restic-app", &[]);
    assert_eq!(report["status"], "passed", "{report:#}");
    let backup = phase(&report, "backup");
    assert!(backup["detail"].as_str().unwrap().contains("of app1:"), "the host filter chose: {backup}");
    assert_eq!(measurement(&report, "rpo")["method"], "backup age (the backup's own time)");
    assert_eq!(before, repo_state(&repo), "the drill changed the restic repository");
    assert!(ws.scratch_leftovers().is_empty());

    // Filters that match nothing say what to run to see what there is.
    ws.write_plan("restic-app", &directory_plan("restic-app", &data, "restic", &table.replace("app1", "app9")));
    let report = ws.drill("restic-app", &[]);
    assert!(
        reason(&report).contains("no restic snapshot of host app9") && reason(&report).contains("restic -r"),
        "{report:#}"
    );

    // A wrong password is named as such.
    let wrong = ws.write("wrong.pass", "battery staple\n");
    let bad = table.replace(pass.to_str().unwrap(), wrong.to_str().unwrap());
    ws.write_plan("restic-app", &directory_plan("restic-app", &data, "restic", &bad));
    let report = ws.drill("restic-app", &[]);
    assert_eq!(report["status"], "failed");
    assert!(reason(&report).contains("does not open the repository"), "{report:#}");

    // A damaged pack fails the drill in restic's words, never a pass.
    flip_middle_byte(&a_data_file(&repo, "data"));
    ws.write_plan("restic-app", &directory_plan("restic-app", &data, "restic", &table));
    let report = ws.drill("restic-app", &[]);
    assert_eq!(report["status"], "failed", "a damaged pack passed: {report:#}");
    assert!(reason(&report).contains("restic restore of snapshot"), "{report:#}");
}

#[test]
fn borg_archives_are_drilled_unchanged_and_damage_fails() {
    let ws = Workspace::empty();
    let data = live_data(&ws);
    let repo = ws.join("borg-repo");
    let pass = ws.write("borg.pass", "borg passphrase\n");
    let borg = |args: &[&str]| {
        let mut c = Command::new("borg");
        c.args(args).env("BORG_PASSPHRASE", "borg passphrase").env("BORG_BASE_DIR", ws.join("borg-home"));
        sh(&mut c)
    };
    borg(&["init", "-e", "repokey", repo.to_str().unwrap()]);
    borg(&["create", &format!("{}::app-2026-11-30", repo.display()), data.to_str().unwrap()]);
    borg(&["create", &format!("{}::db-2026-11-30", repo.display()), ws.join("live").to_str().unwrap()]);
    let table =
        format!("repository = \"{}\"\npassphrase_file = \"{}\"\nmatch = \"app-*\"", repo.display(), pass.display());
    ws.write_plan("borg-app", &directory_plan("borg-app", &data, "borg", &table));
    let before = repo_state(&repo);
    let report = ws.drill("borg-app", &[]);
    assert_eq!(report["status"], "passed", "{report:#}");
    assert!(phase(&report, "backup")["detail"].as_str().unwrap().contains("archive app-2026-11-30"), "{report:#}");
    assert_eq!(before, repo_state(&repo), "the drill changed the borg repository");

    let wrong = ws.write("wrong.pass", "nope\n");
    ws.write_plan(
        "borg-app",
        &directory_plan("borg-app", &data, "borg", &table.replace(pass.to_str().unwrap(), wrong.to_str().unwrap())),
    );
    let report = ws.drill("borg-app", &[]);
    assert!(reason(&report).contains("passphrase"), "{report:#}");

    flip_middle_byte(&a_data_file(&repo, "data"));
    ws.write_plan("borg-app", &directory_plan("borg-app", &data, "borg", &table));
    let report = ws.drill("borg-app", &[]);
    assert_eq!(report["status"], "failed", "a damaged segment passed: {report:#}");
    assert!(reason(&report).contains("borg extract of archive"), "{report:#}");
}

/// A live PostgreSQL cluster of its own that archives WAL into a pgBackRest
/// repository, as a team runs it; stopped when dropped.
pub(crate) struct Archived {
    pub(crate) dir: PathBuf,
    bin: String,
    pub(crate) port: u16,
    pub(crate) conf: PathBuf,
}

impl Archived {
    pub(crate) fn start(ws: &Workspace) -> Archived {
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

    pub(crate) fn pgbackrest(&self, args: &[&str]) -> String {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "pgbackrest"])
            .arg(format!("--config={}", self.conf.display()))
            .arg("--stanza=main")
            .args(args);
        sh(&mut c)
    }

    pub(crate) fn sql(&self, sql: &str) -> String {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(format!("{}/psql", self.bin))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-c", sql]);
        sh(&mut c).trim().to_string()
    }

    fn plan(&self, name: &str) -> String {
        format!(
            "name = \"{name}\"\ntimeout = \"3m\"\n[targets]\nrto = \"2m\"\nrpo = \"1d\"\n[source]\nkind = \"postgres\"\nhost = \"{d}\"\n\
             port = {port}\ndatabase = \"postgres\"\nuser = \"postgres\"\n[backup]\nmode = \"existing\"\nfrom = \"pgbackrest\"\n\
             [backup.pgbackrest]\nstanza = \"main\"\nconfig = \"{c}\"\n\
             [[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"= 300\"\n",
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn pgbackrest_backups_are_restored_with_the_wal_archive_replayed_and_left_unchanged() {
    let ws = Workspace::empty();
    let pg = Archived::start(&ws);
    pg.sql("CREATE TABLE orders (id serial PRIMARY KEY, total int); INSERT INTO orders (total) SELECT g FROM generate_series(1, 100) g");
    pg.pgbackrest(&["backup", "--type=full"]);
    // Written after the base backup: only the WAL archive holds these rows.
    pg.sql("INSERT INTO orders (total) SELECT g FROM generate_series(1, 200) g");
    pg.sql("SELECT pg_switch_wal()");
    let repo = pg.dir.join("repo");
    // Wait until the switched segment is in the archive.
    for _ in 0..100 {
        if pg.sql("SELECT last_archived_wal IS NOT NULL AND last_archived_time > now() - interval '1 minute' FROM pg_stat_archiver") == "t" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    ws.write_plan("pgbr", &pg.plan("pgbr"));
    let before = repo_state(&repo);
    let report = ws.drill("pgbr", &[]);
    assert_eq!(report["status"], "passed", "the archive was not replayed, or the drill failed: {report:#}");
    assert_eq!(before, repo_state(&repo), "the drill changed the pgBackRest repository");
    assert!(ws.scratch_leftovers().is_empty());
    assert!(
        crate::common::processes_with(ws.join("var/scratch").to_str().unwrap()).is_empty(),
        "a restored cluster survived"
    );

    // A stanza that does not exist is named.
    ws.write_plan("pgbr", &pg.plan("pgbr").replace("stanza = \"main\"", "stanza = \"nope\""));
    let report = ws.drill("pgbr", &[]);
    assert!(reason(&report).contains("stanza `nope`"), "{report:#}");

    // A damaged backup file fails the restore in pgBackRest's words.
    flip_middle_byte(&a_data_file(&repo, "backup"));
    ws.write_plan("pgbr", &pg.plan("pgbr"));
    let report = ws.drill("pgbr", &[]);
    assert_eq!(report["status"], "failed", "a damaged backup passed: {report:#}");
}

#[test]
fn dump_files_in_a_store_are_drilled_and_least_tested_visits_each_once() {
    let ws = Workspace::empty();
    let store = ws.join("var/store");
    let dumps = store.join("nightly/app");
    fs::create_dir_all(&dumps).unwrap();
    // Three nightly SQLite copies, compressed three ways, named by their time.
    for (i, (day, compress)) in
        [("20261128-023000", "gzip"), ("20261129-023000", "zstd"), ("20261130-023000", "xz")].iter().enumerate()
    {
        let db = ws.join(&format!("copy{i}.db"));
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(&format!("CREATE TABLE orders (id INTEGER PRIMARY KEY); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < {}) INSERT INTO orders SELECT i FROM n;", 10 + i)).unwrap();
        drop(c);
        let out = dumps.join(format!(
            "app-{day}.db.{}",
            match *compress {
                "gzip" => "gz",
                "zstd" => "zst",
                _ => "xz",
            }
        ));
        let flag = if *compress == "zstd" { "-q" } else { "-c" };
        let mut cmd = Command::new(compress);
        if *compress == "zstd" {
            cmd.args([flag, "-o"]).arg(&out).arg(&db);
            sh(&mut cmd);
        } else {
            let bytes = Command::new(compress).arg("-c").arg(&db).output().unwrap().stdout;
            fs::write(&out, bytes).unwrap();
        }
    }
    ws.write_plan(
        "nightly",
        "name = \"nightly\"\n[targets]\nrto = \"1m\"\nrpo = \"30d\"\n[source]\nkind = \"sqlite\"\npath = \"live.db\"\n\
         [backup]\nmode = \"existing\"\nfrom = \"objects\"\nselect = \"least-tested\"\n\
         [backup.objects]\nstore = \"local\"\nprefix = \"nightly/app\"\nformat = \"sqlite\"\ntime_pattern = \"%Y%m%d-%H%M%S\"\n\
         [[check]]\nkind = \"sqlite-integrity\"\n[[check]]\nkind = \"sqlite-query\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \">= 10\"\n",
    );
    // The live database the backups protect exists too (the source is checked).
    rusqlite::Connection::open(ws.join("live.db")).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    let before = repo_state(&store);
    let mut chosen = Vec::new();
    for _ in 0..4 {
        let report = ws.drill("nightly", &[]);
        assert_eq!(report["status"], "passed", "{report:#}");
        chosen.push(report["backup_id"].as_str().unwrap().to_string());
    }
    let first: std::collections::BTreeSet<_> = chosen[..3].iter().collect();
    assert_eq!(first.len(), 3, "least-tested repeated a backup before visiting all: {chosen:?}");
    assert_eq!(chosen[3], chosen[0], "then it starts over with the longest untested: {chosen:?}");
    assert_eq!(before, repo_state(&store), "the drill changed the dump files");

    // A prefix with no dump is named.
    let text = fs::read_to_string(ws.join("drills/nightly.toml")).unwrap().replace("nightly/app", "nightly/none");
    ws.write_plan("nightly", &text);
    let report = ws.drill("nightly", &[]);
    assert!(reason(&report).contains("no object under `nightly/none`"), "{report:#}");
}
