//! The `drdrill` command: a thin layer over the library.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};

use cli::EXIT_BAD_INPUT;
use drdrill::config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "drdrill", version, about = "Disaster-recovery drills: prove backups restore, measure RTO and RPO")]
struct Cli {
    /// Config file (default: config/drdrill.toml if present, else built-in defaults under ./var)
    #[arg(long, global = true, env = "DRDRILL_CONFIG")]
    config: Option<PathBuf>,
    /// More log output: -v shows debug lines, -vv trace lines
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines as text (journald-friendly) or JSON, one object per line (default: `log_format` in the config)
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
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
        /// Operator notes kept in the run's evidence record
        #[arg(long)]
        note: Option<String>,
    },
    /// Check plan files; print each problem as file:line:col with the fix
    Validate {
        /// Plan files (default: every plan in the plans folder)
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
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
    /// List backups in a store, or re-hash them against their manifests
    Backups {
        #[command(subcommand)]
        action: BackupsAction,
    },
    /// Per plan: the backups in the window, which drills restored and when, the share covered
    Coverage {
        /// Only this plan
        plan: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one run: timeline, gates, measurements, checks, notes
    Show {
        run_id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Add a timestamped operator note to a run (during a game day or after it)
    Note {
        run_id: i64,
        /// The note; several words are joined with spaces
        #[arg(required = true)]
        text: Vec<String>,
        /// Who writes it (default: terminal (user $USER))
        #[arg(long)]
        author: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run plans on their schedules and serve the API (systemd: Type=notify)
    Daemon,
    /// Start a game-day run through the daemon: exit 0 passed, 1 failed, 2 refused
    Trigger {
        /// Plan name
        name: String,
        /// Print phases as they end, until the result
        #[arg(long)]
        follow: bool,
        /// The start as JSON; with --follow, one JSON object per line (NDJSON)
        #[arg(long)]
        json: bool,
    },
    /// Approve a run that the daemon holds at a `pause_before` gate
    Approve {
        run_id: i64,
        /// Only if the run waits at this gate (e.g. `restore`)
        #[arg(long)]
        gate: Option<String>,
        /// A note recorded with the approval
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Abort a run the daemon is running: rollbacks run, it is recorded `aborted`
    Abort {
        run_id: i64,
        /// Why, for the run's record
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Emergency stop: abort every running drill (with rollbacks) and pause the scheduler until `resume`
    StopAll {
        /// Why, for the record of the pause and of each aborted run
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Lift an emergency stop: the scheduler starts drills again
    Resume {
        #[arg(long)]
        json: bool,
    },
    /// Show what the daemon is doing
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Make the daemon re-read its plans (like SIGHUP); exit 2 if a plan is broken
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// The hash-chained evidence of every finished run
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Report over a period: html, md, json, csv or junit
    Report {
        /// Only runs started in this period back from now ("90d") or since a date
        #[arg(long, default_value = "90d")]
        since: String,
        /// Only this plan
        #[arg(long)]
        plan: Option<String>,
        #[arg(long, default_value = "html")]
        format: String,
        /// Write to this file instead of standard output
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Fleet mode: the whole fleet's state and history, read from its bucket
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Alerts: test every channel, send the digest, retry what is queued
    Notify {
        #[command(subcommand)]
        command: cli::notify::NotifyCommand,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), or write one page per command into a folder
    Man {
        /// Write drdrill.1 and drdrill-COMMAND.1 here instead of printing drdrill.1
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BackupsAction {
    /// id, time, size, sha256, complete or not
    List {
        /// Only this plan's backups (and its store, unless --store)
        #[arg(long)]
        plan: Option<String>,
        /// Store to look in (default: the plan's store, else `local`)
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-hash payloads against their manifests; exit 1 if any is bad
    Verify {
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Nodes with their last heartbeat and version, current claims, takeovers
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Report over every node's evidence: html, md, json, csv or junit
    Report {
        #[arg(long, default_value = "90d")]
        since: String,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long, default_value = "html")]
        format: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Recompute the chain, check its signatures, name the first record that does not match
    Verify {
        /// Verify an exported JSON report instead of the database
        #[arg(long, conflicts_with = "bundle")]
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Verify a bundle made by `drdrill evidence export` (files, signature, chains)
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Verify every node's chain in the fleet's bucket (`[fleet] store`)
        #[arg(long, conflicts_with_all = ["file", "bundle"])]
        fleet: bool,
        /// With --bundle or --fleet: the allowed_signers file to trust (default: the keys they carry)
        #[arg(long)]
        allowed_signers: Option<PathBuf>,
    },
    /// Show this node's public key: an allowed_signers line and a minisign public key
    Key {
        /// Print only one form: allowed-signers, minisign or openssh
        #[arg(long)]
        format: Option<String>,
    },
    /// Write a signed bundle for auditors: statement.json, its SSHSIG, SHA256SUMS
    Export {
        /// Runs started in this period back from now ("1y") or since a date
        #[arg(long, default_value = "1y")]
        since: String,
        /// The folder to write
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Pins glibc malloc's mmap and trim thresholds at their defaults (128 KiB).
/// Left alone, glibc raises the mmap threshold each time a large buffer (zstd's
/// windows, tar and hashing buffers) is freed, after which such buffers live in
/// the arenas among the small allocations of a million manifest entries and the
/// freed space is never returned: a 100,000-file drill peaked at 51 MiB RSS with
/// a 17 MiB heap (massif), 35 MiB with the thresholds pinned.
fn pin_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

fn main() -> ExitCode {
    pin_malloc_thresholds();
    let cli = Cli::parse();
    // Both run drills, whose pipes to child processes need SIGPIPE ignored;
    // `run` lets stdout close once its drill is over.
    if !matches!(cli.command, Command::Run { .. } | Command::Daemon) {
        cli::stdout_may_close();
    }
    // Generated from the definitions above: they need no config.
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "drdrill", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => return man(dir.as_deref()),
        _ => {}
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(mut c) => {
            // The flag wins over the config, for whatever reads the format later.
            c.log_format = cli.log_format.unwrap_or(c.log_format);
            Arc::new(c)
        }
        Err(e) => {
            eprintln!("error: {}", drdrill::errors::explain(&e));
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let daemon = matches!(cli.command, Command::Daemon);
    cli::logs::init(config.log_format, cli.verbose, daemon);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    for o in &config.overrides {
        tracing::debug!("{} from the environment ({})", o.target(), o.var);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let result = runtime.block_on(dispatch(cli.command, config));
    // Dropping a runtime waits for every blocking task; a daemon's heartbeat
    // write into a source that hangs must not hold its exit for that long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", drdrill::errors::explain(&e));
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// `drdrill man [--dir DIR]`.
fn man(dir: Option<&std::path::Path>) -> ExitCode {
    let cmd = Cli::command();
    let result = match dir {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
        Some(dir) => (|| {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(cmd, dir)
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: cannot write the man page{}: {e}",
                dir.map(|d| format!("s to {}", d.display())).unwrap_or_default()
            );
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

async fn dispatch(command: Command, config: Arc<Config>) -> anyhow::Result<u8> {
    match command {
        Command::Run { plan, dry_run, json, note } => cli::run::cmd_run(config, &plan, dry_run, json, note).await,
        Command::Validate { paths, json } => cli::validate::cmd_validate(&config, paths, json),
        Command::History { plan, limit, json } => cli::history::cmd_history(config, plan.as_deref(), limit, json),
        Command::Backups { action: BackupsAction::List { plan, store, json } } => {
            cli::backups::cmd_list(config, plan.as_deref(), store.as_deref(), json).await
        }
        Command::Backups { action: BackupsAction::Verify { plan, store, json } } => {
            cli::backups::cmd_verify(config, plan.as_deref(), store.as_deref(), json).await
        }
        Command::Coverage { plan, json } => cli::coverage::cmd_coverage(config, plan.as_deref(), json).await,
        Command::Show { run_id, json } => cli::history::cmd_show(config, run_id, json),
        Command::Note { run_id, text, author, json } => {
            cli::note::cmd_note(&config, run_id, &text.join(" "), author, json)
        }
        Command::Daemon => cli::daemon::cmd_daemon(config).await,
        Command::Trigger { name, follow, json } => cli::trigger::cmd_trigger(&config, &name, follow, json).await,
        Command::Approve { run_id, gate, note, json } => {
            cli::approve::cmd_approve(&config, run_id, gate, note, json).await
        }
        Command::Abort { run_id, reason, json } => cli::abort::cmd_abort(&config, run_id, reason, json).await,
        Command::Status { json } => cli::status::cmd_status(&config, json).await,
        Command::StopAll { reason, json } => cli::stop::cmd_stop_all(&config, reason, json).await,
        Command::Resume { json } => cli::stop::cmd_resume(&config, json).await,
        Command::Reload { json } => cli::reload::cmd_reload(&config, json).await,
        Command::Evidence { command: EvidenceCommand::Verify { bundle: Some(dir), allowed_signers, .. } } => {
            cli::evidence::cmd_verify_bundle(&dir, allowed_signers.as_deref())
        }
        Command::Evidence { command: EvidenceCommand::Verify { fleet: true, allowed_signers, .. } } => {
            cli::fleet::cmd_verify(config, allowed_signers.as_deref()).await
        }
        Command::Evidence { command: EvidenceCommand::Verify { file, json, .. } } => {
            cli::evidence::cmd_verify(config, file.as_deref(), json)
        }
        Command::Fleet { command: FleetCommand::Status { json } } => cli::fleet::cmd_status(config, json).await,
        Command::Fleet { command: FleetCommand::Report { since, plan, format, output } } => {
            cli::fleet::cmd_report(config, &since, plan, &format, output.as_deref()).await
        }
        Command::Evidence { command: EvidenceCommand::Key { format } } => {
            cli::evidence::cmd_key(config, format.as_deref())
        }
        Command::Evidence { command: EvidenceCommand::Export { since, output } } => {
            cli::evidence::cmd_export(config, &since, &output)
        }
        Command::Report { since, plan, format, output } => {
            cli::report::cmd_report(config, Some(&since), plan, &format, output.as_deref())
        }
        Command::Notify { command, json } => cli::notify::cmd_notify(config, command, json).await,
        // Handled in main, before any config is read.
        Command::Completions { .. } | Command::Man { .. } => Ok(0),
    }
}
