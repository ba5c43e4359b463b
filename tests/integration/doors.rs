//! What a careless or hostile neighbour can do at drdrill's doors: flood the
//! API with idle connections, dribble half a request, read a token file left
//! group-readable, or see a store password in a URL; and what reports say about
//! a plan that is new.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Workspace, env, example_plan, free_port, stderr, stdout, unique, wait_for};

/// A client that never reuses a connection and gives up after `timeout`.
fn http(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(timeout).pool_max_idle_per_host(0).build().unwrap()
}

/// A daemon's workspace: its config on a free loopback port, with `extra`
/// appended, and a directory drill `quick` whose check passes.
struct Site {
    ws: Workspace,
    port: u16,
}

impl Site {
    fn new(extra: &str) -> Site {
        let ws = Workspace::empty();
        let port = free_port();
        let r = ws.path().display().to_string();
        ws.write("data/orders.txt", "order 1\norder 2\n");
        ws.write_config(&format!(
            "database = \"{r}/var/drdrill.db\"\nplans = \"{r}/drills\"\nscratch = \"{r}/var/scratch\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{r}/var/api-token\"\n\
             [daemon]\ngrace_period = \"1s\"\n[stores.local]\nkind = \"local\"\nroot = \"{r}/var/store\"\n{extra}\n"
        ));
        ws.write_plan(
            "quick",
            &format!(
                "timeout = \"5m\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"{r}/data\"\n\
                 [[check]]\nkind = \"command\"\nrun = \"grep -q 'order 2' $DRDRILL_RESTORE/orders.txt\"\n"
            ),
        );
        Site { ws, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn token(&self) -> String {
        fs::read_to_string(self.ws.join("var/api-token")).unwrap().trim().to_string()
    }

    fn log_path(&self) -> PathBuf {
        self.ws.join("daemon.log")
    }

    /// `drdrill daemon`, not yet waited for; `nofile` lowers its descriptor limit.
    fn start(&self, nofile: Option<u64>, envs: &[(&str, &str)]) -> Child {
        let log = fs::File::create(self.log_path()).unwrap();
        let mut cmd = self.ws.cmd();
        cmd.arg("daemon").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
        cmd.envs(envs.iter().copied());
        if let Some(n) = nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        cmd.spawn().unwrap()
    }

    /// A running daemon, once `/healthz` answers.
    fn spawn(&self, nofile: Option<u64>, envs: &[(&str, &str)]) -> Daemon {
        let mut d = Daemon { child: Some(self.start(nofile, envs)), log: self.log_path() };
        let client = http(Duration::from_secs(5));
        wait_for("the daemon to answer /healthz", || {
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status} before it was ready:\n{}", d.log());
            }
            client.get(self.url("/healthz")).send().ok().filter(|r| r.status().is_success())
        });
        d
    }

    /// Starts `plan` through the API; returns the run id.
    fn trigger(&self, client: &reqwest::blocking::Client, plan: &str) -> i64 {
        let r = client
            .post(self.url(&format!("/api/plans/{plan}/runs")))
            .bearer_auth(self.token())
            .send()
            .unwrap_or_else(|e| panic!("POST /api/plans/{plan}/runs: {e}"));
        assert_eq!(r.status(), 202, "trigger {plan}");
        r.json::<Value>().unwrap()["run_id"].as_i64().unwrap()
    }

    /// Waits until run `id` has finished; returns its status.
    fn finished(&self, client: &reqwest::blocking::Client, id: i64) -> String {
        wait_for("the run to finish", || {
            let r: Value = client.get(self.url(&format!("/api/runs/{id}"))).send().ok()?.json().ok()?;
            let status = r["summary"]["status"].as_str().or(r["status"].as_str())?.to_string();
            (status != "running").then_some(status)
        })
    }
}

struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
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

