//! The console's overview over a large fleet: 1,000 plans and 100,000 runs
//! (hash-chained, as drills record them) served by a real `drdrill daemon`,
//! timed over HTTP from request to the last byte. The target: under 500 ms
//! server-side and under 1 MB. Not a test: run with
//! `cargo bench --bench console` (release; `-- PLANS RUNS` for other sizes).
//! `cargo test --all-targets` runs it as a quick smoke run on a small fleet.

use std::process::{Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use drdrill::db::{Db, ts};
use rusqlite::params;

fn main() -> anyhow::Result<()> {
    let benching = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let plans: usize = args.first().map(|a| a.parse()).transpose()?.unwrap_or(if benching { 1000 } else { 20 });
    let runs: usize = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(if benching { 100_000 } else { 400 });
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    std::fs::create_dir_all(root.join("drills"))?;
    std::fs::create_dir_all(root.join("data"))?;
    let now = Utc::now();
    let name = |i: usize| format!("plan-{i:04}");
    for i in 0..plans {
        std::fs::write(
            root.join(format!("drills/{}.toml", name(i))),
            format!(
                "description = \"fleet member {i}\"\nschedule = \"0 3 * * Sun\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n\
                 [source]\nkind = \"directory\"\npath = \"{}\"\n[[check]]\nkind = \"command\"\nrun = \"true\"\n",
                root.join("data").display()
            ),
        )?;
    }

    let t = Instant::now();
    let db = Db::open(&root.join("var/drdrill.db"))?;
    let span = Duration::days(89).num_milliseconds();
    let started_of = |i: usize| now - Duration::milliseconds(span - span * i as i64 / runs as i64);
    db.with_conn(|c| -> anyhow::Result<()> {
        let tx = c.transaction()?;
        for i in 0..runs {
            seed(&tx, &name(i % plans), i, plans, started_of(i))?;
        }
        tx.commit()?;
        Ok(())
    })?;
    println!("seeded {plans} plans and {runs} runs in {:.2?}", t.elapsed());

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let r = root.display();
    std::fs::write(
        root.join("config.toml"),
        format!(
            "database = \"{r}/var/drdrill.db\"\nplans = \"{r}/drills\"\nscratch = \"{r}/var/scratch\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{r}/var/api-token\"\n\
             [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n"
        ),
    )?;
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_drdrill"))
        .arg("--config")
        .arg(root.join("config.toml"))
        .arg("daemon")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("daemon.log"))?)
        .spawn()?;
    let http = reqwest::blocking::Client::builder().timeout(StdDuration::from_secs(300)).build()?;
    let url = format!("http://127.0.0.1:{port}/");
    let result = (|| -> anyhow::Result<(Vec<StdDuration>, Vec<StdDuration>, usize)> {
        let start = Instant::now();
        while http.get(format!("{url}healthz")).send().is_err() {
            anyhow::ensure!(start.elapsed() < StdDuration::from_secs(120), "the daemon did not answer");
            std::thread::sleep(StdDuration::from_millis(100));
        }
        let get = || -> anyhow::Result<(StdDuration, usize)> {
            let t = Instant::now();
            let r = http.get(&url).send()?;
            anyhow::ensure!(r.status().is_success(), "GET / answered {}", r.status());
            let bytes = r.bytes()?.len();
            Ok((t.elapsed(), bytes))
        };
        let rounds = if benching { 7 } else { 2 };
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..rounds {
            let (t, b) = get()?;
            times.push(t);
            bytes = b;
        }
        // Pages between which a run ended: the new record is folded in and the
        // chain's new head verified.
        let mut after_run = Vec::new();
        for k in 0..rounds {
            let i = runs + k;
            db.with_conn(|c| seed(c, &name(i % plans), i, plans, now))?;
            after_run.push(get()?.0);
        }
        Ok((times, after_run, bytes))
    })();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let (mut times, mut after_run, bytes) = result.map_err(|e| {
        let log = std::fs::read_to_string(root.join("daemon.log")).unwrap_or_default();
        anyhow::anyhow!("{e:#}; the daemon's log:\n{log}")
    })?;
    // The first request also warms SQLite's page cache.
    let first = times.remove(0);
    times.sort();
    after_run.sort();
    let median = times[times.len() / 2];
    let after = after_run[after_run.len() / 2];
    println!(
        "GET / over {plans} plans and {runs} runs: median {median:.2?} (first {first:.2?}, worst {:.2?}), {bytes} bytes ({:.0} KB)",
        times.last().unwrap(),
        bytes as f64 / 1024.0
    );
    println!(
        "GET / after each of {} more runs: median {after:.2?} (worst {:.2?})",
        after_run.len(),
        after_run.last().unwrap()
    );
    if benching {
        let ok = median.max(after) < StdDuration::from_millis(500) && bytes < 1 << 20;
        println!("target (< 500 ms, < 1 MB): {}", if ok { "met" } else { "MISSED" });
    }
    Ok(())
}

/// Records run `i` of `plan` with its measurements, restore phase and check,
/// and chains its evidence, as a drill's end does. One plan in 50 misses its
/// RTO target now and then.
fn seed(
    c: &rusqlite::Connection,
    plan: &str,
    i: usize,
    plans: usize,
    started: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let rto = if i % plans % 50 == 7 && i.is_multiple_of(3) { 75_000.0 } else { 20_000.0 + (i % 97) as f64 * 100.0 };
    let passed = rto <= 60_000.0;
    c.execute(
        "INSERT INTO runs (plan, plan_sha256, trigger, status, started_at, finished_at, t_fail, backup_mode,
           store, backup_id, backup_sha256, backup_created_at, host, version, reason)
         VALUES (?1, 'ab', 'schedule', ?2, ?3, ?4, ?3, 'fresh', 'local', ?5, 'cd', ?3, 'bench', '0.1.0', ?6)",
        params![
            plan,
            if passed { "passed" } else { "failed" },
            ts(started),
            ts(started + Duration::milliseconds(rto as i64 + 500)),
            format!("backup-{i}"),
            (!passed).then(|| "RTO exceeded its target".to_string()),
        ],
    )?;
    let id = c.last_insert_rowid();
    for (m, v, target) in [("rto", rto, 60_000.0), ("rpo", 600_000.0, 3_600_000.0)] {
        c.execute(
            "INSERT INTO measurements (run_id, name, value_ms, target_ms, method, met) VALUES (?1, ?2, ?3, ?4, 'bench', ?5)",
            params![id, m, v, target, v <= target],
        )?;
    }
    c.execute(
        "INSERT INTO phases (run_id, seq, name, started_at, duration_ms, status, detail) VALUES (?1, 0, 'restore', ?2, 100, 'ok', '')",
        params![id, ts(started)],
    )?;
    c.execute(
        "INSERT INTO checks (run_id, seq, kind, description, passed, attempts, duration_ms, output)
         VALUES (?1, 0, 'command', 'true', ?2, 1, 12.5, '')",
        params![id, passed],
    )?;
    drdrill::db::evidence::append(c, id)?;
    Ok(())
}
