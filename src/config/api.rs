//! `[api]`: where the daemon listens and where its token lives.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: String,
    pub token_file: PathBuf,
    /// Where people reach the API (a TLS proxy in front), for the links alerts carry.
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { listen: "127.0.0.1:7878".into(), token_file: "var/api-token".into(), public_url: None }
    }
}