/// Raises this test process's own descriptor limit, so it can hold the flood.
fn raise_own_nofile(need: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct handed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        assert!(lim.rlim_max >= need, "this test needs a hard descriptor limit of {need} (ulimit -Hn)");
        if lim.rlim_cur < need {
            lim.rlim_cur = lim.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// Whether the server has closed `s`: a read sees end-of-file or a reset
/// within `within`.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within.max(Duration::from_millis(1)))).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer (none is expected): keep reading to the close.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_connections_beyond_the_descriptor_limit_leave_healthz_and_triggers_answering() {
    const FLOOD: usize = 1100;
    raise_own_nofile(FLOOD as u64 + 200);
    let site = Site::new("");
    let d = site.spawn(Some(1024), &[]);

    let started = Instant::now();
    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|i| {
            TcpStream::connect_timeout(&format!("127.0.0.1:{}", site.port).parse().unwrap(), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();

    let client = http(Duration::from_secs(8));
    let health = client.get(site.url("/healthz")).send().unwrap_or_else(|e| {
        panic!("/healthz under {FLOOD} idle connections: {e}\ndaemon log:\n{}", d.log());
    });
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().unwrap()["status"], "ok");
    // A drill needs descriptors of its own: the results DB, the store, scratch, a check process.
    let id = site.trigger(&client, "quick");
    assert_eq!(site.finished(&client, id), "passed", "daemon log:\n{}", d.log());

    // Every idle connection is closed by the header timeout, if not before to make room.
    let deadline = started + Duration::from_secs(25);
    let open = flood
        .iter_mut()
        .map(|s| closed_by_server(s, deadline.saturating_duration_since(Instant::now())))
        .filter(|closed| !closed)
        .count();
    assert_eq!(open, 0, "{open} of {FLOOD} idle connections still open after 25s");
    assert!(d.log().contains("closing those that sent no request"), "{}", d.log());
}

#[test]
fn a_client_sending_half_a_header_is_disconnected_and_others_are_served() {
    let site = Site::new("");
    let d = site.spawn(None, &[]);
    let mut slow = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: sl").unwrap();
    let sent = Instant::now();
    // While it dribbles, everyone else is answered.
    let client = http(Duration::from_secs(5));
    assert_eq!(client.get(site.url("/healthz")).send().unwrap().status(), 200);
    assert!(closed_by_server(&mut slow, Duration::from_secs(30)), "half a header kept the connection open for 30s");
    let after = sent.elapsed();
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(20),
        "closed after {after:?}, not after the 10s header timeout"
    );
    assert_eq!(client.get(site.url("/healthz")).send().unwrap().status(), 200);
    drop(d);
}

#[test]
fn token_files_with_a_group_or_other_bit_are_refused() {
    for mode in [0o640, 0o660, 0o604] {
        let site = Site::new("");
        let token = site.ws.write("var/api-token", "0123456789abcdef0123456789abcdef\n");
        fs::set_permissions(&token, fs::Permissions::from_mode(mode)).unwrap();
        let mut child = site.start(None, &[]);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon started with a token file of mode {mode:04o}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = fs::read_to_string(site.log_path()).unwrap();
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(log.contains(&format!("mode {mode:04o}")) && log.contains("chmod 600"), "{log}");
    }
}

#[test]
fn the_unit_raises_the_descriptor_limit_and_says_why() {
    let text = fs::read_to_string(crate::common::repo().join("systemd/drdrill.service")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("LimitNOFILE=")).expect("the unit sets LimitNOFILE=");
    let n: u64 = lines[at]["LimitNOFILE=".len()..].trim().parse().expect("LimitNOFILE= is one number");
    // A quarter for API connections (the cap of 1024), the rest for drills.
    assert!(n >= 4096, "LimitNOFILE={n}");
    assert!(lines[at - 1].starts_with('#'), "LimitNOFILE= has no comment saying why");
}

const SECRET: &str = "s3cret-in-the-url";

/// Every place drdrill writes to that a person or auditor reads.
fn assert_no_secret(what: &str, text: &str) {
    if let Some(i) = text.find(SECRET) {
        panic!("{what} shows the endpoint's password: {:?}", &text[i.saturating_sub(120)..(i + 40).min(text.len())]);
    }
}

#[test]
fn a_password_in_a_store_endpoint_is_shown_nowhere() {
    let port = env("DRDRILL_TEST_S3_PORT");
    let keys = [
        ("AWS_ACCESS_KEY_ID", env("DRDRILL_TEST_S3_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", env("DRDRILL_TEST_S3_SECRET_ACCESS_KEY")),
    ];
    let envs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store = |port: &str, allow: &str| {
        format!(
            "[stores.s3]\nkind = \"s3\"\nbucket = \"{}\"\nendpoint = \"http://user:{SECRET}@127.0.0.1:{port}\"\n{allow}retry_timeout = \"2s\"\nmax_retries = 1\n",
            env("DRDRILL_TEST_S3_BUCKET")
        )
    };
    // object_store takes user-info in the endpoint: it works, and is masked.
    let site = Site::new(&store(&port, "allow_http = true\n"));
    let name = unique("secret-url");
    let plan = example_plan(
        "s3-orders.toml",
        &[
            ("name = \"s3-orders\"", &format!("name = \"{name}\"")),
            (
                "seed = \"drills/quickstart/orders.sql\"",
                &format!("seed = \"{}/drills/quickstart/orders.sql\"", env!("CARGO_MANIFEST_DIR")),
            ),
        ],
    );
    site.ws.write_plan("s3-orders", &plan);
    let mut seen = String::new();
    let mut check = |what: &str, (code, out, err): (i32, String, String)| {
        assert_no_secret(&format!("`{what}` (exit {code}) stdout"), &out);
        assert_no_secret(&format!("`{what}` (exit {code}) stderr"), &err);
        seen += &out;
        seen += &err;
        (code, out)
    };
    let (code, out) = check("run --json", site.ws.run(&["-v", "run", "s3-orders", "--json"], &envs));
    assert_eq!(code, 0, "{out}");
    check("run --dry-run", site.ws.run(&["run", "s3-orders", "--dry-run"], &envs));
    for args in [&["backups", "list", "--store", "s3"][..], &["backups", "list", "--store", "s3", "--json"]] {
        assert_eq!(check(&args.join(" "), site.ws.run(args, &envs)).0, 0);
    }
    check("backups verify", site.ws.run(&["backups", "verify", "--store", "s3", "--plan", "s3-orders"], &envs));
    check("history", site.ws.run(&["history", "--json"], &envs));
    for format in ["html", "md", "json", "csv", "junit"] {
        let file = format!("report.{format}");
        let (code, _) =
            check(&format!("report {format}"), site.ws.run(&["report", "--format", format, "-o", &file], &envs));
        assert_eq!(code, 0);
        assert_no_secret(&format!("the {format} report"), &fs::read_to_string(site.ws.join(&file)).unwrap());
    }
    let dump = Command::new("sqlite3").arg(site.ws.join("var/drdrill.db")).arg(".dump").output().unwrap();
    assert!(dump.status.success(), "{}", stderr(&dump));
    assert_no_secret("the results database", &stdout(&dump));

    // Through the daemon: its log and the API.
    let d = site.spawn(None, &envs);
    let client = http(Duration::from_secs(30));
    let id = site.trigger(&client, &name);
    site.finished(&client, id);
    for path in ["/api/plans".to_string(), format!("/api/runs/{id}"), "/healthz".into()] {
        assert_no_secret(&format!("GET {path}"), &client.get(site.url(&path)).send().unwrap().text().unwrap());
    }
    drop(d);
    assert_no_secret("the daemon's log", &fs::read_to_string(site.log_path()).unwrap());

    // A dead endpoint: the errors quote the URL, never the password.
    site.ws.write_config(
        &fs::read_to_string(site.ws.join("config/drdrill.toml")).unwrap().replace(&format!(":{port}\""), ":1\""),
    );
    let (code, _) = check("run against a dead store", site.ws.run(&["run", "s3-orders", "--json"], &envs));
    assert_eq!(code, 1);
    let (code, _) = check("backups list of a dead store", site.ws.run(&["backups", "list", "--store", "s3"], &envs));
    assert_eq!(code, 2);
    check("backups verify of a dead store", site.ws.run(&["backups", "verify", "--store", "s3"], &envs));
    let dump = Command::new("sqlite3").arg(site.ws.join("var/drdrill.db")).arg(".dump").output().unwrap();
    assert_no_secret("the results database after a failed run", &stdout(&dump));

    // A config refused at load (plain HTTP to a remote host) quotes the endpoint masked.
    let refused = Workspace::with_config(&format!(
        "[stores.s3]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://user:{SECRET}@s3.example.com\"\n"
    ));
    for args in [&["validate"][..], &["run", "quickstart"]] {
        let (code, _) = check(&format!("{} with a refused config", args.join(" ")), refused.run(args, &envs));
        assert_eq!(code, 2, "{args:?}");
    }

    // The masked form is there, so the checks above read real output.
    assert!(seen.contains("http://***@127.0.0.1:"), "the endpoint is never shown, even masked:\n{seen}");
}

/// The `svg` elements of an HTML report, parsed.
fn charts(html: &str) -> Vec<String> {
    html.match_indices("<svg").map(|(i, _)| html[i..i + html[i..].find("</svg>").unwrap() + 6].to_string()).collect()
}

#[test]
fn a_day_of_runs_spans_the_chart_and_a_new_plan_has_missed_nothing() {
    let ws = Workspace::quickstart();
    // Hourly, so a 90-day period would hold over 2,000 firings before the plan's first run.
    let plan = fs::read_to_string(ws.join("drills/quickstart.toml")).unwrap();
    ws.write_plan("quickstart", &plan.replace("timeout = ", "schedule = \"0 * * * *\"\ntimeout = "));
    for _ in 0..3 {
        assert_eq!(ws.run_quickstart(), 0);
    }
    let out = ws.output(&["report", "--since", "90d", "--format", "html", "-o", "r.html"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = fs::read_to_string(ws.join("r.html")).unwrap();
    let svgs = charts(&html);
    assert_eq!(svgs.len(), 2, "an RTO and an RPO chart");
    for svg in &svgs {
        let doc = roxmltree::Document::parse(svg).unwrap();
        let xs: Vec<f64> = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .map(|n| n.attribute("cx").unwrap().parse().unwrap())
            .collect();
        assert_eq!(xs.len(), 3, "{svg}");
        let frame = doc.descendants().find(|n| n.has_tag_name("rect")).unwrap();
        let width: f64 = frame.attribute("width").unwrap().parse().unwrap();
        let spread = xs.iter().cloned().fold(f64::MIN, f64::max) - xs.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > width * 0.8, "runs of a few seconds cover {spread:.1} of {width} px: {xs:?}");
    }
    assert!(!html.contains("scheduled run(s) missed"), "a plan first run today missed nothing");

    let out = ws.output(&["report", "--since", "90d", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &json["plans"][0];
    assert_eq!(p["schedule"]["schedule"], "0 * * * *", "{p:#}");
    assert_eq!(p["schedule"]["gaps"].as_array().map(Vec::len), Some(0), "{p:#}");
    assert_eq!(p["health"], "healthy", "{p:#}");
}
