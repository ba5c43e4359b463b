//! The results database as the one record of every run: skipped runs are in
//! the evidence chain, its tail and its approvals cannot be cut or forged with
//! the sqlite3 tool unnoticed, start-up recovery (daemon and `drdrill run`)
//! touches only runs whose process died, a database from a newer drdrill is
//! refused, and a full results disk still ends the run on record.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Workspace, describe, free_port, repo, stderr, stdout, wait_for};

fn verify(ws: &Workspace) -> (i32, String) {
    let out = ws.output(&["evidence", "verify"]);
    (out.status.code().unwrap_or(-1), format!("{}{}", stdout(&out), stderr(&out)))
}

fn verify_ok(ws: &Workspace) -> String {
    let (code, text) = verify(ws);
    assert_eq!(code, 0, "{text}");
    text
}

fn verify_broken(ws: &Workspace) -> String {
    let (code, text) = verify(ws);
    assert_eq!(code, 1, "verify should fail: {text}");
    assert!(text.contains("BROKEN"), "{text}");
    text
}

/// (status, reason) of run `id`, read as any tool would.
fn run_row(ws: &Workspace, id: i64) -> (String, String) {
    let db = ws.db();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.query_row("SELECT status, coalesce(reason, '') FROM runs WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
}

fn phases(ws: &Workspace, id: i64) -> Vec<String> {
    // Polled while drdrill opens and migrates the database: SQLite may answer
    // SQLITE_BUSY without calling the busy handler (a journal-mode switch), so retry.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let db = ws.db();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        let read = db.prepare("SELECT name FROM phases WHERE run_id = ?1 ORDER BY seq").and_then(|mut stmt| {
            stmt.query_map([id], |r| r.get(0)).and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
        });
        match read {
            Ok(v) => return v,
            Err(e) if std::time::Instant::now() < until => {
                eprintln!("reading phases: {e}; retrying");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot read the phases of run {id}: {e}"),
        }
    }
}

/// A workspace whose config names every path absolutely, allows destructive
/// failures under `allowed/`, and gives the daemon a free loopback port.
fn workspace() -> (Workspace, u16) {
    let ws = Workspace::empty();
    let port = free_port();
    fs::create_dir_all(ws.join("data")).unwrap();
    fs::write(ws.join("data/orders.txt"), "order 1\norder 2\n").unwrap();
    fs::create_dir_all(ws.join("allowed")).unwrap();
    ws.write_safety_config(&format!(
        "allowed_paths = [\"{a}\"]\n[api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{r}/var/api-token\"\n\
         [daemon]\ngrace_period = \"1s\"\n",
        a = ws.join("allowed").display(),
        r = ws.path().display()
    ));
    (ws, port)
}

/// A directory drill whose `command` check runs `check`; `top` adds top-level
/// keys, `tables` more tables (failures).
fn plan_with(ws: &Workspace, name: &str, top: &str, tables: &str, check: &str) {
    ws.write_plan(
        name,
        &format!(
            "{top}\ntimeout = \"5m\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n\
             {tables}\n[[check]]\nkind = \"command\"\nrun = \"{check}\"\n",
            ws.join("data").display()
        ),
    );
}

fn plan(ws: &Workspace, name: &str, top: &str, check: &str) {
    plan_with(ws, name, top, "", check);
}

/// A check that holds the run in its verify step until the file `go` exists.
fn wait_for_go(ws: &Workspace) -> String {
    format!("while [ ! -e {} ]; do sleep 0.1; done", ws.join("go").display())
}

/// `drdrill run PLAN` in the background, as from another terminal.
fn spawn_run(ws: &Workspace, plan: &str) -> Child {
    let log = fs::File::create(ws.join(&format!("{plan}.log"))).unwrap();
    ws.cmd().args(["run", plan]).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap()
}

fn wait_exit(child: &mut Child) -> Option<i32> {
    wait_for("the process to exit", || child.try_wait().unwrap()).code()
}

