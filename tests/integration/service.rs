//! `[service]` and `http` checks: a small application (Python's standard
//! library HTTP server) started on the restored SQLite database, proven by
//! HTTP checks, and stopped with everything it started, whatever the outcome.

use std::time::{Duration, Instant};

use crate::common::{Workspace, measurement, phase, processes_with, reason, unique};

/// The application: reads the restored database named by DRDRILL_RESTORE and
/// listens on DRDRILL_PORT. It starts a child that would outlive it, to prove
/// the whole group is stopped.
const APP: &str = r#"
import json, os, sqlite3, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DB = os.environ["DRDRILL_RESTORE"]
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[1]])

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {"status": "ok"})
        elif self.path == "/stats":
            if self.headers.get("X-Token") != os.environ.get("APP_TOKEN"):
                return self.reply(401, {"error": "bad token"})
            db = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
            (n,) = db.execute("SELECT count(*) FROM orders").fetchone()
            (total,) = db.execute("SELECT total FROM orders ORDER BY id DESC LIMIT 1").fetchone()
            self.reply(200, {"orders": n, "newest": {"total": total}})
        elif self.path == "/old":
            self.redirect("/health")
        elif self.path == "/away":
            self.redirect("http://192.0.2.1/")
        else:
            self.reply(404, {"error": "no such page"})

    def redirect(self, to):
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

print("serving", DB, flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["DRDRILL_PORT"])), Handler).serve_forever()
"#;

/// A workspace with the live database (42 orders, the newest totalling 41.5)
/// and the application.
fn app_workspace() -> Workspace {
    let ws = Workspace::empty();
    let db = rusqlite::Connection::open(ws.join("orders.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL);
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 41) INSERT INTO orders (total) SELECT i + 0.5 FROM n;",
    )
    .unwrap();
    ws.write("app.py", APP);
    ws
}

fn plan(ws: &Workspace, marker: &str, timeout: &str, checks: &str) -> String {
    format!(
        "name = \"app\"\ntimeout = \"{timeout}\"\nenv = [\"APP_TOKEN\"]\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n\
         [source]\nkind = \"sqlite\"\npath = \"orders.db\"\n\
         [service]\nrun = \"exec python3 app.py {marker}\"\nworkdir = \"{}\"\nready = \"http://127.0.0.1:${{DRDRILL_PORT}}/health\"\n{checks}",
        ws.path().display()
    )
}

const GOOD_CHECKS: &str = r#"
[[check]]
kind = "http"
url = "http://127.0.0.1:${DRDRILL_PORT}/health"
expect_status = 200
expect_body = { regex = '"status": *"ok"' }

[[check]]
kind = "http"
url = "http://127.0.0.1:${DRDRILL_PORT}/stats"
headers = { X-Token = { env = "APP_TOKEN" } }
expect_json = { "/orders" = 42, "/newest/total" = 41.5 }

# A redirect on loopback is followed; one off loopback is not.
[[check]]
kind = "http"
url = "http://127.0.0.1:${DRDRILL_PORT}/old"
expect_body = "ok"

[[check]]
kind = "http"
url = "http://127.0.0.1:${DRDRILL_PORT}/away"
expect_status = "3xx"
"#;

fn nothing_left(ws: &Workspace, marker: &str) {
    assert!(processes_with(marker).is_empty(), "the application's child survived the run");
    assert!(processes_with(&ws.path().join("app.py").display().to_string()).is_empty());
    assert!(processes_with(&format!("app.py {marker}")).is_empty(), "the application survived the run");
    assert!(ws.scratch_leftovers().is_empty());
}

#[test]
fn an_application_on_the_restored_data_is_proven_by_http_checks_and_stopped() {
    let ws = app_workspace();
    let marker = unique("drdrill_app");
    ws.write_plan("app", &plan(&ws, &marker, "60s", GOOD_CHECKS));
    let (code, dry, _) = ws.run(&["run", "app", "--dry-run"], &[]);
    assert_eq!(code, 0, "{dry}");
    assert!(dry.contains("service  start `exec python3 app.py"), "{dry}");
    assert!(dry.find("restore  ").unwrap() < dry.find("service  ").unwrap(), "{dry}");

    let token = "app-token-7f3a9c";
    let report = ws.drill("app", &[("APP_TOKEN", token)]);
    assert_eq!(report["status"], "passed", "{report:#}");
    let names: Vec<&str> = report["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prepare", "backup", "failure", "restore", "service", "verify", "cleanup"]);
    assert!(phase(&report, "service")["detail"].as_str().unwrap().contains("ready after"), "{report:#}");
    let stats = report["checks"][1]["output"].as_str().unwrap();
    assert!(stats.contains("/orders = 42") && stats.contains("/newest/total = 41.5"), "{stats}");
    let start = measurement(&report, "start");
    assert!(start["value_ms"].as_f64().unwrap() > 0.0, "{start}");
    assert!(
        measurement(&report, "rto")["value_ms"].as_f64().unwrap() >= start["value_ms"].as_f64().unwrap(),
        "the service's start is part of RTO: {report:#}"
    );
    let cleanup = phase(&report, "cleanup")["detail"].as_str().unwrap().to_string();
    assert!(cleanup.contains("service `exec python3 app.py") && cleanup.contains("stopped"), "{cleanup}");
    assert!(cleanup.contains("serving") && cleanup.contains("GET /stats"), "its output is kept: {cleanup}");
    assert!(!report.to_string().contains(token), "the header's secret leaked: {report:#}");
    nothing_left(&ws, &marker);
}

