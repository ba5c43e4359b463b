//! Failure kinds and the blast-radius guard, against real files and real
//! processes, through the real `drdrill` binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// A throwaway working folder with its own config, results DB, store and scratch.
struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("allowed/data")).unwrap();
        fs::write(root.join("allowed/data/a.txt"), "alpha\n".repeat(100)).unwrap();
        fs::write(root.join("allowed/data/b.bin"), (0..=255u8).cycle().take(10_000).collect::<Vec<u8>>()).unwrap();
        Fx { _dir: dir, root }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes the config with `safety` as the body of its [safety] table.
    fn config(&self, safety: &str) {
        let r = self.root.display();
        fs::write(
            self.p("config.toml"),
            format!(
                "database = \"{r}/var/drdrill.db\"\nplans = \"{r}\"\nscratch = \"{r}/var/scratch\"\n\
                 [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n[safety]\n{safety}\n"
            ),
        )
        .unwrap();
    }

    /// A plan backing up `allowed/data` with the given top-level keys, failures and checks.
    fn plan(&self, name: &str, top: &str, rest: &str) -> PathBuf {
        let path = self.p(&format!("{name}.toml"));
        let text = format!(
            "name = \"{name}\"\ntimeout = \"1m\"\n{top}\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n\
             [source]\nkind = \"directory\"\npath = \"{}\"\n{rest}\n",
            self.p("allowed/data").display()
        );
        fs::write(&path, text).unwrap();
        path
    }

    fn drdrill(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drdrill"));
        c.current_dir(&self.root).env("DRDRILL_CONFIG", self.p("config.toml")).env_remove("RUST_LOG");
        c
    }

    fn run(&self, plan: &Path) -> Output {
        self.drdrill().arg("run").arg(plan).output().unwrap()
    }

    fn last_run_json(&self) -> serde_json::Value {
        let out = self.drdrill().args(["history", "--json"]).output().unwrap();
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = runs[0]["id"].as_i64().expect("a run was recorded");
        let out = self.drdrill().args(["show", "--json", &id.to_string()]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn recorded_runs(&self) -> usize {
        if !self.p("var/drdrill.db").exists() {
            return 0;
        }
        let out = self.drdrill().args(["history", "--json"]).output().unwrap();
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap().len()
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
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
fn victim_binary(fx: &Fx) -> (PathBuf, String) {
    let name = format!("ddv{}", std::process::id() % 1_000_000);
    let bin = fx.p(&format!("bin/{name}"));
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy("/bin/sleep", &bin).unwrap();
    (bin, name)
}

#[test]
fn kill_by_name_signals_the_real_process_and_rollback_restarts_it() {
    let fx = Fx::new();
    let (bin, name) = victim_binary(&fx);
    let mut victim = Command::new(&bin).arg("300").spawn().unwrap();
    let victim_pid = victim.id() as i32;
    fx.config(&format!("allowed_processes = [\"{name}\"]"));
    let restarted = fx.p("restarted.pid");
    let plan = fx.plan(
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
    let out = fx.run(&plan);
    assert!(out.status.success(), "{}", text(&out));

    let status = victim.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "the victim died of SIGTERM");
    let new_pid: i32 = fs::read_to_string(&restarted).unwrap().trim().parse().unwrap();
    assert_ne!(new_pid, victim_pid);
    assert!(alive(new_pid), "the restart command started the process again");
    assert_eq!(comm(new_pid).as_deref(), Some(name.as_str()));
    let run = fx.last_run_json();
    assert!(phase_detail(&run, "failure").contains(&format!("[{victim_pid}]")), "{run}");
    assert!(phase_detail(&run, "rollback").contains("restarted with"), "{run}");
    unsafe { libc::kill(new_pid, libc::SIGKILL) };
}

#[test]
fn kill_by_pidfile_refuses_a_process_whose_name_is_not_allowed() {
    let fx = Fx::new();
    let (bin, name) = victim_binary(&fx);
    let mut victim = Command::new(&bin).arg("300").spawn().unwrap();
    fs::write(fx.p("app.pid"), format!("{}\n", victim.id())).unwrap();
    fx.config("allowed_processes = [\"something-else\"]");
    let plan = fx.plan(
        "kill-pidfile",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"kill\"\npidfile = \"{}\"\n[[check]]\nkind = \"tree-matches-source\"\n",
            fx.p("app.pid").display()
        ),
    );
    let out = fx.run(&plan);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("process `{name}` is not in [safety] allowed_processes")), "{err}");
    assert!(alive(victim.id() as i32), "a refused run touches nothing");
    assert_eq!(fx.recorded_runs(), 0);
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn delete_moves_a_live_tree_aside_and_rollback_puts_it_back() {
    let fx = Fx::new();
    fs::create_dir_all(fx.p("allowed/victim/sub")).unwrap();
    fs::write(fx.p("allowed/victim/sub/x"), "x").unwrap();
    fs::write(fx.p("allowed/victim/y"), "y".repeat(5000)).unwrap();
    let before = sha(&fx.p("allowed/victim/y"));
    fx.config(&format!("allowed_paths = [\"{}\"]", fx.p("allowed").display()));
    let victim = fx.p("allowed/victim");
    let plan = fx.plan(
        "delete-live",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{v}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"test ! -e {v}\"\n\
             [[check]]\nkind = \"tree-matches-source\"\n",
            v = victim.display()
        ),
    );
    let out = fx.run(&plan);
    assert!(out.status.success(), "the live tree was really gone during verify: {}", text(&out));
    assert_eq!(sha(&fx.p("allowed/victim/y")), before);
    assert_eq!(fs::read_to_string(fx.p("allowed/victim/sub/x")).unwrap(), "x");
    assert!(!fx.p("var/scratch/quarantine").exists(), "the empty quarantine is removed");
    let run = fx.last_run_json();
    assert!(phase_detail(&run, "rollback").contains("put"), "{run}");
}

