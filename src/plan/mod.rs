//! Drill plans: `drills/NAME.toml`, parsed with file:line errors and validated
//! against the config (stores) and against themselves (checks that fit the source).
//!
//! Each key and section is read on its own ([`Keys`]), so that `validate` reports
//! every independent problem of a file at once instead of one per attempt.

pub mod service;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use toml::Spanned;

use crate::check::safeguard::{self, Safeguard};
use crate::check::{self, Check};
use crate::config::Config;
use crate::diag::{Bounded, Diagnostic, Diagnostics, Keys, TomlDoc, limit};
use crate::duration::{DAY, HOUR, HumanDuration, YEAR};
use crate::existing::{self, Existing, Select};
use crate::failure::{self, Failure, Guard, Refused, guard::Decision};
use crate::hashing::sha256_hex;
use crate::schedule::Schedule;
use crate::source::{self, Source};
pub use service::{Ready, ServiceSection};

/// A run that does not finish in this long is failed and cleaned up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

limit!(
    /// A drill stuck for over a week is not a drill; below a second nothing can run.
    pub RunTimeout: Duration = "timeout", Duration::from_secs(1), Duration::from_secs(7 * DAY)
);
limit!(
    /// Spreads scheduled starts; more than a day is a different schedule.
    pub Jitter: Duration = "jitter", Duration::ZERO, Duration::from_secs(DAY)
);
limit!(pub RtoTarget: Duration = "[targets] rto", Duration::from_millis(1), Duration::from_secs(30 * DAY));
limit!(pub RpoTarget: Duration = "[targets] rpo", Duration::from_millis(1), Duration::from_secs(10 * YEAR));
limit!(pub MaxAge: Duration = "[backup] max_age", Duration::from_millis(1), Duration::from_secs(10 * YEAR));
limit!(pub KeepLast: usize = "[backup] keep_last", 1, 10_000);
limit!(
    /// zstd's standard levels.
    pub CompressionLevel: i32 = "[backup] compression_level", 1, 22
);
limit!(
    /// A marker more often than every 100ms floods the live source with canary
    /// rows; one less often than hourly measures nothing a backup does not.
    pub ProbeInterval: Duration = "[probe] interval", Duration::from_millis(100), Duration::from_secs(HOUR)
);

#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub file: PathBuf,
    /// sha256 of the plan file as run, so evidence names exactly what ran.
    pub sha256: String,
    pub description: String,
    pub schedule: Option<Schedule>,
    /// What the daemon does about firings missed while it was down.
    pub missed: MissedPolicy,
    /// Scheduled runs start up to this much later, so plans on the same
    /// schedule do not all hit the store at once.
    pub jitter: Duration,
    pub timeout: Duration,
    pub destructive: bool,
    pub targets: Targets,
    pub source: Arc<dyn Source>,
    pub backup: BackupSection,
    /// With `mode = "existing"`: the adapter of the team's own backups.
    pub existing: Option<Arc<dyn Existing>>,
    pub probe: Option<ProbeSection>,
    /// The team's application, started on the restored data before the checks.
    pub service: Option<Arc<ServiceSection>>,
    pub failures: Vec<Arc<dyn Failure>>,
    pub checks: Vec<Arc<dyn Check>>,
    /// Probes of the live system that must keep passing from just before the
    /// first failure until the run's steps end; one that fails aborts the run.
    pub safeguards: Vec<Arc<Safeguard>>,
    /// Approval gates: the run waits before each of these phases until a person
    /// (or the API) approves.
    pub pause_before: Vec<String>,
    /// Variables of drdrill's environment passed to the processes the drill
    /// starts; nothing else is inherited (see [`crate::proc`]).
    pub env: Vec<String>,
    /// With no passed run for this long the plan is overdue (else `[daemon] max_interval`).
    pub max_interval: Option<Duration>,
    /// A dead-man's switch (Healthchecks-style): pinged at the start and end of scheduled runs.
    pub ping_url: Option<String>,
}

