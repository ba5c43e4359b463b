//! The daemon, driven as a real child process on a free loopback port with its
//! own config, plans, results database, store and scratch folder.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{WAIT, free_port, wait_for};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin!("drdrill").to_path_buf()
}

struct Env {
    dir: tempfile::TempDir,
    port: u16,
}

#[derive(Debug, Clone)]
struct Run {
    id: i64,
    status: String,
    trigger: String,
    reason: String,
}

impl Env {
    fn new(grace: &str) -> Env {
        Env::new_with(grace, "")
    }

    /// With `extra` appended to the config; `@ROOT@` in it becomes the temp root.
    fn new_with(grace: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = dir.path();
        fs::create_dir_all(root.join("plans")).unwrap();
        fs::create_dir_all(root.join("data")).unwrap();
        fs::write(root.join("data/orders.txt"), "order 1\norder 2\n").unwrap();
        let config = format!(
            "database = \"{r}/var/drdrill.db\"\nplans = \"{r}/plans\"\nscratch = \"{r}/var/scratch\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{r}/var/api-token\"\n\
             [daemon]\ngrace_period = \"{grace}\"\nconcurrency = 4\n\
             [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n{extra}\n",
            r = root.display(),
            extra = extra.replace("@ROOT@", &root.display().to_string())
        );
        fs::write(root.join("config.toml"), config).unwrap();
        Env { dir, port }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A directory drill whose `command` check runs `check`.
    fn plan(&self, name: &str, schedule: Option<&str>, check: &str) {
        let schedule = schedule.map(|s| format!("schedule = \"{s}\"\n")).unwrap_or_default();
        let text = format!(
            "{schedule}timeout = \"5m\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n\
             [source]\nkind = \"directory\"\npath = \"{}\"\n[[check]]\nkind = \"command\"\nrun = \"{check}\"\n",
            self.path("data").display()
        );
        fs::write(self.path(&format!("plans/{name}.toml")), text).unwrap();
    }

    fn cli(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config").arg(self.path("config.toml")).current_dir(self.dir.path());
        c
    }

    fn spawn_with(&self, env: &[(&str, &str)]) -> Daemon {
        let log = fs::File::create(self.path("daemon.log")).unwrap();
        let mut cmd = self.cli();
        cmd.arg("daemon").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut d = Daemon { child: Some(child), log: self.path("daemon.log") };
        let url = self.url("/healthz");
        wait_for("the daemon to answer /healthz", || {
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status} before it was ready:\n{}", d.log());
            }
            reqwest::blocking::get(&url).ok().filter(|r| r.status().is_success())
        });
        d
    }

    fn spawn(&self) -> Daemon {
        self.spawn_with(&[])
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn token(&self) -> String {
        fs::read_to_string(self.path("var/api-token")).unwrap().trim().to_string()
    }

    fn get(&self, path: &str) -> Value {
        let r = reqwest::blocking::get(self.url(path)).unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().unwrap()
    }

    /// Starts a game-day run through the API; returns its id.
    fn trigger(&self, plan: &str) -> i64 {
        let r = reqwest::blocking::Client::new()
            .post(self.url(&format!("/api/plans/{plan}/runs")))
            .bearer_auth(self.token())
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "trigger {plan}");
        r.json::<Value>().unwrap()["run_id"].as_i64().unwrap()
    }

    fn runs(&self, plan: &str) -> Vec<Run> {
        let db = rusqlite::Connection::open(self.path("var/drdrill.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut stmt = db
            .prepare("SELECT id, status, trigger, coalesce(reason, '') FROM runs WHERE plan = ?1 ORDER BY id")
            .unwrap();
        stmt.query_map([plan], |r| Ok(Run { id: r.get(0)?, status: r.get(1)?, trigger: r.get(2)?, reason: r.get(3)? }))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn run(&self, id: i64) -> Run {
        let db = rusqlite::Connection::open(self.path("var/drdrill.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db.query_row("SELECT id, status, trigger, coalesce(reason, '') FROM runs WHERE id = ?1", [id], |r| {
            Ok(Run { id: r.get(0)?, status: r.get(1)?, trigger: r.get(2)?, reason: r.get(3)? })
        })
        .unwrap()
    }

    fn phases(&self, id: i64) -> Vec<String> {
        let db = rusqlite::Connection::open(self.path("var/drdrill.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut stmt = db.prepare("SELECT name FROM phases WHERE run_id = ?1 ORDER BY seq").unwrap();
        stmt.query_map([id], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    fn scratch_runs(&self) -> Vec<String> {
        match fs::read_dir(self.path("var/scratch")) {
            Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until run `id` is in its checks (restore done), so it is mid-run.
    fn wait_mid_run(&self, id: i64) {
        wait_for("the run to reach its checks", || self.phases(id).iter().any(|p| p == "restore").then_some(()));
        assert_eq!(self.run(id).status, "running");
        assert!(self.scratch_runs().contains(&format!("run-{id}")), "{:?}", self.scratch_runs());
    }
}

struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit; returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        let status = wait_for("the daemon to exit", || child.try_wait().unwrap());
        self.child = None;
        status.code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn scheduled_runs_are_recorded_and_overlaps_skipped() {
    let env = Env::new("5s");
    env.plan("tick", Some("* * * * * *"), "true");
    // Runs longer than its one-second interval: the next firings overlap it.
    env.plan("slow", Some("* * * * * *"), "sleep 2.5");
    let _d = env.spawn();
    let passed = wait_for("two scheduled passed runs of `tick`", || {
        let runs: Vec<Run> = env.runs("tick").into_iter().filter(|r| r.status == "passed").collect();
        (runs.len() >= 2).then_some(runs)
    });
    assert!(passed.iter().all(|r| r.trigger == "schedule"), "{passed:?}");
    let skipped = wait_for("a skipped run of `slow`", || env.runs("slow").into_iter().find(|r| r.status == "skipped"));
    assert!(skipped.reason.contains("still running"), "{skipped:?}");
    // The overlapped run was not started twice: never two `running` at once.
    assert!(env.runs("slow").iter().filter(|r| r.status == "running").count() <= 1);
    // The API lists them, newest first, filtered by plan.
    let listed = env.get("/api/runs?plan=slow&limit=2");
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|r| r["plan"] == "slow"));
    assert!(listed[0]["id"].as_i64() > listed[1]["id"].as_i64());
}

#[test]
fn sighup_with_a_broken_plan_keeps_the_previous_version() {
    let env = Env::new("5s");
    env.plan("tick", Some("* * * * * *"), "true");
    let d = env.spawn();
    wait_for("a first scheduled run", || env.runs("tick").iter().any(|r| r.status == "passed").then_some(()));
    let plan_file = env.path("plans/tick.toml");
    let good = fs::read_to_string(&plan_file).unwrap();
    fs::write(&plan_file, good.replace("rto = \"10m\"", "rto = \"soon\"")).unwrap();
    d.signal(libc::SIGHUP);
    let errors = wait_for("the reload error in the API", || {
        let v = env.get("/api/plans");
        let errors = v["errors"].as_array().cloned().unwrap_or_default();
        (!errors.is_empty()).then_some(errors)
    });
    assert_eq!(errors[0]["kept"], "tick", "{errors:?}");
    let msg = errors[0]["error"].as_str().unwrap();
    assert!(msg.contains("tick.toml:4:") && msg.contains("soon"), "{msg}");
    assert!(d.log().contains("plan not reloaded"), "{}", d.log());
    // The previous version keeps its schedule: new runs keep coming, same plan hash.
    let last = env.runs("tick").last().unwrap().id;
    wait_for("a scheduled run after the broken reload", || {
        env.runs("tick").iter().any(|r| r.id > last && r.status == "passed").then_some(())
    });
    // `drdrill reload` reports the same and exits 2.
    let out = env.cli().arg("reload").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("previous `tick` kept") && stdout.contains("soon"), "{stdout}");
    // Fixing the file and reloading clears the error.
    fs::write(&plan_file, good).unwrap();
    let out = env.cli().arg("reload").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(env.get("/api/plans")["errors"].as_array().unwrap().is_empty());
}

#[test]
fn sigterm_mid_run_aborts_it_and_removes_scratch() {
    let env = Env::new("1s");
    env.plan("long", None, "sleep 30");
    let mut d = env.spawn();
    let id = env.trigger("long");
    env.wait_mid_run(id);
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(), Some(0));
    // The 30 s check was cut short after the 1 s grace period.
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
    let run = env.run(id);
    assert_eq!(run.status, "aborted", "{run:?}");
    assert!(run.reason.contains("SIGTERM") && run.reason.contains("grace period"), "{run:?}");
    assert!(env.scratch_runs().is_empty(), "{:?}", env.scratch_runs());
    assert!(env.phases(id).contains(&"cleanup".to_string()));
}

#[test]
fn kill_9_mid_run_then_restart_marks_it_aborted_and_sweeps_scratch() {
    let env = Env::new("1s");
    env.plan("long", None, "sleep 20");
    let mut d = env.spawn();
    let id = env.trigger("long");
    env.wait_mid_run(id);
    d.signal(libc::SIGKILL);
    d.wait_exit();
    // What a crash leaves behind:
    assert_eq!(env.run(id).status, "running");
    assert!(env.scratch_runs().contains(&format!("run-{id}")));
    let _d = env.spawn();
    let run = env.run(id);
    assert_eq!(run.status, "aborted", "{run:?}");
    assert!(run.reason.contains("daemon stopped"), "{run:?}");
    assert!(env.scratch_runs().is_empty(), "{:?}", env.scratch_runs());
}

#[test]
fn the_api_refuses_mutations_without_the_token() {
    let env = Env::new("1s");
    env.plan("quick", None, "true");
    let d = env.spawn();
    let mode = fs::metadata(env.path("var/api-token")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the daemon creates the token file private");
    let http = reqwest::blocking::Client::new();
    for (path, token) in
        [("/api/plans/quick/runs", None), ("/api/plans/quick/runs", Some("not-the-token")), ("/api/reload", None)]
    {
        let mut req = http.post(env.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 401, "POST {path} with {token:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body = r.text().unwrap();
        assert!(!body.contains(&env.token()), "the token leaked: {body}");
    }
    assert!(env.runs("quick").is_empty(), "a refused call started a run");
    // Reads are open; the right token starts a run.
    assert_eq!(http.get(env.url("/api/plans")).send().unwrap().status(), 200);
    let id = env.trigger("quick");
    wait_for("the triggered run to pass", || (env.run(id).status == "passed").then_some(()));
    assert_eq!(env.run(id).trigger, "api");
    assert!(!d.log().contains(&env.token()), "the token is in the log");
    drop(d);

    // A token file other users can read is refused at start-up.
    fs::set_permissions(env.path("var/api-token"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.cli().arg("daemon").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let env = Env::new("1s");
    env.plan("quick", None, "true");
    let _d = env.spawn();
    let id = env.trigger("quick");
    wait_for("the run to pass", || (env.run(id).status == "passed").then_some(()));
    let text = reqwest::blocking::get(env.url("/metrics")).unwrap().text().unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{text}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: unexpected {other:?}"),
        }
    };
    assert_eq!(value("drdrill_runs_total", &[("plan", "quick"), ("result", "passed")]), 1.0);
    assert_eq!(value("drdrill_rto_target_seconds", &[("plan", "quick")]), 600.0);
    assert_eq!(value("drdrill_rpo_target_seconds", &[("plan", "quick")]), 86400.0);
    let rto = value("drdrill_last_rto_seconds", &[("plan", "quick")]);
    assert!(rto > 0.0 && rto < 600.0, "{rto}");
    let rpo = value("drdrill_last_rpo_seconds", &[("plan", "quick")]);
    assert!((0.0..600.0).contains(&rpo), "{rpo}");
    let success = value("drdrill_last_success_timestamp_seconds", &[("plan", "quick")]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - success).abs() < 120.0, "{success} vs {now}");
    assert_eq!(value("drdrill_plan_errors", &[]), 0.0);
}

#[test]
fn trigger_follow_sees_the_run_through() {
    let env = Env::new("1s");
    env.plan("quick", None, "sleep 1");
    // Fails its check until the plan's timeout.
    env.plan("broken", None, "false");
    let broken = env.path("plans/broken.toml");
    fs::write(&broken, fs::read_to_string(&broken).unwrap().replace("timeout = \"5m\"", "timeout = \"3s\"")).unwrap();
    let _d = env.spawn();

    let out = env.cli().args(["trigger", "quick", "--follow"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for needle in ["started as run", "prepare", "backup", "restore", "verify", "cleanup", "passed: RTO"] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }

    let id = stdout.split("started as run ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap();
    let run = env.get(&format!("/api/runs/{id}"));
    assert_eq!(run["summary"]["status"], "passed");
    assert_eq!(run["checks"][0]["passed"], true);
    let measured: Vec<&str> =
        run["measurements"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(measured.contains(&"rto") && measured.contains(&"rpo"), "{measured:?}");
    assert_eq!(reqwest::blocking::get(env.url("/api/runs/999999")).unwrap().status(), 404);

    let out = env.cli().args(["trigger", "broken", "--follow"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("failed"), "{stdout}");

    let out = env.cli().args(["trigger", "no-such-plan"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no plan named `no-such-plan`"));

    let out = env.cli().arg("status").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("daemon ok") && stdout.contains("quick") && stdout.contains("passed"), "{stdout}");
}

#[test]
fn sd_notify_ready_status_and_watchdog_arrive() {
    let env = Env::new("1s");
    env.plan("quick", Some("@daily"), "true");
    let sock_path = env.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let _d = env.spawn_with(&[("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")]);
    let (mut ready, mut status, mut watchdog) = (false, None, 0);
    let mut buf = [0u8; 4096];
    wait_for("READY=1, STATUS= and two WATCHDOG=1", || {
        if let Ok(n) = sock.recv(&mut buf) {
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                ready |= line == "READY=1";
                watchdog += usize::from(line == "WATCHDOG=1");
                if let Some(s) = line.strip_prefix("STATUS=") {
                    status = Some(s.to_string());
                }
            }
        }
        (ready && status.is_some() && watchdog >= 2).then_some(())
    });
    let status = status.unwrap();
    assert!(status.contains("idle") && status.contains("next: quick"), "{status}");
}

#[test]
fn a_second_daemon_on_the_same_database_is_refused_before_touching_runs() {
    let env = Env::new("1s");
    env.plan("long", None, "sleep 20");
    let _d = env.spawn();
    let id = env.trigger("long");
    env.wait_mid_run(id);
    let mut out = String::new();
    let mut child = env.cli().arg("daemon").stderr(Stdio::piped()).spawn().unwrap();
    child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(2));
    assert!(out.contains("another drdrill daemon"), "{out}");
    // Its crash recovery did not run: the first daemon's run is untouched.
    assert_eq!(env.run(id).status, "running");
    assert!(env.scratch_runs().contains(&format!("run-{id}")));
}

/// Stops the daemon cleanly and waits until a firing of an every-second schedule
/// has certainly passed while it was down.
fn stop_and_miss_a_firing(env: &Env, d: &mut Daemon) {
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(), Some(0));
    let db = rusqlite::Connection::open(env.path("var/drdrill.db")).unwrap();
    let last: String = db.query_row("SELECT max(started_at) FROM runs", [], |r| r.get(0)).unwrap();
    let last = chrono::DateTime::parse_from_rfc3339(&last).unwrap();
    wait_for("two seconds past the last run", || {
        (chrono::Utc::now() > last + chrono::Duration::seconds(2)).then_some(())
    });
}

#[test]
fn missed_runs_follow_the_plan_policy() {
    let env = Env::new("5s");
    env.plan("skipper", Some("* * * * * *"), "true");
    env.plan("catcher", Some("* * * * * *"), "true");
    let catcher = env.path("plans/catcher.toml");
    fs::write(&catcher, format!("missed = \"run-once\"\n{}", fs::read_to_string(&catcher).unwrap())).unwrap();
    let mut d = env.spawn();
    wait_for("both plans to run", || {
        ["skipper", "catcher"].iter().all(|p| env.runs(p).iter().any(|r| r.status == "passed")).then_some(())
    });
    stop_and_miss_a_firing(&env, &mut d);
    let _d = env.spawn();
    let caught = wait_for("a catch-up run", || env.runs("catcher").into_iter().find(|r| r.trigger == "catch-up"));
    assert_eq!(env.runs("catcher").iter().filter(|r| r.trigger == "catch-up").count(), 1, "run once, not per firing");
    wait_for("the catch-up run to pass", || (env.run(caught.id).status == "passed").then_some(()));
    let skipped = env.runs("skipper");
    let missed: Vec<&Run> = skipped.iter().filter(|r| r.reason.contains("missed while the daemon was down")).collect();
    assert_eq!(missed.len(), 1, "{skipped:?}");
    assert_eq!(missed[0].status, "skipped");
    assert!(skipped.iter().all(|r| r.trigger != "catch-up"), "{skipped:?}");
}

#[test]
fn the_concurrency_limit_queues_runs() {
    let env = Env::new("1s");
    let config = fs::read_to_string(env.path("config.toml")).unwrap();
    fs::write(env.path("config.toml"), config.replace("concurrency = 4", "concurrency = 1")).unwrap();
    env.plan("first", None, "sleep 3");
    env.plan("second", None, "true");
    let _d = env.spawn();
    let first = env.trigger("first");
    // The answer to this one comes only once a slot is free.
    let second = std::thread::scope(|s| {
        let waiting = s.spawn(|| env.trigger("second"));
        wait_for("`second` to be queued", || {
            let plans = env.get("/api/plans");
            let p = plans["plans"].as_array().unwrap().iter().find(|p| p["name"] == "second").cloned().unwrap();
            (p["active"].is_object() && p["active"]["run_id"].is_null()).then_some(())
        });
        assert!(env.runs("second").is_empty(), "`second` started while `first` held the only slot");
        waiting.join().unwrap()
    });
    wait_for("both runs to pass", || {
        (env.run(first).status == "passed" && env.run(second).status == "passed").then_some(())
    });
    let db = rusqlite::Connection::open(env.path("var/drdrill.db")).unwrap();
    let (first_end, second_start): (String, String) = db
        .query_row(
            "SELECT (SELECT finished_at FROM runs WHERE id = ?1), (SELECT started_at FROM runs WHERE id = ?2)",
            [first, second],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(first_end <= second_start, "{first_end} > {second_start}");
}

#[test]
fn a_second_sigint_cuts_the_grace_period_short() {
    let env = Env::new("10m");
    env.plan("long", None, "sleep 30");
    let mut d = env.spawn();
    let id = env.trigger("long");
    env.wait_mid_run(id);
    let start = Instant::now();
    d.signal(libc::SIGINT);
    wait_for("the daemon to report it is stopping", || {
        reqwest::blocking::get(env.url("/healthz")).ok()?.json::<Value>().ok().filter(|h| h["status"] == "stopping")
    });
    // Stopping means no new runs.
    let r =
        reqwest::blocking::Client::new().post(env.url("/api/plans/long/runs")).bearer_auth(env.token()).send().unwrap();
    assert_eq!(r.status(), 503);
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit(), Some(0));
    assert!(start.elapsed() < Duration::from_secs(25), "{:?}", start.elapsed());
    let run = env.run(id);
    assert_eq!(run.status, "aborted", "{run:?}");
    assert!(run.reason.contains("then SIGINT"), "{run:?}");
    assert!(env.scratch_runs().is_empty(), "{:?}", env.scratch_runs());
}

#[test]
fn run_events_stream_phases_while_the_run_goes_on() {
    use std::io::BufRead;
    let env = Env::new("1s");
    env.plan("steady", None, "sleep 2");
    let _d = env.spawn();
    let id = env.trigger("steady");
    let r = reqwest::blocking::Client::builder()
        .timeout(WAIT)
        .build()
        .unwrap()
        .get(env.url(&format!("/api/runs/{id}/events")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut names = Vec::new();
    let mut result = None;
    for line in std::io::BufReader::new(r).lines() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if let Some(name) = event["phase"]["name"].as_str() {
            names.push(name.to_string());
            if name == "restore" {
                // Seen live: the checks (two seconds) have not finished yet.
                assert_eq!(env.run(id).status, "running");
            }
        }
        if event["result"].is_object() {
            result = Some(event["result"].clone());
        }
    }
    assert_eq!(names, ["prepare", "backup", "failure", "restore", "verify", "cleanup"]);
    assert_eq!(result.expect("the stream ends with the result")["status"], "passed");
    // A follower arriving after the end gets the whole timeline and the result.
    let late = reqwest::blocking::get(env.url(&format!("/api/runs/{id}/events"))).unwrap().text().unwrap();
    assert_eq!(late.lines().count(), 7, "{late}");
}

#[test]
fn schedules_follow_the_configured_time_zone() {
    let env = Env::new("1s");
    let config = fs::read_to_string(env.path("config.toml")).unwrap();
    // India has no daylight saving time: 03:00 there is always 21:30 UTC.
    fs::write(env.path("config.toml"), config.replace("[daemon]\n", "[daemon]\ntimezone = \"Asia/Kolkata\"\n"))
        .unwrap();
    env.plan("nightly", Some("0 3 * * *"), "true");
    let _d = env.spawn();
    let plans = env.get("/api/plans");
    assert_eq!(plans["timezone"], "Asia/Kolkata");
    let next = plans["plans"][0]["next_due"].as_str().unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(next).unwrap().with_timezone(&chrono::Utc);
    assert_eq!(next.format("%H:%M:%S").to_string(), "21:30:00", "{next}");
    let out = env.cli().args(["validate"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(Asia/Kolkata) next:") && stdout.contains("T03:00:00+05:30"), "{stdout}");
}

// ---- game days, the blast-radius guard, mail and quarantine through the daemon ----

/// The config section that allows destructive failures under `<root>/allowed`.
const SAFETY: &str = "[safety]\nallowed_paths = [\"@ROOT@/allowed\"]\n";

impl Env {
    /// A destructive plan whose `delete` failure moves `target` aside; `top` adds
    /// top-level keys (pause_before, schedule).
    fn destructive_plan(&self, name: &str, top: &str, target: &std::path::Path) {
        let text = format!(
            "{top}\ndestructive = true\ntimeout = \"5m\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n\
             [source]\nkind = \"directory\"\npath = \"{}\"\n\
             [[failure]]\nkind = \"delete\"\npath = \"{}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"test ! -e {}\"\n",
            self.path("data").display(),
            target.display(),
            target.display()
        );
        fs::write(self.path(&format!("plans/{name}.toml")), text).unwrap();
    }

    /// A file in the allowed folder, with content to compare after a rollback.
    fn victim(&self) -> (PathBuf, Vec<u8>) {
        let dir = self.path("allowed");
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim.txt");
        let content = b"live data\n".repeat(40);
        fs::write(&victim, &content).unwrap();
        (victim, content)
    }

    fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::blocking::Client::new().post(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn wait_gate(&self, id: i64, gate: &str) -> Value {
        wait_for(&format!("run {id} to wait at gate {gate}"), || {
            self.get("/api/gates").as_array().unwrap().iter().find(|g| g["run_id"] == id && g["gate"] == gate).cloned()
        })
    }

    fn wait_finished(&self, id: i64) -> Run {
        wait_for(&format!("run {id} to finish"), || Some(self.run(id)).filter(|r| r.status != "running"))
    }
}

#[test]
fn a_gate_waits_for_approval_through_the_api_and_records_who_approved() {
    let env = Env::new_with("5s", SAFETY);
    let (victim, content) = env.victim();
    env.destructive_plan("gd", "pause_before = [\"failure\"]", &victim);
    let _d = env.spawn();
    let follow_out = env.path("follow.out");
    let mut follow = env
        .cli()
        .args(["trigger", "gd", "--follow"])
        .stdout(fs::File::create(&follow_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = wait_for("the run to start", || env.runs("gd").first().map(|r| r.id));
    let gate = env.wait_gate(id, "failure");
    assert_eq!(gate["plan"], "gd", "{gate}");
    assert_eq!(gate["approve"], format!("drdrill approve {id} --gate failure"));
    // Held: nothing is deleted and the run does not go on while nobody approves.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(victim.exists(), "the failure ran before approval");
    assert_eq!(env.run(id).status, "running");
    let out = env.cli().arg("status").output().unwrap();
    let status_text = String::from_utf8_lossy(&out.stdout);
    assert!(status_text.contains(&format!("run {id} (gd) waits for approval before failure")), "{status_text}");

    let approve = format!("/api/runs/{id}/approve");
    assert_eq!(env.post(&approve, None, None).0, 401);
    assert_eq!(env.post(&approve, Some("not-the-token"), None).0, 401);
    assert_eq!(env.post(&format!("/api/runs/{id}/abort"), None, None).0, 401);
    let (code, body) = env.post(&approve, Some(&env.token()), Some(serde_json::json!({ "gate": "restore" })));
    assert_eq!(code, 409, "approving another gate: {body}");
    assert!(body["error"].as_str().unwrap().contains("waiting at gate `failure`"), "{body}");
    assert_eq!(env.run(id).status, "running", "a refused approval lets nothing through");

    let (code, body) = env.post(
        &approve,
        Some(&env.token()),
        Some(serde_json::json!({ "gate": "failure", "note": "on-call is ready", "by": "alice" })),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["approved_by"], "api (alice)");

    let status = wait_for("trigger --follow to end", || follow.try_wait().unwrap());
    let printed = fs::read_to_string(&follow_out).unwrap();
    assert_eq!(status.code(), Some(0), "{printed}");
    assert!(printed.contains(&format!("drdrill approve {id} --gate failure")), "{printed}");
    assert_eq!(env.run(id).status, "passed");
    assert_eq!(fs::read(&victim).unwrap(), content, "the delete was rolled back after the drill");
    let detail = env.get(&format!("/api/runs/{id}"));
    let g = &detail["gates"][0];
    assert_eq!((g["gate"].as_str(), g["outcome"].as_str()), (Some("failure"), Some("approved")), "{detail}");
    assert_eq!(g["decided_by"], "api (alice)");
    assert_eq!(g["note"], "on-call is ready");

    // Nothing waits any more; a finished run cannot be aborted; an unknown one is 404.
    assert_eq!(env.post(&approve, Some(&env.token()), None).0, 409);
    assert_eq!(env.post(&format!("/api/runs/{id}/abort"), Some(&env.token()), None).0, 409);
    assert_eq!(env.post("/api/runs/999999/abort", Some(&env.token()), None).0, 404);
}

#[test]
fn abort_through_the_api_runs_the_rollbacks_and_records_aborted() {
    let env = Env::new_with("5s", SAFETY);
    let (victim, content) = env.victim();
    env.destructive_plan("gd", "pause_before = [\"restore\"]", &victim);
    let _d = env.spawn();
    let id = env.trigger("gd");
    env.wait_gate(id, "restore");
    assert!(!victim.exists(), "the failure has run by the restore gate");

    let out =
        env.cli().args(["abort", &id.to_string(), "--reason", "the database team needs the box"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let run = env.wait_finished(id);
    assert_eq!(run.status, "aborted", "{run:?}");
    assert!(
        run.reason.contains("requested through the API by terminal (user")
            && run.reason.contains("the database team needs the box"),
        "{run:?}"
    );
    assert_eq!(fs::read(&victim).unwrap(), content, "the rollback put the deleted file back");
    let detail = env.get(&format!("/api/runs/{id}"));
    assert_eq!(detail["gates"][0]["outcome"], "aborted", "{detail}");
    assert!(env.scratch_runs().iter().all(|s| !s.starts_with("run-")), "{:?}", env.scratch_runs());
    // The CLI reports what the API says about a run that is no longer running.
    let out = env.cli().args(["abort", &id.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn guard_refusals_are_a_4xx_for_the_api_and_a_skipped_scheduled_run() {
    // `data/` is not in the allowed folder: the guard refuses both plans.
    let env = Env::new_with("5s", SAFETY);
    let outside = env.path("data/orders.txt");
    let before = fs::read(&outside).unwrap();
    env.destructive_plan("outside", "", &outside);
    env.destructive_plan("outside-scheduled", "schedule = \"* * * * * *\"", &outside);
    let d = env.spawn();

    let (code, body) = env.post("/api/plans/outside/runs", Some(&env.token()), None);
    assert_eq!(code, 403, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("refused by the blast-radius guard") && msg.contains("allowed_paths"), "{msg}");
    let out = env.cli().args(["trigger", "outside"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env.runs("outside").is_empty(), "a refused game-day run is answered, not recorded");

    let skipped = wait_for("a skipped scheduled run", || env.runs("outside-scheduled").into_iter().next());
    assert_eq!(skipped.status, "skipped", "{skipped:?}");
    assert_eq!(skipped.trigger, "schedule");
    assert!(skipped.reason.contains("blast-radius guard") && skipped.reason.contains("REFUSED"), "{skipped:?}");
    assert!(d.log().contains("run skipped") && !d.log().contains("could not be recorded"), "{}", d.log());
    assert_eq!(fs::read(&outside).unwrap(), before, "nothing was touched");
    // `drdrill validate` warns ahead of time (the plan itself is valid).
    let out = env.cli().arg("validate").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("warning: with this config, drill outside refused") && text.contains("REFUSED"), "{text}");
}

fn smtp_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run scripts/test, which starts the SMTP sink"))
}

/// Messages in the test Maildir addressed to `to`, waiting up to `WAIT` until `want` holds.
fn mail_to(to: &str, what: &str, want: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(smtp_env("DRDRILL_TEST_MAILDIR")).join("new");
    wait_for(what, || {
        let found: Vec<Vec<u8>> = fs::read_dir(&dir)
            .map(|rd| rd.flatten().filter_map(|e| fs::read(e.path()).ok()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|raw| String::from_utf8_lossy(raw).contains(to))
            .collect();
        want(&found).then_some(found)
    })
}

fn notify_section(port: &str, to: &str, extra: &str) -> String {
    format!(
        "[notify]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsecurity = \"plain\"\n\
         from = \"drdrill <dr@example.com>\"\nto = [\"{to}\"]\n{extra}"
    )
}

impl Env {
    /// A quick plan that misses its 1ms RTO target: a failed run worth an alert.
    fn missing_plan(&self, name: &str, schedule: &str) {
        self.plan(name, Some(schedule), "true");
        let file = self.path(&format!("plans/{name}.toml"));
        fs::write(&file, fs::read_to_string(&file).unwrap().replace("rto = \"10m\"", "rto = \"1ms\"")).unwrap();
    }
}

#[test]
fn the_daemon_mails_failed_runs_and_the_digest() {
    let to = format!("daemon-{}-{}@example.com", std::process::id(), free_port());
    let port = smtp_env("DRDRILL_TEST_SMTP_PORT");
    let env = Env::new_with("5s", &notify_section(&port, &to, "digest = \"*/3 * * * * *\"\ndigest_period = \"1d\"\n"));
    env.missing_plan("late", "*/2 * * * * *");
    let d = env.spawn();
    let parse =
        |raw: &Vec<u8>| mail_parser::MessageParser::default().parse(raw).unwrap().subject().unwrap().to_string();
    let alert =
        mail_to(&to, "the alert for a failed scheduled run", |m| m.iter().any(|r| parse(r).contains("late FAILED")));
    let alert = alert.iter().find(|r| parse(r).contains("late FAILED")).unwrap();
    let m = mail_parser::MessageParser::default().parse(alert).unwrap();
    assert!(m.body_text(0).unwrap().contains("exceeded its target 1ms"), "{:?}", m.body_text(0));
    let runs = env.runs("late");
    assert!(runs.iter().all(|r| r.trigger == "schedule"), "{runs:?}");

    // A digest sent before the first run ended covers no plan; wait for one that covers `late`.
    let covers = |r: &Vec<u8>| parse(r).contains("digest") && parse(r).contains("/1 plans healthy");
    let all = mail_to(&to, "a digest covering the plan", |m| m.iter().any(covers));
    let digest = all.iter().find(|r| covers(r)).unwrap();
    let m = mail_parser::MessageParser::default().parse(digest).unwrap();
    use mail_parser::MimeHeaders;
    let att = m.attachments().next().expect("the HTML report is attached");
    assert!(att.attachment_name().unwrap().starts_with("drdrill-report-"), "{:?}", att.attachment_name());
    let html = String::from_utf8_lossy(att.contents());
    assert!(html.contains("<svg") && html.contains("late"), "the attachment is the report");
    assert!(d.log().contains("digest sent"), "{}", d.log());
}

#[test]
fn a_silent_mail_server_never_delays_scheduled_drills() {
    // Accepts connections (the kernel's backlog) but never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let env = Env::new_with("1s", &notify_section(&port, "ops@example.com", "timeout = \"30s\"\n"));
    env.missing_plan("late", "* * * * * *");
    let _d = env.spawn();
    let db_path = env.path("var/drdrill.db");
    let started = wait_for("five finished scheduled runs", || {
        let db = rusqlite::Connection::open(&db_path).ok()?;
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut stmt =
            db.prepare("SELECT started_at FROM runs WHERE plan = 'late' AND status = 'failed' ORDER BY id").ok()?;
        let v: Vec<String> = stmt.query_map([], |r| r.get(0)).ok()?.collect::<Result<_, _>>().ok()?;
        (v.len() >= 5).then_some(v)
    });
    let t: Vec<chrono::DateTime<chrono::FixedOffset>> =
        started.iter().map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap()).collect();
    for w in t.windows(2) {
        let gap = (w[1] - w[0]).num_milliseconds();
        // Each alert waits out a 30 s timeout; the drills keep their one-second beat.
        assert!(gap < 3000, "runs {}ms apart while mail hangs: {started:?}", gap);
    }
    assert!(env.runs("late").iter().all(|r| r.status != "skipped"), "{:?}", env.runs("late"));
    // An alert is queued just after its run is recorded: wait for the fifth.
    wait_for("every alert waiting in the outbox for a retry", || {
        let db = rusqlite::Connection::open(&db_path).ok()?;
        db.busy_timeout(Duration::from_secs(10)).ok()?;
        let queued: i64 = db.query_row("SELECT count(*) FROM outbox WHERE sent_at IS NULL", [], |r| r.get(0)).ok()?;
        (queued >= 5).then_some(())
    });
    drop(silent);
}

#[test]
fn a_quarantine_left_by_a_crashed_run_is_reported_at_start_up() {
    let env = Env::new_with("1s", SAFETY);
    let (victim, content) = env.victim();
    env.destructive_plan("gd", "pause_before = [\"restore\"]", &victim);
    let mut d = env.spawn();
    let id = env.trigger("gd");
    env.wait_gate(id, "restore");
    assert!(!victim.exists());
    d.signal(libc::SIGKILL);
    d.wait_exit();

    let d = env.spawn();
    let folder = env.path(&format!("var/scratch/quarantine/run-{id}"));
    let log = d.log();
    assert!(
        log.contains("ERROR") && log.contains(&folder.display().to_string()) && log.contains("WHAT-IS-HERE.txt"),
        "{log}"
    );
    let health = env.get("/healthz");
    assert_eq!(health["quarantine"][0]["run_id"], id, "{health}");
    assert!(health["detail"].as_str().unwrap().contains("ATTENTION"), "{health}");
    assert_eq!(env.get("/api/plans")["quarantine"][0]["folder"], folder.display().to_string());
    let out = env.cli().arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("ATTENTION: run {id} left live data")));
    // The data is there, untouched, for a person to put back.
    let index = fs::read_to_string(folder.join("WHAT-IS-HERE.txt")).unwrap();
    assert!(index.contains(&victim.display().to_string()), "{index}");
    let kept: Vec<_> = fs::read_dir(&folder).unwrap().flatten().map(|e| e.path()).collect();
    assert!(kept.iter().any(|p| fs::read(p).ok().as_deref() == Some(&content[..])), "{kept:?}");
}

// ---- the emergency stop ----

impl Env {
    /// `GET /metrics`: the value of the unlabelled sample `name`.
    fn gauge(&self, name: &str) -> Option<f64> {
        let text = reqwest::blocking::get(self.url("/metrics")).unwrap().text().unwrap();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        scrape.samples.iter().find(|s| s.metric == name).map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: unexpected {other:?}"),
        })
    }
}

#[test]
fn emergency_stop_aborts_every_run_and_pauses_the_scheduler_across_a_restart_until_resumed() {
    let env = Env::new_with("5s", SAFETY);
    let (victim, content) = env.victim();
    let other = env.path("allowed/other.txt");
    fs::write(&other, "other live data\n").unwrap();
    env.destructive_plan("gd", "pause_before = [\"restore\"]", &victim);
    env.destructive_plan("gd2", "pause_before = [\"restore\"]", &other);
    env.plan("tick", Some("* * * * * *"), "true");
    let mut d = env.spawn();
    assert_eq!(env.gauge("drdrill_scheduler_paused"), Some(0.0));
    let (a, b) = (env.trigger("gd"), env.trigger("gd2"));
    env.wait_gate(a, "restore");
    env.wait_gate(b, "restore");
    assert!(!victim.exists() && !other.exists(), "both failures ran");

    assert_eq!(env.post("/api/stop", None, None).0, 401, "the stop needs the token");
    assert_eq!(env.post("/api/resume", None, None).0, 401, "so does resuming");
    let out = env.cli().args(["stop-all", "--reason", "prod incident"]).env("USER", "alice").output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{printed}{}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("scheduler paused") && printed.contains(&format!("run {a} (gd): aborting")), "{printed}");
    for id in [a, b] {
        let run = env.wait_finished(id);
        assert_eq!(run.status, "aborted", "{run:?}");
        assert!(run.reason.contains("emergency stop by api (terminal (user alice)): prod incident"), "{run:?}");
    }
    assert_eq!(fs::read(&victim).unwrap(), content, "the rollback put the deleted file back");
    assert_eq!(fs::read_to_string(&other).unwrap(), "other live data\n");

    // Paused: visible everywhere, and nothing starts, by schedule or by hand.
    let paused = env.get("/api/plans")["paused"].clone();
    assert_eq!(paused["paused_by"], "api (terminal (user alice))", "{paused}");
    assert_eq!(paused["reason"], "prod incident");
    let aborted: Vec<i64> = serde_json::from_value(paused["aborted_runs"].clone()).unwrap();
    assert!(aborted.contains(&a) && aborted.contains(&b), "{paused}");
    assert_eq!(env.gauge("drdrill_scheduler_paused"), Some(1.0));
    let status = env.cli().arg("status").output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("PAUSED: emergency stop by api (terminal (user alice))"), "{status}");
    let (code, body) = env.post("/api/plans/gd/runs", Some(&env.token()), None);
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("drdrill resume"), "{body}");
    let stopped_at = env.runs("tick").last().map_or(0, |r| r.id);
    let declined = wait_for("a scheduled firing declined while paused", || {
        env.runs("tick").into_iter().find(|r| r.id > stopped_at && r.status == "skipped")
    });
    assert!(declined.reason.contains("paused by an emergency stop (api (terminal (user alice))"), "{declined:?}");
    assert!(env.runs("tick").iter().all(|r| r.id <= stopped_at || r.status == "skipped"), "a run started while paused");

    // A restart keeps the pause: it is the database's.
    drop(d);
    d = env.spawn();
    assert_eq!(env.gauge("drdrill_scheduler_paused"), Some(1.0));
    assert_eq!(env.get("/healthz")["paused"]["reason"], "prod incident");

    let out = env.cli().arg("resume").env("USER", "bob").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.gauge("drdrill_scheduler_paused"), Some(0.0));
    assert!(env.get("/api/plans")["paused"].is_null());
    let resumed_at = env.runs("tick").last().map_or(0, |r| r.id);
    wait_for("a scheduled run after resuming", || {
        env.runs("tick").into_iter().find(|r| r.id > resumed_at && r.status == "passed")
    });
    let db = rusqlite::Connection::open(env.path("var/drdrill.db")).unwrap();
    let (by, resumed_by): (String, String) =
        db.query_row("SELECT paused_by, resumed_by FROM scheduler_pauses", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((by.as_str(), resumed_by.as_str()), ("api (terminal (user alice))", "api (terminal (user bob))"));
    let again = env.cli().arg("resume").output().unwrap();
    assert_eq!(again.status.code(), Some(2), "nothing to resume");
    assert!(String::from_utf8_lossy(&again.stderr).contains("not paused"));
    drop(d);
}
