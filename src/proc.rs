//! The one way drdrill starts a process: sources' tools, command checks,
//! failure scripts, the PostgreSQL programs, existing-backup tools.
//!
//! Every process gets:
//! - its own process group, killed as a whole (SIGTERM, then SIGKILL after
//!   [`GRACE`]) when the run is cancelled (deadline or abort) or the command's own
//!   timeout passes, so `sh -c "sleep 1000"` leaves no `sleep` behind;
//! - an explicit environment: [`BASE_ENV`] from drdrill's own environment plus
//!   what the caller adds, never everything drdrill has (AWS keys, SMTP passwords);
//! - its output in a log file rather than a pipe nobody drains, and the tail of
//!   that log, with known secrets redacted, for error messages.
//!
//! What happens to processes the command leaves behind once it exits is the
//! caller's choice ([`Reap`]): a check's stragglers are killed at once, a
//! restore's service lives until the run's cleanup, a rollback's restarted
//! service is production's again and is left alone.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use crate::cancel::{Cancel, Cancelled};

/// How long a process group gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// How much of a process's output is kept for error messages and records.
pub const TAIL_BYTES: u64 = 2048;

/// Variables a child inherits from drdrill's own environment; anything else it
/// gets only because the caller (or the plan's `env` list) names it.
pub const BASE_ENV: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR"];

/// What becomes of the processes a command leaves running after it exits.
#[derive(Clone, Debug, Default)]
pub enum Reap {
    /// Killed as soon as the command exits: a check or a backup tool that leaves
    /// a process behind has leaked it.
    #[default]
    AfterExit,
    /// Kept until [`Groups::kill_all`] (the run's cleanup): a restore command may
    /// start the service that the checks then probe.
    Until(Groups),
    /// Never killed after a normal exit: a rollback that restarts a production
    /// service must leave it running.
    Never,
}

/// Process groups that outlive their command until the run ends.
#[derive(Clone, Debug, Default)]
pub struct Groups(Arc<Mutex<Vec<i32>>>);

impl Groups {
    fn add(&self, pgid: i32) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(pgid);
    }

    /// Stops every kept group: SIGTERM, then SIGKILL to those still there after
    /// [`GRACE`]. Returns how many groups still had processes.
    pub fn kill_all(&self) -> usize {
        let groups: Vec<i32> = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        let alive: Vec<i32> = groups.into_iter().filter(|g| group_alive(*g)).collect();
        for g in &alive {
            signal_group(*g, libc::SIGTERM);
        }
        let until = Instant::now() + GRACE;
        while alive.iter().any(|g| group_alive(*g)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        for g in &alive {
            signal_group(*g, libc::SIGKILL);
        }
        alive.len()
    }
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) on a process group this module created; no memory effects.
    unsafe { libc::kill(-pgid, signal) };
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// A process started by [`Cmd::start_kept`]: it runs until the run's cleanup
/// stops its group, or until it exits on its own.
#[derive(Clone, Debug)]
pub struct Background {
    /// Its pid, which is also its process group.
    pub pid: i32,
    pub label: String,
    pub log: Option<PathBuf>,
    exited: Arc<Mutex<Option<ExitStatus>>>,
}

impl Background {
    /// How it ended, once it has.
    pub fn exited(&self) -> Option<ExitStatus> {
        *self.exited.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The end of its log, secrets redacted.
    pub fn tail(&self) -> String {
        self.log.as_deref().map(tail).unwrap_or_default()
    }

    /// `Err` naming how it ended and what it printed last, once it is gone.
    pub fn running(&self) -> Result<(), String> {
        match self.exited() {
            None => Ok(()),
            Some(status) => Err(format!("{} {}; its output: {}", self.label, ended(status), or_none(&self.tail()))),
        }
    }
}

/// `exited (exit status: 3)`, `was killed (signal 9)`; a shell or `runuser`
/// reports its child's signal as 128 + N.
pub fn ended(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.signal(), status.code()) {
        (Some(sig), _) => format!("was killed (signal {sig})"),
        (None, Some(code)) if (129..=128 + 64).contains(&code) => {
            format!("was killed (exit status {code}: signal {})", code - 128)
        }
        _ => format!("exited ({status})"),
    }
}