/// Phases a plan may pause before with `pause_before`.
pub const GATE_PHASES: [&str; 4] = [
    timeline::Gated::Backup.name(),
    timeline::Gated::Failure.name(),
    timeline::Gated::Restore.name(),
    timeline::Gated::Verify.name(),
];

#[derive(Debug, Clone, Copy)]
pub struct Targets {
    pub rto: Bounded<RtoTarget>,
    pub rpo: Bounded<RpoTarget>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// Take a backup now, as part of the drill.
    Fresh,
    /// Restore the newest complete backup already in the store.
    Latest,
    /// Restore a backup the team's own tool made (`from = "restic"`, ...).
    Existing,
}

impl BackupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMode::Fresh => "fresh",
            BackupMode::Latest => "latest",
            BackupMode::Existing => "existing",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackupSection {
    pub mode: BackupMode,
    pub store: Spanned<String>,
    /// zstd level; 1 keeps compression faster than the disk.
    pub compression_level: i32,
    /// Retention, applied after each passed run: keep this many newest backups.
    pub keep_last: Option<usize>,
    /// Retention: delete backups older than this (the newest complete one stays).
    pub max_age: Option<Bounded<MaxAge>>,
    /// With `mode = "existing"`: the tool whose backups are drilled.
    pub from: Option<Spanned<String>>,
    /// Which existing backup a run restores.
    pub select: Select,
    /// `random` and `least-tested` choose among backups this young.
    pub window: Option<HumanDuration>,
}

impl BackupSection {
    pub fn retention(&self) -> crate::store::retention::Retention {
        crate::store::retention::Retention { keep_last: self.keep_last, max_age: self.max_age.map(|d| d.0) }
    }

    /// `[backup]`, key by key; `None` for the store when it is given but invalid,
    /// so that it is not checked against the config.
    fn read(keys: &mut Keys) -> (BackupSection, Option<Spanned<String>>) {
        let mut b = BackupSection::default();
        if let Some(mode) = keys.opt("mode") {
            b.mode = mode;
        }
        let store = if keys.has("store") { keys.opt("store") } else { Some(b.store.clone()) };
        if let Some(s) = &store {
            b.store = s.clone();
        }
        if let Some(level) = keys.opt::<Bounded<CompressionLevel>>("compression_level") {
            b.compression_level = level.0;
        }
        b.keep_last = keys.opt::<Bounded<KeepLast>>("keep_last").map(|k| k.0);
        b.max_age = keys.opt("max_age");
        b.from = keys.opt("from");
        if let Some(select) = keys.opt("select") {
            b.select = select;
        }
        b.window = keys.opt("window");
        (b, store)
    }
}

const BACKUP_KEYS: &[&str] =
    &["mode", "store", "compression_level", "keep_last", "max_age", "from", "select", "window"];

/// `[backup]`'s own keys and a table for each existing-backup tool.
fn backup_keys() -> &'static [&'static str] {
    static KEYS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| BACKUP_KEYS.iter().copied().chain(existing::kind_names()).collect())
}

impl Default for BackupSection {
    fn default() -> Self {
        BackupSection {
            mode: BackupMode::Fresh,
            store: Spanned::new(0..0, "local".to_string()),
            compression_level: 1,
            keep_last: None,
            max_age: None,
            from: None,
            select: Select::default(),
            window: None,
        }
    }
}

/// `missed = "skip" | "run-once"`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissedPolicy {
    /// Record that firings were missed and wait for the next one.
    #[default]
    Skip,
    /// Run once at start-up however many firings were missed.
    RunOnce,
}

impl MissedPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::RunOnce => "run-once",
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Markers written by the drill until T_fail, into the source it backs up now.
    Canary,
    /// Markers written by the daemon all the time, so a backup made by any tool
    /// holds them: the drill reads the newest one in the restore.
    Heartbeat,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Canary => "canary",
            ProbeKind::Heartbeat => "heartbeat",
        }
    }
}

/// Measured RPO: markers written into the live source until T_fail.
#[derive(Debug, Clone)]
pub struct ProbeSection {
    pub kind: ProbeKind,
    pub interval: Bounded<ProbeInterval>,
    /// For a folder source: where the marker file goes, relative to the folder.
    pub marker: Option<PathBuf>,
}

