//! `drdrill run PLAN`: one drill now, watched live; a game day when the plan
//! has approval gates. Lines typed on stdin are operator notes on the run; an
//! Enter while the run waits at a gate approves it (the typed line becomes the
//! approval's note). Ctrl-C or SIGTERM aborts: rollbacks still run and the run
//! is recorded `aborted`.

use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use drdrill::cancel::Cancel;
use drdrill::config::{Config, Halt};
use drdrill::db::{Db, GateRecord, PhaseRecord, RunNote};
use drdrill::duration::fmt_ms;
use drdrill::duration::format_duration;
use drdrill::engine::{Approval, Engine, Gates, Observer, RunOptions};
use drdrill::failure::{Guard, Refused};
use drdrill::plan::timeline::{self, Step};
use drdrill::plan::{BackupMode, Plan};

use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

/// Shows the run as it goes: a progress bar on a terminal, plain lines otherwise
/// (logs, CI, `--json` where stdout is for the result), or log events when the
/// log is JSON, so that standard error holds nothing but JSON lines.
struct Live {
    phases: bool,
    json_log: bool,
    bar: OnceLock<ProgressBar>,
    tty: bool,
    steps: u64,
    run_id: Arc<OnceLock<i64>>,
}

impl Live {
    fn line(&self, text: String) {
        if self.json_log {
            tracing::info!("{}", text.trim());
            return;
        }
        match self.bar.get() {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Observer for Live {
    fn run_started(&self, run_id: i64, plan: &Plan) {
        let _ = self.run_id.set(run_id);
        // The run's span (see cmd_run) learns its id: every later log line carries it.
        tracing::Span::current().record("run", run_id);
        self.line(format!("drill {} (run {run_id}) started", plan.name));
        if !plan.pause_before.is_empty() {
            self.line(format!(
                "  game day: the run pauses before {}; type a line + Enter to add a note, Enter at a gate approves, Ctrl-C aborts",
                plan.pause_before.join(", ")
            ));
        }
        if self.tty && self.phases {
            let bar = ProgressBar::new(self.steps);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:24}] {pos}/{len} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            let _ = self.bar.set(bar);
        }
    }

    fn phase_started(&self, _run_id: i64, name: &str) {
        tracing::debug!("phase {name} started");
        if let Some(bar) = self.bar.get() {
            bar.set_message(name.to_string());
        }
    }

    fn phase(&self, _run_id: i64, p: &PhaseRecord) {
        tracing::debug!(status = %p.status, ms = p.duration_ms, "phase {} ended: {}", p.name, p.detail);
        if let Some(bar) = self.bar.get() {
            bar.inc(1);
        }
        if self.phases {
            let mark = if p.status == "ok" { "✓" } else { "✗" };
            self.line(format!("  {mark} {:<9} {:>9}  {}", p.name, fmt_ms(Some(p.duration_ms)), p.detail));
        }
    }

    fn gate_waiting(&self, run_id: i64, gate: &str) {
        if let Some(bar) = self.bar.get() {
            bar.set_message(format!("waiting at the gate before {gate}: Enter approves"));
        }
        self.line(format!(
            "  ⏸ run {run_id} is waiting for approval before {gate}: press Enter to approve (text before Enter is kept as the note), Ctrl-C aborts"
        ));
    }

    fn gate_decided(&self, _run_id: i64, g: &GateRecord) {
        self.line(format!("  ▶ gate before {}: {} by {}", g.gate, g.outcome, g.decided_by));
    }
}

pub fn load_plan(arg: &str, config: &Config) -> Result<Plan, u8> {
    let path = match drdrill::plan::find(arg, config) {
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

pub async fn cmd_run(
    config: Arc<Config>,
    arg: &str,
    dry_run: bool,
    json: bool,
    notes: Option<String>,
) -> anyhow::Result<u8> {
    let plan = match load_plan(arg, &config) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    tracing::debug!(
        file = %plan.file.display(),
        base = %drdrill::paths::plan_base(&plan.file).display(),
        config = %config.origin(),
        "plan {} loaded",
        plan.name
    );
    if dry_run {
        let (text, refused) = dry_run_text(&plan, &config);
        super::stdout_may_close();
        print!("{text}");
        return Ok(if refused { EXIT_BAD_INPUT } else { EXIT_PASSED });
    }
    // Refused before even the results database is opened: nothing happens.
    if let Err(refused) = plan.guard_check(&Guard::new(&config)) {
        return Ok(report_refusal(&refused, arg));
    }
    let json_log = config.log_format == drdrill::config::LogFormat::Json;
    let engine = Engine::open(config)?;
    recover_at_start(&engine);
    let opts = RunOptions { notes, ..RunOptions::default() };
    let signals = tokio::spawn(abort_on_signals(opts.abort.clone()));
    let run_id = Arc::new(OnceLock::new());
    operator_console(
        engine.db.clone(),
        opts.gates.clone(),
        opts.abort.clone(),
        run_id.clone(),
        !plan.pause_before.is_empty(),
    );
    let live = Live {
        phases: !json,
        json_log,
        bar: OnceLock::new(),
        tty: std::io::stderr().is_terminal() && !json_log,
        steps: timeline::steps(&plan).len() as u64,
        run_id,
    };
    let span = tracing::info_span!("drill", plan = %plan.name, run = tracing::field::Empty, trigger = "manual");
    let result = tracing::Instrument::instrument(engine.run(&plan, opts, &live), span.clone()).await;
    signals.abort();
    if let Some(bar) = live.bar.get() {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(halt) = e.downcast_ref::<Halt>() {
                eprintln!("error: {}", halt.refusal());
                return Ok(EXIT_BAD_INPUT);
            }
            if let Some(refused) = e.downcast_ref::<Refused>() {
                eprintln!("error: {refused}");
                eprintln!(
                    "fix: allow the targets in [safety] of the config, or use `drdrill run {arg} --dry-run` to see every rule"
                );
                return Ok(EXIT_BAD_INPUT);
            }
            return Err(e);
        }
    };
    // The run is recorded; mail goes out only now, bounded and never changing the result.
    let channels = drdrill::alert::Channels::from_config(&engine.config);
    tracing::Instrument::instrument(drdrill::alert::after_run(&channels, &engine.db, &report), span).await;
    super::stdout_may_close();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.passed() { EXIT_PASSED } else { EXIT_FAILED })
}

/// What the daemon does at start-up, for runs a crashed `drdrill run` (or
/// daemon) left: record them aborted, remove their scratch, name the live
/// data they left in quarantine. Runs other live processes own are left
/// alone. A problem here is only a warning: this run can still go ahead.
fn recover_at_start(engine: &Engine) {
    match engine.recover("the start-up of `drdrill run`") {
        Ok(found) => {
            for r in &found.aborted {
                eprintln!(
                    "warning: run {} of {} was left `running` by a process that is gone; recorded it aborted: {}",
                    r.run_id, r.plan, r.reason
                );
            }
            for s in &found.stopped {
                eprintln!("warning: stopped a server a run that is over left running in {s}");
            }
            for f in &found.swept {
                eprintln!("warning: removed scratch folder {} of a run that is over", f.display());
            }
            for q in &found.quarantine {
                eprintln!("warning: {}", q.message());
            }
        }
        Err(e) => eprintln!("warning: cannot check for runs left by processes that died: {e:#}"),
    }
}

fn report_refusal(refused: &Refused, arg: &str) -> u8 {
    eprintln!("error: {refused}");
    eprintln!(
        "fix: allow the targets in [safety] of the config (see config/gameday.toml), or run `drdrill run {arg} --dry-run` to see every rule"
    );
    EXIT_BAD_INPUT
}

/// Ctrl-C and SIGTERM abort the run; rollbacks and cleanup still run, so a
/// second signal is reported but does not cut them short.
async fn abort_on_signals(abort: Cancel) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        eprintln!("warning: cannot install signal handlers; Ctrl-C will stop drdrill without rolling back");
        return;
    };
    loop {
        let which = tokio::select! {
            _ = int.recv() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        };
        if abort.is_cancelled() {
            eprintln!("{which}: already aborting; waiting for rollbacks and cleanup to finish");
        } else {
            eprintln!("{which}: aborting the drill; rolling back failures and cleaning up");
            abort.cancel();
        }
    }
}

