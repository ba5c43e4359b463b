//! `drdrill status`: what the daemon is doing, from its API.

use drdrill::config::Config;
use serde_json::Value;

use super::client::Client;
use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub async fn cmd_status(config: &Config, json: bool) -> anyhow::Result<u8> {
    let client = Client::new(config)?;
    let (health, plans) = match (client.get("/healthz").await, client.get("/api/plans").await) {
        (Ok(h), Ok(p)) => (h, p),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "health": health, "plans": plans }))?);
        return Ok(EXIT_PASSED);
    }
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    println!("daemon {} ({}): {}", s(&health, "status"), s(&health, "version"), s(&health, "detail"));
    println!("schedules in {}", s(&plans, "timezone"));
    println!("{:<24} {:<16} {:<26} {:<10} now", "PLAN", "SCHEDULE", "NEXT", "LAST");
    for p in plans.get("plans").and_then(Value::as_array).into_iter().flatten() {
        let last = p.get("last_run").map(|r| s(r, "status")).unwrap_or_else(|| "-".into());
        let now = match p.get("active").filter(|a| !a.is_null()) {
            Some(a) => match a.get("run_id").and_then(Value::as_i64) {
                Some(id) => match a.get("last_phase").and_then(Value::as_str) {
                    Some(p) if p.starts_with("waiting") => format!("run {id}, {p}"),
                    p => format!("run {id}, after {}", p.unwrap_or("start")),
                },
                None => "queued".into(),
            },
            None => String::new(),
        };
        println!("{:<24} {:<16} {:<26} {:<10} {now}", s(p, "name"), s(p, "schedule"), s(p, "next_due"), last);
    }
    for p in plans.get("plans").and_then(Value::as_array).into_iter().flatten() {
        if let Some(line) = freshness_line(p) {
            println!("{line}");
        }
        if let Some(line) = heartbeat_line(p) {
            println!("{line}");
        }
    }
    // Older daemons have no /api/gates: then there is simply nothing to list.
    for g in client.get("/api/gates").await.ok().as_ref().and_then(Value::as_array).into_iter().flatten() {
        println!(
            "run {} ({}) waits for approval before {} since {}: {}",
            g.get("run_id").and_then(Value::as_i64).unwrap_or_default(),
            s(g, "plan"),
            s(g, "gate"),
            s(g, "since"),
            s(g, "approve")
        );
    }
    for p in plans.get("plans").and_then(Value::as_array).into_iter().flatten() {
        let due = p.get("due").cloned().unwrap_or(Value::Null);
        let interval = due
            .get("max_interval_ms")
            .and_then(Value::as_u64)
            .map(|ms| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string());
        match due.get("state").and_then(Value::as_str) {
            Some("overdue") => println!(
                "OVERDUE: {} has had no passed run for over {} (since {}; last passed: {})",
                s(p, "name"),
                interval.unwrap_or_default(),
                s(&due, "overdue_since"),
                due.get("last_passed").and_then(Value::as_str).unwrap_or("never")
            ),
            Some("untested") => println!(
                "untested: {} has never run (first loaded {}){}",
                s(p, "name"),
                s(&due, "first_loaded"),
                interval.map(|i| format!("; overdue {i} after that without a passed run")).unwrap_or_default()
            ),
            _ => {}
        }
    }
    for q in plans.get("quarantine").and_then(Value::as_array).into_iter().flatten() {
        println!(
            "ATTENTION: run {} left live data in {}; read {} to put it back",
            q.get("run_id").and_then(Value::as_i64).unwrap_or_default(),
            s(q, "folder"),
            s(q, "index")
        );
    }
    for e in plans.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let kept = e.get("kept").and_then(Value::as_str).map(|k| format!(" (previous `{k}` kept)")).unwrap_or_default();
        println!("broken plan {}{kept}:\n  {}", s(e, "file"), s(e, "error").replace('\n', "\n  "));
    }
    Ok(EXIT_PASSED)
}

/// A time from the API to the second, for reading.
fn at(v: Option<&Value>) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(v?.as_str()?).ok()?;
    Some(t.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// An error on one line.
fn one_line(e: &str) -> String {
    e.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ms_text(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(ms) => drdrill::duration::format_duration(std::time::Duration::from_millis(ms as u64)),
        None => "-".into(),
    }
}

/// `backup of PLAN: ...` for a plan whose backups the daemon watches.
fn freshness_line(p: &Value) -> Option<String> {
    let f = p.get("freshness").filter(|f| !f.is_null())?;
    let name = p.get("name").and_then(Value::as_str).unwrap_or("-");
    let target = ms_text(f.get("rpo_target_ms"));
    let error =
        f.get("error").and_then(Value::as_str).map(|e| format!("; cannot list: {}", one_line(e))).unwrap_or_default();
    let newest = match (f.get("newest_id").and_then(Value::as_str), at(f.get("newest_at"))) {
        (Some(id), Some(t)) => format!("newest {id} from {t}, {} old", ms_text(f.get("age_ms"))),
        _ if f.get("checked_at").is_none_or(Value::is_null) => "not looked at yet".into(),
        _ if error.is_empty() => "no backup".into(),
        _ => "newest unknown".into(),
    };
    let verdict = if f.get("stale").and_then(Value::as_bool) == Some(true) {
        let since = at(f.get("stale_since")).unwrap_or_else(|| "-".into());
        format!("STALE since {since} (older than the RPO target {target})")
    } else {
        format!("fresh (RPO target {target})")
    };
    Some(format!("backup of {name}: {verdict}: {newest}{error}"))
}

/// `heartbeat of PLAN: ...` for a plan with a heartbeat probe.
fn heartbeat_line(p: &Value) -> Option<String> {
    let h = p.get("heartbeat").filter(|h| !h.is_null())?;
    let name = p.get("name").and_then(Value::as_str).unwrap_or("-");
    let s = |k: &str| h.get(k).and_then(Value::as_str);
    let last = at(h.get("last_marker")).map(|t| format!("last marker {t}")).unwrap_or_else(|| "no marker yet".into());
    let written = h.get("written").and_then(Value::as_u64).unwrap_or(0);
    let mut line = format!(
        "heartbeat of {name}: every {} into {}; {last} ({written} written)",
        ms_text(h.get("interval_ms")),
        s("target").unwrap_or("-")
    );
    if let Some(e) = s("last_error") {
        let since = at(h.get("failing_since")).unwrap_or_else(|| "-".into());
        line += &format!("; FAILING since {since}: {}", one_line(e));
    }
    // A write longer than the interval is one that hangs.
    let interval = chrono::Duration::milliseconds(h.get("interval_ms").and_then(Value::as_i64).unwrap_or(0));
    if let Some(w) = s("writing_since")
        && chrono::DateTime::parse_from_rfc3339(w).is_ok_and(|t| chrono::Utc::now() - t.to_utc() > interval)
    {
        line += &format!("; a write has been under way since {}", at(h.get("writing_since")).unwrap_or_default());
    }
    Some(line)
}