/// The keys a plan file takes at its top level.
const PLAN_KEYS: &[&str] = &[
    "name",
    "description",
    "schedule",
    "missed",
    "jitter",
    "timeout",
    "destructive",
    "pause_before",
    "env",
    "max_interval",
    "ping_url",
    "targets",
    "source",
    "backup",
    "probe",
    "service",
    "failure",
    "check",
    "safeguard",
];

impl Plan {
    /// Reads and validates one plan file.
    pub fn load(path: &Path, config: &Config) -> Result<Plan, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read plan: {e}"),
            fix: Some("check the path; plans live in the config's `plans` folder".into()),
        })?;
        Plan::parse(path, &text, config)
    }

    pub fn parse(path: &Path, text: &str, config: &Config) -> Result<Plan, Diagnostics> {
        let doc = TomlDoc::parse(path, text)?;
        let mut keys = Keys::new(&doc, doc.root(), "plan", PLAN_KEYS);
        let mut errors = Vec::new();

        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plan").to_string();
        let name = match keys.opt::<Spanned<String>>("name") {
            Some(n) => {
                if let Err(msg) = check_name(n.get_ref()) {
                    errors.push(doc.at(n.span(), msg, Some("use letters, digits, `-`, `_` and `.` only".into())));
                }
                n.into_inner()
            }
            None => {
                if !keys.has("name")
                    && let Err(msg) = check_name(&stem)
                {
                    errors.push(doc.at(0..0, msg, Some("rename the file or set `name = \"...\"`".into())));
                }
                stem
            }
        };
        let description: String = keys.opt("description").unwrap_or_default();
        let schedule: Option<Schedule> = keys.opt("schedule");
        let missed: Option<Spanned<MissedPolicy>> = keys.opt("missed");
        let jitter: Option<Spanned<Bounded<Jitter>>> = keys.opt("jitter");
        let timeout = keys.opt::<Bounded<RunTimeout>>("timeout").map_or(DEFAULT_TIMEOUT, |t| t.0);
        // `None` when given but invalid: then what depends on it is not judged.
        let destructive: Option<bool> = if keys.has("destructive") { keys.opt("destructive") } else { Some(false) };
        let pause_before_raw: Vec<Spanned<String>> = keys.opt("pause_before").unwrap_or_default();
        let env_raw: Vec<Spanned<String>> = keys.opt("env").unwrap_or_default();
        let max_interval = keys.opt::<Bounded<crate::config::MaxInterval>>("max_interval").map(|m| m.0);
        let ping_url: Option<Spanned<String>> = keys.opt("ping_url");
        if let Some(u) = &ping_url
            && let Err(e) = crate::config::alert::check_url(u.get_ref())
        {
            errors.push(doc.at(
                u.span(),
                format!("ping_url: {e}"),
                Some("give the check's URL, e.g. \"https://hc-ping.com/<uuid>\"".into()),
            ));
        }

        let targets = keys.require("targets").and_then(|v| {
            let mut t = Keys::new(&doc, v, "targets", &["rto", "rpo"]);
            let (rto, rpo) = (t.req("rto"), t.req("rpo"));
            errors.extend(t.finish());
            Some(Targets { rto: rto?, rpo: rpo? })
        });

        let (backup, store) = match keys.raw("backup") {
            Some(v) => {
                let mut b = Keys::new(&doc, v, "backup", backup_keys());
                let read = BackupSection::read(&mut b);
                errors.extend(b.finish());
                read
            }
            None => (BackupSection::default(), Some(BackupSection::default().store)),
        };
        let existing = match keys.raw("backup") {
            Some(v) => match existing_adapter(&doc, v, &backup, config) {
                Ok(e) => e,
                Err(mut d) => {
                    errors.append(&mut d);
                    None
                }
            },
            None => None,
        };
        if let Some(store) = &store
            && !config.stores.contains_key(store.get_ref())
        {
            errors.push(doc.at(
                store.span(),
                format!("unknown store `{}`", store.get_ref()),
                Some(format!("use one of the stores in {}: {}", config.origin(), config.store_names().join(", "))),
            ));
        }

        let probe = keys.raw("probe").and_then(|v| {
            let mut p = Keys::new(&doc, v, "probe", &["kind", "interval", "marker"]);
            let kind = p.req("kind");
            let interval =
                if p.has("interval") { p.opt("interval") } else { Some(Bounded::of(Duration::from_secs(1))) };
            let marker = p.opt("marker");
            errors.extend(p.finish());
            Some(ProbeSection { kind: kind?, interval: interval?, marker })
        });

        let source = match keys.raw("source") {
            Some(v) => match source::parse(&doc, v) {
                Ok(s) => Some(s),
                Err(d) => {
                    errors.push(d);
                    None
                }
            },
            None => {
                errors.push(doc.at(
                    0..0,
                    "plan has no [source]".into(),
                    Some(format!("add a [source] table with `kind` = {}", source::kind_names().join(" | "))),
                ));
                None
            }
        };

        let service = match keys.raw("service") {
            Some(v) => match service::parse(&doc, v) {
                Ok(s) => Some(Arc::new(s)),
                Err(mut d) => {
                    errors.append(&mut d);
                    None
                }
            },
            None => None,
        };

        let mut failures: Vec<Arc<dyn Failure>> = Vec::new();
        for v in array_items(&doc, "failure") {
            match failure::parse(&doc, v) {
                Ok(f) => {
                    if f.destructive() && destructive == Some(false) {
                        errors.push(doc.at(
                            v.span(),
                            format!("failure `{}` is destructive but the plan does not say so", f.kind()),
                            Some("add `destructive = true` at the top of the plan, or use kind = \"declare\"".into()),
                        ));
                    }
                    failures.push(f);
                }
                Err(d) => errors.push(d),
            }
        }
        if failures.is_empty() {
            failures.push(Arc::new(failure::declare::Declare::default()));
        }

        let mut checks = Vec::new();
        for v in array_items(&doc, "check") {
            match check::parse(&doc, v) {
                Ok(c) => {
                    if let Some(src) = &source {
                        let (mut yields, from) = match &existing {
                            Some(e) => (
                                e.yields(src.as_ref()),
                                format!("a `{}` backup of a `{}` source", e.kind(), src.kind()),
                            ),
                            None => (src.yields(), format!("a `{}` source", src.kind())),
                        };
                        if keys.has("service") {
                            yields = yields.with_endpoint();
                        }
                        if let Err(why) = c.needs().fits(yields) {
                            errors.push(doc.at(
                                v.span(),
                                format!("check `{}` does not fit this source: {why} ({from})", c.kind()),
                                None,
                            ));
                        }
                    }
                    checks.push(c);
                }
                Err(d) => errors.push(d),
            }
        }
        if checks.is_empty() && !keys.has("check") {
            errors.push(doc.at(
                0..0,
                "plan has no [[check]]: nothing would prove the restore works".into(),
                Some(format!("add at least one [[check]] with `kind` = {}", check::kind_names().join(" | "))),
            ));
        }

        let mut safeguards: Vec<Arc<Safeguard>> = Vec::new();
        for v in array_items(&doc, "safeguard") {
            match safeguard::parse(&doc, v) {
                Ok(s) if safeguards.iter().any(|o| o.name == s.name) => errors.push(doc.at(
                    v.span(),
                    format!("safeguard name `{}` is used twice", s.name),
                    Some("give each [[safeguard]] its own `name`".into()),
                )),
                Ok(s) => safeguards.push(Arc::new(s)),
                Err(mut d) => errors.append(&mut d),
            }
        }

        if let Some(probe) = &probe {
            let span = keys.raw("probe").map(|v| v.span()).unwrap_or(0..0);
            if probe.kind == ProbeKind::Canary && backup.mode == BackupMode::Existing {
                errors.push(doc.at(
                    span.clone(),
                    "a `canary` probe writes markers during the run, and a backup your tool made before the run cannot hold them".into(),
                    Some("use `kind = \"heartbeat\"`: the daemon writes markers all the time, so your backups hold them".into()),
                ));
            }
            if probe.marker.is_some() && source.as_ref().is_some_and(|s| s.live_tree().is_none()) {
                errors.push(doc.at(
                    span.clone(),
                    "`marker` names a file in a folder source, and this source is not a folder".into(),
                    Some("remove `marker`".into()),
                ));
            }
            if let Some(m) = &probe.marker
                && m.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                errors.push(doc.at(
                    span,
                    format!("`marker` {} must be a plain path inside the source folder", m.display()),
                    Some("e.g. `marker = \".drdrill/heartbeat\"`".into()),
                ));
            }
        }
        if let (Some(probe), Some(src)) = (&probe, &source)
            && src.canary(None).is_none()
        {
            let span = keys.raw("probe").map(|v| v.span()).unwrap_or(0..0);
            errors.push(doc.at(
                span,
                format!("a `{:?}` probe is not available for `{}` sources", probe.kind, src.kind()).to_lowercase(),
                Some("remove [probe]; RPO then comes from the backup's consistency point".into()),
            ));
        }

        let mut pause_before = Vec::new();
        for g in &pause_before_raw {
            if !GATE_PHASES.contains(&g.get_ref().as_str()) {
                errors.push(doc.at(
                    g.span(),
                    format!("cannot pause before `{}`: not a phase", g.get_ref()),
                    Some(format!(
                        "use {}{}",
                        GATE_PHASES.join(", "),
                        crate::diag::closest(g.get_ref(), &GATE_PHASES)
                            .map(|c| format!(" (did you mean `{c}`?)"))
                            .unwrap_or_default()
                    )),
                ));
            } else if !pause_before.contains(g.get_ref()) {
                pause_before.push(g.get_ref().clone());
            }
        }

        let mut env = Vec::new();
        for v in &env_raw {
            let name = v.get_ref();
            let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                errors.push(
                    doc.at(
                        v.span(),
                        format!("`env` entry {name:?} is not an environment variable name"),
                        Some(
                            "list names only, e.g. `env = [\"AWS_PROFILE\"]`; values come from drdrill's environment"
                                .into(),
                        ),
                    ),
                );
            } else if !env.contains(name) {
                env.push(name.clone());
            }
        }

        // Both only mean something for scheduled runs; said without a schedule
        // they point at a mistake (a forgotten or misspelled `schedule`).
        if !keys.has("schedule") {
            if let Some(m) = &missed {
                errors.push(doc.at(
                    m.span(),
                    "`missed` applies to scheduled runs, but the plan has no `schedule`".into(),
                    Some("add `schedule = \"...\"` or remove `missed`".into()),
                ));
            }
            if let Some(j) = &jitter {
                errors.push(doc.at(
                    j.span(),
                    "`jitter` applies to scheduled runs, but the plan has no `schedule`".into(),
                    Some("add `schedule = \"...\"` or remove `jitter`".into()),
                ));
            }
        }
        if let (Some(j), Some(s)) = (&jitter, &schedule) {
            let firings = s.next_after(chrono::Utc::now(), 2);
            if let [a, b] = firings[..]
                && (b - a).to_std().is_ok_and(|gap| j.get_ref().0 >= gap)
            {
                errors.push(doc.at(
                    j.span(),
                    format!("jitter {} is not shorter than the gap between firings of {:?}", j.get_ref(), s.text),
                    Some("use a jitter well below the schedule's interval".into()),
                ));
            }
        }

        errors.extend(keys.finish());
        let (Some(targets), Some(source), Some(destructive), true) = (targets, source, destructive, errors.is_empty())
        else {
            // Each of the three is `None` only with its problem recorded.
            debug_assert!(!errors.is_empty());
            errors.sort_by_key(|d| (d.line, d.col));
            return Err(Diagnostics(errors));
        };
        Ok(Plan {
            name,
            file: path.to_path_buf(),
            sha256: sha256_hex(text.as_bytes()),
            description,
            schedule,
            missed: missed.map(|m| *m.get_ref()).unwrap_or_default(),
            jitter: jitter.map(|j| j.get_ref().0).unwrap_or_default(),
            timeout,
            destructive,
            targets,
            source,
            backup,
            existing,
            probe,
            service,
            failures,
            checks,
            safeguards,
            pause_before,
            env,
            max_interval,
            ping_url: ping_url.map(Spanned::into_inner),
        })
    }

    /// The interval after which the plan is overdue: its own, else the config's default.
    pub fn max_interval_in(&self, config: &Config) -> Option<Duration> {
        self.max_interval.or(config.daemon.max_interval.map(|m| m.0))
    }

    pub fn store_name(&self) -> &str {
        self.backup.store.get_ref()
    }

    /// The source's marker writer, with the probe's `marker`.
    pub fn canary(&self) -> Option<Arc<dyn crate::source::Canary>> {
        self.source.canary(self.probe.as_ref().and_then(|p| p.marker.as_deref()))
    }

    /// The live folder comparisons use, skipping the probe's marker and the
    /// folders it created for it.
    pub fn live_tree(&self) -> Option<crate::restored::LiveTree> {
        let mut live = self.source.live_tree()?;
        if let Some(m) = self.probe.as_ref().and_then(|p| p.marker.as_deref()) {
            live.ignore.push(format!("{}", m.with_extension("tmp").display()));
            live.ignore.extend(m.ancestors().filter(|a| !a.as_os_str().is_empty()).map(|a| a.display().to_string()));
        }
        Some(live)
    }

    /// What the blast-radius guard says about every target of every failure.
    pub fn guard_decisions(&self, guard: &Guard) -> Vec<Decision> {
        guard.decide(&self.failures, self.destructive)
    }

    /// `Err` with every refusal if the guard refuses any target.
    pub fn guard_check(&self, guard: &Guard) -> Result<Vec<Decision>, Refused> {
        guard.check(&self.name, &self.failures, self.destructive)
    }
}

