//! `[safety]`: the blast radius destructive failures may touch, and the halt
//! file that stops every drill.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// What destructive failures may touch. Empty lists allow nothing.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyConfig {
    pub allowed_paths: Vec<PathBuf>,
    pub allowed_units: Vec<String>,
    pub allowed_processes: Vec<String>,
    /// `command` failures run a user script whose reach drdrill cannot check;
    /// they run only when this is true.
    pub allow_command_failures: bool,
    /// While this path exists, no drill starts and running ones are aborted
    /// (with rollbacks): an emergency stop anyone with a shell can pull.
    pub halt_file: Option<PathBuf>,
}

impl SafetyConfig {
    /// The halt, if the halt file exists now. A path that cannot be looked at
    /// (a folder without permission) counts as present: when in doubt, stop.
    pub fn halt(&self) -> Option<Halt> {
        let file = self.halt_file.as_ref()?;
        match std::fs::symlink_metadata(file) {
            Ok(_) => Some(Halt { file: file.clone(), unreadable: None }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(Halt { file: file.clone(), unreadable: Some(e.to_string()) }),
        }
    }
}

/// The halt file is there: the error a refused run returns, and the reason an
/// aborted one records (`aborted: halt file /path exists`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    pub file: PathBuf,
    /// Why its existence could not be told, when it could not.
    pub unreadable: Option<String>,
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.unreadable {
            None => write!(f, "halt file {} exists", self.file.display()),
            Some(e) => {
                write!(f, "halt file {} cannot be looked at ({e}), so it counts as present", self.file.display())
            }
        }
    }
}

impl std::error::Error for Halt {}

impl Halt {
    /// Why a new run is not started.
    pub fn refusal(&self) -> String {
        format!("refused: {self}; remove it to let drills run again")
    }

    /// The reason a run it stopped is recorded with.
    pub fn abort_reason(&self) -> String {
        format!("aborted: {self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_halt_is_the_file_being_there() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("halt");
        let safety = SafetyConfig { halt_file: Some(file.clone()), ..Default::default() };
        assert_eq!(safety.halt(), None);
        std::fs::write(&file, "").unwrap();
        let halt = safety.halt().unwrap();
        assert_eq!(halt.abort_reason(), format!("aborted: halt file {} exists", file.display()));
        assert!(halt.refusal().contains("remove it"));
        assert_eq!(SafetyConfig::default().halt(), None);
    }
}
