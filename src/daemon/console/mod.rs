//! The web console on the daemon's listener: server-rendered pages (overview,
//! plan, run) that read without any script, every asset embedded, and the
//! actions of a game day (approve, note, abort, start, emergency stop,
//! resume) behind a login session with a CSRF token. The actions call the
//! same daemon methods as the JSON API, so both behave alike.

mod chain;
mod layout;
mod nodes;
mod overview;
mod period;
mod plan;
mod run;
pub mod session;

pub use chain::ChainCache;
pub use period::PeriodCache;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::Daemon;
use super::api::{ApiError, clean};
use crate::config::ConsoleReads;
use crate::engine::Approval;
use layout::{Viewer, e, page};
use session::Session;

type Shared = Arc<Daemon>;

const JS: &str = include_str!("console.js");

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(overview_page))
        .route("/plans/{name}", get(plan_page))
        .route("/runs/{id}", get(run_page))
        .route("/console.css", get(|| async { asset("text/css; charset=utf-8", layout::CSS) }))
        .route("/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/console/stop", post(stop))
        .route("/console/resume", post(resume))
        .route("/console/plans/{name}/trigger", post(trigger))
        .route("/console/runs/{id}/approve", post(approve))
        .route("/console/runs/{id}/note", post(note))
        .route("/console/runs/{id}/abort", post(abort))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn html(code: StatusCode, text: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The pages embed everything they use; nothing else may run or load.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            // Not `no-referrer`: with it, browsers send `Origin: null` on the
            // console's own form posts, and the same-origin check refuses them.
            (header::REFERRER_POLICY, "same-origin"),
        ],
        text,
    )
        .into_response()
}

/// An error page: what went wrong and what to do.
fn problem(code: StatusCode, viewer: &Viewer, title: &str, message: &str) -> Response {
    let body = format!(
        r#"<h1>{}</h1><p id="problem">{}</p><p><a href="/">Back to the overview</a></p>"#,
        e(title),
        e(&crate::redact::scrub(message))
    );
    html(code, page(title, viewer, &body, false))
}

fn anonymous(d: &Daemon) -> Viewer {
    Viewer { session: None, paused: d.pause() }
}

/// Who may read: anyone on loopback, or with `[api] console_reads = "token"`
/// only a signed-in viewer (the others are sent to the login form).
fn reader(d: &Daemon, headers: &HeaderMap) -> Result<Viewer, Box<Response>> {
    let session = d.sessions.of(headers);
    if session.is_none() && d.config.api.console_reads == ConsoleReads::Token {
        return Err(Box::new(Redirect::to("/login").into_response()));
    }
    Ok(Viewer { session, paused: d.pause() })
}

/// Who may act: a same-origin form post, with a live session and its CSRF token.
fn actor(d: &Daemon, headers: &HeaderMap, csrf: &str) -> Result<Session, Box<Response>> {
    let viewer = anonymous(d);
    if let Some(why) = session::cross_site(headers) {
        tracing::warn!("console: refused a cross-site form post: {why}");
        return Err(Box::new(problem(StatusCode::FORBIDDEN, &viewer, "Refused: not from this console", &why)));
    }
    let Some(s) = d.sessions.of(headers) else {
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            &viewer,
            "Log in first",
            "actions need a console session: log in at /login with the API token (the config's [api] token_file)",
        )));
    };
    if !session::csrf_ok(&s, csrf) {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            &Viewer { session: Some(s), paused: d.pause() },
            "Refused: stale form",
            "the form's CSRF token is not this session's: reload the page and try again",
        )));
    }
    Ok(s)
}

/// Runs blocking database work off the async threads; an error becomes a page.
async fn blocking<T: Send + 'static>(
    d: &Shared,
    f: impl FnOnce(&Daemon) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let d2 = d.clone();
    match tokio::task::spawn_blocking(move || f(&d2)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(err)) => {
            tracing::error!("console: {err:#}");
            Err(problem(StatusCode::INTERNAL_SERVER_ERROR, &anonymous(d), "Internal error", &format!("{err:#}")))
        }
        Err(err) => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, &anonymous(d), "Internal error", &err.to_string())),
    }
}

