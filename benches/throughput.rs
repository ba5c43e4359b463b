//! A whole drill (backup, restore, verify) per data set, side by side with restic
//! (backup, restore, `diff -r`) and the standard-tools bound (`tar -cf - DIR |
//! zstd -1 -T0`, `zstd -dc | tar -x`, `diff -r`), with every row's peak RSS, the
//! targets of issue #14 computed from the figures, and a small-files growth table.
//! Run with:
//!
//!     cargo bench --bench throughput
//!
//! It needs `restic`, `tar`, `zstd` and `diff` on PATH (`apt-get install -y restic
//! zstd`). Data sets are generated once under `$BENCH_DIR` (default `var/bench`)
//! and reused: `a` ~1 GiB of 64 KiB..4 MiB files, half text-like, half random;
//! `c` one 2 GiB file; `10k`, `100k`, `1m` that many 1..8 KiB text files (1m is
//! ~4.6 GB in a million files and takes long to create, so it is not in the
//! default `BENCH_SETS=a,c,10k,100k`). `e` adds the drill of an existing restic
//! snapshot of set `a` against `restic restore` of the same snapshot alone.
//! `BENCH_PREPARE=1` only generates the chosen sets (for example the 1m set,
//! ahead of a quiet run) and exits.
//! Every timed step starts after `sync` with its input in the page cache; each
//! figure is the median of `$BENCH_REPS` runs (default 1: a run of the default
//! sets takes about ten minutes, and the big sets vary less than the disk does).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::data::{self, Kind};
use support::measure::{own_peak_kib, pipeline, sync, timed, warm};

const DRDRILL: &str = env!("CARGO_BIN_EXE_drdrill");

/// A data set a run can pick with `BENCH_SETS`.
struct Set {
    key: &'static str,
    label: &'static str,
    kind: Kind,
}

const SETS: &[Set] = &[
    Set { key: "a", label: "(a) mixed 1 GiB", kind: Kind::Mixed },
    Set { key: "c", label: "(c) one 2 GiB file", kind: Kind::Big },
    Set { key: "10k", label: "10k small files", kind: Kind::Small(10_000) },
    Set { key: "100k", label: "100k small files", kind: Kind::Small(100_000) },
    Set { key: "1m", label: "1M small files", kind: Kind::Small(1_000_000) },
];
const DEFAULT_SETS: &str = "a,c,10k,100k";
const SMALL_SERIES: [&str; 3] = ["10k", "100k", "1m"];

const DRDRILL_ROW: &str = "drdrill";
const RESTIC_ROW: &str = "restic";
const BOUND_ROW: &str = "tar|zstd bound";

/// One repetition of one tool on one data set.
struct Rep {
    backup: Duration,
    restore: Duration,
    /// drdrill's `verify` phase (`tree-matches-source`); the peers' `diff -r`.
    verify: Duration,
    /// drdrill: the whole `drdrill run` process, prepare, record and cleanup
    /// included; peers: the sum of their three steps.
    wall: Duration,
    /// Peak RSS (KiB) of each step; drdrill does all three in one process, so one figure.
    step_rss: Vec<u64>,
}

/// One tool on one data set: each figure the median over the repetitions, each
/// peak the maximum.
struct Row {
    set: &'static str,
    label: &'static str,
    files: usize,
    bytes: u64,
    tool: &'static str,
    backup: Duration,
    restore: Duration,
    verify: Duration,
    wall: Duration,
    step_rss: Vec<u64>,
}

impl Row {
    fn new(set: &Set, (files, bytes): (usize, u64), tool: &'static str, reps: Vec<Rep>) -> Row {
        let med = |f: fn(&Rep) -> Duration| {
            let mut v: Vec<Duration> = reps.iter().map(f).collect();
            v.sort();
            v[v.len() / 2]
        };
        let steps = reps.iter().map(|r| r.step_rss.len()).max().unwrap_or(0);
        let step_rss =
            (0..steps).map(|i| reps.iter().filter_map(|r| r.step_rss.get(i)).copied().max().unwrap_or(0)).collect();
        Row {
            set: set.key,
            label: set.label,
            files,
            bytes,
            tool,
            backup: med(|r| r.backup),
            restore: med(|r| r.restore),
            verify: med(|r| r.verify),
            wall: med(|r| r.wall),
            step_rss,
        }
    }

    /// Backup + restore + verify (or comparison): the same three steps for every tool.
    fn end_to_end(&self) -> Duration {
        self.backup + self.restore + self.verify
    }

