//! Safeguards and the halt file, with real processes: a loopback HTTP server
//! whose health the test flips, command safeguards on a flag file, a
//! destructive `delete` failure whose rollback must put the live file back,
//! `drdrill run` and the daemon.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::common::{Workspace, describe, stderr, stdout, wait_exit, wait_for, wait_until};

/// A loopback HTTP server answering every request with `200 ok` while healthy
/// and `503 down` once flipped; it lives as long as the test process.
struct Health {
    port: u16,
    healthy: Arc<AtomicBool>,
}

impl Health {
    fn start() -> Health {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) =
                    if h.load(Ordering::SeqCst) { ("200 OK", "ok") } else { ("503 Service Unavailable", "down") };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Health { port, healthy }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    fn fail(&self) {
        self.healthy.store(false, Ordering::SeqCst);
    }
}

/// Live data under `allowed/data`, and the file the plan's failure deletes.
fn workspace() -> (Workspace, PathBuf) {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("allowed/data")).unwrap();
    let victim = ws.join("allowed/data/orders.txt");
    fs::write(&victim, "order 1\norder 2\n").unwrap();
    (ws, victim)
}

fn safety(ws: &Workspace, halt: Option<&Path>) -> String {
    let halt = halt.map(|h| format!("halt_file = \"{}\"\n", h.display())).unwrap_or_default();
    format!("allowed_paths = [\"{}\"]\n{halt}", ws.join("allowed").display())
}

/// A plan that backs up `allowed/data`, deletes the victim for real, and then
/// verifies for two minutes (a check that sleeps): long enough for anything
/// that should stop it to be seen stopping it.
fn plan(ws: &Workspace, name: &str, victim: &Path, safeguards: &str) -> PathBuf {
    ws.write_plan(
        name,
        &format!(
            "timeout = \"5m\"\ndestructive = true\n[targets]\nrto = \"10m\"\nrpo = \"1h\"\n\
             [source]\nkind = \"directory\"\npath = \"{}\"\n\
             [[failure]]\nkind = \"delete\"\npath = \"{}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"sleep 120\"\n{safeguards}",
            ws.join("allowed/data").display(),
            victim.display()
        ),
    )
}

fn spawn_run(ws: &Workspace, plan: &Path) -> Child {
    ws.cmd()
        .args(["run", "--json"])
        .arg(plan)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the run to end (well before its sleeping check would) and
/// returns its exit code and JSON report.
fn finish(mut child: Child) -> (i32, Value) {
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON report ({e}): {out}\n{err}"));
    (status.code().unwrap_or(-1), report)
}

fn phases<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["phases"].as_array().unwrap().iter().filter(|p| p["name"] == name).collect()
}

fn wait_injected(victim: &Path) {
    wait_for("the failure to delete the live file", || (!victim.exists()).then_some(()));
}

#[test]
fn a_failing_http_safeguard_aborts_the_run_within_one_interval_and_rolls_back() {
    let (ws, victim) = workspace();
    ws.write_safety_config(&safety(&ws, None));
    let health = Health::start();
    let flag = ws.join("incident");
    let plan = plan(
        &ws,
        "guarded",
        &victim,
        &format!(
            "[[safeguard]]\nname = \"orders-api\"\nkind = \"http\"\nurl = \"{}\"\nexpect_status = 200\nexpect_body = \"ok\"\ninterval = \"2s\"\n\
             [[safeguard]]\nname = \"no-incident\"\nkind = \"command\"\nrun = \"test ! -e {}\"\ninterval = \"1s\"\n",
            health.url(),
            flag.display()
        ),
    );
    let child = spawn_run(&ws, &plan);
    wait_injected(&victim);
    // A few evaluations pass while production is healthy.
    std::thread::sleep(Duration::from_millis(2500));
    let flipped = Utc::now();
    let flipped_mono = Instant::now();
    health.fail();
    let (code, report) = finish(child);
    let took = flipped_mono.elapsed();

    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["status"], "aborted", "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason
            .starts_with(&format!("aborted by safeguard orders-api: GET {} -> 503 Service Unavailable", health.url())),
        "{reason}"
    );
    // The failure was undone: the live file is back, byte for byte.
    assert_eq!(fs::read_to_string(&victim).unwrap(), "order 1\norder 2\n");
    assert!(phases(&report, "rollback").iter().all(|p| p["status"] == "ok"), "{report:#}");
    assert!(!phases(&report, "rollback").is_empty(), "{report:#}");
    // The check that sleeps two minutes was cut short, not waited for.
    assert!(took < Duration::from_secs(30), "the run took {took:?} after the flip");

    // Checked before injection, then the evaluation that failed began within
    // one interval (2s) of the flip; the second of slack is for a loaded
    // machine's timers, and still tells one interval from two.
    let guards = phases(&report, "safeguard");
    assert_eq!(guards.len(), 2, "{report:#}");
    assert_eq!(guards[0]["status"], "ok");
    assert!(guards[0]["detail"].as_str().unwrap().contains("orders-api: GET"), "{report:#}");
    let trip = guards[1];
    assert_eq!(trip["status"], "failed");
    let detail = trip["detail"].as_str().unwrap();
    assert!(detail.contains("`orders-api` failed after") && detail.contains("503"), "{detail}");
    let began: DateTime<Utc> = trip["started_at"].as_str().unwrap().parse().unwrap();
    let after_flip = (began - flipped).to_std().unwrap_or_default();
    assert!(after_flip <= Duration::from_secs(3), "the failing evaluation began {after_flip:?} after the flip");
    eprintln!("flip -> failing evaluation began {after_flip:?}; flip -> run recorded and exited {took:?}");
    assert!(ws.scratch_leftovers().is_empty(), "{:?}", ws.scratch_leftovers());
}

