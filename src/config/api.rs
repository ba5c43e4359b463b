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
    /// Whether the console's read-only pages need a session (a login with the
    /// token) or are open, as the JSON reads are, to whoever reaches loopback.
    pub console_reads: ConsoleReads,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleReads {
    #[default]
    Open,
    Token,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:7878".into(),
            token_file: "var/api-token".into(),
            public_url: None,
            console_reads: ConsoleReads::Open,
        }
    }
}
