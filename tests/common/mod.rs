//! Shared helpers for integration tests: a throwaway working folder with its own
//! plans, store, scratch and results database, and the real `drdrill` binary.
#![allow(dead_code)]

mod work;
mod workspace;
#[allow(unused_imports)]
pub use work::*;
#[allow(unused_imports)]
pub use workspace::*;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// An empty working folder with a `drills/` folder and no config file, so the
    /// embedded defaults apply (everything under ./var).
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("drdrill-it-").tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("drills")).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Copies the repository's example drills into the sandbox.
    pub fn with_repo_drills(self) -> Sandbox {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_dir(&repo.join("drills"), &self.join("drills"));
        self
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    /// The real binary, run in the sandbox with a clean environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("drdrill").expect("binary");
        c.current_dir(self.path()).env_remove("DRDRILL_CONFIG").env_remove("RUST_LOG");
        c
    }

    /// Runs `drdrill run PLAN --json`; returns exit code and the parsed report.
    pub fn run_json(&self, plan: &str) -> (i32, serde_json::Value, String) {
        let out = self.cmd().args(["run", plan, "--json"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("run {plan}: not JSON ({e}); stdout: {stdout}\nstderr: {stderr}"));
        (out.status.code().unwrap_or(-1), report, stderr)
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.join("var/drdrill.db")).unwrap()
    }

    /// Run folders left in scratch (there must be none after any run).
    pub fn scratch_leftovers(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.join("var/scratch")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The backup folders of `plan` in the default local store, oldest first.
    pub fn backups(&self, plan: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.join(&format!("var/store/{plan}")))
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Everything that must survive a backup and restore, per entry: kind, mode,
/// mtime (seconds), size and content hash, symlink target.
pub fn tree_fingerprint(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let mode = m.mode() & 0o7777;
        let fp = if m.file_type().is_symlink() {
            format!("symlink {} mtime {}", fs::read_link(e.path()).unwrap().display(), m.mtime())
        } else if m.is_dir() {
            format!("dir {mode:o} mtime {}", m.mtime())
        } else {
            let (sha, size) = drdrill::hashing::sha256_file(e.path()).unwrap();
            format!("file {mode:o} mtime {} size {size} {sha}", m.mtime())
        };
        out.push((rel, fp));
    }
    out
}

/// A tree with everything a directory source must keep: nested and empty
/// folders, symlinks (relative, absolute, dangling), modes, mtimes, non-ASCII
/// and spaced names, empty and multi-megabyte files, a read-only folder.
pub fn make_tricky_tree(root: &Path) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let set_mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    fs::create_dir_all(root.join("ünïcødé")).unwrap();
    fs::write(root.join("a/b/c/deep.txt"), b"deep\n").unwrap();
    fs::write(root.join("ünïcødé/日本語 ファイル.txt"), "こんにちは\n").unwrap();
    fs::write(root.join("with space.txt"), b"spaces in names\n").unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fs::write(root.join("a/big.bin"), &big).unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    set_mode(&root.join("run.sh"), 0o755);
    fs::write(root.join("secret"), b"k").unwrap();
    set_mode(&root.join("secret"), 0o600);
    fs::write(root.join("readonly.txt"), b"ro").unwrap();
    set_mode(&root.join("readonly.txt"), 0o444);
    fs::create_dir_all(root.join("locked")).unwrap();
    fs::write(root.join("locked/inside.txt"), b"inside a read-only folder").unwrap();
    symlink("a/b/c/deep.txt", root.join("link-relative")).unwrap();
    symlink("/etc/hostname", root.join("link-absolute")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();
    symlink("a/b", root.join("link-to-dir")).unwrap();
    // Fixed, distinct mtimes, set last (children first) so they stick.
    let mut all: Vec<PathBuf> =
        walkdir::WalkDir::new(root).min_depth(1).into_iter().map(|e| e.unwrap().path().to_path_buf()).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        let t = filetime::FileTime::from_unix_time(1_600_000_000 + i as i64 * 3600, 0);
        if fs::symlink_metadata(p).unwrap().file_type().is_symlink() {
            filetime::set_symlink_file_times(p, t, t).unwrap();
        } else {
            filetime::set_file_times(p, t, t).unwrap();
        }
    }
    set_mode(&root.join("locked"), 0o555);
    let t = filetime::FileTime::from_unix_time(1_500_000_000, 0);
    filetime::set_file_times(root.join("locked"), t, t).unwrap();
}
