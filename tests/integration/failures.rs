//! Failure kinds and the blast-radius guard, against real files and real
//! processes, through the real `drdrill` binary.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::common::{Workspace, describe, sha256};

/// A workspace with live data to back up and break under `allowed/data`.
fn workspace() -> Workspace {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("allowed/data")).unwrap();
    fs::write(ws.join("allowed/data/a.txt"), "alpha\n".repeat(100)).unwrap();
    fs::write(ws.join("allowed/data/b.bin"), (0..=255u8).cycle().take(10_000).collect::<Vec<u8>>()).unwrap();
    ws
}

/// A plan backing up `allowed/data` with the given top-level keys, failures and checks.
fn data_plan(ws: &Workspace, name: &str, top: &str, rest: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\ntimeout = \"1m\"\n{top}\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n\
         [source]\nkind = \"directory\"\npath = \"{}\"\n{rest}\n",
        ws.join("allowed/data").display()
    );
    ws.write_plan(name, &text)
}

fn run_plan(ws: &Workspace, plan: &std::path::Path) -> std::process::Output {
    ws.cmd().arg("run").arg(plan).output().unwrap()
}

fn phase_detail(run: &serde_json::Value, name: &str) -> String {
    run["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .map(|p| p["detail"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) != Some("Z"))
}

fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim().to_string())
}

/// A copy of `sleep` under a unique name, so killing by name hits only our process.
fn victim_binary(ws: &Workspace) -> (PathBuf, String) {
    let name = format!("ddv{}", std::process::id() % 1_000_000);
    let bin = ws.join(&format!("bin/{name}"));
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy("/bin/sleep", &bin).unwrap();
    (bin, name)
}

#[test]
fn kill_by_name_signals_the_real_process_and_rollback_restarts_it() {
    let ws = workspace();
    let (bin, name) = victim_binary(&ws);
    let mut victim = Command::new(&bin).arg("300").spawn().unwrap();
    let victim_pid = victim.id() as i32;
    ws.write_safety_config(&format!("allowed_processes = [\"{name}\"]"));
    let restarted = ws.join("restarted.pid");
    let plan = data_plan(
        &ws,
        "kill-name",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"kill\"\nname = \"{name}\"\nsignal = \"TERM\"\n\
             restart = \"{} 301 >/dev/null 2>&1 & echo $! > {}\"\n\
             [[check]]\nkind = \"tree-matches-source\"\n",
            bin.display(),
            restarted.display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert!(out.status.success(), "{}", describe(&out));

    let status = victim.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "the victim died of SIGTERM");
    let new_pid: i32 = fs::read_to_string(&restarted).unwrap().trim().parse().unwrap();
    assert_ne!(new_pid, victim_pid);
    assert!(alive(new_pid), "the restart command started the process again");
    assert_eq!(comm(new_pid).as_deref(), Some(name.as_str()));
    let run = ws.last_run();
    assert!(phase_detail(&run, "failure").contains(&format!("[{victim_pid}]")), "{run}");
    assert!(phase_detail(&run, "rollback").contains("restarted with"), "{run}");
    unsafe { libc::kill(new_pid, libc::SIGKILL) };
}

