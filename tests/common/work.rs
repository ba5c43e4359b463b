//! Shared helpers for the integration tests: a throwaway working folder with the
//! quickstart plan, the real `drdrill` binary, and the real `sqlite3` tool.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    /// A folder holding `drills/quickstart.toml` and its seed, and nothing else.
    pub fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(dir.path().join("drills/quickstart")).unwrap();
        std::fs::copy(root.join("drills/quickstart.toml"), dir.path().join("drills/quickstart.toml")).unwrap();
        std::fs::copy(root.join("drills/quickstart/orders.sql"), dir.path().join("drills/quickstart/orders.sql"))
            .unwrap();
        Work { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("var/drdrill.db")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("drdrill").unwrap();
        c.current_dir(self.path()).env_remove("DRDRILL_CONFIG");
        c
    }

    pub fn drdrill(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Sets the quickstart RTO target, e.g. "1ms" to make the next run fail.
    pub fn set_rto_target(&self, target: &str) {
        let file = self.path().join("drills/quickstart.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("rto = ") {
                out += &format!("rto = \"{target}\"\n");
            } else {
                out += line;
                out.push('\n');
            }
        }
        std::fs::write(file, out).unwrap();
    }

    /// Runs the quickstart drill and returns its exit code.
    pub fn run_quickstart(&self) -> i32 {
        let out = self.drdrill(&["run", "quickstart"]);
        let code = out.status.code().unwrap_or(-1);
        assert!(code == 0 || code == 1, "run did not finish: {}", String::from_utf8_lossy(&out.stderr));
        code
    }

    /// Runs SQL through the real sqlite3 command-line tool, as a tamperer would.
    pub fn sqlite3(&self, sql: &str) -> String {
        let out = std::process::Command::new("sqlite3")
            .arg(self.db())
            .arg(sql)
            .output()
            .expect("the sqlite3 tool is missing: run scripts/test (scripts/services/05-sqlite3.sh installs it)");
        assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A test server's setting from scripts/test; fails (never skips) without it.
pub fn test_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run these tests through scripts/test, which starts the test servers")
    })
}
