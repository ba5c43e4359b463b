//! Per-run throwaway folders under the scratch root, always removed afterwards.
//!
//! A crash leaves a run's folder behind; start-up sweeps it once the run's
//! owner is known to be gone (the caller decides, from the results database),
//! never while the run still goes on in another process. The root also holds
//! what a run could not write to the results database: why its result was not
//! recorded ([`ScratchRoot::leave_cause`]), for the next start-up to record.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Prefix of every run folder, so a sweep after a crash touches nothing else.
const RUN_PREFIX: &str = "run-";

/// Folder (under the root) of causes left by runs that could not be recorded.
const UNRECORDED: &str = "unrecorded";

/// Prefix of the folders of looks at backups outside any run, followed by the
/// purpose and the pid of the process that looks.
const LOOK_PREFIX: &str = "look-";

#[derive(Debug, Clone)]
pub struct ScratchRoot {
    root: PathBuf,
}

impl ScratchRoot {
    /// Made absolute, because commands run by checks get these paths while
    /// running in another folder.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        ScratchRoot { root: std::path::absolute(&root).unwrap_or(root) }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Creates the folder of run `run_id`, replacing any stale one left by a crash.
    pub fn create_run(&self, run_id: i64) -> anyhow::Result<RunScratch> {
        fs::create_dir_all(&self.root).with_context(|| {
            format!(
                "cannot create scratch root {}: make it writable or set `scratch` in the config",
                self.root.display()
            )
        })?;
        let path = self.root.join(format!("{RUN_PREFIX}{run_id}"));
        if path.exists() {
            force_remove(&path)?;
        }
        fs::create_dir(&path).with_context(|| format!("cannot create scratch folder {}", path.display()))?;
        // Restored data may be sensitive: only the drdrill user reads scratch.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        Ok(RunScratch { path, cleaned: false })
    }