    fn peak_kib(&self) -> u64 {
        self.step_rss.iter().copied().max().unwrap_or(0)
    }
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: then it only
    // proves the harness works, on a tiny drill, instead of benching gigabytes.
    if !std::env::args().any(|a| a == "--bench") {
        smoke();
        return;
    }
    let root = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "var/bench".into()));
    let reps: usize = match std::env::var("BENCH_REPS") {
        Err(_) => 1,
        Ok(v) => match v.parse() {
            Ok(n) if n >= 1 => n,
            _ => fail(&format!("BENCH_REPS={v} is not a count: give 1 or more")),
        },
    };
    let sets = std::env::var("BENCH_SETS").unwrap_or_else(|_| DEFAULT_SETS.into());
    let wanted: Vec<&str> = sets.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    for w in &wanted {
        if *w != "e" && !SETS.iter().any(|s| s.key == *w) {
            fail(&format!("BENCH_SETS names an unknown data set `{w}`: pick from a, c, 10k, 100k, 1m, e"));
        }
    }
    for tool in ["restic", "tar", "zstd", "diff"] {
        if Command::new(tool).arg("--version").output().is_err() {
            fail(&format!("`{tool}` is not installed: apt-get install -y restic zstd"));
        }
    }
    fs::create_dir_all(&root).unwrap_or_else(|e| fail(&format!("cannot create BENCH_DIR {}: {e}", root.display())));
    let root = fs::canonicalize(&root).unwrap_or_else(|e| fail(&format!("BENCH_DIR {}: {e}", root.display())));

    if std::env::var_os("BENCH_PREPARE").is_some() {
        // Generating a million files takes long and loads the disk: done
        // ahead, it stays out of the timed run.
        for set in SETS.iter().filter(|s| wanted.contains(&s.key)) {
            data::ensure(&root.join(format!("data-{}", set.key)), set.kind);
        }
        return;
    }
    let mut rows = Vec::new();
    for set in SETS.iter().filter(|s| wanted.contains(&s.key)) {
        let dir = root.join(format!("data-{}", set.key));
        data::ensure(&dir, set.kind);
        let stats = data::tree_stats(&dir);
        eprintln!("{}: {} files, {:.1} MB", set.label, stats.0, stats.1 as f64 / 1e6);
        for (tool, rep) in
            [(DRDRILL_ROW, drdrill_rep as fn(&Path, &Path) -> Rep), (RESTIC_ROW, restic_rep), (BOUND_ROW, bound_rep)]
        {
            let row = Row::new(set, stats, tool, (0..reps).map(|_| rep(&root, &dir)).collect());
            // Each row as soon as it is measured, so a run stopped later keeps it.
            eprintln!(
                "  {:<15} backup {} s, restore {} s, verify {} s, end to end {} s, wall {} s, peak {} ({})",
                row.tool,
                secs(row.backup),
                secs(row.restore),
                secs(row.verify),
                secs(row.end_to_end()),
                secs(row.wall),
                mib(row.peak_kib()),
                rss_by_step(&row)
            );
            rows.push(row);
        }
    }
    let existing = wanted.contains(&"e").then(|| {
        let data = root.join("data-a");
        if !data.join(".complete").exists() {
            fail("data set e needs data set a: run with BENCH_SETS=a,e once");
        }
        bench_existing_restic(&root, &data, reps)
    });
    let overhead = bench_overhead(&root, reps.max(5));
    report(&rows, reps, existing, overhead);
}

/// Bad settings end the bench with exit 2 and what to change.
fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2);
}

/// The tiny drill `cargo test` runs: the drdrill row's harness end to end.
fn smoke() {
    let root = tempfile::tempdir().expect("a temporary folder for the smoke drill");
    let dir = root.path().join("data");
    data::ensure(&dir, Kind::Small(200));
    let rep = drdrill_rep(root.path(), &dir);
    let rss = rep.step_rss[0];
    assert!(
        rep.backup > Duration::ZERO && rep.restore > Duration::ZERO && rep.verify > Duration::ZERO,
        "every phase takes time: backup {:?}, restore {:?}, verify {:?}",
        rep.backup,
        rep.restore,
        rep.verify
    );
    assert!(rep.wall >= rep.backup + rep.restore + rep.verify, "the process ({:?}) outlasts its phases", rep.wall);
    assert!((1024..512 * 1024).contains(&rss), "peak RSS {rss} KiB of a 200-file drill");
    let (overhead, rto) = bench_overhead(root.path(), 1);
    assert!(overhead >= 0.0 && rto >= overhead, "overhead {overhead} ms, RTO {rto} ms");
    println!(
        "throughput bench smoke run: 200-file drill {:.0} ms, peak RSS {:.1} MiB; 1-file drill RTO {rto:.2} ms (run `cargo bench --bench throughput` for figures)",
        rep.wall.as_secs_f64() * 1000.0,
        rss as f64 / 1024.0
    );
}