#[test]
fn kill_by_pidfile_refuses_a_process_whose_name_is_not_allowed() {
    let ws = workspace();
    let (bin, name) = victim_binary(&ws);
    let mut victim = Command::new(&bin).arg("300").spawn().unwrap();
    fs::write(ws.join("app.pid"), format!("{}\n", victim.id())).unwrap();
    ws.write_safety_config("allowed_processes = [\"something-else\"]");
    let plan = data_plan(
        &ws,
        "kill-pidfile",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"kill\"\npidfile = \"{}\"\n[[check]]\nkind = \"tree-matches-source\"\n",
            ws.join("app.pid").display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("process `{name}` is not in [safety] allowed_processes")), "{err}");
    assert!(alive(victim.id() as i32), "a refused run touches nothing");
    assert_eq!(ws.recorded_runs(), 0);
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn delete_moves_a_live_tree_aside_and_rollback_puts_it_back() {
    let ws = workspace();
    fs::create_dir_all(ws.join("allowed/victim/sub")).unwrap();
    fs::write(ws.join("allowed/victim/sub/x"), "x").unwrap();
    fs::write(ws.join("allowed/victim/y"), "y".repeat(5000)).unwrap();
    let before = sha256(&ws.join("allowed/victim/y"));
    ws.write_safety_config(&format!("allowed_paths = [\"{}\"]", ws.join("allowed").display()));
    let victim = ws.join("allowed/victim");
    let plan = data_plan(
        &ws,
        "delete-live",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{v}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"test ! -e {v}\"\n\
             [[check]]\nkind = \"tree-matches-source\"\n",
            v = victim.display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert!(out.status.success(), "the live tree was really gone during verify: {}", describe(&out));
    assert_eq!(sha256(&ws.join("allowed/victim/y")), before);
    assert_eq!(fs::read_to_string(ws.join("allowed/victim/sub/x")).unwrap(), "x");
    assert!(!ws.join("var/scratch/quarantine").exists(), "the empty quarantine is removed");
    let run = ws.last_run();
    assert!(phase_detail(&run, "rollback").contains("put"), "{run}");
}

#[test]
fn corrupt_breaks_a_real_sqlite_database_restore_proves_the_copy_and_rollback_repairs_it() {
    let ws = workspace();
    let db = ws.join("allowed/orders.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO orders SELECT i, hex(randomblob(20)) FROM n;",
        )
        .unwrap();
    }
    let before = sha256(&db);
    ws.write_safety_config(&format!("allowed_paths = [\"{}\"]", ws.join("allowed").display()));
    let plan = ws.join("corrupt.toml");
    fs::write(
        &plan,
        format!(
            "name = \"corrupt\"\ndestructive = true\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n\
             [source]\nkind = \"sqlite\"\npath = \"{db}\"\n\
             [[failure]]\nkind = \"corrupt\"\npath = \"{db}\"\noffsets = [0]\nbytes = 100\n\
             [[check]]\nkind = \"command\"\nrun = \"! head -c 15 {db} | grep -q 'SQLite format 3'\"\n\
             [[check]]\nkind = \"sqlite-integrity\"\n\
             [[check]]\nkind = \"sqlite-query\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"= 2000\"\n",
            db = db.display()
        ),
    )
    .unwrap();
    let out = run_plan(&ws, &plan);
    assert!(
        out.status.success(),
        "the live header was broken during verify and the restore was whole: {}",
        describe(&out)
    );
    assert_eq!(sha256(&db), before, "rollback wrote the original bytes back");
    let c = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2000);
}

