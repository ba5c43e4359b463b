//! `[evidence]`: where this node's signing key lives.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// The Ed25519 key that signs every evidence record (OpenSSH format,
    /// mode 0600). Default: beside the results database, `<database>.signing-key`.
    pub key_file: Option<PathBuf>,
}

impl EvidenceConfig {
    /// The key file for the results database at `database`.
    pub fn key_path(&self, database: &Path) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| {
            let mut name = database.as_os_str().to_owned();
            name.push(".signing-key");
            PathBuf::from(name)
        })
    }
}
