//! The `drdrill` command: a thin layer over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use drdrill::config::Config;
use drdrill::db::PhaseRecord;
use drdrill::duration::format_duration;
use drdrill::engine::report::fmt_ms;
use drdrill::engine::{Engine, Observer, Quiet, RunOptions};
use drdrill::plan::{self, Plan};

/// Exit codes shared by `run` and, later, `trigger`.
const EXIT_PASSED: u8 = 0;
const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(name = "drdrill", version, about = "Disaster-recovery drills: prove backups restore, measure RTO and RPO")]
struct Cli {
    /// Config file (default: config/drdrill.toml if present, else built-in defaults under ./var)
    #[arg(long, global = true, env = "DRDRILL_CONFIG")]
    config: Option<PathBuf>,
    /// More log output (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one drill now: exit 0 passed, 1 failed, 2 bad input
    Run {
        /// Plan name (in the plans folder) or path to a plan file
        plan: String,
        /// Print the timeline and what would be touched, and do nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Check plan files; print each problem as file:line:col with the fix
    Validate {
        /// Plan files (default: every plan in the plans folder)
        paths: Vec<PathBuf>,
    },
    /// List past runs, newest first
    History {
        /// Only this plan
        plan: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show one run: timeline, measurements, checks
    Show {
        run_id: i64,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let config = Arc::new(Config::load(cli.config.as_deref())?);
    match cli.command {
        Command::Run { plan, dry_run, json } => cmd_run(config, &plan, dry_run, json).await,
        Command::Validate { paths } => cmd_validate(&config, paths),
        Command::History { plan, limit, json } => cmd_history(config, plan.as_deref(), limit, json),
        Command::Show { run_id, json } => cmd_show(config, run_id, json),
    }
}

/// Prints each phase as it ends, for the person watching.
struct LivePhases;

impl Observer for LivePhases {
    fn run_started(&self, run_id: i64, plan: &Plan) {
        eprintln!("drill {} (run {run_id}) started", plan.name);
    }

    fn phase(&self, _run_id: i64, p: &PhaseRecord) {
        let mark = if p.status == "ok" { "✓" } else { "✗" };
        eprintln!("  {mark} {:<9} {:>9}  {}", p.name, fmt_ms(Some(p.duration_ms)), p.detail);
    }
}

fn load_plan(arg: &str, config: &Config) -> Result<Plan, u8> {
    let path = match plan::resolve(arg, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Err(EXIT_BAD_INPUT);
        }
    };
    Plan::load(&path, config).map_err(|d| {
        eprintln!("{d}");
        EXIT_BAD_INPUT
    })
}

async fn cmd_run(config: Arc<Config>, arg: &str, dry_run: bool, json: bool) -> anyhow::Result<u8> {
    let plan = match load_plan(arg, &config) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if dry_run {
        print!("{}", dry_run_text(&plan, &config));
        return Ok(EXIT_PASSED);
    }
    let engine = Engine::open(config)?;
    let observer: &dyn Observer = if json { &Quiet } else { &LivePhases };
    let report = engine.run(&plan, RunOptions::default(), observer).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.passed() { EXIT_PASSED } else { EXIT_FAILED })
}

fn dry_run_text(plan: &Plan, config: &Config) -> String {
    let store = config.stores.get(plan.store_name()).map(|s| s.describe()).unwrap_or_default();
    let mut out = format!("dry run of drill {} ({}): nothing is touched\n", plan.name, plan.file.display());
    out += &format!(
        "  prepare  check {} is readable; open store `{}` ({store})\n",
        plan.source.describe(),
        plan.store_name()
    );
    if let Some(p) = &plan.probe {
        out += &format!("           start a canary writing a marker into the source every {}\n", p.interval);
    }
    out += &match plan.backup.mode {
        drdrill::plan::BackupMode::Fresh => format!(
            "  backup   take a fresh backup into store `{}` (zstd level {})\n",
            plan.store_name(),
            plan.backup.compression_level
        ),
        drdrill::plan::BackupMode::Latest => {
            format!("  backup   pick the newest complete backup of `{}` in store `{}`\n", plan.name, plan.store_name())
        }
    };
    for f in &plan.failures {
        out += &format!("  failure  {}\n", f.describe());
    }
    out += &format!("  restore  into {}/run-<id>/restore, verifying every checksum\n", config.scratch.display());
    for c in &plan.checks {
        out += &format!("  verify   {}: {}\n", c.kind(), c.describe());
    }
    out += &format!(
        "  targets  RTO {}, RPO {}; the whole run times out after {}\n",
        plan.targets.rto,
        plan.targets.rpo,
        format_duration(plan.timeout)
    );
    out += "  cleanup  roll back failures, remove the scratch folder\n";
    out
}

fn cmd_validate(config: &Config, paths: Vec<PathBuf>) -> anyhow::Result<u8> {
    let paths = if paths.is_empty() { plan::plan_files(&config.plans)? } else { paths };
    if paths.is_empty() {
        eprintln!("no plans found in {}", config.plans.display());
        return Ok(EXIT_BAD_INPUT);
    }
    let mut bad = 0;
    let mut names = std::collections::HashMap::<String, PathBuf>::new();
    for path in &paths {
        match Plan::load(path, config) {
            Ok(p) => {
                if let Some(other) = names.insert(p.name.clone(), path.clone()) {
                    println!(
                        "{}:1:1: plan name `{}` is also used by {}\n  fix: set a unique `name`",
                        path.display(),
                        p.name,
                        other.display()
                    );
                    bad += 1;
                    continue;
                }
                println!("ok {} ({})", path.display(), p.name);
                if let Some(s) = &p.schedule {
                    let next: Vec<String> =
                        s.next_after(chrono::Utc::now(), 3).iter().map(|t| t.to_rfc3339()).collect();
                    println!("   schedule {s:?} next: {}", next.join(", "), s = s.text);
                }
            }
            Err(d) => {
                println!("{d}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        println!("{bad} of {} plans have problems", paths.len());
        Ok(EXIT_BAD_INPUT)
    } else {
        Ok(EXIT_PASSED)
    }
}

fn cmd_history(config: Arc<Config>, plan: Option<&str>, limit: usize, json: bool) -> anyhow::Result<u8> {
    let db = open_db(&config)?;
    let runs = db.runs(plan, limit)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(EXIT_PASSED);
    }
    if runs.is_empty() {
        println!("no runs yet{}", plan.map(|p| format!(" of plan {p}")).unwrap_or_default());
        return Ok(EXIT_PASSED);
    }
    println!(
        "{:>5}  {:<24}  {:<20}  {:<8}  {:>9} / {:<7}  {:>9} / {:<7}  reason",
        "run", "started", "plan", "result", "RTO", "target", "RPO", "target"
    );
    for r in runs {
        println!(
            "{:>5}  {:<24}  {:<20}  {:<8}  {:>9} / {:<7}  {:>9} / {:<7}  {}",
            r.id,
            r.started_at,
            r.plan,
            r.status,
            fmt_ms(r.rto_ms),
            fmt_ms(r.rto_target_ms),
            fmt_ms(r.rpo_ms),
            fmt_ms(r.rpo_target_ms),
            r.reason.unwrap_or_default()
        );
    }
    Ok(EXIT_PASSED)
}

fn cmd_show(config: Arc<Config>, run_id: i64, json: bool) -> anyhow::Result<u8> {
    let db = open_db(&config)?;
    let Some(d) = db.run_detail(run_id)? else {
        eprintln!("error: no run {run_id} in {}", config.database.display());
        return Ok(EXIT_BAD_INPUT);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(EXIT_PASSED);
    }
    let s = &d.summary;
    println!(
        "run {} of {}: {} (trigger {}, host {}, drdrill {})",
        s.id, s.plan, s.status, s.trigger, d.host, d.version
    );
    println!("  started {}  finished {}", s.started_at, s.finished_at.as_deref().unwrap_or("-"));
    println!("  plan sha256 {}", d.plan_sha256);
    if let Some(b) = &s.backup_id {
        println!("  backup {b} sha256 {}", d.backup_sha256.as_deref().unwrap_or("-"));
    }
    for p in &d.phases {
        println!("  {:<9} {:>9}  {:<6}  {}", p.name, fmt_ms(Some(p.duration_ms)), p.status, p.detail);
    }
    for c in &d.checks {
        println!(
            "  check {} {}: {} ({} attempts)",
            if c.passed { "ok  " } else { "FAIL" },
            c.kind,
            c.output,
            c.attempts
        );
    }
    for m in &d.measurements {
        println!("  {:<8} {:>9}  target {:>7}  {}", m.name, fmt_ms(m.value_ms), fmt_ms(m.target_ms), m.method);
    }
    if let Some(r) = &s.reason {
        println!("  reason: {r}");
    }
    Ok(EXIT_PASSED)
}

fn open_db(config: &Config) -> anyhow::Result<drdrill::db::Db> {
    if !Path::new(&config.database).exists() {
        anyhow::bail!(
            "no results database at {} yet: run a drill first (`drdrill run quickstart`)",
            config.database.display()
        );
    }
    drdrill::db::Db::open(&config.database)
}