#[test]
fn corrupt_breaks_a_real_sqlite_database_restore_proves_the_copy_and_rollback_repairs_it() {
    let fx = Fx::new();
    let db = fx.p("allowed/orders.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO orders SELECT i, hex(randomblob(20)) FROM n;",
        )
        .unwrap();
    }
    let before = sha(&db);
    fx.config(&format!("allowed_paths = [\"{}\"]", fx.p("allowed").display()));
    let plan = fx.p("corrupt.toml");
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
    let out = fx.run(&plan);
    assert!(out.status.success(), "the live header was broken during verify and the restore was whole: {}", text(&out));
    assert_eq!(sha(&db), before, "rollback wrote the original bytes back");
    let c = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2000);
}

#[test]
fn random_corruption_and_truncation_are_undone_in_reverse_order() {
    let fx = Fx::new();
    let file = fx.p("allowed/data/b.bin");
    let orig = fx.p("b.orig");
    fs::copy(&file, &orig).unwrap();
    fx.config(&format!("allowed_paths = [\"{}\"]", fx.p("allowed").display()));
    // Corrupt first, then cut the file short: rollback must append the tail
    // before writing the original bytes back, or offsets past 100 would fail.
    let plan = fx.plan(
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
    let out = fx.run(&plan);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sha(&file), sha(&orig), "byte-identical after rollback");
    let run = fx.last_run_json();
    let rollback = phase_detail(&run, "rollback");
    let (t, c) = (rollback.find("truncate:").unwrap(), rollback.find("corrupt:").unwrap());
    assert!(t < c, "truncate is rolled back before corrupt: {rollback}");
    assert!(!fx.p("var/scratch/quarantine").exists(), "nothing is left in quarantine");
}

#[test]
fn a_rollback_that_cannot_put_data_back_keeps_it_in_quarantine_and_fails_the_run() {
    let fx = Fx::new();
    fx.config(&format!("allowed_paths = [\"{}\"]", fx.p("allowed").display()));
    let victim = fx.p("allowed/data/a.txt");
    let original = fs::read(&victim).unwrap();
    // The check recreates the deleted path, as an application restarting
    // during the drill might: putting the original back would overwrite it.
    let plan = fx.plan(
        "clash",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{v}\"\n[[check]]\nkind = \"command\"\nrun = \"echo new > {v}\"\n",
            v = victim.display()
        ),
    );
    let out = fx.run(&plan);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "new\n", "what was created meanwhile is not overwritten");
    let q = fx.p("var/scratch/quarantine/run-1");
    let index = fs::read_to_string(q.join("WHAT-IS-HERE.txt")).unwrap();
    let kept = index.split(':').next().unwrap();
    assert_eq!(fs::read(kept).unwrap(), original, "the original is kept: {index}");
    assert!(index.contains(&format!("deleted of {}", victim.display())), "{index}");
    let run = fx.last_run_json();
    assert!(run["summary"]["reason"].as_str().unwrap().contains("rollback failed"), "{run}");
}

