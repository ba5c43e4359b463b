//! The blast-radius guard: what destructive failures may touch.
//!
//! A failure that touches anything outside drdrill's scratch space runs only if
//! the plan says `destructive = true` AND every target is inside the config's
//! `[safety]` allowlist. The whole plan is decided before the run starts, so a
//! refused run changes nothing. Paths are compared after resolving symlinks and
//! `..`, component by component (`/data2` is not inside `/data`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;

use super::{Failure, Target};
use crate::config::{Config, SafetyConfig};
use crate::paths::resolve;

#[derive(Debug, Clone)]
pub struct Guard {
    safety: SafetyConfig,
    /// `allowed_paths` resolved the same way as targets, paired with the entry as written.
    paths: Vec<(PathBuf, PathBuf)>,
    origin: String,
}

/// The guard's answer for one target, with the rule that decided it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The failure's position in the plan (1-based) and kind.
    pub failure: usize,
    pub kind: &'static str,
    pub target: Option<Target>,
    /// What the target really is after resolution (a resolved path, a pid).
    pub resolved: Option<String>,
    pub allowed: bool,
    pub rule: String,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "REFUSED" };
        write!(f, "failure #{} ({}): ", self.failure, self.kind)?;
        if let Some(t) = &self.target {
            write!(f, "{t}")?;
            if let Some(r) = &self.resolved {
                write!(f, " (= {r})")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{verdict}: {}", self.rule)
    }
}

