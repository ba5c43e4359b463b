//! The HTTP API on loopback. Reads are open; every mutating call needs
//! `Authorization: Bearer <token>` (compared in constant time). Responses carry
//! what the results database holds, never a secret. [`serve`] bounds how many
//! connections are open and how long a client may take to send its request.

mod listen;
pub use listen::{HEADER_TIMEOUT, max_connections, serve};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::plans::PlanError;
use super::{AbortError, ActiveRun, Daemon, Declined, RunEvent, StartError};
use crate::db::RunSummary;
use crate::engine::{Approval, GateError};
use crate::quarantine::Leftover;

type Shared = Arc<Daemon>;

pub fn router(daemon: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/plans", get(plans))
        .route("/api/plans/{name}/runs", post(trigger))
        .route("/api/runs", get(runs))
        .route("/api/runs/{id}", get(run))
        .route("/api/runs/{id}/events", get(events))
        .route("/api/runs/{id}/approve", post(approve))
        .route("/api/runs/{id}/abort", post(abort))
        .route("/api/gates", get(gates))
        .route("/api/reload", post(reload))
        .route("/api/stop", post(stop))
        .route("/api/resume", post(resume))
        .merge(super::console::routes())
        .with_state(daemon)
}

pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Errors can quote a store's URL or a command's output.
        let mut r = (self.0, Json(json!({ "error": crate::redact::scrub(&self.1) }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    tracing::error!("API: {e:#}");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

fn authorize(daemon: &Daemon, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if daemon.token_matches(t) => Ok(()),
        Some(_) => Err(ApiError(StatusCode::UNAUTHORIZED, "wrong bearer token".into())),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this call needs `Authorization: Bearer <token>`, with the token from the config's [api] token_file".into(),
        )),
    }
}

/// Quarantine folders that crashed runs left holding live data.
pub(crate) fn leftovers(d: &Daemon) -> Vec<Leftover> {
    crate::quarantine::find(d.engine.scratch.path(), |id| d.engine.db.is_running(id))
}

async fn healthz(State(d): State<Shared>) -> impl IntoResponse {
    let status = if d.is_stopping() { "stopping" } else { "ok" };
    let quarantine = leftovers(&d);
    let mut detail = d.status_line();
    for q in &quarantine {
        detail += &format!("; ATTENTION: {}", q.message());
    }
    Json(json!({
        "status": status, "version": crate::VERSION, "detail": detail, "quarantine": quarantine, "paused": d.pause(),
    }))
}

async fn metrics(State(d): State<Shared>) -> Result<Response, ApiError> {
    let text = metrics_text(d).await?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

async fn metrics_text(d: Shared) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || super::metrics::render(&d))
        .await
        .map_err(|e| internal(e.into()))?
        .map_err(internal)
}

#[derive(Serialize)]
pub struct PlanView {
    pub name: String,
    pub file: String,
    pub description: String,
    pub schedule: Option<String>,
    pub missed: Option<&'static str>,
    pub jitter_ms: u64,
    pub next_due: Option<String>,
    pub rto_target_ms: f64,
    pub rpo_target_ms: f64,
    pub last_run: Option<RunSummary>,
    pub active: Option<ActiveRun>,
    /// Overdue, untested or current, against its `max_interval`.
    pub due: super::overdue::Standing,
    /// With `[probe] kind = "heartbeat"`: the markers the daemon writes.
    pub heartbeat: Option<super::heartbeat::BeatView>,
    /// With `mode = "existing"` or `"latest"`: the newest backup's age, `stale`.
    pub freshness: Option<FreshnessView>,
}

#[derive(Serialize)]
pub struct FreshnessView {
    #[serde(flatten)]
    pub seen: super::freshness::FreshView,
    /// The newest backup's age now.
    pub age_ms: Option<u64>,
}

#[derive(Serialize)]
pub struct PlansView {
    pub plans: Vec<PlanView>,
    /// Plan files that did not load at the last (re)load.
    pub errors: Vec<PlanError>,
    /// Live data left in quarantine by runs whose rollback never ran.
    pub quarantine: Vec<Leftover>,
    pub timezone: String,
    pub stopping: bool,
    /// The emergency stop in force: the scheduler starts nothing until resumed.
    pub paused: Option<crate::db::pause::Pause>,
}