fn refused(viewer: &Viewer, ApiError(code, message): ApiError) -> Response {
    problem(code, viewer, "Not done", &message)
}

async fn overview_page(State(d): State<Shared>, headers: HeaderMap) -> Response {
    let viewer = match reader(&d, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    // Read before the blocking render, bounded: a slow bucket must not hold a thread.
    let fleet = match &d.fleet {
        Some(node) => Some((nodes::read(node).await, node.fleet.node.clone())),
        None => None,
    };
    match blocking(&d, move |d| overview::render(d, chrono::Utc::now(), fleet.as_ref())).await {
        Ok(body) => html(StatusCode::OK, page("Overview", &viewer, &body, false)),
        Err(r) => r,
    }
}

async fn plan_page(State(d): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let viewer = match reader(&d, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let session = viewer.session.clone();
    let wanted = name.clone();
    let body = blocking(&d, move |d| {
        let v = Viewer { session, paused: d.pause() };
        plan::render(d, &wanted, &v, chrono::Utc::now())
    })
    .await;
    match body {
        Ok(Some(body)) => html(StatusCode::OK, page(&format!("Plan {name}"), &viewer, &body, false)),
        Ok(None) => {
            problem(StatusCode::NOT_FOUND, &viewer, "No such plan", &format!("no plan named `{name}` is loaded"))
        }
        Err(r) => r,
    }
}

async fn run_page(State(d): State<Shared>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let viewer = match reader(&d, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let session = viewer.session.clone();
    let body = blocking(&d, move |d| run::render(d, id, &Viewer { session, paused: d.pause() })).await;
    match body {
        Ok(Some(body)) => html(StatusCode::OK, page(&format!("Run {id}"), &viewer, &body, true)),
        Ok(None) => problem(StatusCode::NOT_FOUND, &viewer, "No such run", &format!("no run {id}")),
        Err(r) => r,
    }
}

async fn login_page(State(d): State<Shared>, headers: HeaderMap) -> Response {
    let viewer = Viewer { session: d.sessions.of(&headers), paused: d.pause() };
    let body = r#"<h1>Log in</h1><form class="login" method="post" action="/login"><p>Actions (approve, note, abort, start, emergency stop) need the daemon's API token, from the file the config's <code>[api] token_file</code> names. It is asked for once; the browser then holds a session cookie, never the token.</p><label for="token">API token</label><input type="password" id="token" name="token" size="40" autocomplete="off" required><label for="name">Your name (recorded with what you do)</label><input type="text" id="name" name="name" size="24"><p><button type="submit" class="go">Log in</button></p></form>"#;
    html(StatusCode::OK, page("Log in", &viewer, body, false))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
}

async fn login(State(d): State<Shared>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let viewer = anonymous(&d);
    if let Some(why) = session::cross_site(&headers) {
        return problem(StatusCode::FORBIDDEN, &viewer, "Refused: not from this console", &why);
    }
    if !d.token_matches(f.token.trim()) {
        tracing::warn!("console: a login with a wrong token was refused");
        return problem(
            StatusCode::UNAUTHORIZED,
            &viewer,
            "Wrong token",
            "that is not the daemon's API token: copy it from the config's [api] token_file",
        );
    }
    let name = match clean("name", Some(f.name)) {
        Ok(n) => n.map(|n| n.replace('\n', " ")).unwrap_or_else(|| "token holder".into()),
        Err(err) => return refused(&viewer, err),
    };
    match d.sessions.create(&name) {
        Ok(s) => {
            tracing::info!("console: {} logged in", s.who);
            ([(header::SET_COOKIE, session::set_cookie(&s))], Redirect::to("/")).into_response()
        }
        Err(err) => problem(StatusCode::INTERNAL_SERVER_ERROR, &viewer, "Cannot log in", &format!("{err:#}")),
    }
}

#[derive(Deserialize)]
struct Plain {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(d): State<Shared>, headers: HeaderMap, Form(f): Form<Plain>) -> Response {
    let s = match actor(&d, &headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    d.sessions.end(&s.id);
    ([(header::SET_COOKIE, session::clear_cookie())], Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
struct Reasoned {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn stop(State(d): State<Shared>, headers: HeaderMap, Form(f): Form<Reasoned>) -> Response {
    let s = match actor(&d, &headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let viewer = Viewer { session: Some(s.clone()), paused: d.pause() };
    let reason = match clean("reason", Some(f.reason)) {
        Ok(r) => r.unwrap_or_else(|| "no reason given".into()),
        Err(err) => return refused(&viewer, err),
    };
    match blocking(&d, move |d| d.emergency_stop(&s.who, &reason)).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(r) => r,
    }
}

async fn resume(State(d): State<Shared>, headers: HeaderMap, Form(f): Form<Plain>) -> Response {
    let s = match actor(&d, &headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match blocking(&d, move |d| d.resume(&s.who)).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(r) => r,
    }
}

async fn trigger(
    State(d): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<Plain>,
) -> Response {
    let s = match actor(&d, &headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let viewer = Viewer { session: Some(s.clone()), paused: d.pause() };
    let Some(plan) = d.plans().plans.get(&name).map(|e| e.plan.clone()) else {
        return problem(StatusCode::NOT_FOUND, &viewer, "No such plan", &format!("no plan named `{name}` is loaded"));
    };
    let started = match d.start(plan, super::CONSOLE_TRIGGER) {
        Ok(rx) => rx,
        Err(why) => {
            return problem(StatusCode::CONFLICT, &viewer, "Not started", &format!("plan `{name}` not started: {why}"));
        }
    };
    tracing::info!(plan = %name, "game-day run requested in the console by {}", s.who);
    match started.await {
        Ok(Ok(id)) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Ok(Err(super::StartError::Guard(why) | super::StartError::NotStarted(why))) => {
            problem(StatusCode::FORBIDDEN, &viewer, "Not started", &why)
        }
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &viewer,
            "Not started",
            "the daemon stopped before the run could start",
        ),
    }
}

#[derive(Deserialize)]
struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    gate: String,
    #[serde(default)]
    note: String,
}

async fn approve(
    State(d): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<ApproveForm>,
) -> Response {
    let s = match actor(&d, &headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let viewer = Viewer { session: Some(s.clone()), paused: d.pause() };
    let (gate, note) = match (clean("gate", Some(f.gate)), clean("note", Some(f.note))) {
        (Ok(g), Ok(n)) => (g, n),
        (Err(err), _) | (_, Err(err)) => return refused(&viewer, err),
    };
    match d.gates.approve(id, gate.as_deref(), Approval { by: s.who.clone(), note }) {
        Ok(p) => {
            tracing::info!(run = id, "gate before {} approved by {}", p.gate, s.who);
            Redirect::to(&format!("/runs/{id}")).into_response()
        }
        Err(err) => problem(StatusCode::CONFLICT, &viewer, "Not approved", &err.to_string()),
    }
}

#[derive(Deserialize)]
struct NoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
}

async fn note(State(d): State<Shared>, headers: HeaderMap, Path(id): Path<i64>, Form(f): Form<NoteForm>) -> Response {
    let s = match actor(&d, &headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let viewer = Viewer { session: Some(s.clone()), paused: d.pause() };
    let text = match clean("text", Some(f.text)) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return problem(StatusCode::BAD_REQUEST, &viewer, "Empty note", "write what you saw, then press Note");
        }
        Err(err) => return refused(&viewer, err),
    };
    let note = crate::db::RunNote { at: chrono::Utc::now(), author: s.who.clone(), text };
    match blocking(&d, move |d| d.engine.db.add_note(id, &note)).await {
        Ok(()) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Err(r) => r,
    }
}

async fn abort(State(d): State<Shared>, headers: HeaderMap, Path(id): Path<i64>, Form(f): Form<Reasoned>) -> Response {
    let s = match actor(&d, &headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let viewer = Viewer { session: Some(s.clone()), paused: d.pause() };
    let reason = match clean("reason", Some(f.reason)) {
        Ok(r) => r,
        Err(err) => return refused(&viewer, err),
    };
    let why = format!("requested in the console by {}{}", s.who, reason.map(|r| format!(": {r}")).unwrap_or_default());
    match blocking(&d, move |d| Ok(d.abort(id, &why))).await {
        Ok(Ok(_)) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Ok(Err(err)) => problem(StatusCode::CONFLICT, &viewer, "Not aborted", &err.to_string()),
        Err(r) => r,
    }
}
