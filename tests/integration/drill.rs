//! End-to-end drills through the real binary, with real files and SQLite.

use std::fs;

use crate::common::{Workspace, make_tricky_tree, measurement, phase};

#[test]
fn quickstart_passes_and_is_recorded_with_its_phases() {
    let ws = Workspace::with_example_drills();
    let (code, report, stderr) = ws.drill_report("quickstart", &[]);
    assert_eq!(code, 0, "quickstart failed: {report:#}\n{stderr}");
    assert_eq!(report["status"], "passed");
    for name in ["rto", "rpo"] {
        let m = measurement(&report, name);
        assert!(m["value_ms"].as_f64().unwrap() >= 0.0, "{name} not measured: {m}");
        assert_eq!(m["met"], true, "{name}: {m}");
    }
    assert_eq!(measurement(&report, "rpo")["method"], "canary marker in the restored copy");

    // The results database holds the run, its phases, checks and measurements.
    let db = ws.db();
    let run_id = report["run_id"].as_i64().unwrap();
    let (status, backup_id): (String, String) = db
        .query_row("SELECT status, backup_id FROM runs WHERE id = ?1", [run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(status, "passed");
    assert_eq!(Some(backup_id.as_str()), report["backup_id"].as_str());
    let phases: Vec<String> = db
        .prepare("SELECT name FROM phases WHERE run_id = ?1 ORDER BY seq")
        .unwrap()
        .query_map([run_id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(phases, ["prepare", "backup", "failure", "restore", "verify", "cleanup"]);
    let passed_checks: i64 =
        db.query_row("SELECT count(*) FROM checks WHERE run_id = ?1 AND passed", [run_id], |r| r.get(0)).unwrap();
    assert_eq!(passed_checks, 3);
    let version: i64 = db.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0)).unwrap();
    assert!(version >= 1);
    assert!(ws.scratch_leftovers().is_empty(), "scratch left behind: {:?}", ws.scratch_leftovers());

    // The human summary and the history show the same run.
    let out = ws.cmd().args(["run", "quickstart"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(": PASS") && text.contains("RTO") && text.contains("RPO"), "{text}");
    let hist = ws.cmd().args(["history", "quickstart"]).output().unwrap();
    let hist = String::from_utf8_lossy(&hist.stdout);
    assert_eq!(hist.lines().filter(|l| l.contains("quickstart") && l.contains("passed")).count(), 2, "{hist}");
}

#[test]
fn directory_drill_restores_a_tricky_tree_identical_to_the_source() {
    let ws = Workspace::empty();
    make_tricky_tree(&ws.join("data"));
    ws.write(
        "drills/tricky.toml",
        r#"
[targets]
rto = "1m"
rpo = "5m"
[source]
kind = "directory"
path = "data"
[[failure]]
kind = "delete"
[[check]]
kind = "tree-matches-source"
[[check]]
kind = "file-hash"
path = "ünïcødé/日本語 ファイル.txt"
sha256 = "d6cb1a7a43e0b5dabc9df1c02b9f93c02e7b5de0a9f2a1ad3e0d7b7e28f49d0d"
"#,
    );
    let want = drdrill::hashing::sha256_file(&ws.join("data/ünïcødé/日本語 ファイル.txt")).unwrap().0;
    let plan = fs::read_to_string(ws.join("drills/tricky.toml")).unwrap();
    ws.write(
        "drills/tricky.toml",
        &plan.replace("d6cb1a7a43e0b5dabc9df1c02b9f93c02e7b5de0a9f2a1ad3e0d7b7e28f49d0d", &want),
    );

    let (code, report, stderr) = ws.drill_report("tricky", &[]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true), "{report:#}");
    let failure = phase(&report, "failure");
    assert!(failure["detail"].as_str().unwrap().contains("production untouched"), "{failure}");
    assert!(ws.join("data/a/big.bin").exists(), "the delete failure touched the live folder");
    assert!(ws.scratch_leftovers().is_empty());
}

#[test]
fn a_flipped_byte_in_the_payload_fails_the_run_naming_the_checksum() {
    let ws = Workspace::empty();
    make_tricky_tree(&ws.join("data"));
    let plan = |mode: &str| {
        format!(
            "name = \"files\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[backup]\nmode = \"{mode}\"\n[[check]]\nkind = \"tree-matches-source\"\n"
        )
    };
    ws.write("drills/files.toml", &plan("fresh"));
    let (code, _, _) = ws.drill_report("files", &[]);
    assert_eq!(code, 0);

    let backup = ws.backup_dirs("files").pop().unwrap();
    let payload = backup.join("payload.tar.zst");
    let mut bytes = fs::read(&payload).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&payload, &bytes).unwrap();

    ws.write("drills/files.toml", &plan("latest"));
    let (code, report, _) = ws.drill_report("files", &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["status"], "failed");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("payload checksum mismatch"), "{reason}");
    assert!(reason.contains(backup.file_name().unwrap().to_str().unwrap()), "reason names the backup: {reason}");
    let restore = phase(&report, "restore");
    assert_eq!(restore["status"], "failed");
    let status: String =
        ws.db().query_row("SELECT status FROM runs ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "failed");
    assert!(ws.scratch_leftovers().is_empty());
}

#[test]
fn canary_rpo_lies_between_zero_and_interval_plus_backup_duration() {
    let ws = Workspace::with_example_drills();
    let plan = fs::read_to_string(ws.join("drills/quickstart.toml")).unwrap();
    ws.write("drills/quickstart.toml", &plan.replace("interval = \"200ms\"", "interval = \"300ms\""));
    let (code, report, stderr) = ws.drill_report("quickstart", &[]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let rpo = measurement(&report, "rpo")["value_ms"].as_f64().unwrap();
    let run_id = report["run_id"].as_i64().unwrap();
    let t_fail: String = ws.db().query_row("SELECT t_fail FROM runs WHERE id = ?1", [run_id], |r| r.get(0)).unwrap();
    let t_fail = chrono::DateTime::parse_from_rfc3339(&t_fail).unwrap();
    let backup = phase(&report, "backup");
    let backup_start = chrono::DateTime::parse_from_rfc3339(backup["started_at"].as_str().unwrap()).unwrap();
    let backup_to_fail = (t_fail - backup_start).num_milliseconds() as f64;
    // The newest marker the copy can miss was written at most one interval before
    // the snapshot; 25ms covers one marker write and the millisecond rounding.
    let bound = 300.0 + backup_to_fail + 25.0;
    assert!(rpo > 0.0 && rpo <= bound, "RPO {rpo}ms outside (0, {bound}]ms");
}

#[test]
fn validate_reports_each_broken_plan_with_its_line_and_fix() {
    let ws = Workspace::empty();
    let base = "[targets]\nrto = \"5m\"\nrpo = \"5m\"\n[source]\nkind = \"sqlite\"\npath = \"x.db\"\n[[check]]\nkind = \"sqlite-integrity\"\n";
    ws.write("drills/good.toml", &format!("schedule = \"0 3 * * 1-5\"\n{base}"));
    ws.write("drills/typo.toml", &format!("{base}[backup]\nmdoe = \"fresh\"\n"));
    ws.write("drills/duration.toml", "[targets]\nrto = \"300\"\nrpo = \"5m\"\n[source]\nkind = \"sqlite\"\npath = \"x.db\"\n[[check]]\nkind = \"sqlite-integrity\"\n");
    ws.write("drills/cron.toml", &format!("schedule = \"0 3 * * 9\"\n{base}"));
    ws.write("drills/nosource.toml", "[targets]\nrto = \"5m\"\nrpo = \"5m\"\n[[check]]\nkind = \"sqlite-integrity\"\n");
    ws.write("drills/store.toml", &format!("{base}[backup]\nstore = \"offsite\"\n"));
    ws.write("drills/misfit.toml", &format!("{base}[[check]]\nkind = \"tree-matches-source\"\n"));
    ws.write(
        "drills/kind.toml",
        "[targets]\nrto = \"5m\"\nrpo = \"5m\"\n[source]\nkind = \"sqlit\"\npath = \"x.db\"\n",
    );

    let out = ws.cmd().arg("validate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    let expect = [
        ("drills/typo.toml:10:1: unknown field `mdoe`", "did you mean `mode`?"),
        ("drills/duration.toml:2:7: invalid duration", "\"5m\""),
        ("drills/cron.toml:1:12: schedule \"0 3 * * 9\": weekday 9 is out of range", "crontab syntax"),
        ("drills/nosource.toml:1:1: plan has no [source]", "add a [source] table"),
        ("drills/store.toml:10:9: unknown store `offsite`", "use one of the stores in"),
        ("drills/misfit.toml:9:1: check `tree-matches-source` does not fit this source", "compares folders"),
        ("drills/kind.toml:5:8: unknown source kind `sqlit`", "did you mean `sqlite`?"),
    ];
    for (line, fix) in expect {
        let at = text.find(line).unwrap_or_else(|| panic!("missing `{line}` in:\n{text}"));
        let after = &text[at..];
        let fix_line = after.lines().nth(1).unwrap_or("");
        assert!(
            after.lines().next().unwrap().contains(fix) || fix_line.contains(fix),
            "no fix `{fix}` after `{line}`:\n{text}"
        );
    }
    assert!(text.contains("ok drills/good.toml (good)"), "{text}");
    assert_eq!(text.matches("next: ").count(), 1, "three next run times for the schedule: {text}");
    assert!(text.contains("7 of 8 plans have problems"), "{text}");
}

#[test]
fn a_missing_source_path_fails_the_run_and_names_it() {
    let ws = Workspace::empty();
    ws.write(
        "drills/gone.toml",
        "[targets]\nrto = \"5m\"\nrpo = \"5m\"\n[source]\nkind = \"sqlite\"\npath = \"nowhere/orders.db\"\n[[check]]\nkind = \"sqlite-integrity\"\n",
    );
    let (code, report, _) = ws.drill_report("gone", &[]);
    assert_eq!(code, 1);
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("nowhere/orders.db") && reason.contains("fix `path`"), "{reason}");
    assert!(ws.backup_dirs("gone").is_empty(), "a backup was written for a missing source");
    assert!(ws.scratch_leftovers().is_empty());
}

#[test]
fn an_unwritable_store_root_fails_before_anything_is_touched() {
    let ws = Workspace::with_example_drills();
    ws.write("not-a-folder", "a file where the store root should be");
    ws.write_config("[stores.local]\nkind = \"local\"\nroot = \"not-a-folder/store\"\n");
    let (code, report, _) = ws.drill_report("quickstart", &[]);
    assert_eq!(code, 1);
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("cannot create store root not-a-folder/store"), "{reason}");
    assert_eq!(report["phases"][0]["name"], "prepare");
    assert_eq!(report["phases"][0]["status"], "failed");
}

