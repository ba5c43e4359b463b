//! The daemon and CLI configuration (`config/drdrill.toml`).
//!
//! Without a config file the embedded defaults put everything under `./var`, so a
//! fresh clone runs with no preparation. Relative paths in the config resolve
//! against the working directory (plans have their own base: see `plan`).
//! Every key can be overridden from the environment ([`env`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use toml::de::DeValue;

use crate::diag::{Diagnostics, Keys, TomlDoc};
use crate::store::{self, StoreSpec};

pub mod alert;
mod api;
mod daemon;
pub mod env;
mod evidence;
mod fleet;
mod notify;
mod safety;

pub use alert::{AlertConfig, AlertKind, Event, SecretSource};
pub use api::{ApiConfig, ConsoleReads};
pub use daemon::{DaemonConfig, MaxInterval, TimeZone};
pub use evidence::EvidenceConfig;
pub use fleet::FleetConfig;
pub use notify::{DEFAULT_PASSWORD_ENV, NotifyConfig, Security};
pub use safety::{Halt, SafetyConfig};

/// Where the CLI looks when neither `--config` nor `DRDRILL_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/drdrill.toml";

#[derive(Debug)]
pub struct Config {
    /// The file this came from; `None` for the embedded defaults.
    pub file: Option<PathBuf>,
    pub database: PathBuf,
    pub plans: PathBuf,
    pub scratch: PathBuf,
    pub api: ApiConfig,
    pub stores: BTreeMap<String, Box<dyn StoreSpec>>,
    pub safety: SafetyConfig,
    pub daemon: DaemonConfig,
    /// Email alerts and digests; `None` sends no mail.
    pub notify: Option<NotifyConfig>,
    /// The node's evidence signing key.
    pub evidence: EvidenceConfig,
    /// Fleet mode: `None` runs every firing here.
    pub fleet: Option<FleetConfig>,
    /// `[[alert]]`: webhook, Slack-compatible and ntfy channels.
    pub alerts: Vec<AlertConfig>,
    /// How log lines are written (`--log-format` wins over it).
    pub log_format: LogFormat,
    /// The keys the environment set (`DRDRILL_API_LISTEN`, ...).
    pub overrides: Vec<env::Override>,
    /// Problems worth a warning that do not stop loading (unknown `DRDRILL_*` variables).
    pub warnings: Vec<String>,
}

/// `log_format = "text" | "json"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event; under journald without timestamps and with
    /// syslog priority prefixes, so `journalctl -p err` finds errors.
    #[default]
    Text,
    /// One JSON object per line, with the run's span fields (plan, run).
    Json,
}

/// The keys a config file takes at its top level.
const CONFIG_KEYS: &[&str] = &[
    "database",
    "plans",
    "scratch",
    "log_format",
    "api",
    "stores",
    "safety",
    "daemon",
    "notify",
    "alert",
    "evidence",
    "fleet",
];

impl Config {
    /// The embedded defaults: everything under `./var`.
    pub fn defaults() -> Config {
        let mut stores: BTreeMap<String, Box<dyn StoreSpec>> = BTreeMap::new();
        stores.insert("local".into(), store::local::default_spec());
        Config {
            file: None,
            database: "var/drdrill.db".into(),
            plans: "drills".into(),
            scratch: "var/scratch".into(),
            api: ApiConfig::default(),
            stores,
            safety: SafetyConfig::default(),
            daemon: DaemonConfig::default(),
            notify: None,
            alerts: Vec::new(),
            log_format: LogFormat::default(),
            overrides: Vec::new(),
            warnings: Vec::new(),
            evidence: EvidenceConfig::default(),
            fleet: None,
        }
    }