/// A command to run, built like `std::process::Command`.
#[derive(Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: BTreeMap<OsString, OsString>,
    dir: Option<PathBuf>,
    log: Option<PathBuf>,
    label: String,
    timeout: Option<Duration>,
    reap: Reap,
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The environment may hold passwords handed to a tool: never printed.
        f.debug_struct("Cmd").field("label", &self.label).field("dir", &self.dir).finish()
    }
}

/// A finished command: how it exited and the end of what it printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub label: String,
    pub status: ExitStatus,
    /// The last [`TAIL_BYTES`] of its log, secrets redacted; empty if it printed nothing.
    pub tail: String,
    /// Bytes streamed through stdin or stdout, for the `_feeding` and `_reading` runs.
    pub bytes: u64,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// `Err` naming the command, its exit status and its output unless it exited 0.
    pub fn check(&self) -> anyhow::Result<&Output> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(anyhow!("{} exited with {}: {}", self.label, self.status, self.tail_or_none()))
        }
    }

    pub fn tail_or_none(&self) -> &str {
        if self.tail.is_empty() { "(no output)" } else { &self.tail }
    }
}

impl Cmd {
    /// `program` with no arguments and the base environment.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        let program = program.as_ref().to_os_string();
        let mut env = BTreeMap::new();
        for name in BASE_ENV {
            if let Some(v) = std::env::var_os(name) {
                env.insert(OsString::from(name), v);
            }
        }
        Cmd {
            label: format!("`{}`", program.to_string_lossy()),
            program,
            args: Vec::new(),
            env,
            dir: None,
            log: None,
            timeout: None,
            reap: Reap::default(),
        }
    }

    /// `sh -c script`, labelled by the script itself.
    pub fn shell(script: &str) -> Cmd {
        let mut c = Cmd::new("sh");
        c.args = vec!["-c".into(), script.into()];
        c.label = format!("`{script}`");
        c
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cmd {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.env.insert(k.as_ref().to_os_string(), v.as_ref().to_os_string());
        self
    }

    pub fn envs<I: IntoIterator<Item = (K, V)>, K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: I) -> Cmd {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Passes these variables through from drdrill's environment, where set
    /// (the plan's `env` allow-list).
    pub fn inherit<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, names: I) -> Cmd {
        for n in names {
            if let Some(v) = std::env::var_os(n.as_ref()) {
                self.env.insert(n.as_ref().to_os_string(), v);
            }
        }
        self
    }

    pub fn dir(mut self, d: impl Into<PathBuf>) -> Cmd {
        self.dir = Some(d.into());
        self
    }

    /// Where its stdout and stderr go (stderr only, for [`Cmd::run_reading`]).
    pub fn log(mut self, path: impl Into<PathBuf>) -> Cmd {
        self.log = Some(path.into());
        self
    }

    /// How it is named in errors (default: the program or script in backquotes).
    pub fn label(mut self, label: impl Into<String>) -> Cmd {
        self.label = label.into();
        self
    }

    /// Killed if it runs longer than this, cancelled or not.
    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = Some(t);
        self
    }

    pub fn reap(mut self, r: Reap) -> Cmd {
        self.reap = r;
        self
    }

    pub fn label_text(&self) -> &str {
        &self.label
    }

    /// Runs to completion with no input; output goes to the log.
    pub fn run(&self, cancel: &Cancel) -> anyhow::Result<Output> {
        let log = self.open_log()?;
        let child = self.spawn(Stdio::null(), Stdio::from(log.try_clone()?), Stdio::from(log.try_clone()?))?;
        let running = Running::start(child, self, cancel);
        running.finish(self, log, 0)
    }

    /// Runs it with its stdout streamed into `out` (stderr to the log). A failing
    /// `out` (the store, a cancel) stops the command and is the error returned.
    pub fn run_reading(&self, cancel: &Cancel, out: &mut dyn Write) -> anyhow::Result<Output> {
        let log = self.open_log()?;
        let mut child = self.spawn(Stdio::null(), Stdio::piped(), Stdio::from(log.try_clone()?))?;
        let mut stdout = child.stdout.take().context("child has no stdout")?;
        let running = Running::start(child, self, cancel);
        let copied = io::copy(&mut stdout, out);
        drop(stdout);
        match copied {
            Ok(n) => running.finish(self, log, n),
            Err(e) => {
                running.kill();
                let _ = running.finish(self, log, 0);
                if cancel.is_cancelled() {
                    return Err(anyhow::Error::new(Cancelled).context(format!("{} was stopped", self.label)));
                }
                Err(anyhow::Error::new(e).context(format!("streaming the output of {} failed", self.label)))
            }
        }
    }

    /// Runs it with `input` streamed into its stdin (its stdout and stderr to the
    /// log). An `input` that fails (the store, a checksum, a cancel) stops the
    /// command and is the error returned; a command that stops reading early is
    /// judged by its exit status, which says why.
    pub fn run_feeding(&self, cancel: &Cancel, input: &mut dyn Read) -> anyhow::Result<Output> {
        let log = self.open_log()?;
        let mut child = self.spawn(Stdio::piped(), Stdio::from(log.try_clone()?), Stdio::from(log.try_clone()?))?;
        let mut stdin = child.stdin.take().context("child has no stdin")?;
        let running = Running::start(child, self, cancel);
        let copied = io::copy(input, &mut stdin);
        drop(stdin);
        match copied {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                running.kill();
                let _ = running.finish(self, log, 0);
                if cancel.is_cancelled() {
                    return Err(anyhow::Error::new(Cancelled).context(format!("{} was stopped", self.label)));
                }
                Err(anyhow::Error::new(e).context(format!("reading the input for {} failed", self.label)))
            }
            Err(_) => {
                let out = running.finish(self, log, 0)?;
                if out.success() {
                    return Err(anyhow!(
                        "{} exited 0 without reading all of its input: {}",
                        self.label,
                        out.tail_or_none()
                    ));
                }
                Ok(out)
            }
            Ok(n) => running.finish(self, log, n),
        }
    }

    /// Starts it and returns at once, for a service that runs while the checks
    /// probe it (a throwaway database server, the team's application). Its group
    /// is kept in `groups` until [`Groups::kill_all`] at the run's cleanup; its
    /// output goes to the log; [`Background::exited`] says whether it is gone.
    pub fn start_kept(&self, groups: &Groups) -> anyhow::Result<Background> {
        let log = self.open_log()?;
        let mut child = self.spawn(Stdio::null(), Stdio::from(log.try_clone()?), Stdio::from(log))?;
        let pid = child.id() as i32;
        groups.add(pid);
        let exited = Arc::new(Mutex::new(None));
        let status = exited.clone();
        // Reaped by a thread of its own, so an early exit is seen at once and leaves no zombie.
        std::thread::spawn(move || {
            if let Ok(s) = child.wait() {
                *status.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
            }
        });
        Ok(Background { pid, label: self.label.clone(), log: self.log.clone(), exited })
    }

    fn open_log(&self) -> anyhow::Result<fs::File> {
        match &self.log {
            Some(p) => fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(p)
                .with_context(|| format!("cannot create log {} for {}", p.display(), self.label)),
            None => tempfile::tempfile().with_context(|| format!("cannot create a log file for {}", self.label)),
        }
    }

    fn spawn(&self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> anyhow::Result<Child> {
        let mut c = Command::new(&self.program);
        c.args(&self.args).env_clear().envs(&self.env).stdin(stdin).stdout(stdout).stderr(stderr).process_group(0);
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c.spawn().map_err(|e| {
            let fix = if e.kind() == io::ErrorKind::NotFound {
                format!(": `{}` is not installed or not on PATH", self.program.to_string_lossy())
            } else {
                String::new()
            };
            anyhow::Error::new(e).context(format!("cannot start {}{fix}", self.label))
        })
    }
}