    /// A folder for a look at backups outside any run (the daemon's freshness
    /// check, `drdrill coverage`): listing a repository needs a place for the
    /// tool's cache and locks, as a run's folder gives it. Removed when
    /// dropped; one that a crash left behind is swept once its process is gone.
    pub fn create_look(&self, purpose: &str) -> anyhow::Result<RunScratch> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        fs::create_dir_all(&self.root).with_context(|| {
            format!(
                "cannot create scratch root {}: make it writable or set `scratch` in the config",
                self.root.display()
            )
        })?;
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let purpose: String = purpose.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let path = self.root.join(format!("{LOOK_PREFIX}{purpose}-{}-{n}", std::process::id()));
        if path.exists() {
            force_remove(&path)?;
        }
        fs::create_dir(&path).with_context(|| format!("cannot create scratch folder {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        Ok(RunScratch { path, cleaned: false })
    }

    /// Says why run `run_id`'s result could not be written to the results
    /// database, where the next start-up finds it ([`ScratchRoot::cause`]).
    /// Best effort: the scratch disk may be full too.
    pub fn leave_cause(&self, run_id: i64, cause: &str) -> io::Result<PathBuf> {
        let dir = self.root.join(UNRECORDED);
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{RUN_PREFIX}{run_id}.txt"));
        fs::write(&path, cause)?;
        Ok(path)
    }

    /// What [`ScratchRoot::leave_cause`] left for run `run_id`, if anything.
    pub fn cause(&self, run_id: i64) -> Option<String> {
        let text = fs::read_to_string(self.root.join(UNRECORDED).join(format!("{RUN_PREFIX}{run_id}.txt"))).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }

    /// Removes run folders whose run is not `active` (its owner died, or it is
    /// over), and the causes left for such runs; returns the folders removed.
    /// `active` must say yes for every run that may still be going on, in any
    /// process: its folder is in use.
    pub fn sweep(&self, active: impl Fn(i64) -> bool) -> anyhow::Result<Vec<PathBuf>> {
        if let Ok(causes) = fs::read_dir(self.root.join(UNRECORDED)) {
            for entry in causes.flatten() {
                let name = entry.file_name();
                let id = name.to_str().and_then(|n| n.strip_prefix(RUN_PREFIX)?.strip_suffix(".txt")?.parse().ok());
                if id.is_some_and(|id| !active(id)) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let mut removed = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(e).with_context(|| format!("cannot list scratch root {}", self.root.display())),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(pid) = name.to_str().and_then(look_pid)
                && !process_alive(pid)
            {
                force_remove(&entry.path())?;
                removed.push(entry.path());
                continue;
            }
            let Some(id) = name.to_str().and_then(|n| n.strip_prefix(RUN_PREFIX)).and_then(|n| n.parse().ok()) else {
                continue;
            };
            if !active(id) {
                force_remove(&entry.path())?;
                removed.push(entry.path());
            }
        }
        Ok(removed)
    }
}

/// A run's scratch folder. [`RunScratch::cleanup`] reports failures; dropping it
/// without cleanup still removes the folder (best effort), so no path leaves one.
#[derive(Debug)]
pub struct RunScratch {
    path: PathBuf,
    cleaned: bool,
}

impl RunScratch {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh, empty subfolder for one phase (`staging`, `restore`, ...).
    pub fn subdir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let p = self.path.join(name);
        fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(p)
    }

    pub fn cleanup(mut self) -> anyhow::Result<()> {
        self.cleaned = true;
        force_remove(&self.path).with_context(|| format!("cannot remove scratch folder {}", self.path.display()))
    }
}

impl Drop for RunScratch {
    fn drop(&mut self) {
        if !self.cleaned {
            let _ = force_remove(&self.path);
        }
    }
}

/// The pid in a look's folder name (`look-<purpose>-<pid>-<n>`).
fn look_pid(name: &str) -> Option<i32> {
    let mut parts = name.strip_prefix(LOOK_PREFIX)?.rsplit('-');
    parts.next()?.parse::<u64>().ok()?;
    parts.next()?.parse().ok()
}

/// Whether process `pid` exists (on this host); a pid reused since only keeps
/// a folder until the next sweep.
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The run id of a run's scratch folder (`.../run-<id>`), for code that is
/// handed only the folder.
pub fn run_id_of(run_folder: &Path) -> Option<i64> {
    run_folder.file_name()?.to_str()?.strip_prefix(RUN_PREFIX)?.parse().ok()
}

/// `remove_dir_all` that also works when a restore reproduced read-only folders.
pub fn force_remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return fs::remove_file(path),
        Ok(_) => {}
    }
    for entry in walkdir::WalkDir::new(path).follow_links(false).into_iter().flatten() {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    fs::remove_dir_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_trees_are_removed_and_sweep_spares_active_runs() {
        let root = tempfile::tempdir().unwrap();
        let s = ScratchRoot::new(root.path());
        let a = s.create_run(1).unwrap();
        let ro = a.subdir("restore").unwrap();
        fs::write(ro.join("f"), b"x").unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        let a_path = a.path().to_path_buf();
        a.cleanup().unwrap();
        assert!(!a_path.exists());

        let keep = s.create_run(2).unwrap();
        std::mem::forget(s.create_run(3).unwrap());
        fs::create_dir(root.path().join("not-a-run")).unwrap();
        s.leave_cause(2, "disk full").unwrap();
        s.leave_cause(3, "disk full").unwrap();
        let removed = s.sweep(|id| id == 2).unwrap();
        assert_eq!(removed, vec![root.path().join("run-3")]);
        assert!(keep.path().exists() && root.path().join("not-a-run").exists());
        assert_eq!(s.cause(2).as_deref(), Some("disk full"));
        assert_eq!(s.cause(3), None, "the cause of a run that is over goes with it");
    }

    #[test]
    fn looks_get_folders_of_their_own_and_dead_ones_are_swept() {
        let root = tempfile::tempdir().unwrap();
        let s = ScratchRoot::new(root.path());
        let a = s.create_look("fresh ness").unwrap();
        let b = s.create_look("fresh ness").unwrap();
        assert_ne!(a.path(), b.path());
        assert!(a.path().file_name().unwrap().to_str().unwrap().starts_with("look-fresh_ness-"));
        let a_path = a.path().to_path_buf();
        drop(a);
        assert!(!a_path.exists(), "a look's folder goes when it is dropped");
        // A crashed process's look (no such pid) is swept, a live one is not.
        let dead = root.path().join(format!("{LOOK_PREFIX}coverage-{}-0", i32::MAX));
        fs::create_dir(&dead).unwrap();
        let removed = s.sweep(|_| true).unwrap();
        assert_eq!(removed, vec![dead]);
        assert!(b.path().exists());
    }
}
