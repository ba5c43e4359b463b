//! `kind = "stop-service"` (destructive): `systemctl stop UNIT`; rollback runs
//! `systemctl start UNIT`. `systemctl` may name another binary (a different
//! path, or `systemctl --user` through a wrapper script).

use std::path::PathBuf;
use std::process::Command as Process;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx, Target};
use crate::diag::{Diagnostic, TomlDoc};

pub const KIND: &str = "stop-service";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopService {
    unit: String,
    #[serde(default = "default_systemctl")]
    systemctl: PathBuf,
    #[serde(skip)]
    stopped: AtomicBool,
}

fn default_systemctl() -> PathBuf {
    "systemctl".into()
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<std::sync::Arc<dyn Failure>, Diagnostic> {
    let s: StopService = doc.deserialize(&value)?;
    if s.unit.trim().is_empty() || s.unit.starts_with('-') {
        return Err(doc.at(
            value.span(),
            "stop-service needs a `unit`".into(),
            Some("e.g. `unit = \"nginx.service\"`".into()),
        ));
    }
    Ok(std::sync::Arc::new(s))
}

impl StopService {
    fn systemctl(&self, verb: &str) -> anyhow::Result<std::process::Output> {
        Process::new(&self.systemctl)
            .arg(verb)
            .arg(&self.unit)
            .output()
            .with_context(|| format!("cannot run {} {verb} {}", self.systemctl.display(), self.unit))
    }
}

impl Failure for StopService {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destructive(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("{} stop {} (rollback starts it)", self.systemctl.display(), self.unit)
    }

    fn targets(&self) -> Vec<Target> {
        vec![Target::Unit(self.unit.clone())]
    }

    fn inject(&self, _ctx: &FailureCtx) -> anyhow::Result<String> {
        // Stopping a unit that is already down would make rollback start
        // something that was meant to be off.
        let active = self.systemctl("is-active")?;
        if !active.status.success() {
            bail!(
                "unit {} is not active ({}): nothing to stop",
                self.unit,
                String::from_utf8_lossy(&active.stdout).trim()
            );
        }
        self.stopped.store(true, Ordering::SeqCst);
        let out = self.systemctl("stop")?;
        if !out.status.success() {
            bail!("systemctl stop {} failed: {}", self.unit, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(format!("stopped {}", self.unit))
    }

    fn rollback(&self, _ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        if !self.stopped.swap(false, Ordering::SeqCst) {
            return Ok(None);
        }
        let out = self.systemctl("start")?;
        if !out.status.success() {
            bail!("systemctl start {} failed: {}", self.unit, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(Some(format!("started {}", self.unit)))
    }
}
