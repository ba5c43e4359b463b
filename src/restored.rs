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
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::cancel::Cancel;
use crate::store::Entries;

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
    /// An application answers requests on `DRDRILL_PORT`: the plan's
    /// `[service]` started one on the restored data, or the restore itself may.
    pub endpoint: bool,
}

impl Yields {
    pub const fn tree(live_tree: bool) -> Yields {
        Yields { shape: Shape::Tree, sql: None, live_tree, endpoint: false }
    }

    pub const fn file() -> Yields {
        Yields { shape: Shape::File, sql: None, live_tree: false, endpoint: false }
    }

    pub const fn sql_service(dialect: &'static str) -> Yields {
        Yields { shape: Shape::Service, sql: Some(dialect), live_tree: false, endpoint: false }
    }

    /// The same restore with an application answering on `DRDRILL_PORT`.
    pub const fn with_endpoint(self) -> Yields {
        Yields { endpoint: true, ..self }
    }
}

impl fmt::Display for Yields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sql {
            Some(d) => write!(f, "a running {d} server")?,
            None => write!(f, "{}", self.shape)?,
        }
        if self.endpoint {
            f.write_str(" with a service on DRDRILL_PORT")?;
        }
        Ok(())
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
    /// An application to send requests to (`[service]`, or a restore that starts one).
    Endpoint,
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
            (Need::Endpoint, _) if y.endpoint => Ok(()),
            (Need::Endpoint, _) => Err(format!(
                "it sends requests to an application, and this restore yields {y} and the plan has no [service]: add `[service] run = \"...\"` to start your application on the restored data"
            )),
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
    /// The point in time the restore recovered to, when the plan asked for one
    /// instead of the end of the archive; RPO and the PITR proof use it.
    pub target: Option<DateTime<Utc>>,
    /// What the restore (or the plan's `[service]`) started and the checks
    /// depend on: once one is gone, no retry can pass.
    pub services: Vec<Arc<dyn Liveness>>,
    /// Where the restore's time went, for the record (`server ready in 2.1s; dump loaded in 40s`).
    pub note: Option<String>,
    /// The manifest entries every restored entry was proven against, as it was
    /// written (path order, sha256 of each file): checks compare with these
    /// instead of reading the restored tree again. `None` when the restore had
    /// no manifest to prove (a restic or borg restore, a team's own tarball).
    pub verified: Option<Entries>,
}

impl Restored {
    pub fn tree(root: PathBuf, files: u64, bytes: u64) -> Restored {
        Restored::new(root.clone(), root, Shape::Tree, files, bytes)
    }

    pub fn file(root: PathBuf, file: PathBuf, files: u64, bytes: u64) -> Restored {
        Restored::new(file, root, Shape::File, files, bytes)
    }

    pub fn new(path: PathBuf, root: PathBuf, shape: Shape, files: u64, bytes: u64) -> Restored {
        Restored {
            path,
            root,
            shape,
            sql: None,
            env: Vec::new(),
            files,
            bytes,
            target: None,
            services: Vec::new(),
            note: None,
            verified: None,
        }
    }

    /// The same restore, every entry of which was proven against `entries`.
    pub fn with_verified(self, entries: Entries) -> Restored {
        Restored { verified: Some(entries), ..self }
    }

    /// `Err` naming the first service that is gone, and how it ended.
    pub fn services_running(&self) -> Result<(), String> {
        self.services.iter().try_for_each(|s| s.running())
    }
}

/// A process a restore started and the checks depend on.
pub trait Liveness: Debug + Send + Sync {
    /// `Err` saying what stopped and its last words, once it is gone.
    fn running(&self) -> Result<(), String>;
}

impl Liveness for crate::proc::Background {
    fn running(&self) -> Result<(), String> {
        crate::proc::Background::running(self)
    }
}

/// `target = "T_fail - 5m"` or an absolute time (RFC 3339, or
/// `2026-11-30 12:05:00` in UTC): the point in time a restore recovers to
/// instead of the end of the archive. A time relative to T_fail is resolved
/// when the restore runs, since T_fail is not known before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// This long before the incident.
    BeforeFailure(Duration),
    At(DateTime<Utc>),
}

impl RecoveryTarget {
    pub fn parse(text: &str) -> Result<RecoveryTarget, String> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix("T_fail") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Ok(RecoveryTarget::BeforeFailure(Duration::ZERO));
            }
            let Some(d) = rest.strip_prefix('-') else {
                return Err(format!("recovery target {text:?} must be before the incident: write \"T_fail - 5m\""));
            };
            let d = crate::duration::HumanDuration::parse(d)?;
            return Ok(RecoveryTarget::BeforeFailure(d.0));
        }
        if let Ok(at) = DateTime::parse_from_rfc3339(t) {
            return Ok(RecoveryTarget::At(at.with_timezone(&Utc)));
        }
        for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(at) = chrono::NaiveDateTime::parse_from_str(t, f) {
                return Ok(RecoveryTarget::At(at.and_utc()));
            }
        }
        Err(format!(
            "recovery target {text:?} is neither \"T_fail - <duration>\" nor a time: write \"T_fail - 5m\" or \"2026-11-30T12:05:00Z\""
        ))
    }

    /// The time it names for an incident at `t_fail`.
    pub fn resolve(self, t_fail: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            RecoveryTarget::At(t) => t,
            RecoveryTarget::BeforeFailure(d) => t_fail - chrono::Duration::from_std(d).unwrap_or_default(),
        }
    }
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryTarget::BeforeFailure(d) if d.is_zero() => f.write_str("T_fail"),
            RecoveryTarget::BeforeFailure(d) => write!(f, "T_fail - {}", humantime::format_duration(*d)),
            RecoveryTarget::At(t) => f.write_str(&t.to_rfc3339()),
        }
    }
}

impl<'de> Deserialize<'de> for RecoveryTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RecoveryTarget::parse(&text).map_err(serde::de::Error::custom)
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
        assert!(Need::Endpoint.fits(pg).unwrap_err().contains("[service]"));
        assert!(Need::Endpoint.fits(pg.with_endpoint()).is_ok());
    }

    #[test]
    fn recovery_targets_are_relative_to_the_incident_or_absolute() {
        let t_fail = DateTime::parse_from_rfc3339("2026-11-30T12:10:00Z").unwrap().with_timezone(&Utc);
        let t = RecoveryTarget::parse("T_fail - 5m").unwrap();
        assert_eq!(t.resolve(t_fail).to_rfc3339(), "2026-11-30T12:05:00+00:00");
        assert_eq!(t.to_string(), "T_fail - 5m");
        let t = RecoveryTarget::parse("2026-11-30 12:04:00").unwrap();
        assert_eq!(t.resolve(t_fail).to_rfc3339(), "2026-11-30T12:04:00+00:00");
        let t = RecoveryTarget::parse("2026-11-30T13:04:00+01:00").unwrap();
        assert_eq!(t.resolve(t_fail).to_rfc3339(), "2026-11-30T12:04:00+00:00");
        assert!(RecoveryTarget::parse("T_fail + 5m").unwrap_err().contains("before the incident"));
        assert!(RecoveryTarget::parse("yesterday").unwrap_err().contains("T_fail - 5m"));
    }
}
