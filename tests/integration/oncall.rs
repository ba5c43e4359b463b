//! Fitting the habits of the people on call: webhook, Slack-compatible and
//! ntfy alerts received by a real HTTP server in this test (signatures
//! checked, retries seen after it answered 500, a hanging one never delaying
//! a drill), dead-man pings, overdue plans alerted once per period, `--json`
//! on every command parsed field by field, JSON logs, overrides from the
//! environment, completions and the man page, and plan paths that do not
//! move with the working directory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use crate::common::{Workspace, describe, free_port, stderr, stdout, wait_for};

// ---------------------------------------------------------------- receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    at: Instant,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} sent no JSON ({e}): {:?}", self.path, self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Clone, Default)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Statuses the next requests under a path prefix get (then 200).
    answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
    /// Path prefixes that are never answered.
    hang: Arc<Mutex<Vec<String>>>,
}

/// A real HTTP server on loopback (axum on its own thread) that records
/// every request and answers as told.
struct Receiver {
    port: u16,
    shared: Shared,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Shared::default();
        let state = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(handle).with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Receiver { port, shared }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn answer(&self, prefix: &str, statuses: &[u16]) {
        self.shared.answers.lock().unwrap().insert(prefix.into(), statuses.iter().copied().collect());
    }

    fn hang(&self, prefix: &str) {
        self.shared.hang.lock().unwrap().push(prefix.into());
    }

    fn hits(&self, prefix: &str) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().iter().filter(|h| h.path.starts_with(prefix)).cloned().collect()
    }

    /// Waits until `n` requests under `prefix` arrived.
    fn wait(&self, prefix: &str, n: usize) -> Vec<Hit> {
        wait_for(&format!("{n} request(s) to {prefix}"), || Some(self.hits(prefix)).filter(|h| h.len() >= n))
    }
}

async fn handle(
    axum::extract::State(s): axum::extract::State<Shared>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, &'static str) {
    let path = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    s.hits.lock().unwrap().push(Hit { path: path.clone(), headers, body: body.to_vec(), at: Instant::now() });
    if s.hang.lock().unwrap().iter().any(|p| path.starts_with(p)) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let status = {
        let mut answers = s.answers.lock().unwrap();
        answers.iter_mut().find(|(p, _)| path.starts_with(p.as_str())).and_then(|(_, q)| q.pop_front()).unwrap_or(200)
    };
    (axum::http::StatusCode::from_u16(status).unwrap(), "")
}

/// The hex HMAC-SHA256 a receiver computes to check `X-Drdrill-Signature`.
fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------- daemon

struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    port: u16,
}

impl Daemon {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn metrics(&self) -> String {
        reqwest::blocking::get(self.url("/metrics")).unwrap().text().unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            crate::common::wait_exit(&mut c, Duration::from_secs(30));
        }
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

/// A config naming every path under `ws` absolutely, the API on `port`, and `extra`.
fn daemon_config(ws: &Workspace, port: u16, extra: &str) {
    let r = ws.path().display();
    ws.write_config(&format!(
        "database = \"{r}/var/drdrill.db\"\nplans = \"{r}/drills\"\nscratch = \"{r}/var/scratch\"\n\
         [api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{r}/var/api-token\"\n\
         [daemon]\ngrace_period = \"2s\"\nconcurrency = 4\n\
         [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n{extra}\n"
    ));
}

/// Starts `drdrill daemon` in `ws` with `envs`; waits until `port` answers.
fn spawn_daemon(ws: &Workspace, port: u16, envs: &[(&str, &str)]) -> Daemon {
    let log = ws.join(&format!("daemon-{}.log", Instant::now().elapsed().as_nanos()));
    let file = fs::File::create(&log).unwrap();
    let mut cmd = ws.cmd();
    cmd.arg("daemon").stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
    cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("JOURNAL_STREAM");
    cmd.envs(envs.iter().copied());
    let mut d = Daemon { child: Some(cmd.spawn().unwrap()), log, port };
    wait_for("the daemon to answer /healthz", || {
        if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("daemon exited with {status} before it was ready:\n{}", d.log());
        }
        reqwest::blocking::get(d.url("/healthz")).ok().filter(|r| r.status().is_success())
    });
    d
}

/// A directory drill over `ws/data` whose `command` check runs `check`.
fn dir_plan(ws: &Workspace, name: &str, top: &str, check: &str) {
    fs::create_dir_all(ws.join("data")).unwrap();
    fs::write(ws.join("data/orders.txt"), "order 1\n").unwrap();
    ws.write_plan(
        name,
        &format!(
            "{top}\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"data\"\n\
             [[check]]\nkind = \"command\"\nrun = \"{check}\"\n"
        ),
    );
}

fn run_status(ws: &Workspace, id: i64) -> String {
    ws.sqlite3(&format!("SELECT status FROM runs WHERE id = {id}"))
}

