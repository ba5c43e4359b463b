//! What a restore yields, and what a check needs from it.
//!
//! A source kind says before the run what its restore will yield ([`Yields`]):
//! a tree of files, one file, or a running service (with a SQL client where the
//! service speaks SQL). A check says what it needs ([`Need`]). Plan validation
//! matches the two with a file:line error, so no check ever names a source kind:
//! `sql-query` fits any restore that yields a SQL service, whichever source made it.

use std::fmt::{self, Debug};
use std::path::PathBuf;
use std::sync::Arc;

use crate::cancel::Cancel;

/// The shape of a restore, known from the plan alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A folder tree.
    Tree,
    /// One file (a database file).
    File,
    /// A running service in scratch (a throwaway database server).
    Service,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Tree => "a folder tree",
            Shape::File => "one file",
            Shape::Service => "a running service",
        })
    }
}

/// What a source's restore will yield.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yields {
    pub shape: Shape,
    /// The service answers SQL; its dialect, for messages (`PostgreSQL`).
    pub sql: Option<&'static str>,
    /// The source has a live folder a restored tree can be compared with.
    pub live_tree: bool,
}

impl Yields {
    pub const fn tree(live_tree: bool) -> Yields {
        Yields { shape: Shape::Tree, sql: None, live_tree }
    }

    pub const fn file() -> Yields {
        Yields { shape: Shape::File, sql: None, live_tree: false }
    }

    pub const fn sql_service(dialect: &'static str) -> Yields {
        Yields { shape: Shape::Service, sql: Some(dialect), live_tree: false }
    }
}

impl fmt::Display for Yields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sql {
            Some(d) => write!(f, "a running {d} server"),
            None => write!(f, "{}", self.shape),
        }
    }
}

/// What a check needs from the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anything: it runs a command with the restore in its environment.
    Any,
    /// A file to read: the restored file itself, or (when the check names a
    /// `path`) a file inside a restored tree.
    File { path_given: bool },
    /// A restored tree and the live folder it came from.
    TreeAndLive,
    /// A service that answers SQL.
    Sql,
}

impl Need {
    /// `Err` says why the restore does not fit, in terms of what it yields.
    pub fn fits(self, y: Yields) -> Result<(), String> {
        match (self, y.shape) {
            (Need::Any, _) => Ok(()),
            (Need::File { .. }, Shape::File) => Ok(()),
            (Need::File { path_given: true }, Shape::Tree) => Ok(()),
            (Need::File { path_given: false }, Shape::Tree) => {
                Err(format!("it reads one file, and this restore yields {y}: add `path` to the file inside it"))
            }
            (Need::File { .. }, Shape::Service) => {
                Err(format!("it reads a restored file, and this restore yields {y}"))
            }
            (Need::TreeAndLive, Shape::Tree) if y.live_tree => Ok(()),
            (Need::TreeAndLive, _) => Err(format!(
                "it compares folders: a restored tree with the live folder, and this restore yields {y}{}",
                if y.shape == Shape::Tree { " without a live folder to compare with" } else { "" }
            )),
            (Need::Sql, _) if y.sql.is_some() => Ok(()),
            (Need::Sql, _) => Err(format!("it queries a restored SQL server, and this restore yields {y}")),
        }
    }
}

/// Runs SQL against a restored service.
pub trait SqlClient: Debug + Send + Sync {
    /// The first column of the first row of `sql` (`None` for NULL; no rows is
    /// an error), in `database` or the restored one.
    fn query_first(&self, sql: &str, database: Option<&str>, cancel: &Cancel) -> anyhow::Result<Option<String>>;
}

/// What a restore produced, handed to checks and canaries.
#[derive(Debug, Clone)]
pub struct Restored {
    /// What `DRDRILL_RESTORE` points at: the tree's root, the restored file, or
    /// the service's connection file.
    pub path: PathBuf,
    /// The folder the restore wrote into; checks read only inside it.
    pub root: PathBuf,
    pub shape: Shape,
    /// How to talk SQL to a restored service.
    pub sql: Option<Arc<dyn SqlClient>>,
    /// Variables that reach a restored service (`PGHOST`, `DRDRILL_PORT`, ...),
    /// for the processes checks start.
    pub env: Vec<(String, String)>,
    pub files: u64,
    pub bytes: u64,
}

impl Restored {
    pub fn tree(root: PathBuf, files: u64, bytes: u64) -> Restored {
        Restored { path: root.clone(), root, shape: Shape::Tree, sql: None, env: Vec::new(), files, bytes }
    }

    pub fn file(root: PathBuf, file: PathBuf, files: u64, bytes: u64) -> Restored {
        Restored { path: file, root, shape: Shape::File, sql: None, env: Vec::new(), files, bytes }
    }
}

/// The live folder a `tree-matches-source` check compares with, and the names
/// in it that drdrill itself writes (canary markers) and comparisons skip.
#[derive(Debug, Clone)]
pub struct LiveTree {
    pub path: PathBuf,
    pub ignore: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_match_yields_without_naming_sources() {
        let tree = Yields::tree(true);
        let pg = Yields::sql_service("PostgreSQL");
        assert!(Need::Sql.fits(pg).is_ok());
        assert!(Need::Sql.fits(tree).unwrap_err().contains("yields a folder tree"));
        assert!(Need::File { path_given: false }.fits(Yields::file()).is_ok());
        assert!(Need::File { path_given: false }.fits(tree).unwrap_err().contains("add `path`"));
        assert!(Need::File { path_given: true }.fits(tree).is_ok());
        assert!(Need::TreeAndLive.fits(Yields::file()).unwrap_err().contains("compares folders"));
        assert!(Need::TreeAndLive.fits(Yields::tree(false)).is_err());
        assert!(Need::Any.fits(pg).is_ok());
    }
}