/// With `mode = "existing"`, the adapter of `[backup.<from>]`; the tables of
/// the other tools are refused.
fn existing_adapter(
    doc: &TomlDoc,
    value: &Spanned<toml::de::DeValue>,
    backup: &BackupSection,
    config: &Config,
) -> Result<Option<Arc<dyn Existing>>, Vec<Diagnostic>> {
    let table = match value.get_ref() {
        toml::de::DeValue::Table(t) => t,
        _ => return Ok(None),
    };
    let mut errors = Vec::new();
    for (key, _) in table.iter() {
        let key_name = key.get_ref().as_ref();
        if existing::kind_names().contains(&key_name) && backup.from.as_ref().is_none_or(|f| f.get_ref() != key_name) {
            errors.push(doc.at(
                key.span(),
                format!("[backup.{key_name}] is given, but `from` does not name `{key_name}`"),
                Some(format!("set `mode = \"existing\"` and `from = \"{key_name}\"`, or remove the table")),
            ));
        }
    }
    let existing = match (&backup.from, backup.mode) {
        (Some(f), BackupMode::Existing) => match existing::parse(doc, f, table.get(f.get_ref().as_str())) {
            Ok(e) => Some(e),
            Err(d) => {
                errors.push(d);
                None
            }
        },
        (None, BackupMode::Existing) => {
            errors.push(doc.at(
                value.span(),
                "`mode = \"existing\"` needs `from`: the tool that made the backups".into(),
                Some(format!("add `from = \"...\"` with one of: {}", existing::kind_names().join(" | "))),
            ));
            None
        }
        (Some(f), _) => {
            errors.push(doc.at(
                f.span(),
                "`from` names the tool of existing backups, but the plan's `mode` is not \"existing\"".into(),
                Some("set `mode = \"existing\"`, or remove `from`".into()),
            ));
            None
        }
        (None, _) => None,
    };
    if let Some(name) = existing.as_ref().and_then(|e| e.store())
        && !config.stores.contains_key(name)
    {
        errors.push(doc.at(
            value.span(),
            format!(
                "unknown store `{name}` in [backup.{}]",
                backup.from.as_ref().map(|f| f.get_ref().as_str()).unwrap_or("")
            ),
            Some(format!("use one of the stores in {}: {}", config.origin(), config.store_names().join(", "))),
        ));
    }
    if errors.is_empty() { Ok(existing) } else { Err(errors) }
}

