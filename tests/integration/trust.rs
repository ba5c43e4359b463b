//! Every run ends, leaves no process behind, and a PASS means the data
//! restores: deadlines and aborts that land mid-backup or mid-restore, hanging
//! commands, symlinks out of the restore, timestamps from the future, checks
//! that cannot change their answer, and secrets in a check's environment.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::{Workspace, expect_line, processes_with, reason, spawn, unique, wait_exit};

/// A `command` source plan with these commands and one check.
fn command_plan(name: &str, timeout: &str, backup: &str, restore: &str, cleanup: Option<&str>, check: &str) -> String {
    let cleanup = cleanup.map(|c| format!("cleanup = '''{c}'''\n")).unwrap_or_default();
    format!(
        "name = \"{name}\"\ntimeout = \"{timeout}\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"command\"\n\
         backup = '''{backup}'''\nrestore = '''{restore}'''\n{cleanup}[[check]]\nkind = \"command\"\nrun = '''{check}'''\n"
    )
}

/// A unique `sleep` duration: a marker to find the processes a run started.
fn marker_sleep() -> String {
    let n = unique("x");
    let digits: String = n.chars().filter(char::is_ascii_digit).take(6).collect();
    format!("1000.{digits}")
}

fn assert_ended_clean(ws: &Workspace, started: Instant, marker: &str, limit: Duration) {
    assert!(started.elapsed() < limit, "the run took {:?}", started.elapsed());
    assert!(ws.scratch_leftovers().is_empty(), "scratch left: {:?}", ws.scratch_leftovers());
    // The supervisor's SIGKILL lands within its grace; give the kernel a moment to reap.
    let until = Instant::now() + Duration::from_secs(5);
    while !processes_with(marker).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(processes_with(marker).is_empty(), "processes of the run are still alive: {:?}", processes_with(marker));
}

#[test]
fn a_deadline_during_a_streaming_backup_ends_the_run_within_seconds() {
    let ws = Workspace::empty();
    // Writes forever: the deadline lands while bytes flow through zstd and the store.
    ws.write_plan("endless", &command_plan("endless", "2s", "cat /dev/zero", "cat >/dev/null", None, "true"));
    let started = Instant::now();
    let (code, report, _) = ws.drill_report("endless", &[]);
    assert_eq!(code, 1, "{report:#}");
    assert!(reason(&report).contains("timeout of 2"), "{report:#}");
    assert_ended_clean(&ws, started, "/dev/zero", Duration::from_secs(15));
    assert!(ws.backups(&["--plan", "endless"], &[]).iter().all(|b| b["complete"] == false));
}

#[test]
fn hanging_backup_restore_and_cleanup_commands_are_killed_at_the_deadline() {
    let ws = Workspace::empty();
    let m = marker_sleep();
    let cases = [
        ("hang-backup", format!("sleep {m}"), "cat >/dev/null".to_string(), None),
        // Does not read its input, so the feeding pipe fills and blocks too.
        ("hang-restore", "echo payload".to_string(), format!("sleep {m}"), None),
        ("hang-cleanup", "echo payload".to_string(), "cat > data".to_string(), Some(format!("sleep {m}"))),
    ];
    for (name, backup, restore, cleanup) in cases {
        ws.write_plan(
            name,
            &command_plan(name, "3s", &backup, &restore, cleanup.as_deref(), "test -s \"$DRDRILL_RESTORE/data\""),
        );
        let started = Instant::now();
        let (code, report, stderr) = ws.drill_report(name, &[]);
        assert_eq!(code, 1, "{name}: {report:#}\n{stderr}");
        assert_ended_clean(&ws, started, &m, Duration::from_secs(20));
        if name == "hang-cleanup" {
            let cleanup = report["phases"].as_array().unwrap().iter().find(|p| p["name"] == "cleanup").unwrap().clone();
            assert_eq!(cleanup["status"], "failed", "{report:#}");
            assert!(cleanup["detail"].as_str().unwrap().contains("cleanup command"), "{cleanup}");
        }
    }
}

#[test]
fn a_command_check_leaves_no_child_behind_on_any_attempt() {
    let ws = Workspace::empty();
    let m = marker_sleep();
    // Each attempt starts a child and fails: the engine retries (a command may
    // wait for a service) until the deadline; no attempt's child survives.
    ws.write_plan(
        "orphans",
        &command_plan("orphans", "3s", "echo payload", "cat > data", None, &format!("sleep {m} & exit 1")),
    );
    let started = Instant::now();
    let (code, report, _) = ws.drill_report("orphans", &[]);
    assert_eq!(code, 1, "{report:#}");
    assert!(report["checks"][0]["attempts"].as_u64().unwrap() > 1, "{report:#}");
    assert_ended_clean(&ws, started, &m, Duration::from_secs(20));
}

#[test]
fn sigterm_during_a_restore_aborts_within_seconds_and_cleans_up() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    // A sparse file: quick to read and compress, slow enough to write back.
    let f = fs::File::create(ws.join("data/big.img")).unwrap();
    f.set_len(160 << 20).unwrap();
    ws.write_plan(
        "big",
        "name = \"big\"\ntimeout = \"10m\"\n[targets]\nrto = \"1h\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[[check]]\nkind = \"tree-matches-source\"\n",
    );
    let mut c = ws.cmd();
    c.args(["run", "big"]);
    let (mut child, rx) = spawn(c);
    let mut seen = Vec::new();
    expect_line(&rx, "failure", &mut seen);
    std::thread::sleep(Duration::from_millis(100));
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(signalled.elapsed() < Duration::from_secs(10), "took {:?} after SIGTERM", signalled.elapsed());
    assert_eq!(status.code(), Some(1), "{}", seen.join("\n"));
    let run = ws.last_run();
    assert_eq!(run["summary"]["status"], "aborted", "{run:#}");
    let restore = run["phases"].as_array().unwrap().iter().find(|p| p["name"] == "restore").cloned();
    assert_eq!(
        restore.map(|p| p["status"].clone()),
        Some("failed".into()),
        "SIGTERM landed outside the restore: {run:#}"
    );
    assert!(ws.scratch_leftovers().is_empty(), "scratch left: {:?}", ws.scratch_leftovers());
}