fn wait_finished(ws: &Workspace, id: i64) -> String {
    wait_for(&format!("run {id} to finish"), || Some(run_status(ws, id)).filter(|s| s != "running" && !s.is_empty()))
}

fn trigger(ws: &Workspace, plan: &str) -> i64 {
    let (code, out, err) = ws.run(&["trigger", plan, "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plan"], plan, "{v}");
    v["run_id"].as_i64().unwrap()
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

fn is_sha256(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------- alerts

const HOOK_KEY: &str = "oncall-hook-key-7f3a";
const NTFY_TOKEN: &str = "tk_oncall_9c2e5b";

#[test]
fn webhook_slack_and_ntfy_get_signed_routed_alerts_and_retries_after_500s() {
    let rx = Receiver::start();
    let ws = Workspace::quickstart();
    let slack_url = rx.url("/slack/T0001/B0001/slacksecretpath");
    ws.write_config(&format!(
        "[api]\npublic_url = \"https://drdrill.example.com/\"\n\
         [[alert]]\nkind = \"webhook\"\nname = \"hook\"\nurl = \"{}\"\nsecret_env = \"ONCALL_HOOK_KEY\"\ntimeout = \"5s\"\nretries = 2\n\
         [[alert]]\nkind = \"slack\"\nname = \"chat\"\nurl_env = \"ONCALL_SLACK_URL\"\nevents = [\"failed\", \"target-missed\", \"recovered\"]\n\
         [[alert]]\nkind = \"ntfy\"\nname = \"phone\"\nurl = \"{}\"\nsecret_env = \"ONCALL_NTFY_TOKEN\"\nevents = [\"target-missed\", \"recovered\"]\n",
        rx.url("/hook"),
        rx.url("/ntfy/drills")
    ));
    let envs =
        [("ONCALL_HOOK_KEY", HOOK_KEY), ("ONCALL_SLACK_URL", slack_url.as_str()), ("ONCALL_NTFY_TOKEN", NTFY_TOKEN)];
    let run = |envs: &[(&str, &str)]| {
        let (code, report, err) = ws.drill_report("quickstart", envs);
        for secret in [HOOK_KEY, NTFY_TOKEN, "slacksecretpath"] {
            assert!(!err.contains(secret), "a secret reached the output: {err}");
        }
        (code, report)
    };

    // A first pass announces nothing: nothing failed before it.
    assert_eq!(run(&envs).0, 0);
    assert!(rx.hits("/").is_empty(), "{:?}", rx.hits("/"));

    // The webhook answers 500 twice, then takes the third attempt.
    rx.answer("/hook", &[500, 500]);
    ws.set_rto_target("1ms");
    let (code, report) = run(&envs);
    assert_eq!(code, 1);
    let run_id = report["run_id"].as_i64().unwrap();
    let hook = rx.wait("/hook", 3);
    assert_eq!(hook.len(), 3, "two refusals and one delivery: {hook:?}");
    assert!(hook[1].at - hook[0].at >= Duration::from_millis(400), "retried after a backoff, not at once");
    for h in &hook {
        assert_eq!(h.body, hook[0].body, "every retry sends the same bytes");
        let sig = h.header("x-drdrill-signature");
        assert_eq!(sig, format!("sha256={}", hmac_hex(HOOK_KEY, &h.body)), "the signature is the body's HMAC");
        assert_eq!(h.header("x-drdrill-event"), "target-missed");
        assert_eq!(h.header("content-type"), "application/json");
    }
    let body = hook[0].json();
    assert_eq!(body["version"], 1, "{body:#}");
    assert_eq!(body["event"], "target-missed", "{body:#}");
    assert_eq!(body["plan"], "quickstart");
    assert_eq!(body["run_id"], run_id);
    assert_eq!(body["result"], "failed");
    assert!(body["reason"].as_str().unwrap().contains("exceeded its target 1ms"), "{body:#}");
    assert_eq!(body["rto"]["target_ms"], 1.0, "{body:#}");
    assert_eq!(body["rto"]["met"], false);
    assert!(body["rto"]["value_ms"].as_f64().unwrap() > 1.0);
    assert_eq!(body["rpo"]["met"], true, "{body:#}");
    assert!(body["rpo"]["target_ms"].as_f64().unwrap() == 60_000.0);
    assert_eq!(body["links"]["run"], format!("https://drdrill.example.com/api/runs/{run_id}"));
    assert!(body["title"].as_str().unwrap().contains(&format!("quickstart FAILED: run {run_id}")), "{body:#}");
    assert!(is_rfc3339(&body["at"]) && body["id"].as_str().is_some_and(|i| !i.is_empty()), "{body:#}");
    assert!(body["host"].as_str().is_some_and(|h| !h.is_empty()));

    let slack = rx.wait("/slack/", 1);
    assert_eq!(slack.len(), 1);
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.contains(&format!("*[drdrill] quickstart FAILED: run {run_id} (target missed)*")), "{text}");
    assert!(text.contains("RTO") && text.contains("MISSED"), "{text}");

    let phone = rx.wait("/ntfy/drills", 1);
    assert_eq!(phone.len(), 1);
    assert_eq!(phone[0].header("priority"), "4", "{:?}", phone[0].headers);
    assert!(phone[0].header("title").contains(&format!("quickstart FAILED: run {run_id}")));
    assert!(phone[0].header("tags").contains("target-missed"));
    assert_eq!(phone[0].header("authorization"), format!("Bearer {NTFY_TOKEN}"));
    assert!(
        phone[0].text().contains("reason: ") && phone[0].text().contains("exceeded its target"),
        "{}",
        phone[0].text()
    );
    assert_eq!(ws.sqlite3("SELECT count(*) FROM outbox WHERE sent_at IS NULL"), "0");

    // Down for longer than the quick retries: the outbox keeps it, and a flush
    // delivers the same signed bytes once the receiver is back.
    rx.answer("/hook", &[500, 500, 500]);
    let (code, _) = run(&envs);
    assert_eq!(code, 1);
    let hook = rx.wait("/hook", 6);
    assert_eq!(hook.len(), 6, "1 + 2 retries, then it waits in the outbox");
    let pending =
        ws.sqlite3("SELECT channel || '|' || attempts || '|' || last_error FROM outbox WHERE sent_at IS NULL");
    assert!(pending.starts_with("hook|1|") && pending.contains("500"), "{pending}");
    let (code, out, err) = ws.run(&["notify", "flush", "--json"], &envs);
    assert_eq!(code, 0, "{out}{err}");
    let summary = json_of(&out);
    assert_eq!(
        (summary["sent"].as_u64(), summary["failed"].as_u64(), summary["waiting"].as_u64()),
        (Some(1), Some(0), Some(0))
    );
    let hook = rx.hits("/hook");
    assert_eq!(hook.last().unwrap().body, hook[3].body, "the queued message, byte for byte");
    assert_eq!(
        hook.last().unwrap().header("x-drdrill-signature"),
        format!("sha256={}", hmac_hex(HOOK_KEY, &hook[3].body))
    );

    // Passing again after failures is `recovered`: a quiet ntfy priority.
    ws.set_rto_target("30s");
    let (code, report) = run(&envs);
    assert_eq!(code, 0);
    let recovered = rx.wait("/hook", hook.len() + 1).last().unwrap().json();
    assert_eq!(recovered["event"], "recovered", "{recovered:#}");
    assert_eq!(recovered["result"], "passed");
    assert_eq!(recovered["run_id"], report["run_id"]);
    let phone = rx.wait("/ntfy/drills", 3);
    assert_eq!(phone.last().unwrap().header("priority"), "2");
    assert!(rx.wait("/slack/", 3).last().unwrap().json()["text"].as_str().unwrap().contains("RECOVERED"));

    let stored = ws.sqlite3("SELECT group_concat(subject || body || coalesce(last_error, ''), '') FROM outbox");
    for secret in [HOOK_KEY, NTFY_TOKEN, "slacksecretpath"] {
        assert!(!stored.contains(secret), "a secret reached the outbox");
    }
}

#[test]
fn secrets_stay_out_of_the_config_text() {
    let ws = Workspace::quickstart();
    ws.write_config(
        "[[alert]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n\
         [[alert]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"https://example.com/hook\"\n\
         [[alert]]\nkind = \"ntfy\"\nname = \"n\"\nurl = \"http://ntfy.example.com/t\"\nevents = [\"faild\"]\n",
    );
    let (code, out, err) = ws.run(&["validate"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("config/drdrill.toml:1:1") && err.contains("url_env"), "{err}");
    assert!(err.contains("config/drdrill.toml:4:1") && err.contains("secret_env"), "{err}");
    assert!(err.contains("did you mean `failed`"), "{err}");
}

#[test]
fn a_hanging_webhook_never_delays_scheduled_drills() {
    let rx = Receiver::start();
    rx.hang("/hang");
    let ws = Workspace::empty();
    let port = free_port();
    daemon_config(
        &ws,
        port,
        &format!(
            "[[alert]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_env = \"ONCALL_HOOK_KEY\"\ntimeout = \"30s\"\nretries = 0\n",
            rx.url("/hang")
        ),
    );
    // Every run misses its 1ms RTO target: an alert each second.
    dir_plan(&ws, "beat", "schedule = \"* * * * * *\"", "true");
    let plan = ws.join("drills/beat.toml");
    fs::write(&plan, fs::read_to_string(&plan).unwrap().replace("rto = \"10m\"", "rto = \"1ms\"")).unwrap();
    let _d = spawn_daemon(&ws, port, &[("ONCALL_HOOK_KEY", HOOK_KEY)]);
    let started: Vec<String> = wait_for("five finished scheduled runs", || {
        let v = ws.sqlite3("SELECT group_concat(started_at, ' ') FROM runs WHERE plan = 'beat' AND status = 'failed'");
        let v: Vec<String> = v.split_whitespace().map(String::from).collect();
        (v.len() >= 5).then_some(v)
    });
    let t: Vec<_> = started.iter().map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap()).collect();
    for w in t.windows(2) {
        let gap = (w[1] - w[0]).num_milliseconds();
        assert!(gap < 3000, "runs {gap}ms apart while the webhook hangs: {started:?}");
    }
    assert!(!rx.hits("/hang").is_empty(), "the webhook was tried");
    let queued: i64 = ws.sqlite3("SELECT count(*) FROM outbox WHERE sent_at IS NULL").parse().unwrap();
    assert!(queued >= 4, "the alerts wait in the outbox: {queued}");
}

#[test]
fn the_dead_man_switch_sees_start_pass_and_fail_pings_of_scheduled_runs() {
    let rx = Receiver::start();
    let ws = Workspace::empty();
    let port = free_port();
    daemon_config(&ws, port, "");
    let flag = ws.join("healthy");
    fs::write(&flag, "").unwrap();
    dir_plan(
        &ws,
        "beat",
        // A failing check is retried until the run's timeout: a short one.
        &format!("schedule = \"*/4 * * * * *\"\ntimeout = \"3s\"\nping_url = \"{}\"", rx.url("/ping/6f1b")),
        &format!("test -e {}", flag.display()),
    );
    let _d = spawn_daemon(&ws, port, &[]);
    let hits = rx.wait("/ping/", 4);
    let paths: Vec<&str> = hits.iter().take(4).map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/ping/6f1b/start", "/ping/6f1b", "/ping/6f1b/start", "/ping/6f1b"], "{hits:?}");
    // A run the API starts is not the schedule's beat: no ping.
    let id = trigger(&ws, "beat");
    assert_eq!(wait_finished(&ws, id), "passed");

    fs::remove_file(&flag).unwrap();
    let fail = wait_for("a /fail ping", || rx.hits("/ping/6f1b/fail").into_iter().next());
    assert!(fail.text().contains("FAIL") && fail.text().contains("test -e"), "{}", fail.text());
    let all = rx.hits("/ping/");
    let at = all.iter().position(|h| h.path == "/ping/6f1b/fail").unwrap();
    assert_eq!(all[at - 1].path, "/ping/6f1b/start", "each run's start comes before its end: {all:?}");
    let scheduled: i64 =
        ws.sqlite3("SELECT count(*) FROM runs WHERE trigger = 'schedule' AND status != 'running'").parse().unwrap();
    let ends = all.iter().filter(|h| !h.path.ends_with("/start")).count() as i64;
    assert!(ends <= scheduled, "only scheduled runs ping: {ends} ends for {scheduled} scheduled runs");
}

#[test]
fn an_overdue_plan_raises_one_alert_per_period_across_restarts() {
    let rx = Receiver::start();
    let ws = Workspace::empty();
    let port = free_port();
    daemon_config(
        &ws,
        port,
        &format!(
            "[[alert]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_env = \"ONCALL_HOOK_KEY\"\nevents = [\"overdue\"]\n",
            rx.url("/hook")
        ),
    );
    let cfg = fs::read_to_string(ws.join("config/drdrill.toml")).unwrap();
    ws.write_config(&cfg.replace("[daemon]\n", "[daemon]\nmax_interval = \"1h\"\n"));
    dir_plan(&ws, "late", "max_interval = \"5s\"", "true");
    dir_plan(&ws, "fresh", "", "true");
    let envs = [("ONCALL_HOOK_KEY", HOOK_KEY)];
    let mut d = spawn_daemon(&ws, port, &envs);
    let id = trigger(&ws, "late");
    assert_eq!(wait_finished(&ws, id), "passed");
    let passed_at =
        chrono::DateTime::parse_from_rfc3339(&ws.sqlite3(&format!("SELECT finished_at FROM runs WHERE id = {id}")))
            .unwrap();

    let (code, out, err) = ws.run(&["status", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let plans = json_of(&out)["plans"]["plans"].clone();
    let due = |name: &str| plans.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["due"].clone();
    assert_eq!(due("late")["state"], "current", "{plans:#}");
    assert_eq!(due("late")["max_interval_ms"], 5000);
    assert_eq!(due("fresh")["state"], "untested", "{plans:#}");
    assert_eq!(due("fresh")["max_interval_ms"], 3_600_000, "the [daemon] default");
    assert!(is_rfc3339(&due("fresh")["first_loaded"]));

    let overdue = |hits: &[Hit]| -> Vec<Value> {
        hits.iter().map(Hit::json).filter(|b| b["event"] == "overdue" && b["plan"] == "late").collect()
    };
    let first = wait_for("two overdue alerts", || Some(overdue(&rx.hits("/hook"))).filter(|a| a.len() >= 2));
    assert_eq!(first[0]["details"]["max_interval_ms"], 5000, "{:#}", first[0]);
    let since = chrono::DateTime::parse_from_rfc3339(first[0]["details"]["overdue_since"].as_str().unwrap()).unwrap();
    assert!((since - passed_at).num_milliseconds().abs() <= 5001 && since > passed_at, "{since} vs {passed_at}");
    assert!(first[0]["title"].as_str().unwrap().contains("late OVERDUE: no passed run for over 5s"), "{:#}", first[0]);

    // Live views while overdue.
    let (_, text, _) = ws.run(&["status"], &[]);
    assert!(text.contains("OVERDUE: late has had no passed run for over 5s"), "{text}");
    assert!(text.contains("untested: fresh has never run"), "{text}");
    let metrics = d.metrics();
    assert!(metrics.contains("drdrill_overdue{plan=\"late\"} 1"), "{metrics}");
    assert!(metrics.contains("drdrill_overdue{plan=\"fresh\"} 0"), "{metrics}");
    assert!(metrics.contains("drdrill_last_run_timestamp_seconds{plan=\"late\"}"), "{metrics}");
    assert!(metrics.contains("drdrill_check_duration_seconds{plan=\"late\",check=\"1:command\"}"), "{metrics}");
    assert!(!metrics.contains(&format!("run=\"{id}\"")) && !metrics.contains("run_id"), "no run ids as labels");
    let (code, html, _) = ws.run(&["report", "--format", "html"], &[]);
    assert_eq!(code, 0);
    assert!(
        html.contains("<div class=\"tile overdue\"><b>late</b>") && html.contains("no pass for over 5s"),
        "the tile"
    );
    let (_, json, _) = ws.run(&["report", "--format", "json"], &[]);
    let report = json_of(&json);
    let late = report["plans"].as_array().unwrap().iter().find(|p| p["plan"] == "late").unwrap().clone();
    assert_eq!(late["health"], "overdue", "{late:#}");

    // A restart in the middle of a period neither repeats its alert nor skips the next.
    d.stop();
    let mut d = spawn_daemon(&ws, port, &envs);
    wait_for("a third overdue alert", || Some(overdue(&rx.hits("/hook"))).filter(|a| a.len() >= 3));
    std::thread::sleep(Duration::from_millis(1500));
    let all = overdue(&rx.hits("/hook"));
    let periods: Vec<i64> = all
        .iter()
        .map(|b| {
            chrono::DateTime::parse_from_rfc3339(b["details"]["period_start"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    for w in periods.windows(2) {
        assert_eq!(w[1] - w[0], 5000, "one alert per period, none twice, none skipped: {periods:?}");
    }
    assert_eq!(periods[0], since.timestamp_millis());
    d.stop();
}

// ---------------------------------------------------------------- --json

#[test]
fn every_offline_json_output_parses_field_by_field() {
    let rx = Receiver::start();
    let ws = Workspace::quickstart();
    let (code, out, err) = ws.run(&["notify", "flush", "--json"], &[]);
    assert_eq!(code, 2, "no channel is bad input: {out}{err}");
    assert!(json_of(&out)["error"].as_str().unwrap().contains("no alert channel"), "{out}");
    ws.write_config(&format!("[[alert]]\nkind = \"ntfy\"\nname = \"phone\"\nurl = \"{}\"\n", rx.url("/ntfy/t")));
    assert_eq!(ws.run_quickstart(), 0);

    let (code, out, err) = ws.run(&["validate", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json_of(&out);
    assert_eq!((v["ok"].as_bool(), v["bad"].as_u64()), (Some(true), Some(0)), "{v:#}");
    let p = &v["plans"][0];
    assert_eq!(p["file"], "drills/quickstart.toml", "{p:#}");
    assert_eq!(p["name"], "quickstart");
    assert_eq!(p["ok"], true);
    assert_eq!(p["problems"], serde_json::json!([]));
    assert_eq!(p["base"], ws.path().display().to_string());
    assert_eq!(p["source"], format!("sqlite {}", ws.join("var/quickstart/orders.db").display()));
    assert!(p["schedule"].is_null() && p["max_interval_ms"].is_null(), "{p:#}");
    ws.write_plan("broken", "[targets]\nrto = \"fast\"\n");
    let (code, out, _) = ws.run(&["validate", "--json"], &[]);
    assert_eq!(code, 2);
    let v = json_of(&out);
    assert_eq!((v["ok"].as_bool(), v["bad"].as_u64()), (Some(false), Some(1)));
    let broken = v["plans"].as_array().unwrap().iter().find(|p| p["file"] == "drills/broken.toml").unwrap().clone();
    assert_eq!(broken["ok"], false);
    let d = &broken["problems"][0];
    assert!(d["line"].as_u64().is_some() && d["col"].as_u64().is_some() && d["message"].is_string(), "{d:#}");
    assert!(d["file"].as_str().unwrap().ends_with("drills/broken.toml"));
    fs::remove_file(ws.join("drills/broken.toml")).unwrap();

    let (code, out, err) = ws.run(&["backups", "verify", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json_of(&out);
    assert_eq!(v["store"], "local");
    assert_eq!((v["intact"].as_u64(), v["bad"].as_u64(), v["incomplete"].as_u64()), (Some(1), Some(0), Some(0)));
    let b = &v["backups"][0];
    assert_eq!(b["plan"], "quickstart");
    assert_eq!(b["state"], "ok");
    assert!(is_sha256(&b["sha256"]) && b["size"].as_u64().unwrap() > 0, "{b:#}");
    assert!(b["backup_id"].is_string());

    let (code, out, _) = ws.run(&["evidence", "verify", "--json"], &[]);
    assert_eq!(code, 0);
    let v = json_of(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 1);
    assert!(is_sha256(&v["head"]) && v["broken"].is_null(), "{v:#}");
    assert_eq!(v["source"], "var/drdrill.db");

    let (code, out, _) = ws.run(&["note", "1", "restore", "looked", "fine", "--author", "tester", "--json"], &[]);
    assert_eq!(code, 0);
    let v = json_of(&out);
    assert_eq!(
        (v["run_id"].as_i64(), v["author"].as_str(), v["text"].as_str()),
        (Some(1), Some("tester"), Some("restore looked fine"))
    );
    assert!(is_rfc3339(&v["at"]));
    let (code, out, _) = ws.run(&["note", "999", "nope", "--json"], &[]);
    assert_eq!(code, 2);
    assert!(json_of(&out)["error"].is_string());

    // An unknown plan is bad input, not "no runs yet".
    let (code, out, err) = ws.run(&["history", "quickstrat"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no plan `quickstrat`") && err.contains("quickstart"), "{err}");
    let (code, out, _) = ws.run(&["history", "quickstrat", "--json"], &[]);
    assert_eq!(code, 2);
    assert!(json_of(&out)["error"].as_str().unwrap().contains("quickstrat"));
    assert_eq!(ws.run(&["history", "quickstart"], &[]).0, 0);

    let (code, out, err) = ws.run(&["notify", "test", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json_of(&out);
    assert_eq!(v["channels"], serde_json::json!([{ "channel": "phone", "ok": true, "error": null }]), "{v:#}");
    assert_eq!(rx.wait("/ntfy/t", 1).len(), 1);
    let (code, out, _) = ws.run(&["notify", "flush", "--json"], &[]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&out), serde_json::json!({ "sent": 0, "failed": 0, "waiting": 0 }));
}

#[test]
fn every_daemon_json_output_parses_field_by_field() {
    let ws = Workspace::empty();
    let port = free_port();
    daemon_config(&ws, port, "");
    dir_plan(&ws, "gd", "pause_before = [\"restore\"]", "true");
    let _d = spawn_daemon(&ws, port, &[]);

    let (code, out, err) = ws.run(&["reload", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json_of(&out), serde_json::json!({ "plans": ["gd"], "errors": [] }));

    // Approve through --json, following the run as NDJSON.
    let follow_out = ws.join("follow.ndjson");
    let mut follow = ws
        .cmd()
        .args(["trigger", "gd", "--follow", "--json"])
        .stdout(fs::File::create(&follow_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id: i64 = wait_for("the followed run to start", || {
        ws.sqlite3("SELECT coalesce(max(id), '') FROM runs WHERE plan = 'gd'").parse().ok()
    });
    wait_for("the gate", || {
        let g: Value = reqwest::blocking::get(format!("http://127.0.0.1:{port}/api/gates")).ok()?.json().ok()?;
        g.as_array()?.iter().any(|g| g["run_id"] == id).then_some(())
    });
    let (code, out, err) = ws.run(&["approve", &id.to_string(), "--gate", "restore", "--note", "go", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json_of(&out);
    assert_eq!((v["run_id"].as_i64(), v["gate"].as_str(), v["note"].as_str()), (Some(id), Some("restore"), Some("go")));
    assert!(v["approved_by"].as_str().unwrap().starts_with("api ("), "{v:#}");
    let status = crate::common::wait_exit(&mut follow, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "the followed run passed");
    let lines: Vec<Value> = fs::read_to_string(&follow_out).unwrap().lines().map(json_of).collect();
    assert_eq!(lines[0], serde_json::json!({ "event": "started", "plan": "gd", "run_id": id }));
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert!(events.contains(&"gate") && events.iter().filter(|e| **e == "phase").count() >= 5, "{events:?}");
    assert!(lines.iter().all(|l| l["run_id"] == id), "{lines:?}");
    let gate = lines.iter().find(|l| l["event"] == "gate").unwrap();
    assert_eq!(gate["gate"]["gate"], "restore");
    let phase = lines.iter().find(|l| l["event"] == "phase").unwrap();
    assert!(phase["phase"]["name"].is_string() && phase["phase"]["duration_ms"].is_number(), "{phase}");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "result");
    assert_eq!(last["result"]["status"], "passed");
    assert_eq!(last["result"]["id"], id);

    // Abort through --json while it waits at the gate.
    let id = trigger(&ws, "gd");
    wait_for("the gate", || {
        let g: Value = reqwest::blocking::get(format!("http://127.0.0.1:{port}/api/gates")).ok()?.json().ok()?;
        g.as_array()?.iter().any(|g| g["run_id"] == id).then_some(())
    });
    let (code, out, err) = ws.run(&["abort", &id.to_string(), "--reason", "not today", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json_of(&out);
    assert_eq!((v["run_id"].as_i64(), v["plan"].as_str()), (Some(id), Some("gd")));
    assert!(v["reason"].as_str().unwrap().contains("not today"), "{v:#}");
    assert_eq!(wait_finished(&ws, id), "aborted");
    let (code, out, _) = ws.run(&["abort", &id.to_string(), "--json"], &[]);
    assert_eq!(code, 2, "not running any more");
    assert!(json_of(&out)["error"].as_str().unwrap().contains("not running"), "{out}");
    let (code, out, _) = ws.run(&["trigger", "nosuch", "--json"], &[]);
    assert_eq!(code, 2);
    assert!(json_of(&out)["error"].as_str().unwrap().contains("no plan named `nosuch`"), "{out}");

    ws.write_plan("broken", "[targets]\n");
    let (code, out, _) = ws.run(&["reload", "--json"], &[]);
    assert_eq!(code, 2, "a broken plan");
    let v = json_of(&out);
    assert!(v["errors"][0]["file"].as_str().unwrap().ends_with("broken.toml"), "{v:#}");
    assert!(v["errors"][0]["error"].as_str().unwrap().contains("[source]"), "{v:#}");
}

// ---------------------------------------------------------------- logs, env, shells, paths

#[test]
fn logs_are_json_lines_with_the_runs_span_fields_and_v_shows_debug() {
    let ws = Workspace::empty();
    let port = free_port();
    daemon_config(&ws, port, "");
    dir_plan(&ws, "p", "", "true");
    // A top-level key from the environment: log_format.
    let mut d = spawn_daemon(&ws, port, &[("DRDRILL_LOG_FORMAT", "json")]);
    let id = trigger(&ws, "p");
    assert_eq!(wait_finished(&ws, id), "passed");
    wait_for("the run's end in the log", || d.log().contains("drill passed").then_some(()));
    d.stop();
    let log = d.log();
    let lines: Vec<Value> = log.lines().filter(|l| !l.trim().is_empty()).map(json_of).collect();
    assert!(lines.len() > 5, "{log}");
    for l in &lines {
        assert!(l["level"].is_string() && is_rfc3339(&l["timestamp"]) && l["message"].is_string(), "{l}");
    }
    let passed = lines.iter().find(|l| l["message"] == "drill passed").unwrap();
    assert_eq!(passed["span"]["plan"], "p", "{passed}");
    assert_eq!(passed["span"]["run"], id, "{passed}");
    assert_eq!(passed["span"]["trigger"], "api", "{passed}");
    let phase = lines.iter().find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("restore ok"))).unwrap();
    assert_eq!(phase["span"]["run"], id, "{phase}");

    // `drdrill run -v`: debug lines; as JSON, standard error is nothing but JSON.
    let ws = Workspace::quickstart();
    let (code, _, err) = ws.run(&["run", "quickstart", "-v"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("DEBUG") && err.contains("phase restore started"), "{err}");
    let (code, report, err) = ws.drill_report("quickstart", &[]);
    assert_eq!(code, 0);
    assert!(!err.contains("DEBUG"), "no debug lines without -v: {err}");
    let (code, out, err) = ws.run(&["run", "quickstart", "--json", "-v", "--log-format", "json"], &[]);
    assert_eq!(code, 0, "{err}");
    let run_id = json_of(&out)["run_id"].as_i64().unwrap();
    assert_eq!(run_id, report["run_id"].as_i64().unwrap() + 1);
    let lines: Vec<Value> = err.lines().map(json_of).collect();
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "{err}");
    let started = lines.iter().find(|l| l["message"].as_str().is_some_and(|m| m.contains("started"))).unwrap();
    assert_eq!(started["span"]["plan"], "quickstart", "{started}");
    assert!(lines.iter().any(|l| l["span"]["run"] == run_id), "{err}");
}

#[test]
fn environment_overrides_move_the_listen_address_and_stray_variables_are_warned_about() {
    let ws = Workspace::empty();
    let (written, real) = (free_port(), free_port());
    daemon_config(&ws, written, "");
    dir_plan(&ws, "p", "", "true");
    let listen = format!("127.0.0.1:{real}");
    let envs = [
        ("DRDRILL_API_LISTEN", listen.as_str()),
        ("DRDRILL_API_LISTN", "127.0.0.1:1"),
        // drdrill's own variables and the test suite's: neither overrides nor warnings.
        ("DRDRILL_SCRATCH", "/nonexistent/scratch"),
        ("DRDRILL_RUN_ID", "77"),
        ("DRDRILL_RESTORE", "/nonexistent/restore"),
        ("DRDRILL_PORT", "5432"),
        ("DRDRILL_SMTP_PASSWORD", "hunter2hunter2"),
        ("DRDRILL_TEST_SOMETHING", "x"),
    ];
    let mut d = spawn_daemon(&ws, real, &envs);
    assert!(reqwest::blocking::get(format!("http://127.0.0.1:{written}/healthz")).is_err(), "not on the file's port");
    let (code, out, err) = ws.run(&["status", "--json"], &envs);
    assert_eq!(code, 0, "the CLI reaches the daemon through the same override: {out}{err}");
    assert_eq!(json_of(&out)["health"]["status"], "ok");
    let (code, _, _) = ws.run(&["status"], &[]);
    assert_eq!(code, 2, "without the override the CLI looks at the file's port");
    let id = trigger_with(&ws, "p", &envs);
    assert_eq!(wait_finished(&ws, id), "passed");
    assert!(!Path::new("/nonexistent").exists(), "DRDRILL_SCRATCH is not `scratch`");
    d.stop();
    let log = d.log();
    assert!(log.contains("DRDRILL_API_LISTN names no config key (did you mean DRDRILL_API_LISTEN?)"), "{log}");
    for quiet in [
        "DRDRILL_SCRATCH ",
        "DRDRILL_RUN_ID",
        "DRDRILL_RESTORE",
        "DRDRILL_PORT",
        "DRDRILL_SMTP",
        "DRDRILL_TEST_",
        "DRDRILL_CONFIG",
    ] {
        assert!(!log.contains(quiet), "{quiet} was warned about:\n{log}");
    }
    // A bad value is named by its variable.
    let (code, _, err) = ws.run(&["validate"], &[("DRDRILL_DAEMON_CONCURRENCY", "0")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("DRDRILL_DAEMON_CONCURRENCY (sets [daemon] concurrency)") && err.contains("out of range"),
        "{err}"
    );
}

fn trigger_with(ws: &Workspace, plan: &str, envs: &[(&str, &str)]) -> i64 {
    let (code, out, err) = ws.run(&["trigger", plan, "--json"], envs);
    assert_eq!(code, 0, "{out}{err}");
    json_of(&out)["run_id"].as_i64().unwrap()
}

#[test]
fn completions_load_in_bash_and_the_man_page_renders() {
    let ws = Workspace::empty();
    let (code, script, err) = ws.run(&["completions", "bash"], &[]);
    assert_eq!(code, 0, "{err}");
    let file = ws.write("drdrill.bash", &script);
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", describe(&check));
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p drdrill", file.display()))
        .output()
        .unwrap();
    assert!(loaded.status.success() && stdout(&loaded).contains("drdrill"), "{}", describe(&loaded));
    assert!(script.contains("trigger") && script.contains("--log-format"), "every command and flag is offered");
    for shell in ["zsh", "fish"] {
        let (code, script, _) = ws.run(&["completions", shell], &[]);
        assert_eq!(code, 0);
        assert!(script.contains("drdrill") && script.contains("completions"), "{shell}");
    }
    let (code, page, _) = ws.run(&["man"], &[]);
    assert_eq!(code, 0);
    assert!(page.starts_with(".ie") || page.contains(".TH drdrill"), "{page}");
    assert!(page.contains("trigger"), "{page}");
    let out = ws.output(&["man", "--dir", "man1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in ["drdrill.1", "drdrill-run.1", "drdrill-completions.1"] {
        assert!(ws.join("man1").join(page).is_file(), "{page}");
    }
}

#[test]
fn plan_paths_resolve_beside_the_plans_folder_whatever_the_working_directory() {
    let ws = Workspace::quickstart();
    ws.write_safety_config("");
    let elsewhere = ws.join("somewhere/else");
    fs::create_dir_all(&elsewhere).unwrap();
    let config = ws.join("config/drdrill.toml");
    let plan = ws.join("drills/quickstart.toml");
    let out = ws
        .cmd()
        .current_dir(&elsewhere)
        .arg("--config")
        .arg(&config)
        .args(["run", plan.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(ws.join("var/quickstart/orders.db").is_file(), "the database the plan names, beside drills/");
    assert!(!elsewhere.join("var").exists(), "nothing under the working directory");
    let out =
        ws.cmd().current_dir(&elsewhere).arg("--config").arg(&config).args(["validate", "--json"]).output().unwrap();
    let v = json_of(&stdout(&out));
    assert_eq!(v["plans"][0]["base"], ws.path().display().to_string(), "{v:#}");
    assert_eq!(v["plans"][0]["source"], format!("sqlite {}", ws.join("var/quickstart/orders.db").display()));
}
