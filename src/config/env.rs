//! Overrides from the environment: `DRDRILL_<SECTION>_<KEY>` for a section's
//! key (`DRDRILL_API_LISTEN`, `DRDRILL_DAEMON_MAX_INTERVAL`,
//! `DRDRILL_STORES_LOCAL_ROOT`), `DRDRILL_<KEY>` for a top-level one
//! (`DRDRILL_DATABASE`), so a container or a systemd drop-in changes the
//! config without an edited file.
//!
//! The variables drdrill itself sets or reads for other purposes are never
//! taken for overrides nor warned about (see [`RESERVED`]); every other
//! `DRDRILL_*` variable that names no key is a warning, with the closest key.

use serde::Deserialize;
use serde::de::{self, Visitor};

/// Variables with another meaning: the config file's path, the default SMTP
/// password, what every drill process gets about its run (a drdrill started
/// from a drill's command must not take its run's scratch folder for its own
/// config), and the test suite's settings.
pub const RESERVED: &[&str] = &["CONFIG", "SMTP_PASSWORD", "SCRATCH", "RUN_ID", "RESTORE", "PORT"];
/// Prefixes (after `DRDRILL_`) of reserved families.
const RESERVED_PREFIXES: &[&str] = &["TEST_"];

/// The top-level keys and the variable of each. `scratch` is `DRDRILL_SCRATCH_DIR`:
/// `DRDRILL_SCRATCH` is what drill processes get (see [`RESERVED`]).
pub const TOP_LEVEL: &[(&str, &str)] =
    &[("database", "DATABASE"), ("plans", "PLANS"), ("scratch", "SCRATCH_DIR"), ("log_format", "LOG_FORMAT")];

/// One variable that sets one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub var: String,
    /// `None` for a top-level key; `stores.NAME` for a store's key.
    pub section: Option<String>,
    pub key: String,
    pub value: toml::Value,
}

impl Override {
    /// `[api] listen` or `database`, for messages.
    pub fn target(&self) -> String {
        match &self.section {
            Some(s) => format!("[{s}] {}", self.key),
            None => self.key.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Overrides {
    pub list: Vec<Override>,
    /// `DRDRILL_*` variables that name no key.
    pub warnings: Vec<String>,
}

/// The keys of a section's struct, read from its `Deserialize` impl, so the
/// list cannot drift from the struct.
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Grab(&'static [&'static str]);
    #[derive(Debug)]
    struct Done;
    impl std::fmt::Display for Done {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields read")
        }
    }
    impl std::error::Error for Done {}
    impl de::Error for Done {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Done
        }
    }
    impl<'de> de::Deserializer<'de> for &mut Grab {
        type Error = Done;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Done> {
            Err(Done)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Done> {
            self.0 = fields;
            Err(Done)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut g = Grab(&[]);
    let _ = T::deserialize(&mut g);
    g.0
}

/// A value as TOML reads it when it is one (`4`, `true`, `["a"]`, `"quoted"`),
/// else as a plain string (`127.0.0.1:9000`, `7d`, `/var/lib/drdrill`).
fn value_of(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) if t.len() == 1 => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.into())),
        _ => toml::Value::String(raw.into()),
    }
}

fn upper(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Reads `vars` (the environment). `sections` are the section names with
/// their keys; `stores` the store names the file and the defaults have;
/// `referenced` the variables the config names itself (`password_env`, ...).
pub fn read(
    vars: impl IntoIterator<Item = (String, String)>,
    sections: &[(&str, &'static [&'static str])],
    stores: &[String],
    referenced: &[String],
) -> Overrides {
    let mut out = Overrides::default();
    let mut all_vars: Vec<String> = TOP_LEVEL.iter().map(|(_, v)| format!("DRDRILL_{v}")).collect();
    for (s, keys) in sections {
        all_vars.extend(keys.iter().map(|k| format!("DRDRILL_{}_{}", upper(s), upper(k))));
    }
    let mut vars: Vec<(String, String)> = vars.into_iter().filter(|(k, _)| k.starts_with("DRDRILL_")).collect();
    vars.sort();
    'vars: for (var, raw) in vars {
        let rest = &var["DRDRILL_".len()..];
        if RESERVED.contains(&rest)
            || RESERVED_PREFIXES.iter().any(|p| rest.starts_with(p))
            || referenced.contains(&var)
            // A password or token some plan reads with `password_env` and the like.
            || crate::redact::is_secret_name(rest)
        {
            continue;
        }
        if let Some((key, _)) = TOP_LEVEL.iter().find(|(_, v)| *v == rest) {
            out.list.push(Override { var: var.clone(), section: None, key: key.to_string(), value: value_of(&raw) });
            continue;
        }
        for (section, keys) in sections {
            let Some(k) = rest.strip_prefix(&format!("{}_", upper(section))) else { continue };
            if let Some(key) = keys.iter().find(|key| upper(key) == k) {
                out.list.push(Override {
                    var: var.clone(),
                    section: Some(section.to_string()),
                    key: key.to_string(),
                    value: value_of(&raw),
                });
                continue 'vars;
            }
        }
        if let Some(tail) = rest.strip_prefix("STORES_") {
            // Longest name first: `STORES_S3_EU_ROOT` is store `s3-eu` before `s3`.
            let mut names: Vec<&String> = stores.iter().collect();
            names.sort_by_key(|n| std::cmp::Reverse(n.len()));
            for name in names {
                if let Some(k) = tail.strip_prefix(&format!("{}_", upper(name)))
                    && !k.is_empty()
                {
                    out.list.push(Override {
                        var: var.clone(),
                        section: Some(format!("stores.{name}")),
                        key: k.to_ascii_lowercase(),
                        value: value_of(&raw),
                    });
                    continue 'vars;
                }
            }
        }
        let known: Vec<&str> = all_vars.iter().map(String::as_str).collect();
        let hint = crate::diag::closest(&var, &known).map(|c| format!(" (did you mean {c}?)")).unwrap_or_default();
        out.warnings.push(format!(
            "environment variable {var} names no config key{hint}, so it changes nothing; overrides are DRDRILL_<SECTION>_<KEY> or DRDRILL_<KEY> for a top-level key (see the README's table)"
        ));
    }
    out
}

