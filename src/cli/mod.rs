//! One file per command; `main.rs` only parses arguments and dispatches.

pub mod abort;
pub mod approve;
pub mod backups;
pub mod client;
pub mod daemon;
pub mod evidence;
pub mod history;
pub mod note;
pub mod notify;
pub mod reload;
pub mod report;
pub mod run;
pub mod status;
pub mod trigger;
pub mod validate;

/// Exit codes of `run` (and of any command that reports a drill's result).
pub const EXIT_PASSED: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;

/// Who is at this terminal, for notes and gate approvals.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: getuid(2) cannot fail and has no memory effects.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    format!("terminal (user {user})")
}