/// One `drdrill run` of a fresh backup of `data` checked with `tree-matches-source`;
/// the phases come from its `--json` report, the peak RSS from the process.
fn drdrill_rep(root: &Path, data: &Path) -> Rep {
    let ws = root.join("ws-drdrill");
    let _ = fs::remove_dir_all(&ws);
    fs::create_dir_all(ws.join("drills")).expect("the bench workspace");
    fs::write(
        ws.join("drills/bench.toml"),
        format!(
            "timeout = \"2h\"\n[targets]\nrto = \"2h\"\nrpo = \"2h\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n[[check]]\nkind = \"tree-matches-source\"\n",
            data.display()
        ),
    )
    .expect("the bench plan");
    warm(data);
    let ran = timed(Command::new(DRDRILL).args(["run", "bench", "--json"]).current_dir(&ws));
    let report: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("drdrill run --json printed no report ({e}); standard error:\n{}", ran.stderr));
    assert_eq!(report["status"], "passed", "the bench drill did not pass:\n{report:#}");
    assert_eq!(report["checks"][0]["kind"], "tree-matches-source", "{report:#}");
    let phase = |name: &str| {
        let p = report["phases"].as_array().and_then(|ps| ps.iter().find(|p| p["name"] == name));
        let ms = p.and_then(|p| p["duration_ms"].as_f64());
        Duration::from_secs_f64(ms.unwrap_or_else(|| panic!("no `{name}` phase in the report:\n{report:#}")) / 1000.0)
    };
    let rep = Rep {
        backup: phase("backup"),
        restore: phase("restore"),
        verify: phase("verify"),
        wall: ran.wall,
        step_rss: vec![ran.rss_kib],
    };
    let _ = fs::remove_dir_all(&ws);
    sync();
    rep
}

/// `restic backup` into a new local repository, `restic restore latest`, and
/// `diff -r` of the restored tree against the source.
fn restic_rep(root: &Path, data: &Path) -> Rep {
    let repo = root.join("restic-repo");
    let target = root.join("restic-restore");
    let cache = root.join("restic-cache");
    for d in [&repo, &target, &cache] {
        let _ = fs::remove_dir_all(d);
    }
    let restic = || {
        let mut c = Command::new("restic");
        c.env("RESTIC_PASSWORD", "bench").env("RESTIC_REPOSITORY", &repo).env("RESTIC_CACHE_DIR", &cache);
        c
    };
    timed(restic().args(["init", "-q"])).ok("restic init");
    warm(data);
    let b = timed(restic().args(["backup", "-q"]).arg(data)).ok("restic backup");
    warm(&repo);
    let r = timed(restic().args(["restore", "latest", "-q", "--target"]).arg(&target)).ok("restic restore");
    // restic restores a snapshot under its absolute source path.
    let restored = target.join(data.strip_prefix("/").unwrap_or(data));
    let c = timed(Command::new("diff").arg("-r").arg(data).arg(&restored)).ok("diff -r of restic's restore");
    for d in [&repo, &target, &cache] {
        let _ = fs::remove_dir_all(d);
    }
    sync();
    Rep {
        backup: b.wall,
        restore: r.wall,
        verify: c.wall,
        wall: b.wall + r.wall + c.wall,
        step_rss: vec![b.rss_kib, r.rss_kib, c.rss_kib],
    }
}

