//! A throwaway drdrill workspace with a config file, for tests against the
//! servers that scripts/test starts (read from DRDRILL_TEST_* variables).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A variable exported by scripts/services; absent means the servers were not started.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this test needs the servers that `scripts/test` starts; run scripts/test")
    })
}

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// A workspace under DRDRILL_TEST_ROOT when set (the postgres user can reach
    /// it), else under the system temp folder.
    pub fn new(config: &str) -> Workspace {
        let dir = match std::env::var("DRDRILL_TEST_ROOT") {
            Ok(root) => tempfile::tempdir_in(root).unwrap(),
            Err(_) => tempfile::tempdir().unwrap(),
        };
        // Throwaway PostgreSQL clusters run as the postgres user inside scratch.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::create_dir_all(dir.path().join("drills")).unwrap();
        std::fs::write(dir.path().join("config/drdrill.toml"), config).unwrap();
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_plan(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join("drills").join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn cmd(&self) -> Command {
        // DRDRILL_TEST_BIN: a copy of the binary, for when several worktrees share
        // one target folder and another build may replace target/debug/drdrill.
        let bin = std::env::var_os("DRDRILL_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| assert_cmd::cargo::cargo_bin!("drdrill").to_path_buf());
        let mut c = Command::new(bin);
        c.current_dir(self.path()).env_remove("DRDRILL_CONFIG");
        c
    }

    /// Runs drdrill with `args` and `envs`; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
        let out = self.cmd().args(args).envs(envs.iter().copied()).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `drdrill run PLAN --json`: the report, with the exit code checked against the status.
    pub fn drill(&self, plan: &str, envs: &[(&str, &str)]) -> Value {
        let (code, out, err) = self.run(&["run", plan, "--json"], envs);
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON report ({e}): {out} {err}"));
        let passed = report["status"] == "passed";
        assert_eq!(code, if passed { 0 } else { 1 }, "{report:#}");
        report
    }

    pub fn backups(&self, args: &[&str], envs: &[(&str, &str)]) -> Vec<Value> {
        let mut all = vec!["backups", "list", "--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.run(&all, envs);
        assert_eq!(code, 0, "{out} {err}");
        serde_json::from_str(&out).unwrap()
    }
}

pub fn measurement(report: &Value, name: &str) -> Value {
    report["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} measurement in {report:#}"))
}

pub fn reason(report: &Value) -> String {
    report["reason"].as_str().unwrap_or("").to_string()
}

/// A plan from drills/ with some text replaced, e.g. to point it at a test server.
pub fn example_plan(file: &str, replace: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("drills").join(file);
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{file} no longer contains {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), n % 1_000_000_000)
}
