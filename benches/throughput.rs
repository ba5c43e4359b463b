//! Backup and restore throughput, peak memory and orchestration overhead, side by
//! side with restic and the `tar | zstd` bound. Run with:
//!
//!     cargo bench --bench throughput
//!
//! It needs `restic`, `tar` and `zstd` on PATH (`apt-get install restic zstd`).
//! Data sets are generated under `$BENCH_DIR` (default `var/bench`, ~4 GiB):
//! (a) ~1 GiB of 64 KiB..4 MiB files, half text-like, half random; (b) 100,000
//! small files; (c) one 2 GiB file. Every measurement runs with a warm page cache
//! after `sync`; each figure is the median of `$BENCH_REPS` runs (default 3).
//! `BENCH_SETS=a,b` picks data sets; `e` adds the drill of an existing restic
//! snapshot of set (a) against `restic restore` of the same snapshot alone.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DRDRILL: &str = env!("CARGO_BIN_EXE_drdrill");

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: then it only
    // proves the harness works, on a small drill, instead of a 4 GiB benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        let root = tempfile::tempdir().unwrap();
        let (overhead, rto) = bench_overhead(root.path(), 1);
        assert!(overhead >= 0.0 && rto >= overhead, "overhead {overhead} ms, RTO {rto} ms");
        println!(
            "throughput bench smoke run: 1-file drill RTO {rto:.2} ms (run `cargo bench --bench throughput` for figures)"
        );
        return;
    }
    let root = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "var/bench".into()));
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let sets = std::env::var("BENCH_SETS").unwrap_or_else(|_| "a,b,c".into());
    for tool in ["restic", "tar", "zstd"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("`{tool}` is not installed: apt-get install -y restic zstd");
            std::process::exit(2);
        }
    }
    fs::create_dir_all(&root).unwrap();
    let root = fs::canonicalize(&root).unwrap();
    let mut rows = Vec::new();
    for (key, name) in [("a", "mixed 1 GiB"), ("b", "100k small files"), ("c", "one 2 GiB file")] {
        if !sets.split(',').any(|s| s.trim() == key) {
            continue;
        }
        let data = root.join(format!("data-{key}"));
        if !data.join(".complete").exists() {
            eprintln!("generating data set {key} ({name}) in {}", data.display());
            let _ = fs::remove_dir_all(&data);
            fs::create_dir_all(&data).unwrap();
            match key {
                "a" => gen_mixed(&data),
                "b" => gen_small(&data),
                _ => gen_big(&data),
            }
            fs::write(data.join(".complete"), b"").unwrap();
        }
        let bytes = tree_bytes(&data);
        eprintln!("data set {key}: {} files, {:.1} MB", count_files(&data), bytes as f64 / 1e6);
        rows.push((name, bytes, "drdrill", bench_drdrill(&root, &data, reps)));
        rows.push((name, bytes, "restic", bench_restic(&root, &data, reps)));
        rows.push((name, bytes, "tar|zstd bound", bench_tar(&root, &data, reps)));
    }
    let existing = sets.split(',').any(|s| s.trim() == "e").then(|| {
        let data = root.join("data-a");
        if !data.join(".complete").exists() {
            eprintln!("data set e needs data set a: run with BENCH_SETS=a,e once");
            std::process::exit(2);
        }
        bench_existing_restic(&root, &data, reps)
    });
    let overhead = bench_overhead(&root, reps.max(5));

    println!();
    println!(
        "{:<18} {:>9}  {:<15} {:>12} {:>13} {:>11} {:>12}",
        "data set", "MB", "tool", "backup MB/s", "restore MB/s", "backup RSS", "restore RSS"
    );
    for (name, bytes, tool, m) in &rows {
        let mb = *bytes as f64 / 1e6;
        println!(
            "{:<18} {:>9.1}  {:<15} {:>12.0} {:>13.0} {:>8.1} MiB {:>8.1} MiB",
            name,
            mb,
            tool,
            mb / m.backup.as_secs_f64(),
            mb / m.restore.as_secs_f64(),
            m.backup_rss_kib as f64 / 1024.0,
            m.restore_rss_kib as f64 / 1024.0
        );
    }
    println!();
    for chunk in rows.chunks(3) {
        let [(name, _, _, d), (_, _, _, r), (_, _, _, t)] = chunk else { continue };
        println!(
            "{name}: drdrill vs restic backup {:.2}x restore {:.2}x; vs tar|zstd bound backup {:.0}% restore {:.0}%",
            r.backup.as_secs_f64() / d.backup.as_secs_f64(),
            r.restore.as_secs_f64() / d.restore.as_secs_f64(),
            100.0 * t.backup.as_secs_f64() / d.backup.as_secs_f64(),
            100.0 * t.restore.as_secs_f64() / d.restore.as_secs_f64(),
        );
    }
    if let Some((alone, drill)) = existing {
        let extra = drill.as_secs_f64() - alone.as_secs_f64();
        println!(
            "existing restic snapshot of mixed 1 GiB: drill restore phase {:.2} s vs `restic restore --verify` alone {:.2} s: {:+.1}% ({:+.0} ms)",
            drill.as_secs_f64(),
            alone.as_secs_f64(),
            100.0 * extra / alone.as_secs_f64(),
            extra * 1000.0
        );
    }
    println!(
        "orchestration overhead (RTO minus fetch, restore and verify, on a 1-file drill with a `true` check): median {:.2} ms; whole RTO median {:.2} ms",
        overhead.0, overhead.1
    );
}