#[test]
fn random_corruption_and_truncation_are_undone_in_reverse_order() {
    let ws = workspace();
    let file = ws.join("allowed/data/b.bin");
    let orig = ws.join("b.orig");
    fs::copy(&file, &orig).unwrap();
    ws.write_safety_config(&format!("allowed_paths = [\"{}\"]", ws.join("allowed").display()));
    // Corrupt first, then cut the file short: rollback must append the tail
    // before writing the original bytes back, or offsets past 100 would fail.
    let plan = data_plan(
        &ws,
        "corrupt-truncate",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"corrupt\"\npath = \"{f}\"\ncount = 3\nbytes = 8\nseed = 42\n\
             [[failure]]\nkind = \"truncate\"\npath = \"{f}\"\nsize = 100\n\
             [[check]]\nkind = \"command\"\nrun = \"test $(wc -c < {f}) -eq 100\"\n\
             [[check]]\nkind = \"command\"\nrun = \"! cmp -s $DRDRILL_RESTORE/b.bin {f}\"\n",
            f = file.display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(sha256(&file), sha256(&orig), "byte-identical after rollback");
    let run = ws.last_run();
    let rollback = phase_detail(&run, "rollback");
    let (t, c) = (rollback.find("truncate:").unwrap(), rollback.find("corrupt:").unwrap());
    assert!(t < c, "truncate is rolled back before corrupt: {rollback}");
    assert!(!ws.join("var/scratch/quarantine").exists(), "nothing is left in quarantine");
}

#[test]
fn a_rollback_that_cannot_put_data_back_keeps_it_in_quarantine_and_fails_the_run() {
    let ws = workspace();
    ws.write_safety_config(&format!("allowed_paths = [\"{}\"]", ws.join("allowed").display()));
    let victim = ws.join("allowed/data/a.txt");
    let original = fs::read(&victim).unwrap();
    // The check recreates the deleted path, as an application restarting
    // during the drill might: putting the original back would overwrite it.
    let plan = data_plan(
        &ws,
        "clash",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{v}\"\n[[check]]\nkind = \"command\"\nrun = \"echo new > {v}\"\n",
            v = victim.display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "new\n", "what was created meanwhile is not overwritten");
    let q = ws.join("var/scratch/quarantine/run-1");
    let index = fs::read_to_string(q.join("WHAT-IS-HERE.txt")).unwrap();
    let kept = index.split(':').next().unwrap();
    assert_eq!(fs::read(kept).unwrap(), original, "the original is kept: {index}");
    assert!(index.contains(&format!("deleted of {}", victim.display())), "{index}");
    let run = ws.last_run();
    assert!(run["summary"]["reason"].as_str().unwrap().contains("rollback failed"), "{run}");
}

#[test]
fn command_failures_roll_back_in_reverse_order_and_after_an_error() {
    let ws = workspace();
    ws.write_safety_config(&format!(
        "allowed_paths = [\"{}\"]\nallow_command_failures = true",
        ws.join("allowed").display()
    ));
    let log = ws.join("order.log");
    let victim = ws.join("allowed/data/a.txt");
    let before = sha256(&victim);
    let plan = data_plan(
        &ws,
        "commands",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{v}\"\n\
             [[failure]]\nkind = \"command\"\nrun = \"echo A >> {l}\"\nrollback = \"echo undo-A >> {l}\"\n\
             [[failure]]\nkind = \"command\"\nrun = \"echo B >> {l}; exit 3\"\nrollback = \"echo undo-B >> {l}\"\n\
             [[failure]]\nkind = \"command\"\nrun = \"echo never >> {l}\"\nrollback = \"echo undo-never >> {l}\"\n\
             [[check]]\nkind = \"tree-matches-source\"\n",
            v = victim.display(),
            l = log.display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert_eq!(out.status.code(), Some(1), "a failing failure fails the run: {}", describe(&out));
    assert_eq!(fs::read_to_string(&log).unwrap(), "A\nB\nundo-B\nundo-A\n");
    assert_eq!(sha256(&victim), before, "the delete before the error was rolled back");
    let run = ws.last_run();
    assert_eq!(run["summary"]["status"], "failed");
    assert!(run["summary"]["reason"].as_str().unwrap().contains("exited with"), "{run}");
}

#[test]
fn stop_service_stops_and_starts_the_unit_through_systemctl() {
    // systemd is not running here: `systemctl` is a stand-in script that keeps
    // the unit's state in a file and logs its calls, which checks the
    // arguments and order drdrill uses, not systemd itself.
    let ws = workspace();
    let state = ws.join("unit.state");
    let calls = ws.join("systemctl.calls");
    fs::write(&state, "active").unwrap();
    let fake = ws.join("bin/systemctl");
    fs::create_dir_all(fake.parent().unwrap()).unwrap();
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {c}\ncase $1 in\n is-active) cat {s}; test \"$(cat {s})\" = active ;;\n \
             stop) echo inactive > {s} ;;\n start) echo active > {s} ;;\nesac\n",
            c = calls.display(),
            s = state.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    ws.write_safety_config("allowed_units = [\"web.service\"]");
    let plan = data_plan(
        &ws,
        "stop-web",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"stop-service\"\nunit = \"web\"\nsystemctl = \"{}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"grep -q inactive {}\"\n",
            fake.display(),
            state.display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(fs::read_to_string(&calls).unwrap(), "is-active web\nstop web\nstart web\n");
    assert_eq!(fs::read_to_string(&state).unwrap().trim(), "active");

    ws.write_safety_config("allowed_units = [\"db.service\"]");
    let out = run_plan(&ws, &plan);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unit `web` is not in [safety] allowed_units"));
}

/// Every refused case: exit 2, a message naming the rule, and nothing touched.
#[test]
fn the_guard_refuses_escapes_before_anything_happens() {
    let ws = workspace();
    fs::create_dir_all(ws.join("outside")).unwrap();
    fs::write(ws.join("outside/secret"), "keep me").unwrap();
    fs::create_dir_all(ws.join("allowed2")).unwrap();
    fs::write(ws.join("allowed2/file"), "keep me too").unwrap();
    std::os::unix::fs::symlink(ws.join("outside/secret"), ws.join("allowed/link")).unwrap();
    std::os::unix::fs::symlink(ws.join("outside"), ws.join("allowed/dirlink")).unwrap();
    ws.write_safety_config(&format!("allowed_paths = [\"{}\"]", ws.join("allowed").display()));
    let cases = [
        ("outside", ws.join("outside/secret"), "resolves to"),
        ("symlink", ws.join("allowed/link"), "outside/secret"),
        ("symlinked-folder", ws.join("allowed/dirlink/secret"), "outside/secret"),
        ("dotdot", ws.join("allowed/../outside/secret"), "outside/secret"),
        ("prefix", ws.join("allowed2/file"), "allowed2/file"),
    ];
    for (name, target, resolved) in cases {
        for kind in ["delete", "corrupt", "truncate"] {
            let plan = data_plan(
                &ws,
                &format!("{name}-{kind}"),
                "destructive = true",
                &format!(
                    "[[failure]]\nkind = \"{kind}\"\npath = \"{}\"\n[[check]]\nkind = \"tree-matches-source\"\n",
                    target.display()
                ),
            );
            let out = run_plan(&ws, &plan);
            assert_eq!(out.status.code(), Some(2), "{name}/{kind}: {}", describe(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("refused by the blast-radius guard"), "{name}/{kind}: {err}");
            assert!(err.contains("not inside any [safety] allowed_paths entry"), "{name}/{kind}: {err}");
            assert!(err.contains(resolved), "{name}/{kind} names the resolved path: {err}");
        }
    }
    assert_eq!(fs::read_to_string(ws.join("outside/secret")).unwrap(), "keep me");
    assert_eq!(fs::read_to_string(ws.join("allowed2/file")).unwrap(), "keep me too");
    assert!(fs::symlink_metadata(ws.join("allowed/link")).is_ok());
    assert_eq!(ws.recorded_runs(), 0, "a refused run is not started");

    // A command failure is refused unless the config allows command failures.
    let plan = data_plan(
        &ws,
        "cmd",
        "destructive = true",
        "[[failure]]\nkind = \"command\"\nrun = \"true\"\n[[check]]\nkind = \"tree-matches-source\"\n",
    );
    let out = run_plan(&ws, &plan);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_command_failures"));

    // Inside the allowlist but without `destructive = true`: refused at load.
    let plan = data_plan(
        &ws,
        "undeclared",
        "",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{}\"\n[[check]]\nkind = \"tree-matches-source\"\n",
            ws.join("allowed/data/a.txt").display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is destructive but the plan does not say so") && err.contains("destructive = true"), "{err}");
    assert!(ws.join("allowed/data/a.txt").exists());
    assert_eq!(ws.recorded_runs(), 0);
}

#[test]
fn delete_across_filesystems_moves_the_path_to_a_hidden_sibling_and_back() {
    // The scratch folder (and its quarantine) is under /tmp; /dev/shm is
    // another filesystem, where a rename into the quarantine fails with EXDEV.
    let shm = tempfile::tempdir_in("/dev/shm").expect("/dev/shm (a tmpfs) is needed for this test");
    let shm_root = shm.path().canonicalize().unwrap();
    assert_ne!(
        std::os::unix::fs::MetadataExt::dev(&fs::metadata(&shm_root).unwrap()),
        std::os::unix::fs::MetadataExt::dev(&fs::metadata(std::env::temp_dir()).unwrap()),
        "/dev/shm and the temp folder must be different filesystems"
    );
    let victim = shm_root.join("state.db");
    fs::write(&victim, "precious").unwrap();
    let ws = workspace();
    ws.write_safety_config(&format!("allowed_paths = [\"{}\"]", shm_root.display()));
    let sibling = shm_root.join(".state.db.drdrill-run-1");
    let plan = data_plan(
        &ws,
        "cross-fs",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{v}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"test ! -e {v} && grep -q precious {s}\"\n",
            v = victim.display(),
            s = sibling.display()
        ),
    );
    let out = run_plan(&ws, &plan);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!sibling.exists());
}