#[test]
fn a_symlink_out_of_the_restore_is_never_followed_by_a_check() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    fs::write(ws.join("live.txt"), "production data\n").unwrap();
    std::os::unix::fs::symlink(ws.join("live.txt"), ws.join("data/a.txt")).unwrap();
    let live_sha = crate::common::sha256(&ws.join("live.txt"));
    ws.write_plan(
        "escape",
        &format!(
            "name = \"escape\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"data\"\n\
             [[check]]\nkind = \"file-hash\"\npath = \"a.txt\"\nsha256 = \"{live_sha}\"\n"
        ),
    );
    let started = Instant::now();
    let (code, report, _) = ws.drill_report("escape", &[]);
    assert_eq!(code, 1, "a check read production through a restored symlink: {report:#}");
    assert!(reason(&report).contains("outside the restored copy"), "{report:#}");
    // A file hash cannot change by waiting: reported at once, not after the timeout.
    assert_eq!(report["checks"][0]["attempts"], 1, "{report:#}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // The same honest tree passes its comparison: the link is compared as a link.
    ws.write_plan(
        "escape",
        "name = \"escape\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[[check]]\nkind = \"tree-matches-source\"\n",
    );
    let report = ws.drill("escape", &[]);
    assert_eq!(report["status"], "passed", "{report:#}");
}

#[test]
fn a_marker_from_the_future_leaves_rpo_unmeasured_and_the_run_failed() {
    let ws = Workspace::quickstart();
    assert_eq!(ws.run_quickstart(), 0, "seeds the live database");
    let db = rusqlite::Connection::open(ws.join("var/quickstart/orders.db")).unwrap();
    let future = chrono::Utc::now().timestamp_millis() + 3_600_000;
    db.execute("INSERT INTO _drdrill_canary (at_ms) VALUES (?1)", [future]).unwrap();
    drop(db);
    let (code, report, _) = ws.drill_report("quickstart", &[]);
    assert_eq!(code, 1, "{report:#}");
    let rpo = crate::common::measurement(&report, "rpo");
    assert!(rpo["value_ms"].is_null(), "a future marker was clamped to an RPO: {rpo}");
    assert!(reason(&report).contains("after the incident"), "{report:#}");
}

#[test]
fn a_check_that_cannot_change_its_answer_fails_in_seconds() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    fs::write(ws.join("data/a.txt"), "a").unwrap();
    // The default timeout is ten minutes; a wrong hash is wrong at once.
    ws.write_plan(
        "wrong",
        "name = \"wrong\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"data\"\n\
         [[check]]\nkind = \"file-hash\"\npath = \"a.txt\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n",
    );
    let started = Instant::now();
    let (code, report, _) = ws.drill_report("wrong", &[]);
    assert_eq!(code, 1);
    assert_eq!(report["checks"][0]["attempts"], 1, "{report:#}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
fn processes_get_no_secrets_and_outputs_are_redacted() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    let aws = "AKIAsecret-value-0123456789";
    let smtp = "smtp-password-9876543210";
    fs::write(ws.join("data/config.txt"), format!("password = {smtp}\n")).unwrap();
    ws.write_plan(
        "leaky",
        "name = \"leaky\"\nenv = [\"PASSED_ON\"]\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"data\"\n\
         [[check]]\nkind = \"command\"\nrun = 'echo \"aws=[$AWS_SECRET_ACCESS_KEY] smtp=[$DRDRILL_SMTP_PASSWORD] passed=[$PASSED_ON]\"; cat \"$DRDRILL_RESTORE/config.txt\"'\n",
    );
    let envs = [("AWS_SECRET_ACCESS_KEY", aws), ("DRDRILL_SMTP_PASSWORD", smtp), ("PASSED_ON", "visible")];
    let report = ws.drill("leaky", &envs);
    assert_eq!(report["status"], "passed", "{report:#}");
    let output = report["checks"][0]["output"].as_str().unwrap();
    assert!(output.contains("aws=[] smtp=[] passed=[visible]"), "the check inherited secrets: {output}");
    assert!(output.contains("password = [redacted]"), "{output}");
    let dump = ws.sqlite3(".dump");
    for secret in [aws, smtp] {
        assert!(!dump.contains(secret), "{secret} reached the results database");
        assert!(!report.to_string().contains(secret), "{secret} reached the report");
    }
}

#[test]
fn a_check_cut_short_by_the_deadline_still_says_what_it_saw() {
    let ws = Workspace::empty();
    // The first attempt answers and fails; the second hangs until the deadline.
    let check = "if [ -e \"$DRDRILL_SCRATCH/tried\" ]; then sleep 600; fi; touch \"$DRDRILL_SCRATCH/tried\"; echo \"orders: $((40 + 1)) rows, expected 42\"; exit 1";
    ws.write_plan("cut", &command_plan("cut", "4s", "echo payload", "cat > data", None, check));
    let (code, report, _) = ws.drill_report("cut", &[]);
    assert_eq!(code, 1, "{report:#}");
    let output = report["checks"][0]["output"].as_str().unwrap();
    assert!(output.contains("orders: 41 rows, expected 42"), "{report:#}");
    assert!(report["reason"].as_str().unwrap().contains("orders: 41 rows, expected 42"), "{report:#}");
}
