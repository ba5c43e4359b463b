//! One file per command; `main.rs` only parses arguments and dispatches.

pub mod abort;
pub mod approve;
pub mod backups;
pub mod client;
pub mod coverage;
pub mod daemon;
pub mod evidence;
pub mod fleet;
pub mod history;
pub mod logs;
pub mod note;
pub mod notify;
pub mod reload;
pub mod report;
pub mod run;
pub mod status;
pub mod stop;
pub mod trigger;
pub mod validate;

/// Exit codes of `run` (and of any command that reports a drill's result).
pub const EXIT_PASSED: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;

/// Lets a closed standard output end the process quietly, as it ends `ls` in
/// `ls | head -1`, instead of a panic ("failed printing to stdout: Broken pipe").
///
/// Rust starts programs with SIGPIPE ignored, so a write to a closed pipe fails
/// with EPIPE and `println!` panics. Handling that error at every print would
/// hold only as long as nobody adds a plain `println!`; the default disposition
/// covers every print at once, and a command that only reads and prints has
/// nothing to leave half done. It is wrong only while drdrill has pipes to child
/// processes: a drill feeds and reads its tools through pipes, and a tool that
/// exits early must be an error the drill handles (rollback, cleanup), not a
/// signal that kills drdrill halfway. So `daemon` never calls this and `run`
/// calls it once the drill is over. Sockets are unaffected: Rust writes them
/// with MSG_NOSIGNAL, so a client that hangs up never signals the daemon.
pub fn stdout_may_close() {
    // SAFETY: installs the default disposition, no handler code; children get
    // the default anyway (Rust's spawn resets it).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Who is at this terminal, for notes and gate approvals.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: getuid(2) cannot fail and has no memory effects.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    format!("terminal (user {user})")
}

/// Prints a command's `--json` result.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints one event of a stream as one line of JSON (NDJSON).
pub fn print_ndjson(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Reports an error the `--json` way (`{"error": ...}` on stdout) or the
/// text way (stderr, with its fix), and returns `code`.
pub fn fail(json: bool, code: u8, message: &str, fix: Option<&str>) -> u8 {
    if json {
        let _ = print_json(&serde_json::json!({ "error": message, "fix": fix }));
    } else {
        eprintln!("error: {message}");
        if let Some(f) = fix {
            eprintln!("fix: {f}");
        }
    }
    code
}
