//! Scale: a long history and a daemon carrying many plans (issue #14, targets 4
//! and 5). Run with:
//!
//!     cargo bench --bench scale
//!
//! It generates histories of `$BENCH_RUNS` runs (default `100000,1000000`)
//! with the library's own writers (rows, evidence records, their signatures
//! and a signed head-log line per record, as a daemon that ran them would
//! have), kept under `$BENCH_DIR` (default `var/bench-scale`) for the next run,
//! then times `drdrill report` (HTML) and `drdrill evidence verify` over each,
//! as child processes, with their peak RSS (wait4). Then it starts `drdrill
//! daemon` with `$BENCH_PLANS` (default 1,000) scheduled plans and measures
//! its idle CPU over `$BENCH_IDLE_SECS` (default 20) seconds, its RSS, the
//! median `drdrill status` and `drdrill reload`. Each figure is printed beside
//! its target. `cargo test --all-targets` runs it without `--bench`: a small
//! history and 20 plans, asserting only that every step works.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Timelike, Utc};
use drdrill::config::Config;
use drdrill::db::{Db, evidence, headlog, signing, ts};
use rusqlite::params;

const DRDRILL: &str = env!("CARGO_BIN_EXE_drdrill");
const MIB: f64 = 1024.0 * 1024.0;

/// A finished child: wall time, peak RSS in bytes, exit code, standard output.
struct Measured {
    wall: Duration,
    peak_rss: u64,
    code: i32,
    stdout: String,
}

/// Runs `drdrill --config CONFIG ARGS` and measures it; stdout goes to a file
/// (no pipe to drain), stderr is inherited.
fn drdrill(config: &Path, args: &[&str], scratch: &Path) -> Measured {
    let out_path = scratch.join(format!("stdout-{}", std::process::id()));
    let out = fs::File::create(&out_path).unwrap();
    let t = Instant::now();
    // Reaped by wait4 below, which also gives its peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(DRDRILL)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {DRDRILL}: {e}"));
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    let wall = t.elapsed();
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    Measured { wall, peak_rss: usage.ru_maxrss as u64 * 1024, code, stdout }
}

fn config_text(dir: &Path, port: u16) -> String {
    let r = dir.display();
    format!(
        "database = \"{r}/var/drdrill.db\"\nplans = \"{r}/drills\"\nscratch = \"{r}/var/scratch\"\n\
         [api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{r}/var/api-token\"\n\
         [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n"
    )
}

const PLANS: [(&str, f64, f64); 3] = [
    // name, RTO target ms, RPO target ms
    ("orders-db", 300_000.0, 900_000.0),
    ("docs-folder", 60_000.0, 3_600_000.0),
    ("payments-pg", 600_000.0, 300_000.0),
];

