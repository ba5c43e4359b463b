//! The set of plans the daemon schedules, and how a reload replaces it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::Config;
use crate::hashing::sha256_hex;
use crate::plan::{self, Plan};

/// When a scheduled plan runs next: the schedule's firing, and that plus jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Due {
    pub fire: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub plan: Arc<Plan>,
    pub next: Option<Due>,
}

/// A plan file that did not load.
#[derive(Debug, Clone, Serialize)]
pub struct PlanError {
    pub file: String,
    pub error: String,
    /// The plan whose previous version keeps running because of this error.
    pub kept: Option<String>,
}

impl PlanError {
    pub fn kept_note(&self) -> String {
        match &self.kept {
            Some(name) => format!(" (the previous version of `{name}` keeps its schedule)"),
            None => String::new(),
        }
    }
}

#[derive(Debug, Default)]
pub struct PlanSet {
    pub plans: BTreeMap<String, PlanEntry>,
    pub errors: Vec<PlanError>,
}

impl PlanSet {
    /// The plan due soonest.
    pub fn next_due(&self) -> Option<(String, DateTime<Utc>)> {
        self.plans.iter().filter_map(|(n, e)| e.next.map(|d| (n.clone(), d.at))).min_by_key(|(_, t)| *t)
    }

    /// A copy without the plans themselves, to report a reload.
    pub fn summary(&self) -> PlanSet {
        PlanSet { plans: self.plans.clone(), errors: self.errors.clone() }
    }
}

/// The next time `plan` is due strictly after `after`, or `None` if it has no schedule.
pub fn next_due(plan: &Plan, tz: Tz, after: DateTime<Utc>) -> Option<Due> {
    let fire = *plan.schedule.as_ref()?.next_after_in(after, tz, 1).first()?;
    Some(Due { fire, at: fire + jitter_for(plan, fire) })
}

/// A delay in `[0, jitter)` that is stable for a given plan and firing, so the
/// spread is reproducible from the record rather than random per process.
fn jitter_for(plan: &Plan, fire: DateTime<Utc>) -> chrono::Duration {
    let span = plan.jitter.as_millis() as u64;
    if span == 0 {
        return chrono::Duration::zero();
    }
    let digest = sha256_hex(format!("{}@{}", plan.name, fire.timestamp()).as_bytes());
    let n = u64::from_str_radix(&digest[..16], 16).unwrap_or(0);
    chrono::Duration::milliseconds((n % span) as i64)
}

/// Loads every plan in the config's plans folder. A plan that fails to load keeps
/// its `previous` version (matched by file) and is reported; a plan whose
/// schedule did not change keeps its next due time.
pub fn load(config: &Config, previous: Option<&PlanSet>, tz: Tz, now: DateTime<Utc>) -> PlanSet {
    let mut set = PlanSet::default();
    let previous_by_file =
        |file: &PathBuf| -> Option<&PlanEntry> { previous?.plans.values().find(|e| &e.plan.file == file) };
    let files = match plan::plan_files(&config.plans) {
        Ok(f) => f,
        Err(e) => {
            // The folder itself is unreadable: keep everything as it was.
            set.errors.push(PlanError {
                file: config.plans.display().to_string(),
                error: format!("{e:#}"),
                kept: None,
            });
            if let Some(p) = previous {
                set.plans = p.plans.clone();
            }
            return set;
        }
    };
    for file in files {
        match Plan::load(&file, config) {
            Ok(plan) => {
                if let Some(other) = set.plans.get(&plan.name) {
                    set.errors.push(PlanError {
                        file: file.display().to_string(),
                        error: format!(
                            "plan name `{}` is also used by {}: set a unique `name`",
                            plan.name,
                            other.plan.file.display()
                        ),
                        kept: None,
                    });
                    continue;
                }
                let old = previous.and_then(|p| p.plans.get(&plan.name));
                let same_timing = old.is_some_and(|o| {
                    o.plan.schedule == plan.schedule && o.plan.jitter == plan.jitter && o.next.is_some()
                });
                let next = if same_timing { old.and_then(|o| o.next) } else { next_due(&plan, tz, now) };
                set.plans.insert(plan.name.clone(), PlanEntry { plan: Arc::new(plan), next });
            }
            Err(d) => {
                let kept = previous_by_file(&file).filter(|e| !set.plans.contains_key(&e.plan.name)).cloned();
                set.errors.push(PlanError {
                    file: file.display().to_string(),
                    error: d.to_string(),
                    kept: kept.as_ref().map(|e| e.plan.name.clone()),
                });
                if let Some(e) = kept {
                    set.plans.insert(e.plan.name.clone(), e);
                }
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::path::Path;

    fn plan(head: &str) -> Plan {
        let text = format!(
            "{head}[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"d\"\n[[check]]\nkind = \"tree-matches-source\"\n"
        );
        Plan::parse(Path::new("p.toml"), &text, &Config::defaults()).unwrap()
    }

    #[test]
    fn jitter_delays_within_its_span_and_is_stable() {
        let p = plan("schedule = \"@hourly\"\njitter = \"10m\"\n");
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 13, 5, 0).unwrap();
        let mut delays = Vec::new();
        for h in 0..24 {
            let due = next_due(&p, chrono_tz::UTC, t + chrono::Duration::hours(h)).unwrap();
            let delay = due.at - due.fire;
            assert!(delay >= chrono::Duration::zero() && delay < chrono::Duration::minutes(10), "{delay}");
            assert_eq!(next_due(&p, chrono_tz::UTC, t + chrono::Duration::hours(h)), Some(due));
            delays.push(delay);
        }
        delays.dedup();
        assert!(delays.len() > 1, "jitter is the same for every firing");
        let no_jitter = plan("schedule = \"@hourly\"\n");
        let due = next_due(&no_jitter, chrono_tz::UTC, t).unwrap();
        assert_eq!((due.fire, due.at), (Utc.with_ymd_and_hms(2026, 11, 30, 14, 0, 0).unwrap(), due.fire));
        assert_eq!(next_due(&plan(""), chrono_tz::UTC, t), None);
    }
}
