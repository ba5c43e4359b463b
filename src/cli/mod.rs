//! One file per command; `main.rs` only parses arguments and dispatches.

pub mod evidence;
pub mod history;
pub mod notify;
pub mod report;
pub mod run;
pub mod validate;

/// Exit codes of `run` (and of any command that reports a drill's result).
pub const EXIT_PASSED: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