/// `tar -cf - | zstd -1 -T0`, `zstd -dc | tar -x` and `diff -r`: what plain tools
/// do in the same three steps, with no per-file hashing.
fn bound_rep(root: &Path, data: &Path) -> Rep {
    let file = root.join("bound.tar.zst");
    let target = root.join("bound-restore");
    let _ = fs::remove_file(&file);
    let _ = fs::remove_dir_all(&target);
    fs::create_dir_all(&target).expect("the bound's restore folder");
    warm(data);
    let mut tar = Command::new("tar");
    tar.arg("-cf").arg("-").arg("-C").arg(data).arg(".");
    let mut zstd = Command::new("zstd");
    zstd.args(["-1", "-T0", "-q", "-o"]).arg(&file);
    let b = pipeline(&mut [tar, zstd]).ok("tar -cf - | zstd -1 -T0");
    warm(&file);
    let mut unzstd = Command::new("zstd");
    unzstd.args(["-dc", "-q"]).arg(&file);
    let mut untar = Command::new("tar");
    untar.arg("-x").arg("-C").arg(&target);
    let r = pipeline(&mut [unzstd, untar]).ok("zstd -dc | tar -x");
    let c = timed(Command::new("diff").arg("-r").arg(data).arg(&target)).ok("diff -r of the bound's restore");
    let _ = fs::remove_file(&file);
    let _ = fs::remove_dir_all(&target);
    sync();
    Rep {
        backup: b.wall,
        restore: r.wall,
        verify: c.wall,
        wall: b.wall + r.wall + c.wall,
        step_rss: vec![b.rss_kib, r.rss_kib, c.rss_kib],
    }
}

/// The restore phase of a drill of an existing restic snapshot, against the
/// same `restic restore --verify` run alone, both with an empty cache (the
/// drill keeps restic's cache in its scratch folder). Returns the medians
/// (alone, drill).
fn bench_existing_restic(root: &Path, data: &Path, reps: usize) -> (Duration, Duration) {
    let repo = root.join("restic-existing");
    let pass = root.join("restic-existing.pass");
    fs::write(&pass, "bench\n").expect("the restic password file");
    let restic = || {
        let mut c = Command::new("restic");
        c.arg("-r").arg(&repo).arg("--password-file").arg(&pass);
        c
    };
    if !repo.join("config").exists() {
        let _ = fs::remove_dir_all(&repo);
        timed(restic().args(["init", "-q"])).ok("restic init");
        timed(restic().args(["backup", "-q"]).arg(data)).ok("restic backup");
    }
    let target = root.join("restic-existing-restore");
    let cache = root.join("restic-existing-cache");
    let ws = root.join("ws-existing");
    let mut alone = Vec::new();
    let mut drill = Vec::new();
    for _ in 0..reps {
        let _ = fs::remove_dir_all(&target);
        let _ = fs::remove_dir_all(&cache);
        let ran = timed(
            restic()
                .args(["--no-lock", "-q", "restore", "latest", "--target"])
                .arg(&target)
                .arg("--include")
                .arg(data)
                .arg("--verify")
                .env("RESTIC_CACHE_DIR", &cache),
        )
        .ok("restic restore --verify");
        alone.push(ran.wall);
        let _ = fs::remove_dir_all(&target);
        let _ = fs::remove_dir_all(&ws);
        fs::create_dir_all(ws.join("drills")).expect("the bench workspace");
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
        .expect("the bench plan");
        let ran = timed(Command::new(DRDRILL).args(["run", "existing", "--json"]).current_dir(&ws));
        let report: serde_json::Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("drdrill run --json printed no report ({e}); standard error:\n{}", ran.stderr));
        assert_eq!(report["status"], "passed", "{report:#}");
        let ms = report["phases"].as_array().and_then(|ps| ps.iter().find(|p| p["name"] == "restore"));
        let ms = ms.and_then(|p| p["duration_ms"].as_f64()).unwrap_or_else(|| panic!("no restore phase:\n{report:#}"));
        drill.push(Duration::from_secs_f64(ms / 1000.0));
    }
    let _ = fs::remove_dir_all(&ws);
    let _ = fs::remove_dir_all(&target);
    let _ = fs::remove_dir_all(&cache);
    alone.sort();
    drill.sort();
    (alone[alone.len() / 2], drill[drill.len() / 2])
}