/// Why a supervisor stopped a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    Cancelled,
    TimedOut,
}

enum Msg {
    Exited,
    Stop(Stopped),
}

/// A running child and the thread that kills its group if the run is
/// cancelled or its timeout passes. No polling: the thread waits on a channel
/// that the exit, the cancel hook or the timeout wakes.
struct Running {
    child: Child,
    pgid: i32,
    cancel: Cancel,
    tx: mpsc::Sender<Msg>,
    supervisor: Option<JoinHandle<Option<Stopped>>>,
    _hook: crate::cancel::Hook,
}

impl Running {
    fn start(child: Child, cmd: &Cmd, cancel: &Cancel) -> Running {
        let pgid = child.id() as i32;
        let (tx, rx) = mpsc::channel::<Msg>();
        let hook_tx = tx.clone();
        let hook = cancel.on_cancel(move || {
            let _ = hook_tx.send(Msg::Stop(Stopped::Cancelled));
        });
        let timeout = cmd.timeout;
        let supervisor = std::thread::spawn(move || {
            let first = match timeout {
                Some(t) => match rx.recv_timeout(t) {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => Msg::Stop(Stopped::TimedOut),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                },
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => return None,
                },
            };
            let why = match first {
                Msg::Exited => return None,
                Msg::Stop(why) => why,
            };
            signal_group(pgid, libc::SIGTERM);
            loop {
                match rx.recv_timeout(GRACE) {
                    Ok(Msg::Exited) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Ok(Msg::Stop(_)) => continue,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        signal_group(pgid, libc::SIGKILL);
                        break;
                    }
                }
            }
            Some(why)
        });
        Running { child, pgid, cancel: cancel.clone(), tx, supervisor: Some(supervisor), _hook: hook }
    }

    /// Stops it now, as a cancel would (the output streaming failed).
    fn kill(&self) {
        signal_group(self.pgid, libc::SIGKILL);
    }

    fn finish(mut self, cmd: &Cmd, mut log: fs::File, bytes: u64) -> anyhow::Result<Output> {
        let status = self.child.wait().with_context(|| format!("cannot wait for {}", cmd.label));
        let _ = self.tx.send(Msg::Exited);
        let stopped = self.supervisor.take().and_then(|h| h.join().ok()).flatten();
        let status = status?;
        match (&cmd.reap, stopped) {
            (_, Some(_)) | (Reap::AfterExit, None) => signal_group(self.pgid, libc::SIGKILL),
            (Reap::Until(groups), None) => groups.add(self.pgid),
            (Reap::Never, None) => {}
        }
        let tail = tail_of(&mut log);
        match stopped {
            Some(Stopped::Cancelled) => Err(anyhow::Error::new(Cancelled).context(format!(
                "{} was stopped ({}); its output: {}",
                cmd.label,
                self.cancel.reason().unwrap_or_else(|| "cancelled".into()),
                or_none(&tail)
            ))),
            Some(Stopped::TimedOut) => Err(anyhow!(
                "{} did not finish within {} and was killed; its output: {}",
                cmd.label,
                crate::duration::format_duration(cmd.timeout.unwrap_or_default()),
                or_none(&tail)
            )),
            None => Ok(Output { label: cmd.label.clone(), status, tail, bytes }),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.supervisor.is_some() {
            // Dropped without finish (a panic): never leave the group running.
            signal_group(self.pgid, libc::SIGKILL);
            let _ = self.child.wait();
            let _ = self.tx.send(Msg::Exited);
        }
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(no output)" } else { s }
}

fn tail_of(f: &mut fs::File) -> String {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    crate::redact::scrub(String::from_utf8_lossy(&buf).trim()).into_owned()
}

/// The last [`TAIL_BYTES`] of a log file, secrets redacted; empty if there is none.
pub fn tail(path: &Path) -> String {
    match fs::File::open(path) {
        Ok(mut f) => tail_of(&mut f),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pids_in_group(pgid: i32) -> usize {
        fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|s| {
                    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    f.first() != Some(&"Z") && f.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
                })
            })
            .count()
    }

    #[test]
    fn a_cancelled_command_dies_with_its_children() {
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            c2.cancel();
        });
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let err = Cmd::shell(&format!("sleep 1000 & echo $! > {}; wait", pidfile.display())).run(&cancel).unwrap_err();
        t.join().unwrap();
        assert!(crate::cancel::is_cancelled_error(&err), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        let pid: i32 = fs::read_to_string(pidfile).unwrap().trim().parse().unwrap();
        assert_eq!(pids_in_group(pid), 0, "the background sleep survived");
    }

    #[test]
    fn kept_processes_run_until_their_group_is_stopped_and_say_how_they_ended() {
        let groups = Groups::default();
        let dir = tempfile::tempdir().unwrap();
        let up =
            Cmd::shell("echo started; sleep 30 & wait").log(dir.path().join("up.log")).start_kept(&groups).unwrap();
        let gone = Cmd::shell("echo bye; exit 3").log(dir.path().join("gone.log")).start_kept(&groups).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while gone.exited().is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let e = gone.running().unwrap_err();
        assert!(e.contains("exited (exit status: 3)") && e.contains("bye"), "{e}");
        assert!(up.running().is_ok());
        assert_eq!(groups.kill_all(), 1);
        while up.exited().is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(up.running().unwrap_err().contains("was killed (signal 15)"), "{:?}", up.running());
        assert_eq!(pids_in_group(up.pid), 0, "the background sleep survived");
        assert!(up.tail().contains("started"));
    }

    #[test]
    fn timeouts_kill_reading_and_feeding_runs() {
        let cancel = Cancel::new();
        let mut sink = Vec::new();
        let e = Cmd::shell("sleep 30").timeout(Duration::from_millis(200)).run_reading(&cancel, &mut sink).unwrap_err();
        assert!(e.to_string().contains("did not finish within"), "{e:#}");
        let mut input = io::repeat(b'x').take(1 << 20);
        let e = Cmd::shell("sleep 30").timeout(Duration::from_millis(200)).run_feeding(&cancel, &mut input);
        assert!(e.is_err());
    }

    #[test]
    fn the_environment_is_explicit() {
        // cargo sets this for every test process; a child must not see it unless asked.
        let Ok(value) = std::env::var("CARGO_MANIFEST_DIR") else { return };
        let mut out = Vec::new();
        let o = Cmd::shell("echo \"[$CARGO_MANIFEST_DIR][$PATH]\"").run_reading(&Cancel::new(), &mut out).unwrap();
        assert!(o.success());
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("[][/"), "{text}");
        let mut out = Vec::new();
        Cmd::shell("echo $CARGO_MANIFEST_DIR")
            .inherit(["CARGO_MANIFEST_DIR"])
            .run_reading(&Cancel::new(), &mut out)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap().trim(), value);
    }

    #[test]
    fn failures_name_the_command_its_status_and_output() {
        let o = Cmd::shell("echo oops >&2; exit 3").run(&Cancel::new()).unwrap();
        let e = o.check().unwrap_err().to_string();
        assert!(e.contains("`echo oops >&2; exit 3`") && e.contains("exit status: 3") && e.contains("oops"), "{e}");
        let e = Cmd::new("/no/such/tool").run(&Cancel::new()).unwrap_err();
        assert!(format!("{e:#}").contains("not installed"), "{e:#}");
    }
}