#[test]
fn a_command_safeguard_failing_before_injection_injects_nothing() {
    let (ws, victim) = workspace();
    ws.write_safety_config(&safety(&ws, None));
    let flag = ws.join("incident");
    fs::write(&flag, "INC-42 open\n").unwrap();
    let plan = plan(
        &ws,
        "pre",
        &victim,
        &format!("[[safeguard]]\nname = \"no-incident\"\nkind = \"command\"\nrun = \"! cat {} >&2\"\n", flag.display()),
    );
    let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&victim).unwrap());
    let (code, report) = finish(spawn_run(&ws, &plan));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["status"], "aborted", "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.starts_with("aborted by safeguard no-incident: `! cat"), "{reason}");
    assert!(reason.contains("INC-42 open"), "the reason quotes what the probe saw: {reason}");
    // Nothing was injected: no failure phase, no rollback, the file never moved.
    assert!(phases(&report, "failure").is_empty(), "{report:#}");
    assert!(phases(&report, "rollback").is_empty(), "{report:#}");
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&fs::metadata(&victim).unwrap()), inode);
    let shown = ws.last_run();
    assert_eq!(shown["t_fail"], Value::Null, "{shown:#}");
    let guard = phases(&report, "safeguard");
    assert_eq!(guard.len(), 1);
    assert!(guard[0]["detail"].as_str().unwrap().ends_with("nothing was injected"), "{report:#}");
}

#[test]
fn the_halt_file_refuses_new_runs_and_aborts_a_running_one() {
    let (ws, victim) = workspace();
    let halt = ws.join("var/HALT");
    ws.write_safety_config(&safety(&ws, Some(&halt)));
    let plan = plan(&ws, "halted", &victim, "");
    fs::create_dir_all(halt.parent().unwrap()).unwrap();
    fs::write(&halt, "").unwrap();

    let out = ws.cmd().arg("run").arg(&plan).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains(&format!("refused: halt file {} exists", halt.display())), "{}", describe(&out));
    assert_eq!(ws.recorded_runs(), 0);
    assert!(victim.exists());
    let out = ws.cmd().args(["run", "--dry-run"]).arg(&plan).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stdout(&out).contains(&format!("halted: `drdrill run` would be refused: halt file {}", halt.display())));

    fs::remove_file(&halt).unwrap();
    let child = spawn_run(&ws, &plan);
    wait_injected(&victim);
    fs::write(&halt, "").unwrap();
    let (code, report) = finish(child);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["status"], "aborted", "{report:#}");
    assert_eq!(report["reason"], format!("aborted: halt file {} exists", halt.display()), "{report:#}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "order 1\norder 2\n", "rolled back");
    assert!(!phases(&report, "rollback").is_empty(), "{report:#}");
}

#[test]
fn the_daemon_shows_the_halt_refuses_runs_and_aborts_running_ones() {
    let (ws, victim) = workspace();
    let halt = ws.join("var/HALT");
    let port = ws.write_daemon_config(&format!("[safety]\n{}", safety(&ws, Some(&halt))));
    plan(&ws, "gd", &victim, "");
    fs::create_dir_all(halt.parent().unwrap()).unwrap();
    fs::write(&halt, "").unwrap();
    let d = ws.spawn_daemon(port);

    let (code, out, err) = ws.run(&["status"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("HALTED: halt file {} exists", halt.display())), "{out}");
    let (code, out, err) = ws.run(&["trigger", "gd"], &[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("refused: halt file {} exists", halt.display())), "{out}{err}");
    assert!(victim.exists());

    fs::remove_file(&halt).unwrap();
    wait_until("the status to drop the halt", Duration::from_secs(10), || {
        (!ws.run(&["status"], &[]).1.contains("HALTED")).then_some(())
    });
    let (code, out, err) = ws.run(&["trigger", "gd"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    wait_injected(&victim);
    fs::write(&halt, "").unwrap();
    let run = wait_until("the run to be recorded aborted", Duration::from_secs(60), || {
        let runs = d.get("/api/runs?plan=gd");
        runs.as_array().unwrap().iter().find(|r| r["status"] == "aborted").cloned()
    });
    assert_eq!(run["reason"], format!("aborted: halt file {} exists", halt.display()), "{run:#}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "order 1\norder 2\n", "rolled back");
    assert!(d.log().contains("no drill starts until it is removed"), "{}", d.log());

    // A scheduled firing while halted is recorded as skipped, naming the file.
    ws.write_plan(
        "ticker",
        "schedule = \"* * * * * *\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"allowed/data\"\n[[check]]\nkind = \"command\"\nrun = \"true\"\n",
    );
    let (code, out, err) = ws.run(&["reload"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let skipped = wait_until("a skipped scheduled run", Duration::from_secs(30), || {
        let runs = d.get("/api/runs?plan=ticker");
        runs.as_array().unwrap().first().cloned()
    });
    assert_eq!(skipped["status"], "skipped", "{skipped:#}");
    assert!(
        skipped["reason"].as_str().unwrap().contains(&format!("halt file {} exists", halt.display())),
        "{skipped:#}"
    );
}

#[test]
fn bad_safeguards_are_reported_at_their_lines_and_good_ones_shown() {
    let (ws, victim) = workspace();
    let plan_file = plan(
        &ws,
        "bad",
        &victim,
        "[[safeguard]]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\n\
         [[safeguard]]\nname = \"fast\"\nkind = \"command\"\nrun = \"true\"\ninterval = \"10ms\"\n\
         [[safeguard]]\nname = \"slow\"\nkind = \"command\"\nrun = \"true\"\ninterval = \"1s\"\ntimeout = \"1m\"\n\
         [[safeguard]]\nname = \"db\"\nkind = \"sqlite-query\"\n\
         [[safeguard]]\nname = \"twice\"\nkind = \"command\"\nrun = \"true\"\n\
         [[safeguard]]\nname = \"twice\"\nkind = \"command\"\nrun = \"true\"\n\
         [[safeguard]]\nname = \"typo\"\nkind = \"command\"\nrun = \"true\"\nevery = \"1s\"\n",
    );
    let text = fs::read_to_string(&plan_file).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let (code, out, _) = ws.run(&["validate", plan_file.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{out}");
    let f = plan_file.display();
    assert!(out.contains("[[safeguard]] has no `name`"), "{out}");
    assert!(
        out.contains(&format!(
            "{f}:{}:12: [[safeguard]] interval = \"10ms\" is out of range 100ms to 1h",
            line_of("\"10ms\"")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{f}:{}:11: [[safeguard]] timeout 1m is longer than its interval 1s", line_of("\"1m\""))),
        "{out}"
    );
    assert!(out.contains("unknown safeguard kind `sqlite-query`") && out.contains("http | command"), "{out}");
    assert!(out.contains("safeguard name `twice` is used twice"), "{out}");
    assert!(out.contains("unknown field `every`, expected one of `run`, `name`, `interval`, `timeout`"), "{out}");

    let good = plan(
        &ws,
        "good",
        &victim,
        "[[safeguard]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/health\"\nexpect_status = \"2xx\"\ninterval = \"2s\"\n",
    );
    ws.write_safety_config(&safety(&ws, None));
    let (code, out, err) = ws.run(&["validate", good.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("safeguard api (http): GET http://127.0.0.1:1/health expect 200-299; every 2s, each within 2s"),
        "{out}"
    );
    let (code, out, err) = ws.run(&["run", "--dry-run", good.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let at = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("no {needle:?} in {out}"));
    assert!(at("  safeguard api: GET http://127.0.0.1:1/health") < at("  failure  #1 delete"), "{out}");
}