fn plans_view(d: &Daemon) -> anyhow::Result<PlansView> {
    let entries: Vec<_> = d.plans().plans.values().cloned().collect();
    let errors = d.plans().errors.clone();
    let active = d.active.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut plans = Vec::new();
    for e in entries {
        let p = &e.plan;
        plans.push(PlanView {
            name: p.name.clone(),
            file: p.file.display().to_string(),
            description: p.description.clone(),
            schedule: p.schedule.as_ref().map(|s| s.text.clone()),
            missed: p.schedule.as_ref().map(|_| p.missed.as_str()),
            jitter_ms: p.jitter.as_millis() as u64,
            next_due: e.next.map(|n| n.at.to_rfc3339()),
            rto_target_ms: p.targets.rto.0.as_secs_f64() * 1000.0,
            rpo_target_ms: p.targets.rpo.0.as_secs_f64() * 1000.0,
            last_run: d.engine.db.runs(Some(&p.name), 1)?.into_iter().next(),
            active: active.get(&p.name).cloned(),
            due: super::overdue::standing(d, p, chrono::Utc::now())?,
            heartbeat: d.heartbeats.view(&p.name),
            freshness: d
                .freshness
                .view(&p.name)
                .map(|seen| FreshnessView { age_ms: seen.age(chrono::Utc::now()).map(|a| a.as_millis() as u64), seen }),
        });
    }
    Ok(PlansView {
        plans,
        errors,
        quarantine: leftovers(d),
        timezone: d.config.daemon.timezone.0.to_string(),
        stopping: d.is_stopping(),
        paused: d.pause(),
    })
}

async fn plans(State(d): State<Shared>) -> Result<Json<PlansView>, ApiError> {
    let view = tokio::task::spawn_blocking(move || plans_view(&d)).await.map_err(|e| internal(e.into()))?;
    Ok(Json(view.map_err(internal)?))
}

#[derive(Deserialize)]
struct RunsQuery {
    plan: Option<String>,
    limit: Option<usize>,
}

async fn runs(State(d): State<Shared>, Query(q): Query<RunsQuery>) -> Result<Json<Vec<RunSummary>>, ApiError> {
    let limit = q.limit.unwrap_or(20).min(1000);
    let rows = tokio::task::spawn_blocking(move || d.engine.db.runs(q.plan.as_deref(), limit))
        .await
        .map_err(|e| internal(e.into()))?
        .map_err(internal)?;
    Ok(Json(rows))
}

async fn run(State(d): State<Shared>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let detail = tokio::task::spawn_blocking(move || d.engine.db.run_detail(id))
        .await
        .map_err(|e| internal(e.into()))?
        .map_err(internal)?;
    match detail {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no run {id}"))),
    }
}

/// Starts a game-day run now. Answers once the run is recorded (after waiting
/// for a concurrency slot if all are taken) with its id.
async fn trigger(State(d): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> Result<Response, ApiError> {
    authorize(&d, &headers)?;
    let plan = d.plans().plans.get(&name).map(|e| e.plan.clone());
    let Some(plan) = plan else {
        let known: Vec<String> = d.plans().plans.keys().cloned().collect();
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no plan named `{name}`; loaded plans: {}",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            ),
        ));
    };
    let started = match d.start(plan, "api") {
        Ok(rx) => rx,
        Err(Declined::Stopping) => {
            return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, Declined::Stopping.to_string()));
        }
        Err(busy) => return Err(ApiError(StatusCode::CONFLICT, format!("plan `{name}` not started: {busy}"))),
    };
    tracing::info!(plan = %name, "game-day run requested through the API");
    match started.await {
        Ok(Ok(run_id)) => Ok((StatusCode::ACCEPTED, Json(json!({ "plan": name, "run_id": run_id }))).into_response()),
        // The config forbids it: the caller's to fix, not a server fault.
        Ok(Err(StartError::Guard(why))) => Err(ApiError(StatusCode::FORBIDDEN, why)),
        Ok(Err(StartError::NotStarted(why))) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, why)),
        Err(_) => {
            Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, "the daemon stopped before the run could start".into()))
        }
    }
}

