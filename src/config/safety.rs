//! `[safety]`: the blast radius destructive failures may touch.

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
}