/// RTO of a drill whose restore and check are next to nothing: what drdrill's
/// own bookkeeping adds to every measured RTO.
fn bench_overhead(root: &Path, reps: usize) -> (f64, f64) {
    let ws = root.join("ws-overhead");
    let _ = fs::remove_dir_all(&ws);
    fs::create_dir_all(ws.join("tiny")).expect("the overhead workspace");
    fs::create_dir_all(ws.join("drills")).expect("the overhead workspace");
    fs::write(ws.join("tiny/one"), b"1").expect("the overhead data");
    fs::write(
        ws.join("drills/tiny.toml"),
        "[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"tiny\"\n[[check]]\nkind = \"command\"\nrun = \"true\"\n",
    )
    .expect("the overhead plan");
    let mut overheads = Vec::new();
    let mut rtos = Vec::new();
    for _ in 0..reps {
        let out = Command::new(DRDRILL).args(["run", "tiny", "--json"]).current_dir(&ws).output().expect("drdrill run");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("drdrill run --json: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
        let m = |n: &str| {
            let found = report["measurements"].as_array().and_then(|ms| ms.iter().find(|m| m["name"] == n));
            found.and_then(|m| m["value_ms"].as_f64()).unwrap_or_else(|| panic!("no `{n}` measurement:\n{report:#}"))
        };
        rtos.push(m("rto"));
        overheads.push(m("rto") - m("fetch") - m("restore") - m("verify"));
    }
    let _ = fs::remove_dir_all(&ws);
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (med(overheads), med(rtos))
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Each step's peak, for the peers whose steps are separate processes.
fn rss_by_step(row: &Row) -> String {
    if row.step_rss.len() < 3 {
        return "one process".into();
    }
    let f = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    format!("b {} / r {} / c {} MiB", f(row.step_rss[0]), f(row.step_rss[1]), f(row.step_rss[2]))
}

/// A target of issue #14 with the figure that decides it; `met` is None when
/// the data set it needs was not run.
struct Target {
    what: &'static str,
    figure: String,
    met: Option<bool>,
}

impl Target {
    fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "not measured",
        }
    }
}

fn targets(rows: &[Row]) -> Vec<Target> {
    let find = |set: &str, tool: &str| rows.iter().find(|r| r.set == set && r.tool == tool);
    let s = |d: Duration| d.as_secs_f64();
    let absent = |what, sets: &str| Target { what, figure: format!("add {sets} to BENCH_SETS"), met: None };
    let mut out = Vec::new();
    out.push(match (find("a", DRDRILL_ROW), find("a", RESTIC_ROW)) {
        (Some(d), Some(r)) => {
            let x = s(r.end_to_end()) / s(d.end_to_end());
            Target {
                what: "(a) end to end >= 2.5x restic",
                figure: format!(
                    "{x:.2}x (drdrill {} s, restic {} s; by the whole `drdrill run` wall time of {} s: {:.2}x)",
                    secs(d.end_to_end()),
                    secs(r.end_to_end()),
                    secs(d.wall),
                    s(r.end_to_end()) / s(d.wall)
                ),
                met: Some(x >= 2.5),
            }
        }
        _ => absent("(a) end to end >= 2.5x restic", "a"),
    });
    out.push(match (find("a", DRDRILL_ROW), find("a", BOUND_ROW)) {
        (Some(d), Some(b)) => {
            let x = s(b.end_to_end()) / s(d.end_to_end());
            Target {
                what: "(a) end to end >= 0.9 of the bound's speed",
                figure: format!("{x:.2} (drdrill {} s, bound {} s)", secs(d.end_to_end()), secs(b.end_to_end())),
                met: Some(x >= 0.9),
            }
        }
        _ => absent("(a) end to end >= 0.9 of the bound's speed", "a"),
    });
    out.push(match (find("c", DRDRILL_ROW), find("c", RESTIC_ROW)) {
        (Some(d), Some(r)) => {
            let x = s(r.restore) / s(d.restore);
            Target {
                what: "(c) 2 GiB file restore >= 2x restic",
                figure: format!("{x:.2}x (drdrill {} s, restic {} s)", secs(d.restore), secs(r.restore)),
                met: Some(x >= 2.0),
            }
        }
        _ => absent("(c) 2 GiB file restore >= 2x restic", "c"),
    });
    let small = find("10k", DRDRILL_ROW);
    let million = find("1m", DRDRILL_ROW);
    out.push(match million {
        Some(m) => Target {
            what: "1M-file drill peak RSS < 64 MiB",
            figure: mib(m.peak_kib()),
            met: Some(m.peak_kib() < 64 * 1024),
        },
        None => absent("1M-file drill peak RSS < 64 MiB", "1m"),
    });
    out.push(match (small, million) {
        (Some(k), Some(m)) => {
            let grew = m.peak_kib() as f64 / 1024.0 - k.peak_kib() as f64 / 1024.0;
            Target {
                what: "1M-file drill within 10 MiB of the 10k drill",
                figure: format!("{grew:+.1} MiB ({} vs {})", mib(m.peak_kib()), mib(k.peak_kib())),
                met: Some(grew <= 10.0),
            }
        }
        _ => absent("1M-file drill within 10 MiB of the 10k drill", "10k and 1m"),
    });
    out
}

