//! Where destructive failures keep the live data they move aside or overwrite,
//! until rollback puts it back: `<scratch>/quarantine/run-N/`, outside the run's
//! scratch folder (which is removed after every run) so that data a rollback
//! could not return is never swept away.
//!
//! Each kept item has a line in the folder's index ([`INDEX`]) naming its live
//! path and how to put it back by hand, written before the live data is
//! touched. A folder left behind means drdrill died before rolling back: nobody
//! removes or restores it automatically (only a person knows whether the live
//! path has been rebuilt since); start-up, the API and `drdrill status` say
//! where it is ([`find`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

/// The file in a quarantine folder that says what each kept item is.
pub const INDEX: &str = "WHAT-IS-HERE.txt";

/// Where run `run_id` keeps live data it moved aside.
pub fn dir(scratch_root: &Path, run_id: i64) -> PathBuf {
    scratch_root.join("quarantine").join(format!("run-{run_id}"))
}

/// One run's quarantine folder.
#[derive(Debug, Clone)]
pub struct Quarantine {
    pub dir: PathBuf,
    pub run_id: i64,
}

impl Quarantine {
    pub fn new(scratch_root: &Path, run_id: i64) -> Quarantine {
        Quarantine { dir: dir(scratch_root, run_id), run_id }
    }

    /// A path in the quarantine for data kept from `live`, with a line in the
    /// index saying what it is and how to put it back.
    pub fn keep(&self, live: &Path, what: &str, how: &str) -> anyhow::Result<PathBuf> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create quarantine folder {}", self.dir.display()))?;
        let item = self.dir.join(item_name(live, what));
        // A rename onto it would replace data an earlier, crashed run kept here.
        if fs::symlink_metadata(&item).is_ok() {
            bail!(
                "quarantine already holds {} (see {INDEX} there): put it back or remove it before running this drill again",
                item.display()
            );
        }
        let index = self.dir.join(INDEX);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&index)
            .with_context(|| format!("cannot write {}", index.display()))?;
        writeln!(f, "{}: run {} {what} of {}; {how}", item.display(), self.run_id, live.display())?;
        f.sync_all()?;
        Ok(item)
    }

    /// Removes the folder once every kept item went back; anything still there
    /// is data a rollback could not return, so then it stays.
    pub fn remove_if_empty(&self) {
        let _ = fs::remove_file(self.dir.join(INDEX));
        if fs::remove_dir(&self.dir).is_ok()
            && let Some(parent) = self.dir.parent()
        {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// A stable file name for a live path inside the quarantine folder.
fn item_name(path: &Path, what: &str) -> String {
    let digest = crate::hashing::sha256_hex(path.as_os_str().as_encoded_bytes());
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "root".into());
    format!("{}-{base}.{what}", &digest[..12])
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Leftover {
    pub run_id: i64,
    pub folder: PathBuf,
    /// The index naming each kept item's live path and how to put it back.
    pub index: PathBuf,
}

impl Leftover {
    pub fn message(&self) -> String {
        format!(
            "run {} left live data in quarantine folder {}: its rollback never ran (was drdrill killed?); read {} for what each item is and how to put it back, then remove the folder",
            self.run_id,
            self.folder.display(),
            self.index.display()
        )
    }
}

/// Every non-empty quarantine folder under `scratch_root` whose run is not
/// `active` (an active run's quarantine is in use, not left over).
pub fn find(scratch_root: &Path, active: impl Fn(i64) -> bool) -> Vec<Leftover> {
    let root = scratch_root.join("quarantine");
    let Ok(entries) = std::fs::read_dir(&root) else { return Vec::new() };
    let mut out: Vec<Leftover> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let run_id = e.file_name().to_str()?.strip_prefix("run-")?.parse().ok()?;
            let folder = e.path();
            let holds_data = std::fs::read_dir(&folder).ok()?.next().is_some();
            (holds_data && !active(run_id)).then(|| Leftover { run_id, index: folder.join(INDEX), folder })
        })
        .collect();
    out.sort_by_key(|l| l.run_id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_folders_with_data_except_active_runs() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("quarantine");
        for (name, data) in [("run-3", true), ("run-5", false), ("run-9", true), ("notes", true)] {
            std::fs::create_dir_all(q.join(name)).unwrap();
            if data {
                std::fs::write(q.join(name).join(INDEX), "x").unwrap();
            }
        }
        let found = find(dir.path(), |id| id == 9);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].run_id, 3);
        assert_eq!(found[0].index, q.join("run-3").join(INDEX));
        assert!(found[0].message().contains(INDEX));
        assert!(find(&dir.path().join("absent"), |_| false).is_empty());
    }
}
