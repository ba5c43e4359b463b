//! `drdrill validate [PATH...]`: every problem as file:line:col with its fix,
//! and the paths each plan resolves to (relative paths in a plan are under
//! the folder that holds the plan's folder, whatever the working directory).

use std::path::{Path, PathBuf};

use drdrill::config::Config;
use drdrill::diag::Diagnostic;
use drdrill::failure::Target;
use drdrill::plan::{self, Plan};
use serde::Serialize;

use super::{EXIT_BAD_INPUT, EXIT_PASSED};

/// One plan file's verdict; the `--json` form is documented in docs/json.md.
#[derive(Serialize)]
struct Checked {
    file: String,
    name: Option<String>,
    ok: bool,
    problems: Vec<Diagnostic>,
    warnings: Vec<String>,
    /// The folder relative paths in the plan resolve against.
    base: String,
    /// The source as it will be read, its paths resolved (`sqlite /srv/app/orders.db`).
    source: Option<String>,
    /// The live paths the plan names, as resolved.
    paths: Vec<NamedPath>,
    schedule: Option<ScheduleView>,
    max_interval_ms: Option<u64>,
    /// What aborts a run of it: each `[[safeguard]]`, with its cadence.
    safeguards: Vec<SafeguardView>,
}

#[derive(Serialize)]
struct SafeguardView {
    name: String,
    kind: &'static str,
    probe: String,
    interval_ms: u64,
    timeout_ms: u64,
    /// The text line's `every 5s, each within 2s`, as the run's own records say it.
    #[serde(skip)]
    cadence: String,
}

#[derive(Serialize)]
struct NamedPath {
    what: String,
    path: String,
}

#[derive(Serialize)]
struct ScheduleView {
    text: String,
    timezone: String,
    next: Vec<String>,
}

pub fn cmd_validate(config: &Config, paths: Vec<PathBuf>, json: bool) -> anyhow::Result<u8> {
    let paths = if paths.is_empty() { plan::plan_files(&config.plans)? } else { paths };
    if paths.is_empty() {
        let msg = format!("no plans found in {}", config.plans.display());
        return Ok(super::fail(json, EXIT_BAD_INPUT, &msg, Some("put plan files (*.toml) there, or set `plans`")));
    }
    let mut names = std::collections::HashMap::<String, PathBuf>::new();
    let checked: Vec<Checked> = paths.iter().map(|p| check(config, p, &mut names)).collect();
    let bad = checked.iter().filter(|c| !c.ok).count();
    if json {
        super::print_json(&serde_json::json!({ "ok": bad == 0, "bad": bad, "plans": checked }))?;
    } else {
        for c in &checked {
            print_text(c);
        }
        if bad > 0 {
            println!("{bad} of {} plans have problems", paths.len());
        }
    }
    Ok(if bad > 0 { EXIT_BAD_INPUT } else { EXIT_PASSED })
}

fn check(config: &Config, path: &Path, names: &mut std::collections::HashMap<String, PathBuf>) -> Checked {
    let mut c = Checked {
        file: path.display().to_string(),
        name: None,
        ok: false,
        problems: Vec::new(),
        warnings: Vec::new(),
        base: drdrill::paths::plan_base(path).display().to_string(),
        source: None,
        paths: Vec::new(),
        schedule: None,
        max_interval_ms: None,
        safeguards: Vec::new(),
    };
    let p = match Plan::load(path, config) {
        Ok(p) => p,
        Err(d) => {
            c.problems = d.0;
            return c;
        }
    };
    c.name = Some(p.name.clone());
    if let Some(other) = names.insert(p.name.clone(), path.to_path_buf()) {
        c.problems.push(Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("plan name `{}` is also used by {}", p.name, other.display()),
            fix: Some("set a unique `name`".into()),
        });
        return c;
    }
    c.ok = true;
    c.source = Some(p.source.describe());
    if let Some(live) = p.source.live_path() {
        c.paths.push(NamedPath { what: format!("source ({})", p.source.kind()), path: live.display().to_string() });
        // Warnings, not errors: the plan may be meant for another host.
        if std::fs::symlink_metadata(live).is_err() {
            c.warnings.push(format!(
                "source path {} does not exist on this host; a run here would fail at prepare",
                live.display()
            ));
        }
    }
    for (i, f) in p.failures.iter().enumerate() {
        for t in f.targets() {
            if let Target::Path(path) | Target::Pidfile(path) = t {
                c.paths.push(NamedPath {
                    what: format!("failure #{} ({})", i + 1, f.kind()),
                    path: path.display().to_string(),
                });
            }
        }
    }
    c.safeguards = p
        .safeguards
        .iter()
        .map(|s| SafeguardView {
            name: s.name.clone(),
            kind: s.kind(),
            probe: s.describe(),
            interval_ms: s.interval.as_millis() as u64,
            timeout_ms: s.timeout.as_millis() as u64,
            cadence: s.cadence(),
        })
        .collect();
    if let Some(halt) = config.safety.halt() {
        c.warnings.push(format!("with this config, runs are {}", halt.refusal()));
    }
    // The allowlist is the host's config, too.
    if let Err(refused) = p.guard_check(&drdrill::failure::Guard::new(config)) {
        c.warnings.push(format!("with this config, {refused}"));
    }
    if let Some(s) = &p.schedule {
        let tz = config.daemon.timezone.0;
        let next =
            s.next_after_in(chrono::Utc::now(), tz, 3).iter().map(|t| t.with_timezone(&tz).to_rfc3339()).collect();
        let zone = if s.fires_on_either_day() {
            format!("{tz}, on either day field (crontab's rule)")
        } else {
            tz.to_string()
        };
        c.schedule = Some(ScheduleView { text: s.text.clone(), timezone: zone, next });
    }
    c.max_interval_ms = p.max_interval_in(config).map(|d| d.as_millis() as u64);
    c
}

fn print_text(c: &Checked) {
    if !c.ok {
        for d in &c.problems {
            println!("{d}");
        }
        return;
    }
    println!("ok {} ({})", c.file, c.name.as_deref().unwrap_or(""));
    if let Some(s) = &c.source {
        println!("   source {s}");
    }
    for p in c.paths.iter().filter(|p| p.what.starts_with("failure")) {
        println!("   {} {}", p.what, p.path);
    }
    for s in &c.safeguards {
        println!("   safeguard {} ({}): {}; {}; a failure aborts the run", s.name, s.kind, s.probe, s.cadence);
    }
    for w in &c.warnings {
        println!("   warning: {}", w.replace('\n', "\n   "));
    }
    if let Some(s) = &c.schedule {
        println!("   schedule {:?} ({}) next: {}", s.text, s.timezone, s.next.join(", "));
    }
    if let Some(ms) = c.max_interval_ms {
        let interval = humantime::format_duration(std::time::Duration::from_millis(ms));
        println!("   overdue after {interval} without a passed run");
    }
}