/// The restore phase of a drill of an existing restic snapshot, against the
/// same `restic restore --verify` run alone, both with an empty cache (the
/// drill keeps restic's cache in its scratch folder). Returns the medians
/// (alone, drill).
fn bench_existing_restic(root: &Path, data: &Path, reps: usize) -> (Duration, Duration) {
    let repo = root.join("restic-existing");
    let pass = root.join("restic-existing.pass");
    fs::write(&pass, "bench\n").unwrap();
    if !repo.join("config").exists() {
        let _ = fs::remove_dir_all(&repo);
        let restic = |args: &[&str]| {
            let ok = Command::new("restic").arg("-r").arg(&repo).arg("--password-file").arg(&pass).args(args).status();
            assert!(ok.unwrap().success(), "restic {args:?}");
        };
        restic(&["init", "-q"]);
        restic(&["backup", "-q", data.to_str().unwrap()]);
    }
    let target = root.join("restic-existing-restore");
    let cache = root.join("restic-existing-cache");
    let ws = root.join("ws-existing");
    let mut alone = Vec::new();
    let mut drill = Vec::new();
    for _ in 0..reps {
        let _ = fs::remove_dir_all(&target);
        let _ = fs::remove_dir_all(&cache);
        let (t, _, _) = timed(
            Command::new("restic")
                .arg("-r")
                .arg(&repo)
                .arg("--password-file")
                .arg(&pass)
                .args(["--no-lock", "-q", "restore", "latest", "--target"])
                .arg(&target)
                .arg("--include")
                .arg(data)
                .arg("--verify")
                .env("RESTIC_CACHE_DIR", &cache),
        );
        alone.push(t);
        let _ = fs::remove_dir_all(&target);
        let _ = fs::remove_dir_all(&ws);
        fs::create_dir_all(ws.join("drills")).unwrap();
        fs::write(
            ws.join("drills/existing.toml"),
            format!(
                "timeout = \"1h\"\n[targets]\nrto = \"1h\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n\
                 [backup]\nmode = \"existing\"\nfrom = \"restic\"\n[backup.restic]\nrepository = \"{}\"\npassword_file = \"{}\"\n\
                 [[check]]\nkind = \"command\"\nrun = \"true\"\n",
                data.display(),
                repo.display(),
                pass.display()
            ),
        )
        .unwrap();
        let (_, _, out) = timed(Command::new(DRDRILL).args(["run", "existing", "--json"]).current_dir(&ws));
        let report: serde_json::Value = serde_json::from_str(&out).expect("drdrill --json output");
        assert_eq!(report["status"], "passed", "{report:#}");
        let p = report["phases"].as_array().unwrap().iter().find(|p| p["name"] == "restore").unwrap();
        drill.push(Duration::from_secs_f64(p["duration_ms"].as_f64().unwrap() / 1000.0));
    }
    let _ = fs::remove_dir_all(&ws);
    let _ = fs::remove_dir_all(&target);
    let _ = fs::remove_dir_all(&cache);
    alone.sort();
    drill.sort();
    (alone[alone.len() / 2], drill[drill.len() / 2])
}

#[derive(Clone, Copy, Default)]
struct Measured {
    backup: Duration,
    restore: Duration,
    backup_rss_kib: i64,
    restore_rss_kib: i64,
}

