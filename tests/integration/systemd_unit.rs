//! systemd/drdrill.service passes `systemd-analyze verify` without a single
//! warning and scores 5.0 or better in `systemd-analyze security --offline=true`.

use std::path::PathBuf;
use std::process::Command;

/// A copy of the unit whose ExecStart points at the binary just built, since
/// verify fails on a missing executable.
fn unit_copy(dir: &tempfile::TempDir) -> PathBuf {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/drdrill.service")).unwrap();
    let bin = assert_cmd::cargo::cargo_bin!("drdrill");
    let exec = text.lines().find(|l| l.starts_with("ExecStart=")).expect("the unit has an ExecStart= line").to_string();
    let copied = text.replace(&exec, &exec.replace("/usr/local/bin/drdrill", &bin.display().to_string()));
    assert_ne!(copied, text, "ExecStart= no longer names /usr/local/bin/drdrill; update this test");
    let path = dir.path().join("drdrill.service");
    std::fs::write(&path, copied).unwrap();
    path
}

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run systemd-analyze ({e}): install systemd (apt-get install systemd); scripts/test expects it")
    })
}

#[test]
fn unit_verifies_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(&dir);
    let out = analyze(&["verify", unit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and bad values, warning on stderr only.
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify:\n{stderr}");
}

#[test]
fn unit_exposure_is_at_most_5() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(&dir);
    let out = analyze(&["security", "--offline=true", "--threshold=50", unit.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.split("Overall exposure level for drdrill.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{stdout}"));
    assert!(score <= 5.0 && out.status.success(), "exposure {score} > 5.0:\n{stdout}");
}
