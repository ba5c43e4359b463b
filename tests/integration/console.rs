//! The web console over real HTTP against a real daemon: pages that list
//! every plan and escape whatever a plan, a check or a note says; a login
//! that turns the token into an HttpOnly session cookie; actions refused
//! without the session, without its CSRF token, or from another site.

use std::fs;

use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::common::{RunningDaemon, Workspace, wait_for};

const HOSTILE: &str = "<script>alert('x')</script>\"&<img src=x onerror=alert(1)>";

/// A directory drill; `top` adds top-level keys, `check` is its command check
/// (retried until `timeout`).
fn plan(ws: &Workspace, name: &str, top: &str, timeout: &str, check: &str) {
    fs::create_dir_all(ws.join("data")).unwrap();
    fs::write(ws.join("data/orders.txt"), "order 1\n").unwrap();
    ws.write_plan(
        name,
        &format!(
            "{top}\ntimeout = \"{timeout}\"\n[targets]\nrto = \"10m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n\
             [[check]]\nkind = \"command\"\nrun = {check:?}\n",
            ws.join("data").display()
        ),
    );
}

fn token(ws: &Workspace) -> String {
    fs::read_to_string(ws.join("var/api-token")).unwrap().trim().to_string()
}

/// A browser-like client that follows no redirect, so the test sees them.
fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Starts a game-day run through the JSON API and waits for its end.
fn run_through_api(ws: &Workspace, d: &RunningDaemon, name: &str) -> i64 {
    let r = client().post(d.url(&format!("/api/plans/{name}/runs"))).bearer_auth(token(ws)).send().unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["run_id"].as_i64().unwrap();
    wait_for("the run to end", || (d.get(&format!("/api/runs/{id}"))["summary"]["status"] != "running").then_some(()));
    id
}

/// A signed-in console session: its cookie and the CSRF token its pages carry.
struct Login {
    cookie: String,
    csrf: String,
}

fn login(d: &RunningDaemon, token: &str, name: &str) -> Response {
    client().post(d.url("/login")).header("Origin", d.url("")).form(&[("token", token), ("name", name)]).send().unwrap()
}

fn logged_in(d: &RunningDaemon, token: &str) -> Login {
    let r = login(d, token, "alice");
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains(token), "the cookie is not the token");
    let cookie = set.split(';').next().unwrap().to_string();
    let page = client().get(d.url("/")).header("Cookie", &cookie).send().unwrap().text().unwrap();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field on the signed-in overview:\n{page}"))
        .to_string();
    assert!(page.contains("Emergency stop") && page.contains("signed in as console (alice)"), "{page}");
    Login { cookie, csrf }
}

impl Login {
    /// A same-origin form post, as the console's own page makes it.
    fn post(&self, d: &RunningDaemon, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        client()
            .post(d.url(path))
            .header("Cookie", &self.cookie)
            .header("Origin", d.url(""))
            .header("Sec-Fetch-Site", "same-origin")
            .form(&all)
            .send()
            .unwrap()
    }
}