fn median(mut v: Vec<Measured>) -> Measured {
    let n = v.len();
    let mut out = Measured::default();
    v.sort_by_key(|m| m.backup);
    out.backup = v[n / 2].backup;
    v.sort_by_key(|m| m.restore);
    out.restore = v[n / 2].restore;
    out.backup_rss_kib = v.iter().map(|m| m.backup_rss_kib).max().unwrap_or(0);
    out.restore_rss_kib = v.iter().map(|m| m.restore_rss_kib).max().unwrap_or(0);
    out
}

/// Runs a command to completion; returns wall time and its peak RSS (KiB),
/// including children it waited for (wait4's rusage).
fn timed(cmd: &mut Command) -> (Duration, i64, String) {
    sync();
    let started = Instant::now();
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let pid = child.id() as i32;
    // Read output on threads so a chatty child cannot block on a full pipe.
    let mut child = child;
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut so, &mut s).ok();
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut se, &mut s).ok();
        s
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    assert_eq!(r, pid, "wait4 failed");
    let (out, err) = (t1.join().unwrap(), t2.join().unwrap());
    let st = std::process::ExitStatus::from_raw(status);
    assert!(st.success() || st.code() == Some(1), "{cmd:?} failed: {st}\n{err}");
    (elapsed, usage.ru_maxrss, out)
}

fn sync() {
    Command::new("sync").status().ok();
}

fn bench_drdrill(root: &Path, data: &Path, reps: usize) -> Measured {
    let ws = root.join("ws-drdrill");
    let mut runs = Vec::new();
    for _ in 0..reps {
        let _ = fs::remove_dir_all(&ws);
        fs::create_dir_all(ws.join("drills")).unwrap();
        fs::write(
            ws.join("drills/bench.toml"),
            format!(
                "timeout = \"1h\"\n[targets]\nrto = \"1h\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n[[check]]\nkind = \"command\"\nrun = \"true\"\n",
                data.display()
            ),
        )
        .unwrap();
        let (_, rss, out) = timed(Command::new(DRDRILL).args(["run", "bench", "--json"]).current_dir(&ws));
        let report: serde_json::Value = serde_json::from_str(&out).expect("drdrill --json output");
        assert_eq!(report["status"], "passed", "{report:#}");
        let phase = |n: &str| {
            let p = report["phases"].as_array().unwrap().iter().find(|p| p["name"] == n).unwrap();
            Duration::from_secs_f64(p["duration_ms"].as_f64().unwrap() / 1000.0)
        };
        runs.push(Measured {
            backup: phase("backup"),
            restore: phase("restore"),
            backup_rss_kib: rss,
            restore_rss_kib: rss,
        });
    }
    let _ = fs::remove_dir_all(&ws);
    median(runs)
}

fn bench_restic(root: &Path, data: &Path, reps: usize) -> Measured {
    let repo = root.join("restic-repo");
    let target = root.join("restic-restore");
    let mut runs = Vec::new();
    for _ in 0..reps {
        let _ = fs::remove_dir_all(&repo);
        let _ = fs::remove_dir_all(&target);
        let env = |c: &mut Command| {
            c.env("RESTIC_PASSWORD", "bench").env("RESTIC_REPOSITORY", &repo);
        };
        let mut init = Command::new("restic");
        env(&mut init);
        assert!(init.args(["init", "-q"]).status().unwrap().success());
        let mut b = Command::new("restic");
        env(&mut b);
        let (backup, brss, _) = timed(b.args(["backup", "-q"]).arg(data));
        let mut r = Command::new("restic");
        env(&mut r);
        let (restore, rrss, _) = timed(r.args(["restore", "latest", "-q", "--target"]).arg(&target));
        runs.push(Measured { backup, restore, backup_rss_kib: brss, restore_rss_kib: rrss });
    }
    let _ = fs::remove_dir_all(&repo);
    let _ = fs::remove_dir_all(&target);
    median(runs)
}