/// Reads stdin on its own thread (a std thread: the runtime must not wait for
/// it on exit). Each line approves the gate the run waits at, or else becomes a
/// note. When stdin ends and the plan has gates, nobody can approve them any
/// more, so the run is aborted instead of hanging until its timeout.
fn operator_console(db: Arc<Db>, gates: Gates, abort: Cancel, run_id: Arc<OnceLock<i64>>, has_gates: bool) {
    let who = super::operator();
    let _ = std::thread::Builder::new().name("operator-console".into()).spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let id = loop {
                if let Some(id) = run_id.get() {
                    break *id;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let text = line.trim().to_string();
            let note = (!text.is_empty()).then(|| text.clone());
            if gates.pending().iter().any(|p| p.run_id == id) {
                match gates.approve(id, None, Approval { by: who.clone(), note }) {
                    Ok(p) => eprintln!("  approved the gate before {}", p.gate),
                    Err(e) => eprintln!("  cannot approve: {e}"),
                }
            } else if let Some(text) = note {
                let n = RunNote { at: chrono::Utc::now(), author: who.clone(), text };
                match db.add_note(id, &n) {
                    Ok(()) => eprintln!("  note recorded at {}", drdrill::db::ts(n.at)),
                    Err(e) => eprintln!("  cannot record the note: {e:#}"),
                }
            }
        }
        if has_gates && !abort.is_cancelled() {
            eprintln!("stdin closed: nobody can approve this run's gates any more; aborting (rollbacks still run)");
            abort.cancel();
        }
    });
}