fn report(rows: &[Row], reps: usize, existing: Option<(Duration, Duration)>, overhead: (f64, f64)) {
    let restic_version = Command::new("restic")
        .arg("version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).map(|v| format!("restic {v}")))
        .unwrap_or_else(|| "restic".into());
    println!();
    println!(
        "{:<19} {:>9} {:>8}  {:<15} {:>8} {:>9} {:>8} {:>11} {:>8} {:>9} {:>10}  RSS by step",
        "data set",
        "files",
        "MB",
        "tool",
        "backup s",
        "restore s",
        "verify s",
        "end-to-end",
        "wall s",
        "restore/s",
        "peak RSS",
    );
    for r in rows {
        let mb = r.bytes as f64 / 1e6;
        println!(
            "{:<19} {:>9} {:>8.1}  {:<15} {:>8} {:>9} {:>8} {:>11} {:>8} {:>7.0}MB {:>10}  {}",
            r.label,
            r.files,
            mb,
            r.tool,
            secs(r.backup),
            secs(r.restore),
            secs(r.verify),
            secs(r.end_to_end()),
            secs(r.wall),
            mb / r.restore.as_secs_f64(),
            mib(r.peak_kib()),
            rss_by_step(r)
        );
    }
    println!(
        "(peak RSS per process from wait4; a child's figure can include the bench's resident size when it was forked, at most the bench's own peak of {})",
        mib(own_peak_kib())
    );
    println!(
        "(drdrill: its backup, restore and verify phases from `drdrill run --json`, wall = the whole process; peers: \
         backup, restore, `diff -r`; end-to-end = the three steps; median of {reps} run(s))"
    );

    let targets = targets(rows);
    println!();
    println!("targets of issue #14:");
    for t in &targets {
        println!("  {:<13} {}: {}", t.verdict(), t.what, t.figure);
    }

    let growth: Vec<(&Row, &Row)> = SMALL_SERIES
        .iter()
        .filter_map(|set| {
            let d = rows.iter().find(|r| r.set == *set && r.tool == DRDRILL_ROW)?;
            let r = rows.iter().find(|r| r.set == *set && r.tool == RESTIC_ROW)?;
            Some((d, r))
        })
        .collect();
    if !growth.is_empty() {
        println!();
        println!("growth with the file count (end to end, peak RSS):");
        println!("{:>9}  {:>10} {:>12}  {:>10} {:>12}", "files", "drdrill s", "drdrill RSS", "restic s", "restic RSS");
        for (d, r) in &growth {
            println!(
                "{:>9}  {:>10} {:>12}  {:>10} {:>12}",
                d.files,
                secs(d.end_to_end()),
                mib(d.peak_kib()),
                secs(r.end_to_end()),
                mib(r.peak_kib())
            );
        }
    }

    if let Some((alone, drill)) = existing {
        let extra = drill.as_secs_f64() - alone.as_secs_f64();
        println!();
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

    println!();
    println!("Markdown for README's \"## Performance\" section:");
    println!();
    println!("| data set | tool | backup | restore | verify / `diff -r` | end to end | peak RSS |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let mut last_set = "";
    for r in rows {
        let set = if r.set == last_set {
            String::new()
        } else {
            format!("{}, {} files, {:.0} MB", r.label, r.files, r.bytes as f64 / 1e6)
        };
        last_set = r.set;
        let (tool, e2e, rss) = match r.tool {
            DRDRILL_ROW => (
                "drdrill".to_string(),
                format!("{} s (run {} s)", secs(r.end_to_end()), secs(r.wall)),
                mib(r.peak_kib()),
            ),
            RESTIC_ROW => (restic_version.clone(), format!("{} s", secs(r.end_to_end())), rss_by_step(r)),
            _ => ("tar \\| zstd bound".to_string(), format!("{} s", secs(r.end_to_end())), rss_by_step(r)),
        };
        println!(
            "| {set} | {tool} | {} s | {} s | {} s | {e2e} | {rss} |",
            secs(r.backup),
            secs(r.restore),
            secs(r.verify)
        );
    }
    println!();
    for t in &targets {
        println!("- {}: {}: **{}**", t.what, t.figure, t.verdict());
    }
    if !growth.is_empty() {
        println!();
        println!("| files | drdrill end to end | drdrill peak RSS | restic end to end | restic peak RSS |");
        println!("| ---: | ---: | ---: | ---: | ---: |");
        for (d, r) in &growth {
            println!(
                "| {} | {} s | {} | {} s | {} |",
                d.files,
                secs(d.end_to_end()),
                mib(d.peak_kib()),
                secs(r.end_to_end()),
                mib(r.peak_kib())
            );
        }
    }
}
