//! `kind = "stop-service"` (destructive): `systemctl stop UNIT`; rollback runs
//! `systemctl start UNIT`. `systemctl` may name another binary (a different
//! path, or `systemctl --user` through a wrapper script).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Failure, FailureCtx, Target, Undo};
use crate::diag::{Diagnostic, TomlDoc};
use crate::proc::{Output, Reap};

pub const KIND: &str = "stop-service";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopService {
    unit: String,
    #[serde(default = "default_systemctl")]
    systemctl: PathBuf,
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

/// Runs `systemctl VERB UNIT`; a unit's own processes are never reaped by us.
fn systemctl(systemctl: &std::path::Path, unit: &str, verb: &str, ctx: &FailureCtx) -> anyhow::Result<Output> {
    ctx.run
        .cmd(systemctl)
        .args([verb, unit])
        .label(format!("{} {verb} {unit}", systemctl.display()))
        .reap(Reap::Never)
        .run(&ctx.run.cancel)
        .with_context(|| format!("cannot run {} {verb} {unit}", systemctl.display()))
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

    fn inject(&self, ctx: &FailureCtx) -> anyhow::Result<String> {
        // Stopping a unit that is already down would make rollback start
        // something that was meant to be off.
        let active = systemctl(&self.systemctl, &self.unit, "is-active", ctx)?;
        if !active.success() {
            bail!("unit {} is not active ({}): nothing to stop", self.unit, active.tail);
        }
        ctx.undo.push(KIND, StartAgain { unit: self.unit.clone(), systemctl: self.systemctl.clone() });
        let out = systemctl(&self.systemctl, &self.unit, "stop", ctx)?;
        if !out.success() {
            bail!("systemctl stop {} failed: {}", self.unit, out.tail);
        }
        Ok(format!("stopped {}", self.unit))
    }
}

#[derive(Debug)]
struct StartAgain {
    unit: String,
    systemctl: PathBuf,
}

impl Undo for StartAgain {
    fn rollback(&self, ctx: &FailureCtx) -> anyhow::Result<Option<String>> {
        let out = systemctl(&self.systemctl, &self.unit, "start", ctx)?;
        if !out.success() {
            bail!("systemctl start {} failed: {}", self.unit, out.tail);
        }
        Ok(Some(format!("started {}", self.unit)))
    }
}
