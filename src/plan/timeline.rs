//! A run's timeline, known once: the engine executes these steps in this
//! order, `--dry-run` describes them, and the progress bar counts them.

use super::Plan;

/// A phase a plan may pause before with `pause_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gated {
    Backup,
    Failure,
    Restore,
    Verify,
}

impl Gated {
    pub const ALL: [Gated; 4] = [Gated::Backup, Gated::Failure, Gated::Restore, Gated::Verify];

    pub const fn name(self) -> &'static str {
        match self {
            Gated::Backup => "backup",
            Gated::Failure => "failure",
            Gated::Restore => "restore",
            Gated::Verify => "verify",
        }
    }

    /// Time waiting here comes after T_fail: a person deciding, not recovery,
    /// so it is kept out of RTO.
    pub fn after_t_fail(self) -> bool {
        matches!(self, Gated::Restore | Gated::Verify)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Everything that can be refused is refused here, before T_fail.
    Prepare,
    /// Waits for an approval before the phase.
    Gate(Gated),
    Backup,
    /// With `[[safeguard]]`s: each is evaluated once, and must pass, right
    /// before the first failure; then every `interval` until the steps end.
    Safeguards,
    /// T_fail: the first failure is injected.
    Failure,
    Restore,
    /// With `[service]`: the team's application starts on the restored data
    /// (its time is RTO's `start` share); it is stopped at cleanup.
    Service,
    /// T_ok: the last check passed. RTO and RPO are measured at its end.
    Verify,
    /// Always, after the steps above: undo every injected failure, newest first.
    Rollback,
    /// Always: stop the service and what the restore started, remove scratch.
    Cleanup,
    /// After a passed run, when the plan sets `keep_last` or `max_age`.
    Retention,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Gate(_) => "gate",
            Step::Backup => "backup",
            Step::Safeguards => "safeguard",
            Step::Failure => "failure",
            Step::Restore => "restore",
            Step::Service => "service",
            Step::Verify => "verify",
            Step::Rollback => "rollback",
            Step::Cleanup => "cleanup",
            Step::Retention => "retention",
        }
    }

    /// Steps that run whatever happened before them.
    pub fn always(self) -> bool {
        matches!(self, Step::Rollback | Step::Cleanup)
    }
}

/// Every step of a run of `plan`, in order.
pub fn steps(plan: &Plan) -> Vec<Step> {
    let mut out = vec![Step::Prepare];
    for (gated, step) in Gated::ALL.into_iter().zip([Step::Backup, Step::Failure, Step::Restore, Step::Verify]) {
        if plan.pause_before.iter().any(|g| g == gated.name()) {
            out.push(Step::Gate(gated));
        }
        // After the gate: a person may wait there for an hour, and the check
        // must say how production is at the moment of injection.
        if step == Step::Failure && !plan.safeguards.is_empty() {
            out.push(Step::Safeguards);
        }
        out.push(step);
        if step == Step::Restore && plan.service.is_some() {
            out.push(Step::Service);
        }
    }
    out.extend([Step::Rollback, Step::Cleanup]);
    if plan.backup.retention().is_set() {
        out.push(Step::Retention);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn plan(extra: &str) -> Plan {
        let text = format!(
            "pause_before = [\"verify\"]\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"sqlite\"\npath = \"x.db\"\n{extra}[[check]]\nkind = \"sqlite-integrity\"\n"
        );
        Plan::parse(Path::new("p.toml"), &text, &Config::defaults()).unwrap()
    }

    #[test]
    fn the_service_step_comes_between_restore_and_verify_only_with_a_service() {
        let names = |p: &Plan| steps(p).iter().map(|s| s.name()).collect::<Vec<_>>();
        assert_eq!(
            names(&plan("")),
            ["prepare", "backup", "failure", "restore", "gate", "verify", "rollback", "cleanup"]
        );
        assert_eq!(
            names(&plan("[service]\nrun = \"app\"\n")),
            ["prepare", "backup", "failure", "restore", "service", "gate", "verify", "rollback", "cleanup"]
        );
    }

    #[test]
    fn safeguards_are_looked_at_right_before_injection() {
        let p = plan("[[safeguard]]\nname = \"up\"\nkind = \"command\"\nrun = \"true\"\n");
        let names: Vec<_> = steps(&p).iter().map(|s| s.name()).collect();
        assert_eq!(names[..4], ["prepare", "backup", "safeguard", "failure"], "{names:?}");
    }
}
