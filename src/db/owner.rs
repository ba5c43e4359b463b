//! Who runs a run: the process that recorded it, named so that start-up
//! recovery can tell a crashed run from one another process is still running.
//!
//! A pid alone is not enough: pids are reused, so the owner is the pid plus the
//! process's start time (`/proc/<pid>/stat` field 22, in clock ticks since boot)
//! plus the boot id, and the host (the run's `host`). Another host's runs are
//! never judged from here: its processes are not in this `/proc`.

use std::fs;

/// The identity of one process on one boot of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Clock ticks after boot at which the process started.
    pub started: u64,
    pub boot: String,
}

/// What this host can say about a recorded owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Gone, or its pid now belongs to another process.
    Dead,
    /// The run was recorded on another host: nothing here can tell.
    OtherHost,
}

impl Owner {
    /// This process.
    pub fn current() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner { pid, started: start_ticks(pid)?, boot: boot_id()? })
    }

    /// Whether the process is still the one that recorded the run. A zombie
    /// counts as dead: it runs nothing any more.
    pub fn liveness(&self) -> Liveness {
        if boot_id().as_deref() != Some(self.boot.as_str()) {
            return Liveness::Dead;
        }
        match stat_fields(self.pid) {
            Some((state, started)) if started == self.started && state != 'Z' && state != 'X' => Liveness::Alive,
            _ => Liveness::Dead,
        }
    }
}

fn boot_id() -> Option<String> {
    Some(fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?.trim().to_string())
}

fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid).map(|(_, t)| t)
}

/// The state (field 3) and start time (field 22) of `/proc/<pid>/stat`. The
/// command name (field 2) is in parentheses and may hold spaces and `)`, so
/// fields are counted from the last `)`.
fn stat_fields(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was `state`; field 22 is 19 further on.
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

/// Whether a run recorded on `host` by `owner` is still owned by a live
/// process, judged from this host.
pub fn liveness_of(host: &str, owner: Option<&Owner>) -> Liveness {
    if host != crate::net::hostname() {
        return Liveness::OtherHost;
    }
    match owner {
        Some(o) => o.liveness(),
        // Recorded before owners were: only a crashed daemon left those.
        None => Liveness::Dead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Owner::current().expect("/proc is readable");
        assert_eq!(me.liveness(), Liveness::Alive);
        assert_eq!(Owner { started: me.started + 1, ..me.clone() }.liveness(), Liveness::Dead);
        assert_eq!(Owner { boot: "another boot".into(), ..me.clone() }.liveness(), Liveness::Dead);
        assert_eq!(liveness_of("not-this-host.invalid", Some(&me)), Liveness::OtherHost);
    }
}
