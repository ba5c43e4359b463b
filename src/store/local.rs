//! `kind = "local"`: a folder on this machine, through object_store's LocalFileSystem.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::StoreSpec;
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "local";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSpec {
    pub root: PathBuf,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Box<dyn StoreSpec>, Diagnostic> {
    let spec: LocalSpec = doc.deserialize(&value)?;
    if spec.root.as_os_str().is_empty() {
        return Err(doc.at(
            value.span(),
            "store root is empty".into(),
            Some("set `root = \"/path/to/backups\"`".into()),
        ));
    }
    Ok(Box::new(spec))
}

pub fn default_spec() -> Box<dyn StoreSpec> {
    Box::new(LocalSpec { root: "var/store".into() })
}

impl StoreSpec for LocalSpec {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("local folder {}", self.root.display())
    }

    fn build(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        std::fs::create_dir_all(&self.root).with_context(|| {
            format!(
                "cannot create store root {}: make it a writable folder for the drdrill user, or point the store's `root` elsewhere",
                self.root.display()
            )
        })?;
        // fsync is off by default in object_store; a backup that is not on disk
        // when the manifest says it is would be a lie after a power cut.
        let fs = LocalFileSystem::new_with_prefix(&self.root)?.with_automatic_cleanup(true).with_fsync(true);
        Ok(Arc::new(fs))
    }

    fn local_root(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }
}