    /// Loads `explicit` if given (it must exist), else [`DEFAULT_CONFIG_PATH`] if
    /// present, else the embedded defaults; then applies the environment's overrides.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        Config::load_with_env(explicit, std::env::vars())
    }

    /// [`Config::load`] with the environment given.
    pub fn load_with_env(
        explicit: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => Some(PathBuf::from(DEFAULT_CONFIG_PATH)),
            None => None,
        };
        let text = match &path {
            Some(p) => std::fs::read_to_string(p).with_context(|| {
                format!("cannot read config {}: check the path given with --config or DRDRILL_CONFIG", p.display())
            })?,
            None => String::new(),
        };
        // The file alone first, so its own problems point at its own lines.
        let mut config = match &path {
            Some(p) => Config::parse(p, &text)?,
            None => Config::defaults(),
        };
        let overrides = env::read(vars, &Config::sections(), &config.store_names_owned(), &config.referenced_vars());
        if overrides.list.is_empty() {
            config.warnings = overrides.warnings;
            return Ok(config);
        }
        let mut table: toml::Table = toml::from_str(&text).context("the config file, read again for the overrides")?;
        env::apply(&mut table, &overrides.list);
        let merged = toml::to_string(&table).context("the config with the environment's overrides")?;
        let label = PathBuf::from(format!("{} + environment", config.origin()));
        let mut merged_config =
            Config::parse(&label, &merged).map_err(|d| override_errors(&d, &merged, &overrides.list, &config))?;
        merged_config.file = path;
        merged_config.overrides = overrides.list;
        merged_config.warnings = overrides.warnings;
        Ok(merged_config)
    }

    /// The sections whose keys the environment can set, with their keys.
    fn sections() -> Vec<(&'static str, &'static [&'static str])> {
        vec![
            ("api", env::fields_of::<ApiConfig>()),
            ("daemon", env::fields_of::<DaemonConfig>()),
            ("safety", env::fields_of::<SafetyConfig>()),
            ("notify", env::fields_of::<NotifyConfig>()),
        ]
    }

    fn store_names_owned(&self) -> Vec<String> {
        self.stores.keys().cloned().collect()
    }

    /// Variables the config names for its secrets (`password_env`, `secret_env`, `url_env`).
    fn referenced_vars(&self) -> Vec<String> {
        let mut v: Vec<String> = self.notify.iter().filter_map(|n| n.password_env.clone()).collect();
        for a in &self.alerts {
            v.extend(a.secret_env.iter().chain(&a.url_env).cloned());
        }
        v
    }

    /// Reads each key and section on its own, so every independent problem of
    /// the file is reported at once.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
        let doc = TomlDoc::parse(path, text)?;
        let mut keys = Keys::new(&doc, doc.root(), "config", CONFIG_KEYS);
        let mut config = Config::defaults();
        config.file = Some(path.to_path_buf());
        let mut errors = Vec::new();
        if let Some(v) = keys.opt("database") {
            config.database = v;
        }
        if let Some(v) = keys.opt("plans") {
            config.plans = v;
        }
        if let Some(v) = keys.opt("scratch") {
            config.scratch = v;
        }
        if let Some(v) = keys.opt("log_format") {
            config.log_format = v;
        }
        if let Some(v) = keys.opt("api") {
            config.api = v;
        }
        if let Some(v) = keys.opt("safety") {
            config.safety = v;
        }
        if let Some(v) = keys.opt("daemon") {
            config.daemon = v;
        }
        if let Some(v) = keys.opt("evidence") {
            config.evidence = v;
        }
        let fleet_span = keys.raw("fleet").map(|v| v.span());
        if let Some(f) = keys.opt::<FleetConfig>("fleet") {
            if let (Some(why), Some(span)) = (f.node_problem(), fleet_span.clone()) {
                errors.push(doc.at(span, format!("[fleet]: {why}"), Some("set `node = \"host-a\"`".into())));
            }
            config.fleet = Some(f);
        }
        if let Some(n) = keys.opt::<NotifyConfig>("notify") {
            if let Err(e) = n.validate()
                && let Some(section) = keys.raw("notify")
            {
                errors.push(doc.at(section.span(), format!("[notify]: {e}"), None));
            }
            config.notify = Some(n);
        }
        if let Some(alerts) = keys.raw("alert") {
            let items: Vec<_> = match alerts.get_ref() {
                DeValue::Array(items) => items.iter().collect(),
                _ => vec![alerts],
            };
            for item in items {
                match doc.deserialize::<AlertConfig>(item) {
                    Ok(a) => {
                        if let Err(e) = a.validate() {
                            errors.push(doc.at(item.span(), format!("[[alert]] {}: {e}", a.name()), None));
                        } else if config.alerts.iter().any(|o| o.name() == a.name()) {
                            errors.push(doc.at(
                                item.span(),
                                format!("[[alert]] name `{}` is used twice", a.name()),
                                Some("give each [[alert]] its own `name`".into()),
                            ));
                        } else {
                            config.alerts.push(a);
                        }
                    }
                    Err(d) => errors.push(d),
                }
            }
        }
        if let Some(stores) = keys.raw("stores") {
            match stores.get_ref() {
                DeValue::Table(table) => {
                    for (name, value) in table {
                        match store::parse_spec(&doc, name.get_ref(), value) {
                            Ok(spec) => {
                                config.stores.insert(name.get_ref().to_string(), spec);
                            }
                            Err(d) => errors.push(d),
                        }
                    }
                }
                _ => errors.push(doc.at(
                    stores.span(),
                    "stores must be a table".into(),
                    Some("write each store as a [stores.NAME] section".into()),
                )),
            }
        }
        if let (Some(f), Some(span)) = (&config.fleet, fleet_span) {
            match config.stores.get(&f.store) {
                None => errors.push(doc.at(
                    span,
                    format!("[fleet] store = {:?} is not a configured store (stores: {})", f.store, config.store_names().join(", ")),
                    Some("add a [stores.NAME] section with kind = \"s3\" and name it here".into()),
                )),
                Some(spec) if spec.local_root().is_some() => errors.push(doc.at(
                    span,
                    format!(
                        "[fleet] store = {:?} is a local folder store ({}): fleet nodes on other hosts cannot share it, and it has no conditional writes to claim firings with",
                        f.store,
                        spec.describe()
                    ),
                    Some("use a store with kind = \"s3\" that every node reaches".into()),
                )),
                Some(_) => {}
            }
        }
        errors.extend(keys.finish());
        if errors.is_empty() {
            Ok(config)
        } else {
            errors.sort_by_key(|d| (d.line, d.col));
            Err(Diagnostics(errors))
        }
    }

    /// The base of the links alerts carry: `[api] public_url`, else the API's own address.
    pub fn link_base(&self) -> String {
        match &self.api.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.api.listen),
        }
    }

    /// Names of the configured stores, for messages.
    pub fn store_names(&self) -> Vec<&str> {
        self.stores.keys().map(String::as_str).collect()
    }

    /// This node's name in evidence and in a fleet: `[fleet] node`, else the hostname.
    pub fn node(&self) -> String {
        self.fleet.as_ref().map(FleetConfig::node).unwrap_or_else(crate::net::hostname)
    }

    /// Where this config came from, for messages.
    pub fn origin(&self) -> String {
        match &self.file {
            Some(f) => f.display().to_string(),
            None => "the embedded defaults (no config file)".to_string(),
        }
    }
}