#[test]
fn pages_list_every_plan_and_escape_what_plans_checks_and_notes_say() {
    let ws = Workspace::empty();
    let port = ws.write_daemon_config("");
    plan(&ws, "alpha", "schedule = \"0 3 * * Sun\"", "5m", &format!("echo '{}'", HOSTILE.replace('\'', "")));
    plan(&ws, "beta", &format!("description = {HOSTILE:?}"), "2s", "false");
    ws.write_plan("broken", &format!("name = {HOSTILE:?}\n"));
    let d = ws.spawn_daemon(port);
    let passed = run_through_api(&ws, &d, "alpha");
    let failed = run_through_api(&ws, &d, "beta");
    ws.run(&["note", &failed.to_string(), HOSTILE], &[]);

    let overview = client().get(d.url("/")).send().unwrap();
    assert_eq!(overview.status(), 200, "read-only pages need no token on loopback");
    assert!(overview.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let html = overview.text().unwrap();
    for name in ["alpha", "beta"] {
        assert!(html.contains(&format!(r#"<a href="/plans/{name}">{name}</a>"#)), "{name} not listed:\n{html}");
    }
    assert!(html.contains("1 failing: beta"), "the banner names the failing plan:\n{html}");
    assert!(html.contains("broken plan file"), "{html}");
    assert!(html.contains("<svg") && html.contains("RTO of alpha"), "trend charts:\n{html}");
    assert!(html.contains(r#"id="calendar""#) && html.contains(r#"id="failing-checks""#));
    assert!(!html.contains("nodes-panel") && !html.contains("<h2>Nodes</h2>"), "no Nodes panel outside fleet mode");
    assert!(html.contains("&lt;script&gt;") && html.contains("&lt;img src=x"), "escaped:\n{html}");
    for page in [html, d.text(&format!("/runs/{failed}")), d.text(&format!("/runs/{passed}")), d.text("/plans/beta")] {
        assert!(!page.contains("<script>alert") && !page.contains("<img src=x"), "unescaped text:\n{page}");
        assert!(!page.contains(&token(&ws)), "the token is on a page");
    }
    let run = d.text(&format!("/runs/{passed}"));
    assert!(run.contains(r#"id="gantt""#) && run.contains("monotonic"), "{run}");
    assert!(run.contains("&lt;script&gt;alert(x)&lt;/script&gt;"), "the check output, escaped:\n{run}");
    assert!(run.contains(r#"id="evidence-hash""#) && run.contains("chain verified"), "{run}");
    let noted = d.text(&format!("/runs/{failed}"));
    assert!(noted.contains("&lt;img src=x onerror=alert(1)&gt;"), "the note, escaped:\n{noted}");
    let alpha = d.text("/plans/alpha");
    assert!(alpha.contains(r#"<ul id="next-times"><li>"#) && alpha.contains(" 03:00:00 UTC</li>"), "{alpha}");
    assert!(alpha.contains(&format!(r#"<a href="/runs/{passed}">{passed}</a>"#)) && alpha.contains("plan-file"));
    assert_eq!(client().get(d.url("/plans/nope")).send().unwrap().status(), 404);
    assert_eq!(client().get(d.url("/runs/99999")).send().unwrap().status(), 404);
    let css = client().get(d.url("/console.css")).send().unwrap();
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}

#[test]
fn actions_need_the_session_its_csrf_token_and_the_same_origin() {
    let ws = Workspace::empty();
    let port = ws.write_daemon_config("");
    plan(&ws, "gd", "pause_before = [\"restore\"]", "5m", "true");
    let d = ws.spawn_daemon(port);
    let token = token(&ws);
    let paused = || !d.get("/api/plans")["paused"].is_null();

    // No cookie: refused, and a page without a session shows no action form.
    let r = client().post(d.url("/console/stop")).header("Origin", d.url("")).form(&[("reason", "x")]).send().unwrap();
    assert_eq!(r.status(), 401);
    assert!(!paused());
    assert!(!d.text("/").contains("Emergency stop"));
    assert_eq!(login(&d, "not-the-token", "mallory").status(), 401);
    let r = client().post(d.url("/login")).header("Origin", "http://evil.example").form(&[("token", &token)]).send();
    assert_eq!(r.unwrap().status(), 403, "a login posted from elsewhere");

    let me = logged_in(&d, &token);
    // A cross-site form post carries the cookie (were it not SameSite) and even the CSRF token: refused.
    for (k, v) in [("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site")] {
        let r = client()
            .post(d.url("/console/stop"))
            .header("Cookie", &me.cookie)
            .header(k, v)
            .form(&[("csrf", me.csrf.as_str())])
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "{k}: {v}");
    }
    let wrong = Login { cookie: me.cookie.clone(), csrf: "forged".into() };
    assert_eq!(wrong.post(&d, "/console/stop", &[]).status(), 403, "a wrong CSRF token");
    assert!(!paused(), "no refused post stopped anything");

    // A game day from the console: start, note, approve, see it pass.
    let r = me.post(&d, "/console/plans/gd/trigger", &[]);
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let id: i64 = location.strip_prefix("/runs/").unwrap().parse().unwrap();
    wait_for("the gate", || d.text(&location).contains("Waiting for approval before").then_some(()));
    let page = client().get(d.url(&location)).header("Cookie", &me.cookie).send().unwrap().text().unwrap();
    assert!(
        page.contains("Waiting for approval before <b>restore</b>") && page.contains(">Approve</button>"),
        "{page}"
    );
    assert_eq!(me.post(&d, &format!("/console/runs/{id}/note"), &[("text", "DBA on the call")]).status(), 303);
    assert_eq!(me.post(&d, &format!("/console/runs/{id}/approve"), &[("gate", "restore")]).status(), 303);
    let detail = wait_for("the run to pass", || {
        Some(d.get(&format!("/api/runs/{id}"))).filter(|r| r["summary"]["status"] != "running")
    });
    assert_eq!(detail["summary"]["status"], "passed", "{detail}");
    assert_eq!(detail["summary"]["trigger"], "console");
    assert_eq!(detail["gates"][0]["decided_by"], "console (alice)", "{detail}");
    assert_eq!(detail["notes"][0]["author"], "console (alice)", "{detail}");

    // The emergency stop and resume from the console.
    assert_eq!(me.post(&d, "/console/stop", &[("reason", "prod is down")]).status(), 303);
    assert_eq!(d.get("/api/plans")["paused"]["paused_by"], "console (alice)");
    let banner = client().get(d.url("/")).header("Cookie", &me.cookie).send().unwrap().text().unwrap();
    assert!(banner.contains("PAUSED: emergency stop by console (alice)") && banner.contains("Resume scheduler"));
    assert_eq!(me.post(&d, "/console/resume", &[]).status(), 303);
    assert!(!paused());

    // Logged out, the cookie is worth nothing.
    assert_eq!(me.post(&d, "/logout", &[]).status(), 303);
    assert_eq!(me.post(&d, "/console/stop", &[]).status(), 401);
    assert!(!paused());
    assert!(!d.log().contains(&token), "the token is in the daemon's log");
}

#[test]
fn console_reads_token_sends_readers_to_the_login_form() {
    let ws = Workspace::empty();
    let port = ws.write_daemon_config("");
    let config = fs::read_to_string(ws.join("config/drdrill.toml")).unwrap();
    ws.write_config(&config.replace("[api]\n", "[api]\nconsole_reads = \"token\"\n"));
    let d = ws.spawn_daemon(port);
    let r = client().get(d.url("/")).send().unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/login"));
    assert_eq!(client().get(d.url("/login")).send().unwrap().status(), 200);
    let me = logged_in(&d, &token(&ws));
    assert_eq!(client().get(d.url("/")).header("Cookie", &me.cookie).send().unwrap().status(), 200);
}