fn array_items<'d, 'a>(doc: &'d TomlDoc<'a>, key: &str) -> Vec<&'d Spanned<toml::de::DeValue<'a>>> {
    match doc.get(key).map(|v| v.get_ref()) {
        Some(toml::de::DeValue::Array(items)) => items.iter().collect(),
        Some(_) => doc.get(key).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Plan names become folder names in stores: keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(format!("plan name {name:?} is not allowed")) }
}

/// The `.toml` files of a plans folder, sorted.
pub fn plan_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read plans folder {}: set `plans` in the config", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Finds a plan by file path or by name in the plans folder.
pub fn find(arg: &str, config: &Config) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(arg);
    if arg.ends_with(".toml") || arg.contains('/') {
        anyhow::ensure!(as_path.is_file(), "plan file {arg} does not exist");
        return Ok(as_path.to_path_buf());
    }
    let by_stem = config.plans.join(format!("{arg}.toml"));
    if by_stem.is_file() {
        return Ok(by_stem);
    }
    // A plan may set `name` different from its file name.
    for file in plan_files(&config.plans)? {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(doc) = TomlDoc::parse(&file, &text)
            && doc.get("name").and_then(|v| v.get_ref().as_str()) == Some(arg)
        {
            return Ok(file);
        }
    }
    let known: Vec<String> = plan_files(&config.plans)?
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    anyhow::bail!(
        "no plan named `{arg}` in {}; plans there: {}",
        config.plans.display(),
        if known.is_empty() { "none".to_string() } else { known.join(", ") }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"d\"\n[[check]]\nkind = \"tree-matches-source\"\n";

    fn parse(head: &str) -> Result<Plan, Diagnostics> {
        Plan::parse(Path::new("p.toml"), &format!("{head}{BASE}"), &Config::defaults())
    }

    #[test]
    fn missed_and_jitter_parse_with_a_schedule() {
        let p = parse("schedule = \"@hourly\"\nmissed = \"run-once\"\njitter = \"30s\"\n").unwrap();
        assert_eq!(p.missed, MissedPolicy::RunOnce);
        assert_eq!(p.jitter, Duration::from_secs(30));
        let p = parse("schedule = \"@hourly\"\n").unwrap();
        assert_eq!((p.missed, p.jitter), (MissedPolicy::Skip, Duration::ZERO));
    }

    #[test]
    fn missed_and_jitter_are_refused_where_they_mean_nothing() {
        let e = parse("missed = \"skip\"\n").unwrap_err();
        assert!(e.to_string().contains("p.toml:1:"), "{e}");
        let e = parse("schedule = \"* * * * * *\"\njitter = \"5s\"\n").unwrap_err();
        assert!(e.to_string().contains("p.toml:2:") && e.to_string().contains("gap"), "{e}");
        let e = parse("schedule = \"@daily\"\nmissed = \"catch-up\"\n").unwrap_err();
        assert!(e.to_string().contains("p.toml:2:"), "{e}");
    }

    #[test]
    fn pause_before_names_phases_and_points_at_a_typo() {
        let config = Config::defaults();
        let ok = Plan::parse(
            Path::new("p.toml"),
            &format!("pause_before = [\"failure\", \"restore\", \"failure\"]\n{BASE}"),
            &config,
        )
        .unwrap();
        assert_eq!(ok.pause_before, vec!["failure", "restore"]);
        let err =
            Plan::parse(Path::new("p.toml"), &format!("pause_before = [\"restor\"]\n{BASE}"), &config).unwrap_err();
        let d = &err.0[0];
        assert_eq!((d.line, d.col), (1, 17), "{d}");
        assert!(d.to_string().contains("did you mean `restore`"), "{d}");
    }
}