#[test]
fn a_wrong_expect_json_fails_with_the_observed_value_and_still_stops_the_service() {
    let ws = app_workspace();
    let marker = unique("drdrill_app");
    let checks = "[[check]]\nkind = \"http\"\nurl = \"http://127.0.0.1:${DRDRILL_PORT}/stats\"\nheaders = { X-Token = { env = \"APP_TOKEN\" } }\nexpect_json = { \"/orders\" = 43 }\n";
    ws.write_plan("app", &plan(&ws, &marker, "8s", checks));
    let report = ws.drill("app", &[("APP_TOKEN", "t0ken-value")]);
    assert_eq!(report["status"], "failed", "{report:#}");
    let out = report["checks"][0]["output"].as_str().unwrap();
    assert!(out.contains("/orders = 42 (expected 43)"), "{report:#}");
    assert!(reason(&report).contains("/orders = 42 (expected 43)"), "{report:#}");
    nothing_left(&ws, &marker);

    // A header secret that is not there is named; the application's own
    // refusal is shown as it answered.
    let report = ws.drill("app", &[]);
    assert!(reason(&report).contains("APP_TOKEN (a header's `env`) is not set"), "{report:#}");
    let text = plan(&ws, &marker, "8s", checks).replace("env = \"APP_TOKEN\" }", "file = \"token\" }");
    ws.write("token", "not-the-token\n");
    ws.write_plan("app", &text);
    let report = ws.drill("app", &[("APP_TOKEN", "t0ken-value")]);
    assert!(report["checks"][0]["output"].as_str().unwrap().contains("-> 401 Unauthorized"), "{report:#}");
    nothing_left(&ws, &marker);
}

#[test]
fn a_service_that_exits_fails_the_run_at_once_with_its_output() {
    let ws = app_workspace();
    let text = plan(&ws, "x", "60s", GOOD_CHECKS)
        .replace("exec python3 app.py x", "echo cannot open the orders database >&2; exit 3");
    ws.write_plan("app", &text);
    let started = Instant::now();
    let report = ws.drill("app", &[]);
    assert!(started.elapsed() < Duration::from_secs(30), "it waited for a service that had exited");
    assert_eq!(report["status"], "failed", "{report:#}");
    let why = reason(&report);
    assert!(why.starts_with("service failed") && why.contains("cannot open the orders database"), "{why}");
    assert!(why.contains("exit status: 3"), "{why}");
    assert!(ws.scratch_leftovers().is_empty());
}

#[test]
fn http_checks_need_a_service_and_their_keys_are_checked_at_their_line() {
    let ws = Workspace::empty();
    let check = "[[check]]\nkind = \"http\"\nurl = \"http://127.0.0.1:${DRDRILL_PORT}/health\"\n";
    let head = "[targets]\nrto = \"1m\"\nrpo = \"1h\"\n";
    ws.write_plan("sq", &format!("{head}[source]\nkind = \"sqlite\"\npath = \"x.db\"\n{check}"));
    ws.write_plan("my", &format!("{head}[source]\nkind = \"mysql\"\ndatabase = \"shop\"\nuser = \"u\"\n{check}"));
    ws.write_plan(
        "bad",
        &format!(
            "{head}[source]\nkind = \"sqlite\"\npath = \"x.db\"\n[service]\nrun = \"app\"\nready = \"tcp:0\"\n{check}expect_status = \"2yy\"\n"
        ),
    );
    let (code, out, err) = ws.run(&["validate"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    let all = format!("{out}{err}");
    for (plan, line) in [("sq", 7), ("my", 8)] {
        let at = format!("drills/{plan}.toml:{line}:1: check `http` does not fit this source");
        let hit = all.lines().find(|l| l.starts_with(&at)).unwrap_or_else(|| panic!("no {at}: {all}"));
        assert!(hit.contains("and the plan has no [service]"), "{hit}");
    }
    assert!(all.contains("drills/bad.toml:9:9: `ready` \"tcp:0\" names no port"), "{all}");
    assert!(all.contains("drills/bad.toml:13:17: `expect_status` \"2yy\" is not a status or a range"), "{all}");
}