/// Fills `dir` with a signed history of `n` runs spread over the last 80
/// days, written as the engine and the daemon write them.
fn generate(dir: &Path, n: usize) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("drills"))?;
    let cfg = dir.join("drdrill.toml");
    let text = config_text(dir, 0);
    fs::write(&cfg, &text)?;
    let config = Config::parse(&cfg, &text).map_err(|d| anyhow::anyhow!("{d}"))?;
    let db = Db::open_for(&config)?;
    let key = db.key().expect("open_for signs");
    let mut log = BufWriter::new(fs::OpenOptions::new().append(true).create(true).open(db.head_log())?);
    let now = Utc::now();
    let t = Instant::now();
    db.with_conn(|c| -> anyhow::Result<()> {
        let tx = c.transaction()?;
        for (name, _, _) in PLANS {
            let file = dir.join("drills").join(format!("{name}.toml"));
            fs::write(&file, format!("name = \"{name}\"\nschedule = \"0 * * * *\"\n"))?;
            tx.execute(
                "INSERT INTO plans (name, file, sha256, description, updated_at) VALUES (?1, ?2, 'ab', '', ?3)",
                params![name, file.to_string_lossy(), ts(now)],
            )?;
        }
        let span = ChronoDuration::days(80).num_milliseconds();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 10_000) as f64 / 10_000.0
        };
        for i in 0..n {
            let (plan, rto_t, rpo_t) = PLANS[i % PLANS.len()];
            let started = now - ChronoDuration::milliseconds(span - span * i as i64 / n as i64);
            let rto = rto_t * (0.2 + rand() * 0.9);
            let rpo = rpo_t * (0.1 + rand() * 0.8);
            let passed = rto <= rto_t && rpo <= rpo_t;
            tx.execute(
                "INSERT INTO runs (plan, plan_sha256, trigger, status, started_at, finished_at, t_fail, backup_mode,
                   store, backup_id, backup_sha256, backup_created_at, host, version, reason)
                 VALUES (?1, 'ab', 'schedule', ?2, ?3, ?4, ?3, 'fresh', 'local', ?5, 'cd', ?3, 'bench', '0.1.0', ?6)",
                params![
                    plan,
                    if passed { "passed" } else { "failed" },
                    ts(started),
                    ts(started + ChronoDuration::milliseconds(rto as i64 + 500)),
                    format!("backup-{}", i / 3),
                    (!passed).then(|| "RTO exceeded its target".to_string()),
                ],
            )?;
            let id = tx.last_insert_rowid();
            for (seq, (phase, share)) in [("backup", 0.1), ("failure", 0.0), ("restore", 0.6), ("verify", 0.3)]
                .into_iter()
                .enumerate()
            {
                tx.execute(
                    "INSERT INTO phases (run_id, seq, name, started_at, duration_ms, status, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'ok', '')",
                    params![id, seq as i64, phase, ts(started), rto * share],
                )?;
            }
            for (m, v, target) in [("rto", rto, rto_t), ("rpo", rpo, rpo_t)] {
                tx.execute(
                    "INSERT INTO measurements (run_id, name, value_ms, target_ms, method, met) VALUES (?1, ?2, ?3, ?4, 'monotonic', ?5)",
                    params![id, m, v, target, v <= target],
                )?;
            }
            tx.execute(
                "INSERT INTO checks (run_id, seq, kind, description, passed, attempts, duration_ms, output)
                 VALUES (?1, 0, 'sqlite-query', 'count orders', 1, 1, 12.5, '20000')",
                [id],
            )?;
            let entry = evidence::append(&tx, id)?;
            signing::sign_record(&tx, key, entry.seq, &entry.hash)?;
            log.write_all(headlog::line(entry.seq, &entry.hash, id, Some(key)).as_bytes())?;
            if (i + 1) % 100_000 == 0 {
                eprintln!("  generated {} of {n} runs ({:.0?})", i + 1, t.elapsed());
            }
        }
        tx.commit()?;
        Ok(())
    })?;
    log.flush()?;
    drop(log);
    drop(db);
    fs::write(dir.join(".complete"), format!("{n}\n"))?;
    eprintln!("generated {n} runs in {}: {:.1?}", dir.display(), t.elapsed());
    Ok(())
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at its ')'.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A `VmRSS:`-style line of /proc/PID/status, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in status"));
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct DaemonFigures {
    plans: usize,
    idle_cpu_percent: f64,
    idle_secs: u64,
    rss: u64,
    peak_rss: u64,
    status: Duration,
    reload: Duration,
}

