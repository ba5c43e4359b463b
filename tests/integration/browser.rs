//! The console in a real browser: Debian's headless Chromium driven through
//! the WebDriver protocol by Debian's ChromeDriver, with the blocking HTTP
//! client for the protocol's JSON. A game day run from the browser: the
//! overview lists every plan, log in, start a run that waits at a gate and
//! watch its phases appear, Approve, see it pass; start another and Abort,
//! see its rollback done; the emergency stop during a run, then resume.
//! Screenshots of the overview and of a live run are checked for a render.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::common::{RunningDaemon, WAIT, Workspace, env, free_port, wait_for, wait_until};

/// The key WebDriver names a found element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// ChromeDriver on a free port and one browser session; both ended when dropped.
struct Browser {
    driver: Child,
    http: Client,
    base: String,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new(env("DRDRILL_TEST_CHROMEDRIVER"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver (scripts/services/40-chromium.sh installs it)");
        let http = Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let root = format!("http://127.0.0.1:{port}");
        wait_for("chromedriver to answer /status", || {
            http.get(format!("{root}/status")).send().ok().filter(|r| r.status().is_success())
        });
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": env("DRDRILL_TEST_CHROMIUM"),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000", format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let r: Value = http.post(format!("{root}/session")).json(&caps).send().unwrap().json().unwrap();
        let id = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no browser session: {r}")).to_string();
        Browser { driver, http, base: format!("{root}/session/{id}") }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().unwrap().json().unwrap();
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).as_str().unwrap_or_default().to_string()
    }

    /// Every element matching the CSS selector, as WebDriver ids.
    fn all(&self, css: &str) -> Vec<String> {
        let v = self.call(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css })));
        v.as_array().into_iter().flatten().filter_map(|e| e[ELEMENT].as_str().map(str::to_string)).collect()
    }

    fn text(&self, element: &str) -> String {
        let v = self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None);
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits until `css` matches, then clicks the first match.
    fn click(&self, css: &str) {
        let el = wait_for(&format!("{css} on the page"), || self.all(css).into_iter().next());
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = wait_for(&format!("{css} on the page"), || self.all(css).into_iter().next());
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({ "text": text })));
    }

    /// Waits until the text of `css` satisfies `ok`; returns it. On a
    /// timeout, the page is shown.
    fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        wait_for(&format!("the text of {css}"), || {
            assert!(start.elapsed() < WAIT - Duration::from_secs(1), "no {css} as expected on:\n{}", self.source());
            self.all(css).into_iter().next().map(|el| self.text(&el)).filter(|t| ok(t))
        })
    }

    /// A PNG screenshot of the page, written to `to`; checked to be a render.
    fn screenshot(&self, to: &Path) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None);
        let bytes = <base64ct::Base64 as base64ct::Encoding>::decode_vec(b64.as_str().unwrap()).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        fs::write(to, &bytes).unwrap();
        // A blank page compresses to a few KB; a rendered console does not.
        assert!(bytes.len() > 20_000, "{} is only {} bytes: the page looks blank", to.display(), bytes.len());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: $DRDRILL_TEST_ROOT, or target/ (kept as CI artefacts, not committed).
fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("DRDRILL_TEST_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::common::repo().join("target"))
        .join("console-screenshots");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn gate_plan(ws: &Workspace, name: &str, victim: &Path) {
    ws.write_plan(
        name,
        &format!(
            "pause_before = [\"restore\"]\ndestructive = true\ntimeout = \"5m\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n\
             [source]\nkind = \"directory\"\npath = \"{}\"\n[[failure]]\nkind = \"delete\"\npath = \"{}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"true\"\n",
            ws.join("data").display(),
            victim.display()
        ),
    );
}

fn status_of(d: &RunningDaemon, id: i64) -> String {
    d.get(&format!("/api/runs/{id}"))["summary"]["status"].as_str().unwrap().to_string()
}

/// Logs in with the daemon's token as `name`, and checks the token is not shown.
fn login(b: &Browser, d: &RunningDaemon, ws: &Workspace, name: &str) {
    let token = fs::read_to_string(ws.join("var/api-token")).unwrap().trim().to_string();
    b.open(&d.url("/login"));
    b.type_into("#token", &token);
    b.type_into("#name", name);
    b.click(r#"form.login button[type="submit"]"#);
    b.wait_text("header .who", |t| t.contains(&format!("signed in as console ({name})")));
    assert!(!b.source().contains(&token), "the token is on the page");
}

/// Starts the plan's run from its page; returns the run id the browser lands on.
fn start_from_plan_page(b: &Browser, d: &RunningDaemon, plan: &str) -> i64 {
    b.open(&d.url(&format!("/plans/{plan}")));
    b.click(r#"form[action$="/trigger"] button"#);
    let src = wait_for("the run page", || Some(b.source()).filter(|s| s.contains(r#"id="live" data-run=""#)));
    src.split(r#"id="live" data-run=""#).nth(1).unwrap().split('"').next().unwrap().parse().unwrap()
}

#[test]
fn a_game_day_from_the_browser_approve_abort_and_the_emergency_stop() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    fs::write(ws.join("data/orders.txt"), "order 1\n").unwrap();
    fs::create_dir_all(ws.join("allowed")).unwrap();
    let victims: Vec<PathBuf> = ["one", "two", "three"].iter().map(|n| ws.join(&format!("allowed/{n}.txt"))).collect();
    for v in &victims {
        fs::write(v, "live data\n").unwrap();
    }
    let port = ws.write_daemon_config(&format!("[safety]\nallowed_paths = [\"{}\"]\n", ws.join("allowed").display()));
    for (name, v) in ["approve-me", "abort-me", "stop-me"].iter().zip(&victims) {
        gate_plan(&ws, name, v);
    }
    let d = ws.spawn_daemon(port);
    let b = Browser::start(&ws.join("chromium-profile"));
    let shots = screenshot_dir();

    // The overview lists every plan.
    b.open(&d.url("/"));
    let listed = wait_for("the plans matrix", || Some(b.all("#plans tbody tr")).filter(|r| r.len() == 3));
    let names: Vec<String> = listed.iter().map(|r| b.text(r)).collect();
    for plan in ["approve-me", "abort-me", "stop-me"] {
        assert!(names.iter().any(|n| n.starts_with(plan)), "{plan} not in {names:?}");
    }
    b.screenshot(&shots.join("overview.png"));

    login(&b, &d, &ws, "alice");

    // A run that waits at its gate: phases appear, Approve, it passes.
    let id = start_from_plan_page(&b, &d, "approve-me");
    wait_until("the gate and its Approve button", crate::common::WAIT, || {
        let src = b.source();
        (src.contains(">Approve</button>") && src.contains("<td>failure</td>")).then_some(())
    });
    assert!(!victims[0].exists(), "the failure ran before the gate");
    b.screenshot(&shots.join("live-run.png"));
    b.click(r#"form[action$="/approve"] button"#);
    b.wait_text("#run-status", |t| t == "passed");
    assert_eq!(status_of(&d, id), "passed");
    assert!(b.source().contains("<td>restore</td>") && b.source().contains("console (alice)"), "gate by alice");
    assert_eq!(fs::read_to_string(&victims[0]).unwrap(), "live data\n", "rolled back after the drill");

    // Another: Abort at the gate; recorded aborted and its rollback done.
    let id = start_from_plan_page(&b, &d, "abort-me");
    wait_for("the run at its gate", || b.source().contains(">Approve</button>").then_some(()));
    b.click(r#"form[action$="/abort"] button"#);
    b.wait_text("#run-status", |t| t == "aborted");
    assert_eq!(status_of(&d, id), "aborted");
    assert_eq!(fs::read_to_string(&victims[1]).unwrap(), "live data\n", "the rollback put the file back");

    // The emergency stop during a run, then resume.
    let id = start_from_plan_page(&b, &d, "stop-me");
    wait_for("the run at its gate", || b.source().contains(">Approve</button>").then_some(()));
    b.open(&d.url("/"));
    b.type_into(r#"form[action="/console/stop"] input[name="reason"]"#, "prod is down");
    b.click("button.danger");
    b.wait_text("#banner", |t| t.contains("PAUSED: emergency stop by console (alice)"));
    wait_for("the run to be aborted", || (status_of(&d, id) == "aborted").then_some(()));
    assert_eq!(fs::read_to_string(&victims[2]).unwrap(), "live data\n");
    assert_eq!(d.get("/api/plans")["paused"]["reason"], "prod is down");
    b.click("button.go");
    b.wait_text("#banner", |t| !t.contains("PAUSED"));
    assert!(d.get("/api/plans")["paused"].is_null());
}

/// A phase's bar in the Gantt: (name, rendered width in px).
fn bars(b: &Browser) -> Vec<(String, f64)> {
    b.all("#gantt div")
        .iter()
        .map(|el| {
            let w = b.call(reqwest::Method::GET, &format!("/element/{el}/rect"), None)["width"].as_f64().unwrap();
            (b.text(el), w)
        })
        .collect()
}

#[test]
fn the_live_gantt_bar_sizes_phases_by_their_measured_durations() {
    let ws = Workspace::empty();
    let port = ws.write_daemon_config("");
    // backup takes about twice as long as restore; the check holds the run
    // open while the page is looked at.
    ws.write_plan(
        "slow",
        "timeout = \"2m\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n\
         [source]\nkind = \"command\"\nbackup = \"sleep 3; echo data\"\nrestore = \"sleep 1.5; cat > restored.txt\"\n\
         [[check]]\nkind = \"command\"\nrun = \"sleep 6\"\n",
    );
    let d = ws.spawn_daemon(port);
    let token = fs::read_to_string(ws.join("var/api-token")).unwrap().trim().to_string();
    let b = Browser::start(&ws.join("chromium-profile"));
    let r = Client::new().post(d.url("/api/plans/slow/runs")).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["run_id"].as_i64().unwrap();
    b.open(&d.url(&format!("/runs/{id}")));

    // backup and restore end after the page loaded: the script adds their bars.
    wait_until("the script to add the backup and restore phases", WAIT, || {
        let src = b.source();
        let live = src.matches(r#"class="live-phase""#).count();
        (live >= 2 && src.contains("<td>restore</td>")).then_some(())
    });
    let gantt =
        b.call(reqwest::Method::GET, &format!("/element/{}/rect", b.all("#gantt")[0]), None)["width"].as_f64().unwrap();
    let bars = bars(&b);
    let width = |name: &str| bars.iter().find(|(n, _)| n == name).map(|(_, w)| *w).unwrap_or(0.0);
    let (backup, restore) = (width("backup"), width("restore"));
    assert!(backup > 1.4 * restore && restore > 0.0, "backup (~3s) against restore (~1.5s): {bars:?}");
    let total: f64 = bars.iter().map(|(_, w)| w).sum();
    assert!((total - gantt).abs() < 0.05 * gantt, "the bars fill the Gantt ({gantt}px): {bars:?}");
    assert_eq!(status_of(&d, id), "running", "looked at while the run was live");
    wait_for("the run to end", || (status_of(&d, id) != "running").then_some(()));
}

#[test]
fn a_failing_safeguard_aborts_the_run_the_browser_watches_within_one_interval() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("allowed/data")).unwrap();
    let victim = ws.join("allowed/data/orders.txt");
    fs::write(&victim, "order 1\n").unwrap();
    let incident = ws.join("incident");
    let port = ws.write_daemon_config(&format!("[safety]\nallowed_paths = [\"{}\"]\n", ws.join("allowed").display()));
    // The check sleeps two minutes: only the safeguard can end the run sooner.
    ws.write_plan(
        "guarded",
        &format!(
            "destructive = true\ntimeout = \"5m\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n\
             [source]\nkind = \"directory\"\npath = \"{}\"\n[[failure]]\nkind = \"delete\"\npath = \"{}\"\n\
             [[check]]\nkind = \"command\"\nrun = \"sleep 120\"\n\
             [[safeguard]]\nname = \"no-incident\"\nkind = \"command\"\nrun = \"test ! -e {}\"\ninterval = \"2s\"\n",
            ws.join("allowed/data").display(),
            victim.display(),
            incident.display()
        ),
    );
    let d = ws.spawn_daemon(port);
    let b = Browser::start(&ws.join("chromium-profile"));
    login(&b, &d, &ws, "bob");
    let id = start_from_plan_page(&b, &d, "guarded");
    wait_until("the live page to show the injected failure", WAIT, || {
        (b.source().contains("<td>failure</td>") && !victim.exists()).then_some(())
    });
    // A few evaluations pass while production is healthy; then an incident.
    std::thread::sleep(Duration::from_millis(2500));
    let opened = chrono::Utc::now();
    fs::write(&incident, "INC-7\n").unwrap();

    b.wait_text("#run-status", |t| t == "aborted");
    let reason = b.text(&b.all("#run-reason")[0]);
    assert!(reason.contains("aborted by safeguard no-incident: `test ! -e"), "{reason}");
    assert_eq!(status_of(&d, id), "aborted");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "order 1\n", "the rollback put the file back");
    // The evaluation that failed began within one interval (2s) of the
    // incident; the second of slack is for a loaded machine's timers.
    let run = d.get(&format!("/api/runs/{id}"));
    let trip = run["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "safeguard" && p["status"] == "failed")
        .unwrap_or_else(|| panic!("no failed safeguard phase: {run:#}"));
    let began: chrono::DateTime<chrono::Utc> = trip["started_at"].as_str().unwrap().parse().unwrap();
    let after = (began - opened).to_std().unwrap_or_default();
    assert!(after <= Duration::from_secs(3), "the failing evaluation began {after:?} after the incident");
    assert!(b.source().contains("<td>rollback</td>"), "the page shows the rollback");
}