/// Problems that only the environment's overrides brought in, each named by
/// the variable that set the key (the merged text's lines mean nothing to anyone).
fn override_errors(d: &Diagnostics, merged: &str, list: &[env::Override], file: &Config) -> anyhow::Error {
    let mut section: Option<String> = None;
    let mut at_line: Vec<(usize, &env::Override)> = Vec::new();
    let mut section_lines: Vec<(usize, Option<String>)> = Vec::new();
    for (i, line) in merged.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[') {
            section = Some(h.trim_matches(|c| c == '[' || c == ']').replace('"', ""));
        }
        section_lines.push((i + 1, section.clone()));
        for o in list {
            let key = t.split('=').next().unwrap_or("").trim().trim_matches('"');
            if key == o.key && section == o.section && t.contains('=') {
                at_line.push((i + 1, o));
            }
        }
    }
    let mut text = format!("the environment's overrides do not fit the config ({}):", file.origin());
    for diag in &d.0 {
        let exact: Vec<&env::Override> = at_line.iter().filter(|(l, _)| *l == diag.line).map(|(_, o)| *o).collect();
        let vars: Vec<&env::Override> = if exact.is_empty() {
            let sec = section_lines.iter().find(|(l, _)| *l == diag.line).and_then(|(_, s)| s.clone());
            let same: Vec<&env::Override> = list.iter().filter(|o| o.section == sec).collect();
            if same.is_empty() { list.iter().collect() } else { same }
        } else {
            exact
        };
        let names: Vec<String> = vars.iter().map(|o| format!("{} (sets {})", o.var, o.target())).collect();
        text += &format!("\n  {}: {}", names.join(", "), diag.message);
        if let Some(fix) = &diag.fix {
            text += &format!("\n    fix: {fix}");
        }
    }
    anyhow::anyhow!(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_environment_overrides_keys_and_names_itself_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[api]\ntoken_file = \"t\"\n[daemon]\nconcurrency = 3\n").unwrap();
        let c = Config::load_with_env(
            Some(&file),
            vars(&[("DRDRILL_API_LISTEN", "127.0.0.1:9999"), ("DRDRILL_DAEMON_GRACE_PERIOD", "5s")]),
        )
        .unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:9999");
        assert_eq!(c.api.token_file, PathBuf::from("t"));
        assert_eq!(c.daemon.concurrency.get(), 3);
        assert_eq!(c.daemon.grace_period.0, std::time::Duration::from_secs(5));
        assert_eq!(c.file.as_deref(), Some(file.as_path()));
        let err = Config::load_with_env(Some(&file), vars(&[("DRDRILL_DAEMON_CONCURRENCY", "0")])).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("DRDRILL_DAEMON_CONCURRENCY (sets [daemon] concurrency)"), "{text}");
        assert!(text.contains("out of range"), "{text}");
        // Without a file, the defaults are what the environment changes.
        let c = Config::load_with_env(None, vars(&[("DRDRILL_LOG_FORMAT", "json")])).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn defaults_have_a_local_store() {
        let c = Config::defaults();
        assert_eq!(c.store_names(), vec!["local"]);
        assert_eq!(c.database, PathBuf::from("var/drdrill.db"));
    }

    #[test]
    fn unknown_keys_point_at_their_line() {
        let text = "database = \"x.db\"\n[stores.backups]\nkind = \"local\"\nrot = \"/srv\"\n";
        let err = Config::parse(Path::new("c.toml"), text).unwrap_err();
        let d = &err.0[0];
        assert_eq!((d.line, d.col), (4, 1), "{d}");
        assert!(d.to_string().contains("did you mean `root`"), "{d}");
    }

    #[test]
    fn daemon_section_is_checked() {
        let c = Config::parse(Path::new("c.toml"), "[daemon]\ntimezone = \"Europe/Paris\"\nconcurrency = 3\n").unwrap();
        assert_eq!(c.daemon.timezone.0, chrono_tz::Europe::Paris);
        assert_eq!(c.daemon.concurrency.get(), 3);
        let err = Config::parse(Path::new("c.toml"), "[daemon]\ntimezone = \"Mars/Olympus\"\n").unwrap_err();
        assert_eq!(err.0[0].line, 2, "{err}");
        assert!(err.to_string().contains("unknown time zone"), "{err}");
        assert!(Config::parse(Path::new("c.toml"), "[daemon]\nconcurrency = 0\n").is_err());
    }

    #[test]
    fn stores_are_added_to_local() {
        let text = "[stores.offsite]\nkind = \"local\"\nroot = \"/srv/backups\"\n";
        let c = Config::parse(Path::new("c.toml"), text).unwrap();
        assert_eq!(c.store_names(), vec!["local", "offsite"]);
    }
}