/// Starts a daemon over `plans` scheduled plans and measures it.
fn daemon(root: &Path, plans: usize, idle: Duration, calls: usize) -> DaemonFigures {
    let dir = root.join(format!("daemon-{plans}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("drills")).unwrap();
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::write(dir.join("data/file.txt"), "bench\n").unwrap();
    // Daily plans spread over the minutes of the hours furthest from now, so
    // none fires while the daemon is measured.
    let hour = (Utc::now().hour() + 12) % 24;
    for i in 0..plans {
        fs::write(
            dir.join("drills").join(format!("plan-{i:04}.toml")),
            format!(
                "name = \"plan-{i:04}\"\nschedule = \"{} {} * * *\"\ntimeout = \"2m\"\n[targets]\nrto = \"1m\"\nrpo = \"1d\"\n\
                 [source]\nkind = \"directory\"\npath = \"{}\"\n[backup]\nmode = \"fresh\"\n[[failure]]\nkind = \"declare\"\n\
                 [[check]]\nkind = \"tree-matches-source\"\n",
                i % 60,
                (hour + (i / 60) as u32 % 6) % 24,
                dir.join("data").display()
            ),
        )
        .unwrap();
    }
    let port = free_port();
    let cfg = dir.join("drdrill.toml");
    fs::write(&cfg, config_text(&dir, port)).unwrap();
    let log = fs::File::create(dir.join("daemon.log")).unwrap();
    let mut child = Command::new(DRDRILL)
        .arg("--config")
        .arg(&cfg)
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the daemon exited with {status}:\n{}",
                fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
            );
        }
        if drdrill(&cfg, &["status"], &dir).code == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the daemon did not answer within 2 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Settle after start-up, then watch it idle.
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(idle);
    let (cpu1, t1) = (cpu_seconds(pid), t0.elapsed());
    let idle_cpu_percent = (cpu1 - cpu0) / t1.as_secs_f64() * 100.0;
    let rss = proc_status(pid, "VmRSS:");
    let mut status = Vec::new();
    for _ in 0..calls {
        let m = drdrill(&cfg, &["status"], &dir);
        assert_eq!(m.code, 0, "drdrill status: {}", m.stdout);
        status.push(m.wall);
    }
    let mut reload = Vec::new();
    for _ in 0..calls {
        let m = drdrill(&cfg, &["reload"], &dir);
        assert_eq!(m.code, 0, "drdrill reload: {}", m.stdout);
        assert!(m.stdout.contains(&format!("reloaded: {plans} plan(s) scheduled")), "drdrill reload: {}", m.stdout);
        reload.push(m.wall);
    }
    let peak_rss = proc_status(pid, "VmHWM:");
    child.kill().unwrap();
    child.wait().unwrap();
    DaemonFigures {
        plans,
        idle_cpu_percent,
        idle_secs: t1.as_secs(),
        rss,
        peak_rss,
        status: median(status),
        reload: median(reload),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let (sizes, plans, idle, calls) = if bench {
        (env("BENCH_RUNS", "100000,1000000"), env("BENCH_PLANS", "1000"), env("BENCH_IDLE_SECS", "20"), 7)
    } else {
        ("300".into(), "20".into(), "1".into(), 1)
    };
    let sizes: Vec<usize> = sizes.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
    let plans: usize = plans.parse()?;
    let idle = Duration::from_secs(idle.parse()?);
    let tmp = tempfile::tempdir()?;
    let root = if bench { PathBuf::from(env("BENCH_DIR", "var/bench-scale")) } else { tmp.path().to_path_buf() };
    fs::create_dir_all(&root)?;
    let root = fs::canonicalize(&root)?;

    let mut lines = Vec::new();
    let mut rss_by_size = Vec::new();
    for &n in &sizes {
        let dir = root.join(format!("history-{n}"));
        if fs::read_to_string(dir.join(".complete")).ok().as_deref() != Some(&format!("{n}\n")) {
            eprintln!("generating a history of {n} runs in {} (kept for the next run)", dir.display());
            generate(&dir, n)?;
        }
        let cfg = dir.join("drdrill.toml");
        let html = dir.join("report.html");
        let report = drdrill(&cfg, &["report", "--since", "2000-01-01", "-o", html.to_str().unwrap()], &dir);
        assert_eq!(report.code, 0, "drdrill report failed");
        let text = fs::read_to_string(&html)?;
        assert!(text.contains(&format!("<h2>Runs ({n} in the period")), "the report does not count {n} runs");
        let verify = drdrill(&cfg, &["evidence", "verify"], &dir);
        assert!(
            verify.code == 0 && verify.stdout.contains(&format!("OK, {n} record(s)")),
            "evidence verify over {n} runs: {}",
            verify.stdout
        );
        assert!(verify.stdout.contains("every record is signed"), "signatures not checked: {}", verify.stdout);
        let at_target = n >= 1_000_000;
        for (what, m, target) in [("HTML report", &report, 5.0), ("evidence verify", &verify, 30.0)] {
            let secs = m.wall.as_secs_f64();
            lines.push(format!(
                "{:<40} {:>9.2} s  {:>9.1} MiB peak   target < {target:.0} s at 1M runs{}",
                format!("{what}, {n} runs"),
                secs,
                m.peak_rss as f64 / MIB,
                if at_target { format!(": {}", verdict(secs < target)) } else { String::new() }
            ));
        }
        rss_by_size.push((n, report.peak_rss, verify.peak_rss));
    }
    if let (Some(first), Some(last)) = (rss_by_size.first(), rss_by_size.last())
        && last.0 > first.0
    {
        for (what, a, b) in [("HTML report", first.1, last.1), ("evidence verify", first.2, last.2)] {
            let growth = (b as f64 - a as f64) / MIB;
            lines.push(format!(
                "{what} peak RSS from {} to {} runs: {:+.1} MiB (flat = within 10 MiB): {}",
                first.0,
                last.0,
                growth,
                verdict(growth < 10.0)
            ));
        }
    }

    let d = daemon(&root, plans, idle, calls);
    lines.push(format!(
        "daemon, {} plans: idle CPU over {} s {:>6.2} % of a core   target < 1 %: {}",
        d.plans,
        d.idle_secs,
        d.idle_cpu_percent,
        verdict(d.idle_cpu_percent < 1.0)
    ));
    lines.push(format!(
        "daemon, {} plans: RSS {:.1} MiB (peak {:.1} MiB)   target < 100 MiB: {}",
        d.plans,
        d.rss as f64 / MIB,
        d.peak_rss as f64 / MIB,
        verdict(d.peak_rss as f64 / MIB < 100.0)
    ));
    lines.push(format!(
        "`drdrill status`, {} plans: median {:.1} ms of {calls}   target < 200 ms: {}",
        d.plans,
        d.status.as_secs_f64() * 1000.0,
        verdict(d.status < Duration::from_millis(200))
    ));
    lines.push(format!(
        "`drdrill reload`, {} plans: median {:.1} ms of {calls}   target < 1 s: {}",
        d.plans,
        d.reload.as_secs_f64() * 1000.0,
        verdict(d.reload < Duration::from_secs(1))
    ));
    println!(
        "scale bench{} (drdrill {}, {} core(s)):",
        if bench { "" } else { " smoke run" },
        drdrill::VERSION,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for l in &lines {
        println!("  {l}");
    }
    Ok(())
}