/// `table` (a config file) with `overrides` applied.
pub fn apply(table: &mut toml::Table, overrides: &[Override]) {
    for o in overrides {
        let mut at = &mut *table;
        if let Some(section) = &o.section {
            for part in section.split('.') {
                let entry = at.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
                if !entry.is_table() {
                    *entry = toml::Value::Table(Default::default());
                }
                at = entry.as_table_mut().expect("made a table above");
            }
        }
        at.insert(o.key.clone(), o.value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Section {
        listen: String,
        token_file: String,
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn fields_come_from_the_struct() {
        assert_eq!(fields_of::<Section>(), &["listen", "token_file"]);
    }

    #[test]
    fn variables_map_to_keys_and_reserved_ones_are_left_alone() {
        let sections: &[(&str, &'static [&'static str])] = &[("api", &["listen", "token_file"])];
        let o = read(
            vars(&[
                ("DRDRILL_API_LISTEN", "127.0.0.1:9999"),
                ("DRDRILL_DATABASE", "/var/lib/drdrill/db"),
                ("DRDRILL_SCRATCH_DIR", "/tmp/s"),
                ("DRDRILL_STORES_S3_EU_ROOT", "x"),
                ("DRDRILL_API_LISTN", "x"),
                ("DRDRILL_CONFIG", "c.toml"),
                ("DRDRILL_SCRATCH", "/run/scratch"),
                ("DRDRILL_RUN_ID", "3"),
                ("DRDRILL_RESTORE", "/r"),
                ("DRDRILL_PORT", "5432"),
                ("DRDRILL_TEST_PG_PORT", "1"),
                ("DRDRILL_TEST_BIN", "/x"),
                ("DRDRILL_SMTP_PASSWORD", "pw"),
                ("DRDRILL_MAIL_KEY", "k"),
                ("DRDRILL_HOOK_PW", "k"),
                ("PATH", "/bin"),
            ]),
            sections,
            &["local".into(), "s3-eu".into(), "s3".into()],
            &["DRDRILL_MAIL_KEY".into()],
        );
        let got: Vec<(String, String)> = o.list.iter().map(|o| (o.var.clone(), o.target())).collect();
        assert_eq!(
            got,
            vec![
                ("DRDRILL_API_LISTEN".into(), "[api] listen".into()),
                ("DRDRILL_DATABASE".into(), "database".into()),
                ("DRDRILL_SCRATCH_DIR".into(), "scratch".into()),
                ("DRDRILL_STORES_S3_EU_ROOT".into(), "[stores.s3-eu] root".into()),
            ]
        );
        assert_eq!(o.list[0].value, toml::Value::String("127.0.0.1:9999".into()));
        // Only the typo is warned about (a name like DRDRILL_HOOK_PW is not a secret-looking one).
        assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
        assert!(o.warnings[0].contains("DRDRILL_API_LISTN") && o.warnings[0].contains("DRDRILL_API_LISTEN"));
        assert!(o.warnings[1].contains("DRDRILL_HOOK_PW"));
    }

    #[test]
    fn values_are_toml_when_they_are_toml() {
        assert_eq!(value_of("4"), toml::Value::Integer(4));
        assert_eq!(value_of("true"), toml::Value::Boolean(true));
        assert_eq!(value_of("[\"/a\", \"/b\"]").as_array().map(Vec::len), Some(2));
        assert_eq!(value_of("7d"), toml::Value::String("7d".into()));
        assert_eq!(value_of("\"007\""), toml::Value::String("007".into()));
        let mut t: toml::Table = toml::from_str("[api]\ntoken_file = \"t\"\n").unwrap();
        apply(
            &mut t,
            &[Override {
                var: "V".into(),
                section: Some("api".into()),
                key: "listen".into(),
                value: value_of("127.0.0.1:1"),
            }],
        );
        assert_eq!(t["api"]["listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(t["api"]["token_file"].as_str(), Some("t"));
    }
}