/// The whole timeline, what each failure touches and the rule that allows or
/// refuses it, one line per step of the timeline the engine runs. Reads only;
/// returns whether the guard (or the halt file) would refuse the run.
fn dry_run_text(plan: &Plan, config: &Config) -> (String, bool) {
    let store = config.stores.get(plan.store_name()).map(|s| s.describe()).unwrap_or_default();
    let decisions = plan.guard_decisions(&Guard::new(config));
    let mut out = format!("dry run of drill {} ({}): nothing is touched\n", plan.name, plan.file.display());
    for step in timeline::steps(plan) {
        out += &match step {
            Step::Prepare => {
                let mut t = format!(
                    "  prepare  check {} is readable; open store `{}` ({store})\n",
                    plan.source.describe(),
                    plan.store_name()
                );
                if let Some(p) = &plan.probe {
                    t += &format!("           start a canary writing a marker into the source every {}\n", p.interval);
                }
                t
            }
            Step::Gate(g) => format!(
                "  gate     wait for approval before {} (Enter at the terminal, or the daemon's API)\n",
                g.name()
            ),
            Step::Backup => match plan.backup.mode {
                BackupMode::Fresh => format!(
                    "  backup   take a fresh backup into store `{}` (zstd level {})\n",
                    plan.store_name(),
                    plan.backup.compression_level
                ),
                BackupMode::Latest => format!(
                    "  backup   pick the newest complete backup of `{}` in store `{}`\n",
                    plan.name,
                    plan.store_name()
                ),
                BackupMode::Existing => format!(
                    "  backup   choose a backup ({}) among {}\n",
                    plan.backup.select.as_str(),
                    plan.existing.as_ref().map(|e| e.describe()).unwrap_or_default()
                ),
            },
            Step::Safeguards => {
                let mut t = String::new();
                for sg in &plan.safeguards {
                    t += &format!("  safeguard {}: {}: must pass now, then {}\n", sg.name, sg.describe(), sg.cadence());
                }
                t + "           a safeguard that fails aborts the run at once: no further failure is injected, rollbacks run\n"
            }
            Step::Failure => {
                let mut t = String::new();
                for (i, f) in plan.failures.iter().enumerate() {
                    t += &format!("  failure  #{} {}: {}\n", i + 1, f.kind(), f.describe());
                    for d in decisions.iter().filter(|d| d.failure == i + 1) {
                        let verdict = if d.allowed { "allowed" } else { "REFUSED" };
                        let what = match (&d.target, &d.resolved) {
                            (Some(t), Some(r)) => format!("{t} (= {r})"),
                            (Some(t), None) => t.to_string(),
                            (None, _) => "nothing outside scratch".into(),
                        };
                        t += &format!("           touches {what}: {verdict}: {}\n", d.rule);
                    }
                }
                t
            }
            Step::Restore => match &plan.existing {
                Some(e) => format!(
                    "  restore  with {}'s own restore into {}/run-<id>/restore (the backups are only read)\n",
                    e.kind(),
                    config.scratch.display()
                ),
                None => {
                    format!("  restore  into {}/run-<id>/restore, verifying every checksum\n", config.scratch.display())
                }
            },
            Step::Service => match &plan.service {
                Some(s) => format!(
                    "  service  start `{}` on the restore, on DRDRILL_PORT (a free loopback port); ready when: {}\n",
                    s.run,
                    s.ready.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "not waited for".into())
                ),
                None => String::new(),
            },
            Step::Verify => {
                let mut t: String =
                    plan.checks.iter().map(|c| format!("  verify   {}: {}\n", c.kind(), c.describe())).collect();
                t += &format!(
                    "  targets  RTO {}, RPO {}; the whole run times out after {}\n",
                    plan.targets.rto,
                    plan.targets.rpo,
                    format_duration(plan.timeout)
                );
                t
            }
            Step::Rollback => "  rollback undo every injected failure in reverse order\n".to_string(),
            Step::Cleanup => {
                "  cleanup  stop the service and what the restore started, remove the scratch folder\n".to_string()
            }
            Step::Retention => {
                let r = plan.backup.retention();
                let mut rules = Vec::new();
                if let Some(n) = r.keep_last {
                    rules.push(format!("keep the last {n}"));
                }
                if let Some(age) = r.max_age {
                    rules.push(format!("delete older than {}", format_duration(age)));
                }
                format!("  retain   if the drill passed: {} (never the newest complete backup)\n", rules.join(", "))
            }
        };
    }
    let halt = config.safety.halt();
    if let Some(h) = &halt {
        out += &format!("halted: `drdrill run` would be {}\n", h.refusal());
    } else if let Some(f) = &config.safety.halt_file {
        out += &format!("halt file {}: absent; creating it stops this run, rollbacks still run\n", f.display());
    }
    let refused = decisions.iter().any(|d| !d.allowed);
    if refused {
        out += &format!(
            "refused: `drdrill run` would refuse this plan before touching anything (config: {})\n",
            config.origin()
        );
    } else {
        out += "allowed: every target is inside the blast radius\n";
    }
    (out, refused || halt.is_some())
}