fn bench_tar(root: &Path, data: &Path, reps: usize) -> Measured {
    let file = root.join("bound.tar.zst");
    let target = root.join("bound-restore");
    let mut runs = Vec::new();
    for _ in 0..reps {
        let _ = fs::remove_dir_all(&target);
        fs::create_dir_all(&target).unwrap();
        let (backup, brss, _) = timed(Command::new("sh").arg("-c").arg(format!(
            "tar -cf - -C '{}' . | zstd -1 -T0 -q > '{}'",
            data.display(),
            file.display()
        )));
        let (restore, rrss, _) = timed(Command::new("sh").arg("-c").arg(format!(
            "zstd -dc '{}' | tar -x -C '{}'",
            file.display(),
            target.display()
        )));
        runs.push(Measured { backup, restore, backup_rss_kib: brss, restore_rss_kib: rrss });
    }
    let _ = fs::remove_file(&file);
    let _ = fs::remove_dir_all(&target);
    median(runs)
}

/// RTO of a drill whose restore and check are next to nothing: what drdrill's
/// own bookkeeping adds to every measured RTO.
fn bench_overhead(root: &Path, reps: usize) -> (f64, f64) {
    let ws = root.join("ws-overhead");
    let _ = fs::remove_dir_all(&ws);
    fs::create_dir_all(ws.join("drills")).unwrap();
    fs::create_dir_all(ws.join("tiny")).unwrap();
    fs::write(ws.join("tiny/one"), b"1").unwrap();
    fs::write(
        ws.join("drills/tiny.toml"),
        "[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"tiny\"\n[[check]]\nkind = \"command\"\nrun = \"true\"\n",
    )
    .unwrap();
    let mut overheads = Vec::new();
    let mut rtos = Vec::new();
    for _ in 0..reps {
        let out = Command::new(DRDRILL).args(["run", "tiny", "--json"]).current_dir(&ws).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let m = |n: &str| {
            report["measurements"].as_array().unwrap().iter().find(|m| m["name"] == n).unwrap()["value_ms"]
                .as_f64()
                .unwrap()
        };
        rtos.push(m("rto"));
        overheads.push(m("rto") - m("fetch") - m("restore") - m("verify"));
    }
    let _ = fs::remove_dir_all(&ws);
    let med = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    (med(overheads), med(rtos))
}

fn tree_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn count_files(dir: &Path) -> usize {
    walkdir::WalkDir::new(dir).into_iter().flatten().filter(|e| e.file_type().is_file()).count()
}

/// A fast deterministic byte generator (xorshift), so data sets are the same
/// on every machine without shipping them.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "order",
    "customer",
    "invoice",
    "restore",
    "backup",
    "drill",
    "shipped",
    "pending",
    "total",
    "amount",
    "2026-11-30",
    "status",
    "warehouse",
    "berlin",
    "paris",
    "tokyo",
    "error",
    "info",
    "request",
    "latency",
];

fn text_like(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        out.push(if rng.next().is_multiple_of(9) { b'\n' } else { b' ' });
        if rng.next().is_multiple_of(5) {
            write!(out, "{} ", rng.next() % 100_000).unwrap();
        }
    }
    out.truncate(len);
    out
}

fn gen_mixed(dir: &Path) {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let target: u64 = 1 << 30;
    let mut written = 0u64;
    let mut i = 0;
    while written < target {
        let size = 64 * 1024 + (rng.next() % (4 * 1024 * 1024 - 64 * 1024)) as usize;
        let data = if i % 2 == 0 {
            text_like(&mut rng, size)
        } else {
            let mut b = vec![0u8; size];
            rng.fill(&mut b);
            b
        };
        let sub = dir.join(format!("d{:02}", i % 16));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f{i:05}.{}", if i % 2 == 0 { "txt" } else { "bin" })), &data).unwrap();
        written += size as u64;
        i += 1;
    }
}

fn gen_small(dir: &Path) {
    let mut rng = Rng(0xD1B54A32D192ED03);
    for i in 0..100_000 {
        let sub = dir.join(format!("d{:03}", i % 500));
        if i < 500 {
            fs::create_dir_all(&sub).unwrap();
        }
        let size = 100 + (rng.next() % 4000) as usize;
        fs::write(sub.join(format!("f{i:06}")), text_like(&mut rng, size)).unwrap();
    }
}

fn gen_big(dir: &Path) {
    let mut rng = Rng(0xA0761D6478BD642F);
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(dir.join("big.img")).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..2048 {
        // A disk image: runs of zeros, text and random blocks.
        match i % 4 {
            0 => buf.fill(0),
            1 => buf.copy_from_slice(&text_like(&mut rng, 1 << 20)),
            _ => rng.fill(&mut buf),
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}