#[test]
fn a_backup_without_manifest_does_not_exist() {
    let ws = Workspace::empty();
    make_tricky_tree(&ws.join("data"));
    let plan = |mode: &str| {
        format!(
            "name = \"m\"\n[targets]\nrto = \"1m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[backup]\nmode = \"{mode}\"\n[[check]]\nkind = \"tree-matches-source\"\n"
        )
    };
    ws.write("drills/m.toml", &plan("fresh"));
    assert_eq!(ws.drill_report("m", &[]).0, 0);
    let backup = ws.backup_dirs("m").pop().unwrap();
    fs::remove_file(backup.join("manifest.json")).unwrap();
    ws.write("drills/m.toml", &plan("latest"));
    let (code, report, _) = ws.drill_report("m", &[]);
    assert_eq!(code, 1);
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("holds no complete backup of plan `m`"), "{reason}");
}

#[test]
fn a_run_past_its_timeout_is_failed_and_cleaned_up() {
    let ws = Workspace::empty();
    make_tricky_tree(&ws.join("data"));
    ws.write(
        "drills/slow.toml",
        "timeout = \"2s\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[[check]]\nkind = \"command\"\nrun = \"sleep 30\"\n",
    );
    let started = std::time::Instant::now();
    let (code, report, _) = ws.drill_report("slow", &[]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the command was not killed at the deadline");
    assert_eq!(code, 1);
    assert!(report["reason"].as_str().unwrap().contains("deadline"), "{report:#}");
    assert!(ws.scratch_leftovers().is_empty());
}

#[test]
fn a_full_scratch_disk_fails_the_run_with_the_reason_and_cleans_scratch() {
    // A real full disk: a 2 MiB tmpfs as the scratch root (needs root, as in CI).
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test mounts a tmpfs and must run as root (scripts/test in CI does)");
    }
    let ws = Workspace::empty();
    make_tricky_tree(&ws.join("data"));
    let small = ws.join("small-scratch");
    fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "cannot mount a tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    ws.write_config("scratch = \"small-scratch\"\n");
    ws.write(
        "drills/big.toml",
        "[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[[check]]\nkind = \"tree-matches-source\"\n",
    );
    let (code, report, _) = ws.drill_report("big", &[]);
    assert_eq!(code, 1, "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("no space left on device") && reason.contains("scratch"), "{reason}");
    let left: Vec<_> = fs::read_dir(&small).unwrap().collect();
    assert!(left.is_empty(), "scratch not cleaned: {left:?}");
}

#[test]
fn the_example_plans_and_configs_validate_without_any_server() {
    // What a fresh clone ships must stay valid: every plan in drills/, against
    // the committed default config and the game-day config.
    let ws = Workspace::with_example_drills();
    ws.copy_from_repo(&["config/drdrill.toml", "config/gameday.toml"]);
    let out = ws.cmd().arg("validate").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let plans = std::fs::read_dir(ws.join("drills"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"));
    assert_eq!(text.lines().filter(|l| l.starts_with("ok ")).count(), plans.count(), "{text}");
    let out = ws.cmd().args(["--config", "config/gameday.toml", "validate"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
