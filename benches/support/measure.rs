//! Runs one child process, or a pipeline of them, and reports the wall time and
//! each process's own peak RSS.
//!
//! Peak RSS comes from `wait4`'s rusage, one call per process id, rather than
//! from `/proc/PID/status` VmHWM: the kernel keeps the high-water mark until the
//! process is reaped, so nothing has to sample the process "just before exit"
//! (a race with a process that exits on its own), and no short spike is missed.
//! `getrusage(RUSAGE_CHILDREN)` is a max over every child the bench ever waited
//! for, so it would report the biggest earlier step. `ru_maxrss` of one process
//! is the max of its own peak and that of the descendants it waited for, never a
//! sum, so a shell pipeline would hide its second process: pipelines are spawned
//! here process by process, and their peaks are added because they run at the
//! same time.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The bench's own peak RSS (KiB). A forked child starts with a copy of the
/// bench's address space, whose resident size at that moment Linux keeps in the
/// child's `ru_maxrss` across exec: a child's figure can include up to that
/// much, never more than this peak (a child forked while the bench is small, as
/// most are, reads far below it).
pub fn own_peak_kib() -> u64 {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    u64::try_from(usage.ru_maxrss).unwrap_or(0)
}

/// What one timed step did.
pub struct Ran {
    /// From the first spawn to the last process reaped.
    pub wall: Duration,
    /// The sum of the processes' own peaks (KiB); they run concurrently.
    pub rss_kib: u64,
    /// Standard output of the last process.
    pub stdout: String,
    /// Standard error of every process, in order.
    pub stderr: String,
    /// Exit status of every process, in order.
    pub statuses: Vec<ExitStatus>,
}

impl Ran {
    /// Panics with what failed and its standard error unless every process exited 0:
    /// a figure of a failed step would be meaningless.
    pub fn ok(self, what: &str) -> Self {
        if let Some(bad) = self.statuses.iter().find(|s| !s.success()) {
            panic!("{what} failed ({bad}); its standard error:\n{}", self.stderr);
        }
        self
    }
}

/// Flushes dirty pages so that a timed step does not pay for the previous one's writes.
pub fn sync() {
    let _ = Command::new("sync").status();
}

/// Reads every regular file under `path` (or the file itself) once, so that the
/// next timed step starts with a warm page cache, as every figure promises.
pub fn warm(path: &Path) {
    let mut buf = vec![0u8; 1 << 20];
    for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
        if !entry.file_type().is_file() {
            continue;
        }
        let mut f = std::fs::File::open(entry.path())
            .unwrap_or_else(|e| panic!("warming the cache: cannot read {}: {e}", entry.path().display()));
        while f.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    }
}

/// Runs one command after `sync`; see [`pipeline`].
pub fn timed(cmd: &mut Command) -> Ran {
    pipeline(std::slice::from_mut(cmd))
}

/// Runs `cmds` as a pipeline (each one's standard output feeds the next one's
/// standard input) after `sync`, and reaps each process with `wait4` for its own
/// peak RSS.
#[expect(clippy::zombie_processes, reason = "every child is reaped by wait4 below, which also yields its rusage")]
pub fn pipeline(cmds: &mut [Command]) -> Ran {
    sync();
    let started = Instant::now();
    let mut pids = Vec::new();
    let mut errs: Vec<JoinHandle<String>> = Vec::new();
    let mut out = None;
    let mut upstream = None;
    let last = cmds.len().saturating_sub(1);
    for (i, cmd) in cmds.iter_mut().enumerate() {
        if let Some(stdout) = upstream.take() {
            cmd.stdin(Stdio::from(stdout));
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        // The Command keeps the pipe's read end it was given: drop it, so that a
        // writer sees a closed pipe when its reader exits instead of blocking.
        cmd.stdin(Stdio::null());
        pids.push(child.id() as libc::pid_t);
        errs.push(reader(child.stderr.take()));
        let stdout = child.stdout.take();
        if i == last {
            out = Some(reader(stdout));
        } else {
            upstream = stdout;
        }
    }
    let mut rss_kib = 0u64;
    let mut statuses = Vec::new();
    for pid in pids {
        let mut status = 0;
        // SAFETY: rusage is plain old data; wait4 fills it for the pid we spawned.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(r, pid, "wait4({pid}) failed: {}", std::io::Error::last_os_error());
        rss_kib += u64::try_from(usage.ru_maxrss).unwrap_or(0);
        statuses.push(ExitStatus::from_raw(status));
    }
    let wall = started.elapsed();
    let stdout = out.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
    let stderr = errs.into_iter().map(|t| t.join().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    Ran { wall, rss_kib, stdout, stderr, statuses }
}

/// Drains a child's pipe on a thread, so that a chatty child never blocks on a full pipe.
fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}