#[derive(Serialize)]
struct GateView {
    run_id: i64,
    plan: Option<String>,
    gate: String,
    since: String,
    /// The command that lets it through.
    approve: String,
}

/// `GET /api/gates`: runs waiting for approval, oldest first.
async fn gates(State(d): State<Shared>) -> Json<Vec<GateView>> {
    let views = d
        .gates
        .pending()
        .into_iter()
        .map(|p| GateView {
            plan: d.plan_of(p.run_id),
            approve: format!("drdrill approve {} --gate {}", p.run_id, p.gate),
            run_id: p.run_id,
            gate: p.gate,
            since: p.since.to_rfc3339(),
        })
        .collect();
    Json(views)
}

/// Longest `by`, `note` or `reason` accepted, so a client cannot bloat the record.
const MAX_TEXT: usize = 2000;

/// An optional JSON body: no body (or an empty one) means all defaults.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("the body is not the expected JSON object: {e}")))
}

/// Trims `s`, refuses control characters (they would forge lines in logs and
/// reports) and overlong text; `None` when empty.
pub(crate) fn clean(field: &str, s: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(s) = s else { return Ok(None) };
    let s = s.trim();
    if s.chars().any(|c| c.is_control() && c != '\n') || s.len() > MAX_TEXT {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{field}` must be at most {MAX_TEXT} bytes of text without control characters"),
        ));
    }
    Ok((!s.is_empty()).then(|| s.to_string()))
}

/// Who made an API call, as records name them: `api (<by>)`.
fn caller(by: Option<String>) -> Result<String, ApiError> {
    let by = clean("by", by)?.map(|s| s.replace('\n', " "));
    Ok(format!("api ({})", by.as_deref().unwrap_or("token holder")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// Only approve if the run waits at this gate.
    gate: Option<String>,
    note: Option<String>,
    by: Option<String>,
}

/// `POST /api/runs/{id}/approve`: lets a run waiting at a gate go on.
async fn approve(
    State(d): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&d, &headers)?;
    let b: ApproveBody = optional_body(&body)?;
    let note = clean("note", b.note)?;
    let gate = clean("gate", b.gate)?;
    let approval = Approval { by: caller(b.by)?, note };
    match d.gates.approve(id, gate.as_deref(), approval.clone()) {
        Ok(p) => {
            tracing::info!(run = id, "gate before {} approved by {}", p.gate, approval.by);
            Ok(Json(json!({ "run_id": id, "gate": p.gate, "approved_by": approval.by, "note": approval.note }))
                .into_response())
        }
        Err(e @ GateError::NotWaiting(_)) => {
            Err(ApiError(StatusCode::CONFLICT, format!("{e}; GET /api/gates lists the runs that are")))
        }
        Err(e @ GateError::OtherGate { .. }) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AbortBody {
    reason: Option<String>,
    by: Option<String>,
}

/// `POST /api/runs/{id}/abort`: aborts an active run; its rollbacks and cleanup
/// run and it is recorded `aborted` with the reason. Answers once requested.
async fn abort(
    State(d): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&d, &headers)?;
    let b: AbortBody = optional_body(&body)?;
    let by = clean("by", b.by)?.map(|s| s.replace('\n', " "));
    let reason = clean("reason", b.reason)?;
    let why = format!(
        "requested through the API by {}{}",
        by.as_deref().unwrap_or("the token holder"),
        reason.map(|r| format!(": {r}")).unwrap_or_default()
    );
    let outcome = {
        let d = d.clone();
        let why = why.clone();
        tokio::task::spawn_blocking(move || d.abort(id, &why)).await.map_err(|e| internal(e.into()))?
    };
    match outcome {
        Ok(a) => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "run_id": id, "plan": a.plan, "reason": why }))).into_response())
        }
        Err(e @ AbortError::NoSuchRun(_)) => Err(ApiError(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ AbortError::NotRunning { .. }) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StopBody {
    reason: Option<String>,
    by: Option<String>,
}

/// `POST /api/stop`: the emergency stop. Pauses the scheduler (recorded, kept
/// across restarts) and aborts every active run with its rollbacks; answers
/// once the aborts are requested.
async fn stop(State(d): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    authorize(&d, &headers)?;
    let b: StopBody = optional_body(&body)?;
    let by = caller(b.by)?;
    let reason = clean("reason", b.reason)?.unwrap_or_else(|| "no reason given".into());
    let stopped = tokio::task::spawn_blocking(move || d.emergency_stop(&by, &reason))
        .await
        .map_err(|e| internal(e.into()))?
        .map_err(internal)?;
    Ok((StatusCode::ACCEPTED, Json(stopped)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    by: Option<String>,
}

/// `POST /api/resume`: lifts the emergency stop; 409 when nothing is paused.
async fn resume(State(d): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    authorize(&d, &headers)?;
    let b: ResumeBody = optional_body(&body)?;
    let by = caller(b.by)?;
    let resumed =
        tokio::task::spawn_blocking(move || d.resume(&by)).await.map_err(|e| internal(e.into()))?.map_err(internal)?;
    match resumed {
        Some(p) => Ok(Json(json!({ "resumed": p })).into_response()),
        None => Err(ApiError(StatusCode::CONFLICT, "the scheduler is not paused; nothing to resume".into())),
    }
}

async fn reload(State(d): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&d, &headers)?;
    let set = tokio::task::spawn_blocking(move || d.reload()).await.map_err(|e| internal(e.into()))?;
    let plans: Vec<&String> = set.plans.keys().collect();
    Ok(Json(json!({ "plans": plans, "errors": set.errors })).into_response())
}

/// How long clients wait for an answer; starting a run may wait for a slot.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3600);

/// `GET /api/runs/{id}/events`: the run's phases as they end, one JSON object per
/// line (`{"phase": ...}`), then `{"result": <run summary>}` and the end of the
/// body. Phases already recorded come first, so a late follower misses nothing.
async fn events(State(d): State<Shared>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    // Subscribed before reading the record, so nothing falls between the two.
    let mut rx = d.events.subscribe();
    let detail = {
        let d = d.clone();
        tokio::task::spawn_blocking(move || d.engine.db.run_detail(id)).await.map_err(|e| internal(e.into()))?
    }
    .map_err(internal)?
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let (tx, body_rx) = tokio::sync::mpsc::channel::<String>(64);
    tokio::spawn(async move {
        let line = |v: serde_json::Value| format!("{v}\n");
        let mut sent = 0;
        let mut shown_gate: Option<String> = None;
        let mut detail = detail;
        loop {
            for p in detail.phases.iter().skip(sent) {
                if tx.send(line(json!({ "phase": p }))).await.is_err() {
                    return;
                }
            }
            sent = sent.max(detail.phases.len());
            if detail.summary.status != "running" {
                let _ = tx.send(line(json!({ "result": detail.summary }))).await;
                return;
            }
            // A gate opened before this follower subscribed is told too.
            if let Some(p) = d.gates.pending().into_iter().find(|p| p.run_id == id)
                && shown_gate.as_ref() != Some(&p.gate)
            {
                shown_gate = Some(p.gate.clone());
                if tx.send(line(json!({ "gate": { "gate": p.gate, "since": p.since.to_rfc3339() } }))).await.is_err() {
                    return;
                }
            }
            // Live phases until the run finishes; on a lag or the end, re-read the record.
            loop {
                match rx.recv().await {
                    Ok(RunEvent::Phase { run_id, seq, phase }) if run_id == id => {
                        if seq >= sent {
                            if tx.send(line(json!({ "phase": phase }))).await.is_err() {
                                return;
                            }
                            sent = seq + 1;
                        }
                    }
                    Ok(RunEvent::Gate { run_id, gate, since }) if run_id == id => {
                        if shown_gate.as_ref() != Some(&gate) {
                            let g = json!({ "gate": { "gate": gate, "since": since.to_rfc3339() } });
                            shown_gate = Some(gate);
                            if tx.send(line(g)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(RunEvent::Finished { run_id }) if run_id == id => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
            let d = d.clone();
            detail = match tokio::task::spawn_blocking(move || d.engine.db.run_detail(id)).await {
                Ok(Ok(Some(r))) => r,
                _ => return,
            };
            if detail.summary.status == "running" {
                // Lagged while still running: keep following.
                continue;
            }
        }
    });
    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|l| (Ok::<_, std::convert::Infallible>(l), rx))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(stream)).into_response())
}
