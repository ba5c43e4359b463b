//! Quarantine folders left behind: live data that a destructive failure moved
//! aside (`<scratch>/quarantine/run-N/`) and whose rollback never ran because
//! drdrill was killed. The daemon never removes or restores them itself (only a
//! person knows whether the live path has been rebuilt since); it says where
//! they are, at start-up in the log and afterwards in the API.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::failure::QUARANTINE_INDEX;

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
            (holds_data && !active(run_id)).then(|| Leftover { run_id, index: folder.join(QUARANTINE_INDEX), folder })
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
                std::fs::write(q.join(name).join(QUARANTINE_INDEX), "x").unwrap();
            }
        }
        let found = find(dir.path(), |id| id == 9);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].run_id, 3);
        assert_eq!(found[0].index, q.join("run-3").join(QUARANTINE_INDEX));
        assert!(found[0].message().contains(QUARANTINE_INDEX));
        assert!(find(&dir.path().join("absent"), |_| false).is_empty());
    }
}
