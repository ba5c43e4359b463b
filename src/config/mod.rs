//! The daemon and CLI configuration (`config/drdrill.toml`).
//!
//! Without a config file the embedded defaults put everything under `./var`, so a
//! fresh clone runs with no preparation. Relative paths resolve against the working
//! directory, like every path in plans.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use toml::de::DeValue;

use crate::diag::{Diagnostics, Keys, TomlDoc};
use crate::store::{self, StoreSpec};

mod api;
mod daemon;
mod evidence;
mod fleet;
mod notify;
mod safety;

pub use api::ApiConfig;
pub use daemon::{DaemonConfig, TimeZone};
pub use evidence::EvidenceConfig;
pub use fleet::FleetConfig;
pub use notify::{DEFAULT_PASSWORD_ENV, NotifyConfig, Security};
pub use safety::SafetyConfig;

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
}

/// The keys a config file takes at its top level.
const CONFIG_KEYS: &[&str] =
    &["database", "plans", "scratch", "api", "stores", "safety", "daemon", "notify", "evidence", "fleet"];

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
            evidence: EvidenceConfig::default(),
            fleet: None,
        }
    }

    /// Loads `explicit` if given (it must exist), else [`DEFAULT_CONFIG_PATH`] if
    /// present, else the embedded defaults.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => PathBuf::from(DEFAULT_CONFIG_PATH),
            None => return Ok(Config::defaults()),
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("cannot read config {}: check the path given with --config or DRDRILL_CONFIG", path.display())
        })?;
        Ok(Config::parse(&path, &text)?)
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

#[cfg(test)]
mod tests {
    use super::*;

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