/// Waits until run `id` is in its checks (restore done): mid-run, scratch in use.
fn wait_mid_run(ws: &Workspace, id: i64) {
    wait_for("the run to reach its checks", || {
        (ws.db_path().exists() && phases(ws, id).iter().any(|p| p == "restore")).then_some(())
    });
    assert_eq!(run_row(ws, id).0, "running");
    assert!(ws.join(&format!("var/scratch/run-{id}")).exists());
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(ws: &Workspace, port: u16) -> Daemon {
        let log = ws.join("daemon.log");
        let file = fs::File::create(&log).unwrap();
        let mut child = ws
            .cmd()
            .arg("daemon")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/healthz");
        wait_for("the daemon to answer /healthz", || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("daemon exited with {status}:\n{}", fs::read_to_string(&log).unwrap_or_default());
            }
            reqwest::blocking::get(&url).ok().filter(|r| r.status().is_success())
        });
        Daemon { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) }, 0);
        assert_eq!(wait_exit(&mut self.child), Some(0), "{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- 10: skipped runs are in the chain ----

#[test]
fn runs_the_daemon_skips_are_chained_and_a_deleted_one_is_named() {
    let (ws, port) = workspace();
    // Longer than its one-second interval: the next firings overlap it and are skipped.
    plan(&ws, "slow", "schedule = \"* * * * * *\"", "sleep 2.5");
    let d = Daemon::start(&ws, port);
    let skipped: i64 = wait_for("a skipped run", || {
        let db = ws.db();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db.query_row("SELECT id FROM runs WHERE status = 'skipped' ORDER BY id LIMIT 1", [], |r| r.get(0)).ok()
    });
    d.stop();
    assert!(run_row(&ws, skipped).1.contains("still running"));

    // An untouched history verifies, and reports carry no BROKEN banner.
    let ok = verify_ok(&ws);
    let record = ws.sqlite3(&format!("SELECT record FROM evidence WHERE run_id = {skipped}"));
    assert!(record.contains(r#""result":"skipped""#) && record.contains("still running"), "{record}");
    let out = ws.output(&["report", "--format", "html", "-o", "r.html"]);
    assert!(out.status.success(), "{}", describe(&out));
    let html = fs::read_to_string(ws.join("r.html")).unwrap();
    assert!(!html.contains("BROKEN"), "{ok}");

    // Deleting the skipped run with its record is named.
    let seq = ws.sqlite3(&format!("SELECT seq FROM evidence WHERE run_id = {skipped}"));
    ws.sqlite3(&format!(
        "DROP TRIGGER evidence_append_only_delete; DELETE FROM evidence WHERE run_id = {skipped}; DELETE FROM runs WHERE id = {skipped}"
    ));
    let msg = verify_broken(&ws);
    // First, in the middle or at the end of the chain: named as a deletion.
    let seq: i64 = seq.parse().unwrap();
    let names = |n: i64| msg.contains(&format!("#{n} ")) || msg.contains(&format!("#{n})"));
    assert!((names(seq) || names(seq + 1)) && msg.contains("deleted"), "{msg}");
}

#[test]
fn a_database_from_drdrill_0_1_with_a_skipped_run_verifies_after_the_upgrade() {
    // Written by the 0.1.0 binary: format-1 records, and a skipped run without one.
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("var")).unwrap();
    let dump = fs::File::open(repo().join("tests/fixtures/results-v0.1.0.sql")).unwrap();
    let loaded = Command::new("sqlite3").arg(ws.db_path()).stdin(dump).output().unwrap();
    assert!(loaded.status.success(), "{}", describe(&loaded));

    let ok = verify_ok(&ws);
    assert!(ok.contains("OK, 4 record(s)"), "{ok}");
    // The old records keep the encoding they were hashed with; the skipped run got its record.
    let formats = ws.sqlite3("SELECT group_concat(json_extract(record, '$.format'), ',') FROM evidence ORDER BY seq");
    assert_eq!(formats, "1,1,1,2");
    assert_eq!(ws.sqlite3("SELECT run_id FROM evidence WHERE seq = 4"), "4");
    // And they are still checked against their rows.
    ws.sqlite3("UPDATE run_notes SET text = 'game day' WHERE run_id = 1");
    let msg = verify_broken(&ws);
    assert!(msg.contains("evidence record #1 (run 1)") && msg.contains("`notes`"), "{msg}");
}

// ---- 11: the chain's tail, approvals and notes ----

#[test]
fn deleting_the_newest_run_with_its_record_is_named() {
    let ws = Workspace::quickstart_history();
    ws.sqlite3(
        "DROP TRIGGER evidence_append_only_delete; DELETE FROM evidence WHERE seq = 3;
         DELETE FROM checks WHERE run_id = 3; DELETE FROM measurements WHERE run_id = 3;
         DELETE FROM phases WHERE run_id = 3; DELETE FROM runs WHERE id = 3",
    );
    let msg = verify_broken(&ws);
    assert!(msg.contains("evidence record #3 (run 3)") && msg.contains("deleted from the end of the chain"), "{msg}");
    // Reports say so too.
    let out = ws.output(&["report", "--format", "json", "-o", "r.json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_str(&fs::read_to_string(ws.join("r.json")).unwrap()).unwrap();
    assert!(doc["chain_status"].as_str().unwrap().starts_with("broken"), "{}", doc["chain_status"]);
}

#[test]
fn deleting_the_head_log_is_named() {
    let ws = Workspace::quickstart();
    assert_eq!(ws.run_quickstart(), 0);
    let log = ws.join("var/drdrill.db.evidence-heads");
    assert!(fs::read_to_string(&log).unwrap().starts_with("#1 "));
    fs::remove_file(&log).unwrap();
    let msg = verify_broken(&ws);
    assert!(msg.contains("head log") && msg.contains("is missing"), "{msg}");
}

/// Runs the quickstart drill as a game day: it pauses before restore and is
/// approved by a line typed at the terminal.
fn approved_game_day(ws: &Workspace) {
    let text = fs::read_to_string(ws.join("drills/quickstart.toml")).unwrap();
    ws.write_plan("quickstart", &format!("pause_before = [\"restore\"]\n{text}"));
    let mut child = ws
        .cmd()
        .args(["run", "quickstart"])
        .env("USER", "oncall")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines.next().unwrap_or_else(|| panic!("no gate; stderr:\n{}", seen.join("\n"))).unwrap();
        let at_gate = line.contains("waiting for approval before restore");
        seen.push(line);
        if at_gate {
            break;
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"restore approved by the CFO\n").unwrap();
    std::thread::spawn(move || lines.count());
    assert_eq!(wait_exit(&mut child), Some(0), "{}", seen.join("\n"));
    drop(stdin);
}

#[test]
fn approvals_are_in_the_record_and_a_forged_one_is_caught_and_flagged_by_show() {
    let ws = Workspace::quickstart();
    approved_game_day(&ws);
    let record = ws.sqlite3("SELECT record FROM evidence WHERE run_id = 1");
    assert!(
        record.contains(r#""gates":[{"gate":"restore""#)
            && record.contains(r#""decided_by":"terminal (user oncall)""#)
            && record.contains(r#""note":"restore approved by the CFO""#),
        "{record}"
    );
    verify_ok(&ws);

    // Who approved, rewritten.
    ws.sqlite3("UPDATE gate_approvals SET decided_by = 'mallory' WHERE run_id = 1");
    let msg = verify_broken(&ws);
    assert!(msg.contains("evidence record #1 (run 1)") && msg.contains("gates"), "{msg}");
    let shown = stdout(&ws.output(&["show", "1"]));
    assert!(shown.contains("gate before restore  approved by terminal (user oncall)"), "{shown}");
    assert!(shown.contains("WARNING") && shown.contains("by mallory\" is not in the run's evidence record"), "{shown}");
    assert!(!shown.contains("approved by mallory at"), "{shown}");

    // An approval that never happened, added.
    ws.sqlite3("UPDATE gate_approvals SET decided_by = 'terminal (user oncall)' WHERE run_id = 1");
    verify_ok(&ws);
    ws.sqlite3(
        "INSERT INTO gate_approvals (run_id, gate, waiting_since, decided_at, outcome, decided_by)
         VALUES (1, 'failure', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 'approved', 'mallory')",
    );
    let msg = verify_broken(&ws);
    assert!(msg.contains("gates"), "{msg}");
    let shown = stdout(&ws.output(&["show", "1"]));
    assert!(shown.contains("WARNING") && shown.contains("gate before failure approved by mallory"), "{shown}");
}

#[test]
fn a_note_cannot_be_given_to_another_author() {
    let ws = Workspace::quickstart();
    let out = ws.output(&["run", "quickstart", "--note", "game day, observer: J. Doe"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // The same words, so one `author: text` line, but another author.
    ws.sqlite3(
        "UPDATE run_notes SET author = 'operator (--note): game day, observer', text = 'J. Doe' WHERE run_id = 1",
    );
    let msg = verify_broken(&ws);
    assert!(msg.contains("evidence record #1 (run 1)") && msg.contains("`notes`"), "{msg}");
}

// ---- 12: recovery touches only runs whose process died ----

#[test]
fn a_drdrill_run_in_another_terminal_survives_the_daemon_and_other_runs_starting() {
    let (ws, port) = workspace();
    plan(&ws, "long", "", &wait_for_go(&ws));
    plan(&ws, "quick", "", "true");
    let mut long = spawn_run(&ws, "long");
    wait_mid_run(&ws, 1);

    // Another `drdrill run` starts and ends meanwhile.
    let out = ws.output(&["run", "quick"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!stderr(&out).contains("run 1"), "{}", stderr(&out));
    assert_eq!(run_row(&ws, 1).0, "running");
    assert!(ws.join("var/scratch/run-1").exists());

    // The daemon starts meanwhile.
    let d = Daemon::start(&ws, port);
    assert_eq!(run_row(&ws, 1).0, "running", "{}", d.log());
    assert!(ws.join("var/scratch/run-1").exists(), "{}", d.log());

    fs::write(ws.join("go"), "").unwrap();
    let code = wait_exit(&mut long);
    let log = fs::read_to_string(ws.join("long.log")).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(run_row(&ws, 1).0, "passed", "{log}");
    d.stop();
    verify_ok(&ws);
}

#[test]
fn drdrill_run_records_a_crashed_run_sweeps_its_scratch_and_names_its_quarantine() {
    let (ws, _) = workspace();
    let victim = ws.join("allowed/victim.txt");
    fs::write(&victim, "live data\n").unwrap();
    plan_with(
        &ws,
        "destroys",
        "destructive = true",
        &format!("[[failure]]\nkind = \"delete\"\npath = \"{}\"\n", victim.display()),
        &wait_for_go(&ws),
    );
    plan(&ws, "quick", "", "true");
    let mut crashed = spawn_run(&ws, "destroys");
    wait_mid_run(&ws, 1);
    assert!(!victim.exists(), "moved into quarantine");
    let pid = crashed.id();
    crashed.kill().unwrap();
    crashed.wait().unwrap();

    let out = ws.output(&["run", "quick"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let err = stderr(&out);
    let quarantine = ws.join("var/scratch/quarantine/run-1");
    assert!(err.contains("warning: run 1 of destroys was left `running`"), "{err}");
    assert!(err.contains(&format!("{}", ws.join("var/scratch/run-1").display())), "{err}");
    assert!(
        err.contains("left live data in quarantine folder") && err.contains(&quarantine.display().to_string()),
        "{err}"
    );
    let (status, reason) = run_row(&ws, 1);
    assert_eq!(status, "aborted");
    assert!(reason.contains(&format!("`drdrill run` stopped (pid {pid}, no longer running)")), "{reason}");
    assert!(!ws.join("var/scratch/run-1").exists());
    // The live data stays where a person can put it back.
    assert!(fs::read_dir(&quarantine).unwrap().count() >= 2);
    verify_ok(&ws);
}

// ---- 22: a newer schema is refused ----

#[test]
fn a_results_database_from_a_newer_drdrill_is_refused_untouched() {
    let ws = Workspace::quickstart();
    assert_eq!(ws.run_quickstart(), 0);
    ws.sqlite3("INSERT INTO schema_migrations (version, applied_at) VALUES (99, '2030-01-01T00:00:00.000Z')");
    for args in [&["history"][..], &["run", "quickstart"][..]] {
        let out = ws.output(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains("schema version is 99") && err.contains("knows schema versions up to"), "{err}");
        assert!(err.contains("cannot use results database var/drdrill.db"), "{err}");
    }
    assert_eq!(ws.sqlite3("SELECT count(*) FROM runs"), "1");
}

// ---- 4: the results database's disk fills up mid-run ----

/// A 4 MiB tmpfs at `dir`, unmounted when dropped (needs root, as in CI).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test mounts a tmpfs and must run as root (scripts/test does)");
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(dir).status().unwrap();
        assert!(ok.success(), "cannot mount a tmpfs");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A workspace whose results database lives on a small tmpfs, with a plan
/// `fill` whose check fills that disk (after deleting the space drdrill keeps
/// in reserve there, if `no_reserve`), and `quick`.
fn small_results_disk(no_reserve: bool) -> (Workspace, Tmpfs) {
    let ws = Workspace::empty();
    let small = ws.join("small");
    let disk = Tmpfs::mount(&small);
    let r = ws.path().display();
    ws.write_config(&format!(
        "database = \"{r}/small/drdrill.db\"\nplans = \"{r}/drills\"\nscratch = \"{r}/var/scratch\"\n\
         [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n"
    ));
    fs::create_dir_all(ws.join("data")).unwrap();
    fs::write(ws.join("data/orders.txt"), "order 1\n").unwrap();
    let before =
        if no_reserve { format!("rm -f {}; ", small.join("drdrill.db.reserve").display()) } else { String::new() };
    let fill = format!("{before}dd if=/dev/zero of={} bs=64k 2>/dev/null; true", small.join("fill").display());
    plan(&ws, "fill", "", &fill);
    plan(&ws, "quick", "", "true");
    (ws, disk)
}

fn small_db_row(ws: &Workspace, id: i64) -> (String, String) {
    let db = rusqlite::Connection::open(ws.join("small/drdrill.db")).unwrap();
    db.query_row("SELECT status, coalesce(reason, '') FROM runs WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
}

#[test]
fn a_full_results_disk_mid_run_still_records_the_run_and_names_the_disk() {
    let (ws, _disk) = small_results_disk(false);
    let db = ws.join("small/drdrill.db").display().to_string();
    let (code, report, err) = ws.drill_report("fill", &[]);
    assert_eq!(code, 1, "{report:#}\n{err}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("the disk holding the results database {db} is full")), "{reason}");
    fs::remove_file(ws.join("small/fill")).unwrap();

    let (status, recorded) = small_db_row(&ws, 1);
    assert_eq!((status.as_str(), recorded.as_str()), ("failed", reason));
    // Phases that could not be written as they ended were written with the end.
    let out = ws.output(&["show", "--json", "1"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = shown["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prepare", "backup", "failure", "restore", "verify", "cleanup"]);
    let out = ws.output(&["evidence", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // The next run takes its reserve back and records as usual.
    let (code, report, _) = ws.drill_report("quick", &[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(ws.join("small/drdrill.db.reserve").metadata().unwrap().len() > 0);
}

#[test]
fn when_nothing_can_be_written_the_next_start_records_the_full_disk_as_the_cause() {
    // The reserve is gone too, so not even the end fits.
    let (ws, _disk) = small_results_disk(true);
    let db = ws.join("small/drdrill.db").display().to_string();
    let (code, out, err) = ws.run(&["run", "fill"], &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains(&format!("the disk holding the results database {db} is full")), "{err}");
    assert_eq!(small_db_row(&ws, 1).0, "running");
    fs::remove_file(ws.join("small/fill")).unwrap();

    let (code, _, err) = ws.run(&["run", "quick"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: run 1 of fill was left `running`"), "{err}");
    let (status, reason) = small_db_row(&ws, 1);
    assert_eq!(status, "aborted");
    assert!(
        reason.contains("without recording the run's result")
            && reason.contains(&format!("the disk holding the results database {db} is full")),
        "{reason}"
    );
    let out = ws.output(&["evidence", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}
