//! Paths as the kernel will see them: symlinks and `..` resolved. The guard
//! decides on resolved paths, and checks may read only inside the restore.

use std::io;
use std::path::{Component, Path, PathBuf};

/// An absolute path with every symlink and `..` resolved. Parts that do not
/// exist yet are appended to the resolved deepest existing ancestor.
pub fn resolve(p: &Path) -> io::Result<PathBuf> {
    let abs = std::path::absolute(p)?;
    match abs.canonicalize() {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => {
            let Some(parent) = abs.parent() else { return Err(e) };
            let mut base = resolve(parent)?;
            match abs.components().next_back() {
                Some(Component::ParentDir) => {
                    base.pop();
                }
                Some(Component::Normal(name)) => base.push(name),
                _ => {}
            }
            Ok(base)
        }
        Err(e) => Err(e),
    }
}

/// The folder a plan's relative paths resolve against: the one that holds the
/// plan file's folder (`/etc/drdrill` for `/etc/drdrill/drills/db.toml`, the
/// repository for `drills/quickstart.toml`). Plans sit in a plans folder beside
/// the data, seeds and scripts they name, so the same plan text means the same
/// files whatever folder drdrill was started from.
pub fn plan_base(plan_file: &Path) -> PathBuf {
    let abs = std::path::absolute(plan_file).unwrap_or_else(|_| plan_file.to_path_buf());
    let folder = abs.parent().unwrap_or(Path::new("/"));
    folder.parent().unwrap_or(folder).to_path_buf()
}

/// `p` as a plan file means it: absolute as written, relative under [`plan_base`].
pub fn in_plan(plan_file: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p.as_os_str().is_empty() { p.to_path_buf() } else { plan_base(plan_file).join(p) }
}

/// `root/rel` with symlinks followed, refused unless it stays inside `root`:
/// a restored `a.txt -> /live/a.txt` must never make a check read production.
pub fn inside(root: &Path, rel: &Path) -> Result<PathBuf, String> {
    if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(format!("{} is not a plain relative path inside the restore", rel.display()));
    }
    let root = root.canonicalize().map_err(|e| format!("cannot resolve the restore {}: {e}", root.display()))?;
    let joined = root.join(rel);
    let resolved = resolve(&joined).map_err(|e| format!("cannot resolve {}: {e}", joined.display()))?;
    if !resolved.starts_with(&root) {
        return Err(format!(
            "{} resolves to {}, outside the restored copy: checks read only what the backup restored (a symlink out of the restore is not followed)",
            rel.display(),
            resolved.display()
        ));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_handles_missing_tails_and_dotdot() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        assert_eq!(resolve(&root.join("data/new/file")).unwrap(), root.join("data/new/file"));
        assert_eq!(resolve(&root.join("data/../x")).unwrap(), root.join("x"));
        assert_eq!(resolve(&root.join("data/missing/../../y")).unwrap(), root.join("y"));
        std::os::unix::fs::symlink("/etc", root.join("data/link")).unwrap();
        assert_eq!(resolve(&root.join("data/link/passwd")).unwrap(), PathBuf::from("/etc/passwd"));
    }

    #[test]
    fn plan_paths_resolve_beside_the_plans_folder() {
        let f = Path::new("/etc/drdrill/drills/db.toml");
        assert_eq!(plan_base(f), PathBuf::from("/etc/drdrill"));
        assert_eq!(in_plan(f, Path::new("var/db.sqlite")), PathBuf::from("/etc/drdrill/var/db.sqlite"));
        assert_eq!(in_plan(f, Path::new("/srv/db")), PathBuf::from("/srv/db"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(in_plan(Path::new("drills/q.toml"), Path::new("var/q.db")), cwd.join("var/q.db"));
    }

    #[test]
    fn inside_refuses_links_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("real.txt"), b"x").unwrap();
        std::os::unix::fs::symlink("real.txt", root.join("in")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("out")).unwrap();
        assert!(inside(root, Path::new("in")).is_ok());
        assert!(inside(root, Path::new("out")).unwrap_err().contains("outside the restored copy"));
        assert!(inside(root, Path::new("../x")).is_err());
    }
}
