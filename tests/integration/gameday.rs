//! Game days through the real binary: dry runs that touch nothing, approval
//! gates driven through stdin, operator notes, and aborts (Ctrl-C, SIGTERM)
//! that still roll every failure back.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::common::{Workspace, describe, expect_line, sha256, spawn, wait_exit};

/// A workspace with live data under `allowed/` and a config that allows it, plus `safety`.
fn workspace(safety: &str) -> Workspace {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("allowed/data")).unwrap();
    fs::write(ws.join("allowed/data/a.txt"), "alpha\n".repeat(100)).unwrap();
    fs::write(ws.join("allowed/victim.txt"), "live data\n".repeat(50)).unwrap();
    ws.write_safety_config(&format!("allowed_paths = [\"{}\"]\n{safety}", ws.join("allowed").display()));
    ws
}

fn data_plan(ws: &Workspace, name: &str, top: &str, rest: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\ntimeout = \"1m\"\ndestructive = true\n{top}\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n\
         [source]\nkind = \"directory\"\npath = \"{}\"\n{rest}\n[[check]]\nkind = \"tree-matches-source\"\n",
        ws.join("allowed/data").display()
    );
    ws.write_plan(name, &text)
}

/// The binary as an operator named `tester` runs it at a terminal.
fn drdrill(ws: &Workspace) -> Command {
    let mut c = ws.cmd();
    c.env("USER", "tester");
    c
}

/// Starts `drdrill run PLAN` as a game day is run: at a terminal, stdin open.
fn spawn_run(ws: &Workspace, plan: &Path) -> (Child, Receiver<String>) {
    let mut c = drdrill(ws);
    c.arg("run").arg(plan);
    spawn(c)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every entry below `root`: its type, and its content hash or link target.
fn tree_state(root: &Path) -> BTreeMap<PathBuf, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let t = e.file_type();
            let v = if t.is_symlink() {
                format!("link {}", fs::read_link(e.path()).unwrap().display())
            } else if t.is_file() {
                format!("file {}", sha256(e.path()))
            } else {
                "dir".into()
            };
            (e.path().strip_prefix(root).unwrap().to_path_buf(), v)
        })
        .collect()
}

