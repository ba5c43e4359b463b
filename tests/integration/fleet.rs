//! Fleet mode against the real moto S3 server: daemons with separate results
//! databases and scratch folders share one bucket; every firing is run and
//! recorded once across the fleet; a node killed with -9 mid-run has its firing
//! taken over after the lease, recorded as a takeover naming it; a store that
//! ignores preconditions (a few lines of Python) is refused before fleet mode starts.
//!
//! The fleet runs against a moto of its own whose writes are serialized: moto's
//! threaded server checks If-None-Match and then writes, without a lock, so
//! under load two concurrent create-only writes can both succeed (the probe
//! says so and refuses it). Real S3 makes the check and the write one step;
//! serialized writes make moto do the same.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::common::{env, free_port, unique, wait_until};

/// moto's own app, its writes one at a time (see the module comment).
const ATOMIC_MOTO: &str = r#"
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialized(environ, start_response):
    if environ["REQUEST_METHOD"] in ("PUT", "POST", "DELETE"):
        with lock:
            return list(app(environ, start_response))
    return app(environ, start_response)
run_simple("127.0.0.1", int(sys.argv[1]), serialized, threaded=True, request_handler=MotoRequestHandler)
"#;

/// A moto_server of the fleet tests' own, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let child = Command::new(format!("{}/bin/python", env("DRDRILL_TEST_VENV")))
            .args(["-c", ATOMIC_MOTO, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "moto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, endpoint }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of an S3 server that, once the file `argv[3]`
/// exists, stops passing bytes either way: a store that hangs, not one that refuses.
const HANGING_PROXY: &str = r#"
import os, socket, sys, threading, time
up_port, flag = int(sys.argv[1]), sys.argv[2]
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data: break
            while os.path.exists(flag): time.sleep(3600)
            b.sendall(data)
    except OSError: pass
    for s in (a, b):
        try: s.close()
        except OSError: pass
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", up_port))
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
"#;

/// [`HANGING_PROXY`] to `endpoint`; hangs once `flag` exists. Killed when dropped.
struct Proxy {
    child: Child,
    endpoint: String,
}

impl Proxy {
    fn start(endpoint: &str, flag: &std::path::Path) -> Proxy {
        let up = endpoint.rsplit(':').next().unwrap();
        let mut child = Command::new("python3")
            .args(["-c", HANGING_PROXY, up, &flag.display().to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
        Proxy { child, endpoint: format!("http://127.0.0.1:{}", port.trim()) }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin!("drdrill").to_path_buf()
}

fn keys() -> [(&'static str, String); 2] {
    [
        ("AWS_ACCESS_KEY_ID", env("DRDRILL_TEST_S3_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", env("DRDRILL_TEST_S3_SECRET_ACCESS_KEY")),
    ]
}

/// A bucket of its own, so no other test's claims are seen.
fn new_bucket(endpoint: &str) -> String {
    let bucket = unique("fleet").replace('_', "-");
    let url = format!("{endpoint}/{bucket}");
    let r = reqwest::blocking::Client::new().put(&url).send().unwrap();
    assert!(r.status().is_success(), "cannot create bucket {bucket}: {}", r.status());
    bucket
}

/// One node: its own folder (config, results database, scratch, local store,
/// API port), the shared plans folder, and the shared bucket.
struct Node {
    name: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    fn new(name: &str, plans: &std::path::Path, endpoint: &str, bucket: &str, lease: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().display();
        let port = free_port();
        let config = format!(
            "database = \"{r}/var/drdrill.db\"\nplans = \"{plans}\"\nscratch = \"{r}/var/scratch\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{r}/var/api-token\"\n\
             [daemon]\ngrace_period = \"2s\"\n\
             [stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n\
             [stores.s3]\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nretry_timeout = \"3s\"\nmax_retries = 2\n\
             [fleet]\nstore = \"s3\"\nnode = \"{name}\"\nlease = \"{lease}\"\n",
            plans = plans.display(),
        );
        fs::write(dir.path().join("config.toml"), config).unwrap();
        Node { name: name.into(), port, dir, child: None }
    }

    fn cli(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config").arg(self.dir.path().join("config.toml")).current_dir(self.dir.path());
        c.env_remove("RUST_LOG").env_remove("NOTIFY_SOCKET").env_remove("DRDRILL_CONFIG");
        for (k, v) in keys() {
            c.env(k, v);
        }
        c
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn start(&mut self) {
        let log = fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let mut c = self.cli();
        c.arg("daemon").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        self.child = Some(c.spawn().unwrap());
    }

    fn wait_ready(&mut self) {
        let name = self.name.clone();
        wait_until(&format!("{name} to join the fleet"), Duration::from_secs(30), || {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{name} exited with {s}:\n{}", self.log());
            }
            self.log().contains("daemon ready").then_some(())
        });
    }

    /// SIGTERM, then waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let until = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                assert!(Instant::now() < until, "{} did not stop:\n{}", self.name, self.log());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn kill9(&mut self) -> DateTime<Utc> {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
        Utc::now()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.cli().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})"))
    }

    /// The console's overview page, as a browser gets it.
    fn overview(&self) -> String {
        let r = reqwest::blocking::get(format!("http://127.0.0.1:{}/", self.port)).unwrap();
        assert_eq!(r.status(), 200, "GET / on {}", self.name);
        r.text().unwrap()
    }

    fn text(&self, args: &[&str]) -> (i32, String) {
        let out = self.cli().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// (id, status, trigger, started_at, finished_at) of every run in this node's database.
    fn runs(&self) -> Vec<RunRow> {
        let db = self.dir.path().join("var/drdrill.db");
        if !db.exists() {
            return Vec::new();
        }
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let parse = |t: String| DateTime::parse_from_rfc3339(&t).unwrap().with_timezone(&Utc);
        conn.prepare("SELECT id, status, trigger, started_at, finished_at FROM runs ORDER BY id")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, parse(r.get(3)?), r.get::<_, Option<String>>(4)?.map(parse)))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

/// (id, status, trigger, started_at, finished_at)
type RunRow = (i64, String, String, DateTime<Utc>, Option<DateTime<Utc>>);

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The shared plans folder: one directory drill whose check runs `check`.
fn plans(dir: &std::path::Path, schedule: &str, check: &str) -> PathBuf {
    let plans = dir.join("plans");
    fs::create_dir_all(&plans).unwrap();
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::write(dir.join("data/orders.txt"), "order 1\n").unwrap();
    fs::write(
        plans.join("tick.toml"),
        format!(
            "name = \"tick\"\nschedule = \"{schedule}\"\ntimeout = \"1m\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n\
             [source]\nkind = \"directory\"\npath = \"{}\"\n[[check]]\nkind = \"command\"\nrun = \"{check}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    plans
}

fn rfc(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().with_timezone(&Utc)
}

#[test]
fn three_daemons_share_one_bucket_and_every_firing_is_recorded_exactly_once() {
    let shared = tempfile::tempdir().unwrap();
    let plans = plans(shared.path(), "*/2 * * * * *", "true");
    let moto = Moto::start();
    let (endpoint, bucket) = (moto.endpoint.clone(), new_bucket(&moto.endpoint));
    let mut nodes: Vec<Node> =
        ["host-a", "host-b", "host-c"].iter().map(|n| Node::new(n, &plans, &endpoint, &bucket, "3s")).collect();
    for n in &mut nodes {
        n.start();
    }
    for n in &mut nodes {
        n.wait_ready();
    }
    std::thread::sleep(Duration::from_secs(30));
    for n in &mut nodes {
        n.stop();
    }

    // The bucket's results: one per firing, each naming the node that ran it.
    let status = nodes[0].json(&["fleet", "status", "--json"]);
    let mut results: Vec<Value> = status["recent"].as_array().unwrap().clone();
    results.sort_by_key(|r| rfc(&r["instant"]));
    assert!(results.len() >= 12, "about 15 firings in 30s, got {}: {status:#}", results.len());
    for w in results.windows(2) {
        let step = rfc(&w[1]["instant"]) - rfc(&w[0]["instant"]);
        assert_eq!(step.num_milliseconds(), 2000, "a firing has no result between {} and {}", w[0], w[1]);
    }
    assert!(results.iter().all(|r| r["status"] == "passed" && r["attempt"] == 1), "{results:#?}");
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3, "{status:#}");

    // Across the three databases: every run is one firing's, none twice.
    let mut ran = Vec::new();
    for n in &nodes {
        for (id, st, trigger, started, _) in n.runs() {
            assert_eq!((st.as_str(), trigger.as_str()), ("passed", "schedule"), "{} run {id}", n.name);
            ran.push((n.name.clone(), id, started));
        }
    }
    for r in &results {
        let (node, id) = (r["node"].as_str().unwrap(), r["run_id"].as_i64().unwrap());
        let (_, _, started) =
            ran.iter().find(|(n, i, _)| n == node && *i == id).unwrap_or_else(|| panic!("{r} is in no database"));
        let lag = *started - rfc(&r["instant"]);
        assert!(lag.num_milliseconds() >= 0 && lag.num_milliseconds() < 2000, "{r}: run started at {started}");
    }
    // A run whose result a shutdown cut off is still one firing's; none is extra.
    assert!(ran.len() <= results.len() + nodes.len(), "{} runs for {} firings: {ran:?}", ran.len(), results.len());
    let mut instants: Vec<i64> = ran.iter().map(|(_, _, s)| s.timestamp() / 2).collect();
    instants.sort();
    let before = instants.len();
    instants.dedup();
    assert_eq!(instants.len(), before, "two runs of one firing: {ran:?}");

    // The whole fleet's evidence, offline from the bucket.
    let (code, out) = nodes[1].text(&["evidence", "verify", "--fleet"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches(": OK,").count(), 3, "{out}");
    let report = nodes[2].json(&["fleet", "report", "--format", "json", "--since", "1d"]);
    let runs = report["selected_runs"].as_array().map(|a| a.len()).unwrap_or(0);
    assert_eq!(runs, ran.len(), "{report:#}");
    for format in ["html", "md", "csv", "junit"] {
        let (code, out) = nodes[2].text(&["fleet", "report", "--format", format]);
        assert_eq!(code, 0, "{format}: {out}");
    }

    // A record edited in the bucket is named, with its node.
    let (node, id) = (results[0]["node"].as_str().unwrap().to_string(), 1);
    for (k, v) in keys() {
        // SAFETY: set before this test's runtime starts a thread.
        unsafe { std::env::set_var(k, v) };
    }
    let config = drdrill::config::Config::load(Some(&nodes[0].dir.path().join("config.toml"))).unwrap();
    let fleet = drdrill::fleet::Fleet::open_unprobed(&config, config.fleet.as_ref().unwrap()).unwrap();
    let path = drdrill::fleet::Fleet::path(&["evidence", &node, &format!("{id:010}.json")]);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (bytes, _) = fleet.get(&path).await.unwrap().expect("the node's first record is in the bucket");
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.contains(r#""result":"passed""#), "{text}");
        let forged = text.replacen(r#""result":"passed""#, r#""result":"failed""#, 1);
        fleet.overwrite(&path, forged.into_bytes().into()).await.unwrap();
    });
    let (code, out) = nodes[0].text(&["evidence", "verify", "--fleet"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("node {node}: BROKEN: evidence record #1 (run 1)")) && out.contains("altered"),
        "{out}"
    );
}

#[test]
fn a_node_killed_mid_run_has_its_firing_taken_over_after_the_lease() {
    let shared = tempfile::tempdir().unwrap();
    let plans = plans(shared.path(), "*/15 * * * * *", "sleep 4");
    let moto = Moto::start();
    let (endpoint, bucket) = (moto.endpoint.clone(), new_bucket(&moto.endpoint));
    let mut nodes: Vec<Node> =
        ["node-1", "node-2"].iter().map(|n| Node::new(n, &plans, &endpoint, &bucket, "2s")).collect();
    for n in &mut nodes {
        n.start();
    }
    for n in &mut nodes {
        n.wait_ready();
    }
    // Whoever claims the first firing is killed while its check sleeps.
    let holder = wait_until("a node to start a claimed run", Duration::from_secs(40), || {
        nodes.iter().position(|n| n.log().contains("fleet: claimed") && n.log().contains("drill started"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    let killed_name = nodes[holder].name.clone();
    let killed_at = nodes[holder].kill9();
    let killed_run = nodes[holder].runs().pop().expect("the killed node recorded its run as running");
    assert_eq!(killed_run.1, "running");
    assert!(killed_run.3 < killed_at);

    let other = 1 - holder;
    wait_until("the takeover run to finish", Duration::from_secs(40), || {
        nodes[other].runs().into_iter().find(|r| r.2 == "takeover" && r.4.is_some())
    });
    nodes[other].stop();
    let runs = nodes[other].runs();
    let takeover = runs.iter().find(|r| r.2 == "takeover").unwrap();
    assert_eq!(takeover.1, "passed", "{runs:?}\n{}", nodes[other].log());
    // Nothing ran twice at the same time: the takeover began after the kill,
    // and after a whole lease without renewal.
    let gap = takeover.3 - killed_at;
    assert!(gap.num_milliseconds() >= 1000, "takeover at {} only {gap} after the kill at {killed_at}", takeover.3);
    for r in runs.iter().filter(|r| r.0 != takeover.0 && r.1 != "skipped") {
        let end = r.4.unwrap_or(killed_at);
        assert!(end <= takeover.3 || r.3 >= takeover.4.unwrap(), "{r:?} overlaps the takeover {takeover:?}");
    }
    // The record says so, naming the node whose firing it took over.
    let show = nodes[other].json(&["show", "--json", &takeover.0.to_string()]);
    let notes = show["evidence"]["record"]["notes"].as_str().unwrap_or_default().to_string();
    assert!(
        notes.contains("takeover of the") && notes.contains(&format!("from node {killed_name} (attempt 1)")),
        "{show:#}"
    );
    assert_eq!(show["evidence"]["record"]["trigger"], "takeover");
    let status = nodes[other].json(&["fleet", "status", "--json"]);
    let t = &status["takeovers"][0];
    assert_eq!(
        (t["node"].as_str(), t["previous"]["node"].as_str()),
        (Some(nodes[other].name.as_str()), Some(killed_name.as_str()))
    );
    assert_eq!(t["attempt"], 2, "{status:#}");
    let (code, text) = nodes[other].text(&["fleet", "status"]);
    let line = format!("{} took over from {killed_name} (attempt 1) as attempt 2", nodes[other].name);
    assert!(code == 0 && text.contains(&line) && text.contains("last heartbeat"), "{text}");
    let result = status["recent"].as_array().unwrap().iter().find(|r| r["instant"] == t["instant"]).cloned();
    assert_eq!(result.map(|r| r["node"].clone()), Some(Value::from(nodes[other].name.clone())), "{status:#}");
}

#[test]
fn a_stalled_holder_is_fenced_and_its_late_writes_fail_and_are_logged() {
    let shared = tempfile::tempdir().unwrap();
    let plans = plans(shared.path(), "*/15 * * * * *", "sleep 3");
    let moto = Moto::start();
    let (endpoint, bucket) = (moto.endpoint.clone(), new_bucket(&moto.endpoint));
    let mut nodes: Vec<Node> =
        ["node-1", "node-2"].iter().map(|n| Node::new(n, &plans, &endpoint, &bucket, "2s")).collect();
    for n in &mut nodes {
        n.start();
    }
    for n in &mut nodes {
        n.wait_ready();
    }
    let holder = wait_until("a node to start a claimed run", Duration::from_secs(40), || {
        nodes.iter().position(|n| n.log().contains("fleet: claimed") && n.log().contains("drill started"))
    });
    let other = 1 - holder;
    // The holder stalls (SIGSTOP) past the lease; its peer takes the firing over.
    let pid = nodes[holder].child.as_ref().unwrap().id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    wait_until("the takeover run to finish", Duration::from_secs(40), || {
        nodes[other].runs().into_iter().find(|r| r.2 == "takeover" && r.4.is_some())
    });
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let stalled = wait_until("the stalled run to end", Duration::from_secs(30), || {
        nodes[holder].runs().into_iter().find(|r| r.2 == "schedule" && r.4.is_some())
    });
    // Heartbeating again, but its firing was taken from it: fenced, on the
    // peer's overview and in `drdrill fleet status` alike.
    let holder_name = nodes[holder].name.clone();
    wait_until("the stalled node to show as fenced", Duration::from_secs(20), || {
        let page = nodes[other].overview();
        node_row(&page, &holder_name).is_some_and(|r| r.contains(r#"<span class="failed">fenced</span>"#)).then_some(())
    });
    let (code, text) = nodes[other].text(&["fleet", "status"]);
    assert!(code == 0 && text.contains(", FENCED (a firing it held was taken over)"), "{text}");
    for n in &mut nodes {
        n.stop();
    }
    assert_eq!(stalled.1, "aborted", "{}", nodes[holder].log());
    let show = nodes[holder].json(&["show", "--json", &stalled.0.to_string()]);
    let reason = show["summary"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains(&format!("was taken over by {} (attempt 2)", nodes[other].name)), "{show:#}");
    let log = nodes[holder].log();
    assert!(log.contains("late write refused") || log.contains("not going on with writing the result"), "{log}");
    // The one result of the firing is the takeover's.
    let status = nodes[other].json(&["fleet", "status", "--json"]);
    let t = &status["takeovers"][0];
    let result = status["recent"].as_array().unwrap().iter().find(|r| r["instant"] == t["instant"]).cloned().unwrap();
    assert_eq!((result["node"].as_str(), result["attempt"].as_i64()), (Some(nodes[other].name.as_str()), Some(2)));
}

/// An S3 endpoint that stores objects and ignores every precondition.
const CARELESS_S3: &str = r#"
import hashlib, http.server
store = {}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, code, body=b"", etag=None):
        self.send_response(code)
        if etag: self.send_header("ETag", '"%s"' % etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        store[self.path] = body
        self.reply(200, etag=hashlib.md5(body).hexdigest())
    def do_GET(self):
        body = store.get(self.path)
        self.reply(404) if body is None else self.reply(200, body, hashlib.md5(body).hexdigest())
    def do_DELETE(self):
        store.pop(self.path, None)
        self.reply(204)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

#[test]
fn a_store_that_ignores_preconditions_or_a_local_folder_is_refused_for_fleet_mode() {
    let mut server = Command::new("python3").arg("-c").arg(CARELESS_S3).stdout(Stdio::piped()).spawn().unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut port).unwrap();
    let endpoint = format!("http://127.0.0.1:{}", port.trim());
    let shared = tempfile::tempdir().unwrap();
    let plans = plans(shared.path(), "*/2 * * * * *", "true");
    let mut node = Node::new("host-a", &plans, &endpoint, "careless", "2s");
    node.start();
    let status = {
        let c = node.child.as_mut().unwrap();
        wait_until("the daemon to refuse", Duration::from_secs(30), || c.try_wait().unwrap())
    };
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status.code(), Some(2), "{}", node.log());
    let log = node.log();
    assert!(
        log.contains("fleet mode refused") && log.contains("ignores If-None-Match") && log.contains("run drills twice"),
        "{log}"
    );
    assert!(!log.contains("daemon ready"), "{log}");
    assert!(node.runs().is_empty());

    // A local folder store is refused by the config check, with its line.
    let config = node.dir.path().join("config.toml");
    let text = fs::read_to_string(&config).unwrap().replace("store = \"s3\"", "store = \"local\"");
    fs::write(&config, text).unwrap();
    let (code, out) = node.text(&["daemon"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("config.toml:") && out.contains("local folder store"), "{out}");
}

/// The row of `node` in the overview's Nodes panel, if it has one.
fn node_row<'a>(page: &'a str, node: &str) -> Option<&'a str> {
    let start = page.find(&format!(r#"<tr data-node="{node}">"#))?;
    page[start..].split("</tr>").next()
}

#[test]
fn the_overview_lists_every_node_of_the_fleet_and_says_why_when_the_bucket_hangs_or_is_down() {
    let shared = tempfile::tempdir().unwrap();
    let plans = plans(shared.path(), "*/2 * * * * *", "true");
    let moto = Moto::start();
    let bucket = new_bucket(&moto.endpoint);
    let hang = shared.path().join("hang");
    let proxy = Proxy::start(&moto.endpoint, &hang);
    let endpoint = proxy.endpoint.clone();
    let mut nodes: Vec<Node> =
        ["node-a", "node-b"].iter().map(|n| Node::new(n, &plans, &endpoint, &bucket, "2s")).collect();
    for n in &mut nodes {
        n.start();
    }
    for n in &mut nodes {
        n.wait_ready();
    }

    // Both nodes, from either daemon, once each has run a firing.
    let page = wait_until("both nodes, each with a run, on node-a's overview", Duration::from_secs(40), || {
        let page = nodes[0].overview();
        let ran = |n: &str| node_row(&page, n).is_some_and(|r| r.contains("tick: passed"));
        (ran("node-a") && ran("node-b")).then_some(page)
    });
    assert!(page.contains(r#"id="nodes-panel""#), "{page}");
    for n in ["node-a", "node-b"] {
        let row = node_row(&page, n).unwrap();
        assert!(row.contains(r#"<span class="ok">alive</span>"#), "{n}: {row}");
        assert!(row.contains(drdrill::VERSION) && row.contains(" ago)"), "{n}: {row}");
    }
    assert!(node_row(&page, "node-a").unwrap().contains("(this daemon)"), "{page}");
    assert!(!node_row(&page, "node-b").unwrap().contains("(this daemon)"), "{page}");
    let other = nodes[1].overview();
    assert!(node_row(&other, "node-a").is_some() && node_row(&other, "node-b").is_some(), "{other}");

    // A node that stopped heartbeating turns stale after three leases.
    nodes[1].stop();
    wait_until("node-b to show as stale", Duration::from_secs(20), || {
        let page = nodes[0].overview();
        node_row(&page, "node-b").is_some_and(|r| r.contains(r#"<span class="stale">stale</span>"#)).then_some(())
    });

    // The bucket hangs, then is down: the page still comes, quickly, and says why.
    let unavailable = |what: &str, why: &str| {
        let start = Instant::now();
        let page = nodes[0].overview();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(3), "GET / took {took:?} while the bucket {what}");
        assert!(page.contains(r#"id="nodes-unavailable">fleet status unavailable: "#), "{what}: {page}");
        assert!(page.contains(why), "{what}: {page}");
        assert!(page.contains(r#"<table id="plans">"#), "the rest of the page is there:\n{page}");
    };
    fs::write(&hang, "").unwrap();
    unavailable("hangs", "did not answer within 1.50s");
    drop(proxy);
    unavailable("is down", "the store is unreachable");
    drop(moto);
}
