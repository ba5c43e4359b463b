//! Backup management on the local store: list, verify (scrub), retention, and
//! `latest` mode. The same on S3 lives in tests/s3.rs.

use crate::common::{Workspace, example_plan, measurement, phase, reason};

fn sqlite_plan(name: &str, backup_extra: &str) -> String {
    example_plan(
        "quickstart.toml",
        &[
            ("name = \"quickstart\"", &format!("name = \"{name}\"")),
            ("store = \"local\"", &format!("store = \"local\"\n{backup_extra}")),
            ("path = \"var/quickstart/orders.db\"", "path = \"var/orders.db\""),
            (
                "seed = \"drills/quickstart/orders.sql\"",
                &format!("seed = \"{}/drills/quickstart/orders.sql\"", env!("CARGO_MANIFEST_DIR")),
            ),
        ],
    )
}

fn complete_ids(ws: &Workspace, plan: &str) -> Vec<String> {
    ws.backups(&["--plan", plan], &[])
        .iter()
        .filter(|b| b["complete"] == true)
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn retention_keeps_the_last_n_and_always_the_newest() {
    let ws = Workspace::empty();
    ws.write_plan("keep", &sqlite_plan("keep", "keep_last = 2"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = ws.drill("keep", &[]);
        assert_eq!(r["status"], "passed", "{r:#}");
        ids.push(r["backup_id"].as_str().unwrap().to_string());
    }
    assert_eq!(complete_ids(&ws, "keep"), ids[1..].to_vec());

    // max_age shorter than any backup's age: everything but the newest goes.
    ws.write_plan("keep", &sqlite_plan("keep", "max_age = \"1ms\""));
    let r = ws.drill("keep", &[]);
    let retention = phase(&r, "retention");
    assert!(retention["detail"].as_str().unwrap().contains(&ids[1]), "{retention}");
    assert_eq!(complete_ids(&ws, "keep"), vec![r["backup_id"].as_str().unwrap().to_string()]);
}

#[test]
fn a_failed_run_deletes_nothing() {
    let ws = Workspace::empty();
    ws.write_plan("fail", &sqlite_plan("fail", "keep_last = 1"));
    let first = ws.drill("fail", &[]);
    assert_eq!(first["status"], "passed");
    let failing = sqlite_plan("fail", "keep_last = 1")
        .replace("expect = \">= 20000\"", "expect = \"< 0\"")
        .replace("timeout = \"2m\"", "timeout = \"3s\"");
    ws.write_plan("fail", &failing);
    let r = ws.drill("fail", &[]);
    assert_eq!(r["status"], "failed");
    assert_eq!(complete_ids(&ws, "fail").len(), 2);
}

#[test]
fn verify_names_a_flipped_byte_and_a_missing_payload_and_runs_fail() {
    let ws = Workspace::empty();
    ws.write_plan("scrub", &sqlite_plan("scrub", ""));
    let a = ws.drill("scrub", &[]);
    let b = ws.drill("scrub", &[]);
    let (a_id, b_id) = (a["backup_id"].as_str().unwrap(), b["backup_id"].as_str().unwrap());
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "scrub"], &[]);
    assert_eq!(code, 0, "{out}");

    // Flip one byte in the newest payload, delete the older payload.
    let store = ws.path().join("var/store/scrub");
    let b_payload = store.join(b_id).join("payload.tar.zst");
    let mut bytes = std::fs::read(&b_payload).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&b_payload, bytes).unwrap();
    std::fs::remove_file(store.join(a_id).join("payload.tar.zst")).unwrap();

    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "scrub"], &[]);
    assert_eq!(code, 1, "{out}");
    let bad: Vec<&str> = out.lines().filter(|l| l.starts_with("BAD")).collect();
    assert_eq!(bad.len(), 2, "{out}");
    assert!(bad.iter().any(|l| l.contains(a_id) && l.contains("missing")), "{out}");
    assert!(bad.iter().any(|l| l.contains(b_id) && l.contains("manifest says")), "{out}");

    // A drill restoring the damaged newest backup fails on its checksum.
    ws.write_plan("scrub", &sqlite_plan("scrub", "").replace("mode = \"fresh\"", "mode = \"latest\""));
    let r = ws.drill("scrub", &[]);
    assert_eq!(r["status"], "failed");
    assert!(reason(&r).contains("checksum mismatch"), "{r:#}");
}

#[test]
fn latest_mode_rpo_is_the_backup_age() {
    let ws = Workspace::empty();
    ws.write_plan("age", &sqlite_plan("age", ""));
    let fresh = ws.drill("age", &[]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let latest = sqlite_plan("age", "")
        .replace("mode = \"fresh\"", "mode = \"latest\"")
        .replace("[probe]\nkind = \"canary\"\ninterval = \"200ms\"\n", "");
    ws.write_plan("age", &latest);
    let r = ws.drill("age", &[]);
    assert_eq!(r["status"], "passed", "{r:#}");
    assert_eq!(r["backup_id"], fresh["backup_id"]);
    let rpo = measurement(&r, "rpo");
    assert_eq!(rpo["method"], "backup consistency point");
    assert!(rpo["value_ms"].as_f64().unwrap() >= 1200.0, "{rpo}");
}