#[test]
fn command_failures_roll_back_in_reverse_order_and_after_an_error() {
    let fx = Fx::new();
    fx.config(&format!("allowed_paths = [\"{}\"]\nallow_command_failures = true", fx.p("allowed").display()));
    let log = fx.p("order.log");
    let victim = fx.p("allowed/data/a.txt");
    let before = sha(&victim);
    let plan = fx.plan(
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
    let out = fx.run(&plan);
    assert_eq!(out.status.code(), Some(1), "a failing failure fails the run: {}", text(&out));
    assert_eq!(fs::read_to_string(&log).unwrap(), "A\nB\nundo-B\nundo-A\n");
    assert_eq!(sha(&victim), before, "the delete before the error was rolled back");
    let run = fx.last_run_json();
    assert_eq!(run["summary"]["status"], "failed");
    assert!(run["summary"]["reason"].as_str().unwrap().contains("exited with"), "{run}");
}

#[test]
fn stop_service_stops_and_starts_the_unit_through_systemctl() {
    // systemd is not running here: `systemctl` is a stand-in script that keeps
    // the unit's state in a file and logs its calls, which checks the
    // arguments and order drdrill uses, not systemd itself.
    let fx = Fx::new();
    let state = fx.p("unit.state");
    let calls = fx.p("systemctl.calls");
    fs::write(&state, "active").unwrap();
    let fake = fx.p("bin/systemctl");
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
    fx.config("allowed_units = [\"web.service\"]");
    let plan = fx.plan(
        "stop-web",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"stop-service\"\nunit = \"web\"\nsystemctl = \"{}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"grep -q inactive {}\"\n",
            fake.display(),
            state.display()
        ),
    );
    let out = fx.run(&plan);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&calls).unwrap(), "is-active web\nstop web\nstart web\n");
    assert_eq!(fs::read_to_string(&state).unwrap().trim(), "active");

    fx.config("allowed_units = [\"db.service\"]");
    let out = fx.run(&plan);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unit `web` is not in [safety] allowed_units"));
}

/// Every refused case: exit 2, a message naming the rule, and nothing touched.
#[test]
fn the_guard_refuses_escapes_before_anything_happens() {
    let fx = Fx::new();
    fs::create_dir_all(fx.p("outside")).unwrap();
    fs::write(fx.p("outside/secret"), "keep me").unwrap();
    fs::create_dir_all(fx.p("allowed2")).unwrap();
    fs::write(fx.p("allowed2/file"), "keep me too").unwrap();
    std::os::unix::fs::symlink(fx.p("outside/secret"), fx.p("allowed/link")).unwrap();
    std::os::unix::fs::symlink(fx.p("outside"), fx.p("allowed/dirlink")).unwrap();
    fx.config(&format!("allowed_paths = [\"{}\"]", fx.p("allowed").display()));
    let cases = [
        ("outside", fx.p("outside/secret"), "resolves to"),
        ("symlink", fx.p("allowed/link"), "outside/secret"),
        ("symlinked-folder", fx.p("allowed/dirlink/secret"), "outside/secret"),
        ("dotdot", fx.p("allowed/../outside/secret"), "outside/secret"),
        ("prefix", fx.p("allowed2/file"), "allowed2/file"),
    ];
    for (name, target, resolved) in cases {
        for kind in ["delete", "corrupt", "truncate"] {
            let plan = fx.plan(
                &format!("{name}-{kind}"),
                "destructive = true",
                &format!(
                    "[[failure]]\nkind = \"{kind}\"\npath = \"{}\"\n[[check]]\nkind = \"tree-matches-source\"\n",
                    target.display()
                ),
            );
            let out = fx.run(&plan);
            assert_eq!(out.status.code(), Some(2), "{name}/{kind}: {}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("refused by the blast-radius guard"), "{name}/{kind}: {err}");
            assert!(err.contains("not inside any [safety] allowed_paths entry"), "{name}/{kind}: {err}");
            assert!(err.contains(resolved), "{name}/{kind} names the resolved path: {err}");
        }
    }
    assert_eq!(fs::read_to_string(fx.p("outside/secret")).unwrap(), "keep me");
    assert_eq!(fs::read_to_string(fx.p("allowed2/file")).unwrap(), "keep me too");
    assert!(fs::symlink_metadata(fx.p("allowed/link")).is_ok());
    assert_eq!(fx.recorded_runs(), 0, "a refused run is not started");

    // A command failure is refused unless the config allows command failures.
    let plan = fx.plan(
        "cmd",
        "destructive = true",
        "[[failure]]\nkind = \"command\"\nrun = \"true\"\n[[check]]\nkind = \"tree-matches-source\"\n",
    );
    let out = fx.run(&plan);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_command_failures"));

    // Inside the allowlist but without `destructive = true`: refused at load.
    let plan = fx.plan(
        "undeclared",
        "",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{}\"\n[[check]]\nkind = \"tree-matches-source\"\n",
            fx.p("allowed/data/a.txt").display()
        ),
    );
    let out = fx.run(&plan);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is destructive but the plan does not say so") && err.contains("destructive = true"), "{err}");
    assert!(fx.p("allowed/data/a.txt").exists());
    assert_eq!(fx.recorded_runs(), 0);
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
    let fx = Fx::new();
    fx.config(&format!("allowed_paths = [\"{}\"]", shm_root.display()));
    let sibling = shm_root.join(".state.db.drdrill-run-1");
    let plan = fx.plan(
        "cross-fs",
        "destructive = true",
        &format!(
            "[[failure]]\nkind = \"delete\"\npath = \"{v}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"test ! -e {v} && grep -q precious {s}\"\n",
            v = victim.display(),
            s = sibling.display()
        ),
    );
    let out = fx.run(&plan);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!sibling.exists());
}
