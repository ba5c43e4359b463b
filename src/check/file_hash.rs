//! `kind = "file-hash"`: one restored file has the expected sha256.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Check, CheckCtx, Need};
use crate::diag::{Diagnostic, TomlDoc};
use crate::hashing::sha256_file;

pub const KIND: &str = "file-hash";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHash {
    pub path: PathBuf,
    pub sha256: String,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Check>, Diagnostic> {
    let mut c: FileHash = doc.deserialize(&value)?;
    super::relative_path(doc, &value, Some(&c.path))?;
    c.sha256 = c.sha256.to_ascii_lowercase();
    if c.sha256.len() != 64 || !c.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(doc.at(
            value.span(),
            format!("`sha256` {:?} is not 64 hex digits", c.sha256),
            Some("paste the output of `sha256sum FILE`".into()),
        ));
    }
    Ok(std::sync::Arc::new(c))
}

impl Check for FileHash {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("sha256 of {}", self.path.display())
    }

    fn needs(&self) -> Need {
        Need::File { path_given: true }
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        let file = ctx.file(Some(&self.path))?;
        let (got, size) = sha256_file(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if got == self.sha256 {
            Ok(format!("{} sha256 {got} ({size} bytes)", self.path.display()))
        } else {
            Err(format!("{} has sha256 {got}, expected {}", self.path.display(), self.sha256))
        }
    }
}