#[test]
fn dry_run_lists_every_target_with_its_rule_and_touches_nothing() {
    let ws = workspace("allowed_processes = [\"sleep\"]\nallow_command_failures = true");
    let mut sleeper = Command::new("sleep").arg("300").spawn().unwrap();
    fs::write(ws.join("allowed/app.pid"), sleeper.id().to_string()).unwrap();
    std::os::unix::fs::symlink(ws.join("allowed/victim.txt"), ws.join("allowed/link")).unwrap();
    let plan = data_plan(
        &ws,
        "everything",
        "pause_before = [\"failure\", \"restore\"]",
        &format!(
            "[[failure]]\nkind = \"kill\"\npidfile = \"{a}/app.pid\"\n\
             [[failure]]\nkind = \"corrupt\"\npath = \"{a}/link\"\noffsets = [0]\nbytes = 4\n\
             [[failure]]\nkind = \"truncate\"\npath = \"{a}/victim.txt\"\n\
             [[failure]]\nkind = \"delete\"\npath = \"{a}/data/../victim.txt\"\n\
             [[failure]]\nkind = \"command\"\nrun = \"touch {a}/should-not-exist\"\n",
            a = ws.join("allowed").display()
        ),
    );
    fs::write(
        ws.join("strict.toml"),
        format!("database = \"{r}/var/drdrill.db\"\nscratch = \"{r}/var/scratch\"\n", r = ws.path().display()),
    )
    .unwrap();
    let before = tree_state(ws.path());
    let out = drdrill(&ws).args(["run", "--dry-run"]).arg(&plan).output().unwrap();
    let after = tree_state(ws.path());
    assert_eq!(before, after, "a dry run changes no file, creates no database, store or scratch");
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let victim = ws.join("allowed/victim.txt").display().to_string();
    let allowed_rule = format!("allowed: inside [safety] allowed_paths entry `{}`", ws.join("allowed").display());
    for needle in [
        "gate     wait for approval before failure".to_string(),
        "gate     wait for approval before restore".to_string(),
        format!(
            "process in pidfile {}/app.pid (= pid {}, `sleep`): allowed",
            ws.join("allowed").display(),
            sleeper.id()
        ),
        format!("link (= {victim}): {allowed_rule}"),
        format!("data/../victim.txt (= {victim}): {allowed_rule}"),
        "command `touch".to_string(),
        "allow_command_failures = true".to_string(),
        "allowed: every target is inside the blast radius".to_string(),
    ] {
        assert!(stdout.contains(&needle), "dry run lacks {needle:?}:\n{stdout}");
    }
    assert!(sleeper.try_wait().unwrap().is_none(), "the process was not signalled");

    // The same plan under a config that allows less: every refusal is named, exit 2.
    let out = drdrill(&ws)
        .env("DRDRILL_CONFIG", ws.join("strict.toml"))
        .args(["run", "--dry-run"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("REFUSED").count(), 5, "{stdout}");
    assert!(stdout.contains("refused: `drdrill run` would refuse this plan"), "{stdout}");
    assert_eq!(before, tree_state(ws.path()));
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn a_gate_holds_the_run_until_enter_is_pressed_and_records_who_approved() {
    let ws = workspace("");
    let victim = ws.join("allowed/victim.txt");
    let original = fs::read(&victim).unwrap();
    let plan = data_plan(
        &ws,
        "gated",
        "pause_before = [\"failure\"]",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{}\"\n[[check]]\nkind = \"command\"\nrun = \"test ! -e {}\"\n",
            victim.display(),
            victim.display()
        ),
    );
    let (mut child, rx) = spawn_run(&ws, &plan);
    let mut seen = Vec::new();
    expect_line(&rx, "waiting for approval before failure", &mut seen);
    // Held: nothing is deleted and the run does not go on while nobody approves.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the run went past the gate unapproved");
    assert!(victim.exists(), "the failure ran before approval");

    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go ahead, the on-call is ready\n").unwrap();
    stdin.flush().unwrap();
    expect_line(&rx, "approved the gate before failure", &mut seen);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    drop(stdin);
    assert!(status.success(), "{}", seen.join("\n"));
    assert_eq!(fs::read(&victim).unwrap(), original, "rolled back after the drill");

    let run = ws.last_run();
    let gate = &run["gates"][0];
    assert_eq!(gate["gate"], "failure");
    assert_eq!(gate["outcome"], "approved");
    assert_eq!(gate["decided_by"], "terminal (user tester)");
    assert_eq!(gate["note"], "go ahead, the on-call is ready");
    let waited = chrono::DateTime::parse_from_rfc3339(gate["decided_at"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(gate["waiting_since"].as_str().unwrap()).unwrap();
    assert!(waited.num_milliseconds() >= 1500, "the gate recorded its wait: {gate}");
    let names: Vec<&str> = run["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prepare", "backup", "gate", "failure", "restore", "verify", "rollback", "cleanup"]);

    // `drdrill show` prints the gate and a note added after the run.
    let id = run["summary"]["id"].as_i64().unwrap().to_string();
    let out = drdrill(&ws).args(["note", &id, "post-mortem:", "restore", "was", "quick"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = drdrill(&ws).args(["show", &id]).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("gate before failure  approved by terminal (user tester)"), "{shown}");
    assert!(shown.contains("terminal (user tester): post-mortem: restore was quick"), "{shown}");
}

#[test]
fn lines_typed_during_the_run_become_timestamped_notes() {
    let ws = workspace("allow_command_failures = true");
    let started = ws.join("started");
    let go = ws.join("go");
    let plan = data_plan(
        &ws,
        "noted",
        "",
        &format!(
            "[[failure]]\nkind = \"command\"\nrun = \"touch {s}; while [ ! -e {g} ]; do sleep 0.05; done\"\n",
            s = started.display(),
            g = go.display()
        ),
    );
    let (mut child, rx) = spawn_run(&ws, &plan);
    wait_for("the failure command to start", || started.exists());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"db latency alarm fired\n\nwriters are failing over\n").unwrap();
    stdin.flush().unwrap();
    let mut seen = Vec::new();
    expect_line(&rx, "note recorded", &mut seen);
    expect_line(&rx, "note recorded", &mut seen);
    fs::write(&go, "").unwrap();
    drop(stdin);
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success(), "{}", seen.join("\n"));
    let run = ws.last_run();
    let notes = run["notes"].as_array().unwrap();
    let texts: Vec<&str> = notes.iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["db latency alarm fired", "writers are failing over"], "empty lines are not notes");
    assert!(notes.iter().all(|n| n["author"] == "terminal (user tester)" && n["at"].as_str().unwrap().ends_with('Z')));
}

#[test]
fn ctrl_c_in_the_middle_of_a_failure_rolls_everything_back_and_records_aborted() {
    let ws = workspace("allow_command_failures = true");
    let victim = ws.join("allowed/victim.txt");
    let original = fs::read(&victim).unwrap();
    let marker = ws.join("rolled-back");
    let plan = data_plan(
        &ws,
        "abort-mid",
        "",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{v}\"\n\
             [[failure]]\nkind = \"command\"\nrun = \"sleep 30\"\nrollback = \"echo undone > {m}\"\n",
            v = victim.display(),
            m = marker.display()
        ),
    );
    let started = Instant::now();
    let (mut child, rx) = spawn_run(&ws, &plan);
    wait_for("the delete to happen", || !victim.exists());
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_exit(&mut child, Duration::from_secs(25));
    let seen: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(1), "{}", seen.join("\n"));
    assert!(started.elapsed() < Duration::from_secs(20), "the 30s command was killed, not waited for");
    assert_eq!(fs::read(&victim).unwrap(), original, "the delete was rolled back");
    assert_eq!(fs::read_to_string(&marker).unwrap(), "undone\n", "the command's rollback ran");
    assert!(seen.iter().any(|l| l.contains("Ctrl-C: aborting the drill")), "{}", seen.join("\n"));
    let run = ws.last_run();
    assert_eq!(run["summary"]["status"], "aborted", "{run}");
    assert!(!ws.join("var/scratch/run-1").exists(), "scratch is cleaned after an abort");
}