/// The run was refused before anything happened. Returned (inside `anyhow`)
/// by `Engine::run`; `drdrill run` exits 2 on it.
#[derive(Debug, Clone)]
pub struct Refused {
    pub plan: String,
    pub refusals: Vec<Decision>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "drill {} refused by the blast-radius guard; nothing was touched:", self.plan)?;
        for d in &self.refusals {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

impl Guard {
    pub fn new(config: &Config) -> Guard {
        let paths =
            config.safety.allowed_paths.iter().map(|p| (resolve(p).unwrap_or_else(|_| p.clone()), p.clone())).collect();
        Guard { safety: config.safety.clone(), paths, origin: config.origin() }
    }

    /// Decides every target of every failure of a plan, in order.
    /// `plan_destructive` is the plan's `destructive = true`.
    pub fn decide(&self, failures: &[Arc<dyn Failure>], plan_destructive: bool) -> Vec<Decision> {
        let mut out = Vec::new();
        for (i, f) in failures.iter().enumerate() {
            let base = Decision {
                failure: i + 1,
                kind: f.kind(),
                target: None,
                resolved: None,
                allowed: true,
                rule: String::new(),
            };
            if f.destructive() && !plan_destructive {
                out.push(Decision {
                    allowed: false,
                    rule: "the failure is destructive but the plan does not say `destructive = true`".into(),
                    ..base
                });
                continue;
            }
            let targets = f.targets();
            if targets.is_empty() {
                out.push(Decision { rule: "touches only the run's scratch folder".into(), ..base });
                continue;
            }
            for t in targets {
                let (resolved, allowed, rule) = self.decide_target(&t);
                out.push(Decision { target: Some(t), resolved, allowed, rule, ..base.clone() });
            }
        }
        out
    }

    /// `Err` with every refusal if any target is refused.
    pub fn check(
        &self,
        plan: &str,
        failures: &[Arc<dyn Failure>],
        plan_destructive: bool,
    ) -> Result<Vec<Decision>, Refused> {
        let decisions = self.decide(failures, plan_destructive);
        let refusals: Vec<Decision> = decisions.iter().filter(|d| !d.allowed).cloned().collect();
        if refusals.is_empty() { Ok(decisions) } else { Err(Refused { plan: plan.to_string(), refusals }) }
    }

    fn decide_target(&self, t: &Target) -> (Option<String>, bool, String) {
        match t {
            Target::Path(p) => match self.path_rule(p) {
                Ok((resolved, entry)) => (
                    Some(resolved.display().to_string()),
                    true,
                    format!("inside [safety] allowed_paths entry `{}` of {}", entry.display(), self.origin),
                ),
                Err(why) => (None, false, why),
            },
            Target::Process(name) => {
                let (ok, rule) = self.process_rule(name);
                (None, ok, rule)
            }
            Target::Pidfile(file) => match pid_and_name(file) {
                Ok((pid, name)) => {
                    let (ok, rule) = self.process_rule(&name);
                    (Some(format!("pid {pid}, `{name}`")), ok, rule)
                }
                Err(why) => (None, false, why),
            },
            Target::Unit(unit) => {
                let ok = self.safety.allowed_units.iter().any(|u| unit_name(u) == unit_name(unit));
                let rule = if ok {
                    format!("listed in [safety] allowed_units of {}", self.origin)
                } else {
                    format!(
                        "unit `{unit}` is not in [safety] allowed_units of {} ({}); add it there to allow it",
                        self.origin,
                        list(&self.safety.allowed_units)
                    )
                };
                (None, ok, rule)
            }
            Target::Command(_) => {
                let ok = self.safety.allow_command_failures;
                let rule = if ok {
                    format!("[safety] allow_command_failures = true in {}", self.origin)
                } else {
                    format!(
                        "drdrill cannot see what a command touches, and [safety] allow_command_failures is not true in {}; set it to allow command failures",
                        self.origin
                    )
                };
                (None, ok, rule)
            }
        }
    }

    fn process_rule(&self, name: &str) -> (bool, String) {
        if self.safety.allowed_processes.iter().any(|p| p == name) {
            (true, format!("`{name}` is listed in [safety] allowed_processes of {}", self.origin))
        } else {
            (
                false,
                format!(
                    "process `{name}` is not in [safety] allowed_processes of {} ({}); add its exact name there to allow it",
                    self.origin,
                    list(&self.safety.allowed_processes)
                ),
            )
        }
    }

    /// The resolved path and the allowlist entry that contains it, or why not.
    fn path_rule(&self, p: &Path) -> Result<(PathBuf, PathBuf), String> {
        let resolved = resolve(p).map_err(|e| format!("cannot resolve {}: {e}", p.display()))?;
        match self.paths.iter().find(|(allowed, _)| resolved.starts_with(allowed)) {
            Some((_, entry)) => Ok((resolved, entry.clone())),
            None => Err(format!(
                "{} resolves to {}, which is not inside any [safety] allowed_paths entry of {} ({}); add a folder that contains it there to allow it",
                p.display(),
                resolved.display(),
                self.origin,
                list(&self.safety.allowed_paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>())
            )),
        }
    }

    /// Resolves `p` and checks it again, for failures at inject time: what they
    /// act on is the resolved path, so a symlink swapped in since the run was
    /// approved cannot lead outside the allowlist.
    pub fn path(&self, p: &Path) -> anyhow::Result<PathBuf> {
        match self.path_rule(p) {
            Ok((resolved, _)) => Ok(resolved),
            Err(why) => bail!("blast-radius guard: {why}"),
        }
    }

    /// Checks a process name again at inject time.
    pub fn process(&self, name: &str) -> anyhow::Result<()> {
        let (ok, why) = self.process_rule(name);
        if !ok {
            bail!("blast-radius guard: {why}");
        }
        Ok(())
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "empty: nothing is allowed".into() } else { format!("has {}", items.join(", ")) }
}

fn unit_name(u: &str) -> &str {
    u.strip_suffix(".service").unwrap_or(u)
}

/// The pid in a pidfile and that process's name (`/proc/PID/comm`).
pub fn pid_and_name(pidfile: &Path) -> Result<(i32, String), String> {
    let text =
        std::fs::read_to_string(pidfile).map_err(|e| format!("cannot read pidfile {}: {e}", pidfile.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| format!("pidfile {} does not hold a process id: {:?}", pidfile.display(), text.trim()))?;
    let name = process_name(pid).ok_or_else(|| {
        format!("no process {pid} is running (from pidfile {}): start it before the drill", pidfile.display())
    })?;
    Ok((pid, name))
}

/// The kernel's name of a running process, `None` if it is gone.
pub fn process_name(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_of_a_name_is_not_containment() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults();
        config.safety.allowed_paths = vec![dir.path().join("data")];
        let g = Guard::new(&config);
        assert!(g.path(&dir.path().join("data/a")).is_ok());
        let err = g.path(&dir.path().join("data2/a")).unwrap_err().to_string();
        assert!(err.contains("not inside any [safety] allowed_paths"), "{err}");
    }
}