#[test]
fn sigterm_at_a_gate_aborts_and_rolls_back_and_closing_stdin_does_too() {
    let ws = workspace("");
    let victim = ws.join("allowed/victim.txt");
    let original = fs::read(&victim).unwrap();
    let plan = data_plan(
        &ws,
        "abort-gate",
        "pause_before = [\"restore\"]",
        &format!("[[failure]]\nkind = \"delete\"\npath = \"{}\"\n", victim.display()),
    );
    let (mut child, rx) = spawn_run(&ws, &plan);
    let mut seen = Vec::new();
    expect_line(&rx, "waiting for approval before restore", &mut seen);
    assert!(!victim.exists(), "the failure ran before the gate");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child, Duration::from_secs(25));
    assert_eq!(status.code(), Some(1));
    assert_eq!(fs::read(&victim).unwrap(), original);
    let run = ws.last_run();
    assert_eq!(run["summary"]["status"], "aborted");
    assert_eq!(run["gates"][0]["outcome"], "aborted");
    assert_eq!(run["gates"][0]["decided_by"], "abort");

    // Nobody left to press Enter: the run aborts instead of waiting for its timeout.
    let (mut child, rx) = spawn_run(&ws, &plan);
    expect_line(&rx, "waiting for approval before restore", &mut seen);
    drop(child.stdin.take());
    let status = wait_exit(&mut child, Duration::from_secs(25));
    assert_eq!(status.code(), Some(1));
    assert_eq!(fs::read(&victim).unwrap(), original);
    assert_eq!(ws.last_run()["summary"]["status"], "aborted");
}

/// A copy of the repository's game-day examples in a fresh folder, as a new
/// user would run them: `drills/`, `config/gameday.toml`, `scripts/gameday-worker`.
fn example_checkout() -> Workspace {
    let ws = Workspace::empty();
    ws.copy_from_repo(&[
        "drills/gameday-orders.toml",
        "drills/gameday-worker.toml",
        "drills/quickstart/orders.sql",
        "config/gameday.toml",
        "scripts/gameday-worker",
    ]);
    ws
}

fn example_run(ws: &Workspace, config: Option<&str>, plan: &str) -> (Child, Receiver<String>) {
    let mut c = drdrill(ws);
    if let Some(config) = config {
        c.args(["--config", config]);
    }
    c.args(["run", plan]);
    spawn(c)
}

#[test]
fn the_example_orders_game_day_is_refused_by_default_and_runs_under_the_gameday_config() {
    let ws = example_checkout();
    let root = ws.path();
    let (mut child, rx) = example_run(&ws, None, "gameday-orders");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).code(), Some(2));
    let err: Vec<String> = rx.try_iter().collect();
    assert!(
        err.iter().any(|l| l.contains("REFUSED") && l.contains("allowed_paths entry of the embedded defaults")),
        "{}",
        err.join("\n")
    );
    assert!(!root.join("var/gameday").exists(), "refused before the database was even seeded");

    let (mut child, rx) = example_run(&ws, Some("config/gameday.toml"), "gameday-orders");
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = Vec::new();
    for gate in ["failure", "restore"] {
        expect_line(&rx, &format!("waiting for approval before {gate}"), &mut seen);
        if gate == "restore" {
            let head = fs::read(root.join("var/gameday/orders.db")).unwrap();
            assert!(!head.starts_with(b"SQLite format 3"), "the live database is really corrupt");
        }
        stdin.write_all(format!("go {gate}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{}", seen.join("\n"));
    let db = rusqlite::Connection::open(root.join("var/gameday/orders.db")).unwrap();
    let ok: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok", "rollback repaired the live database");
}

#[test]
fn the_example_worker_game_day_kills_and_restarts_the_worker() {
    let ws = example_checkout();
    let root = ws.path();
    let out = Command::new(root.join("scripts/gameday-worker")).arg("start").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let pidfile = root.join("var/gameday/worker.pid");
    let old: i32 = fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    wait_for("the first heartbeat", || root.join("var/gameday/worker-data/heartbeat").exists());

    let (mut child, rx) = example_run(&ws, Some("config/gameday.toml"), "gameday-worker");
    let mut seen = Vec::new();
    expect_line(&rx, "waiting for approval before failure", &mut seen);
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    seen.extend(rx.try_iter());
    let stop = || Command::new(root.join("scripts/gameday-worker")).arg("stop").output().unwrap();
    if !status.success() {
        stop();
        panic!("{}", seen.join("\n"));
    }
    let new: i32 = fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let name = fs::read_to_string(format!("/proc/{new}/comm")).unwrap_or_default();
    stop();
    assert_ne!(old, new, "the worker was killed and a new one started");
    assert_eq!(name.trim(), "gameday-worker");
    assert!(root.join("var/gameday/worker-data/heartbeat").exists(), "the deleted data folder was put back");
}
