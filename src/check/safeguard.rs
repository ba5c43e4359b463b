//! `[[safeguard]]`: a probe of the outside world (production's health, an
//! incident flag) that must keep passing while a drill runs. The engine
//! evaluates every safeguard before the first failure is injected and then
//! every `interval` until the run's steps end; one failed evaluation aborts
//! the run with rollbacks.
//!
//! A safeguard is an `http` or a `command` check with the same keys and the
//! same judging ([`HttpCheck::attempt`], [`CommandCheck::judge`]), plus its
//! own `name`, `interval` and `timeout`. It probes the live system, not the
//! restore: its variables are `DRDRILL_SCRATCH` and `DRDRILL_RUN_ID` only.
//!
//! ```toml
//! [[safeguard]]
//! name = "orders-api"
//! kind = "http"
//! url = "https://orders.example.com/health"
//! expect_status = 200
//! expect_body = "ok"
//! interval = "5s"                    # 100ms to 1h; default 5s
//! timeout = "2s"                     # each evaluation; default the interval, at most 10s
//!
//! [[safeguard]]
//! name = "no-incident"
//! kind = "command"
//! run = "test ! -e /run/incident"    # exit 0 passes
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::command::{self, CommandCheck};
use super::http::{self, HttpCheck};
use crate::context::RunCtx;
use crate::diag::{Bounded, Diagnostic, TomlDoc, limit};

limit!(
    /// Faster than 100ms floods the probed service; slower than hourly guards nothing.
    pub Interval: Duration = "[[safeguard]] interval", Duration::from_millis(100), Duration::from_secs(3600)
);
limit!(
    /// Each evaluation; the same range as an http check's attempt.
    pub Timeout: Duration = "[[safeguard]] timeout", Duration::from_millis(100), Duration::from_secs(600)
);

/// Between evaluations when the plan does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The longest default timeout (the default is the interval, up to this).
const DEFAULT_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// The keys a safeguard takes besides its kind's.
const OWN_KEYS: [&str; 3] = ["name", "interval", "timeout"];

/// The variables a safeguard's URL, body and command may name.
const VARIABLES: [&str; 2] = ["DRDRILL_SCRATCH", "DRDRILL_RUN_ID"];

#[derive(Debug)]
pub struct Safeguard {
    /// Quoted by the abort reason: `aborted by safeguard NAME: ...`.
    pub name: String,
    pub interval: Duration,
    /// Each evaluation; one that does not answer in time has failed.
    pub timeout: Duration,
    probe: Probe,
}

#[derive(Debug)]
enum Probe {
    Http(HttpCheck),
    Command(CommandCheck),
}

impl Safeguard {
    pub fn kind(&self) -> &'static str {
        match self.probe {
            Probe::Http(_) => http::KIND,
            Probe::Command(_) => command::KIND,
        }
    }

    /// What it probes: `GET https://... expect 200` or the command.
    pub fn describe(&self) -> String {
        use super::Check;
        match &self.probe {
            Probe::Http(c) => c.describe(),
            Probe::Command(c) => c.describe(),
        }
    }

    /// When it is looked at: `every 5s, each within 5s`.
    pub fn cadence(&self) -> String {
        let human = humantime::format_duration;
        format!("every {}, each within {}", human(self.interval), human(self.timeout))
    }

    /// One evaluation against the live system, blocking, bounded by `timeout`
    /// and stopped by `run.cancel`: what it observed, or why it fails.
    pub fn evaluate(&self, run: &RunCtx) -> Result<String, String> {
        match &self.probe {
            Probe::Http(c) => {
                let vars: BTreeMap<String, String> = [
                    ("DRDRILL_SCRATCH".to_string(), run.run_dir.display().to_string()),
                    ("DRDRILL_RUN_ID".to_string(), run.run_id.to_string()),
                ]
                .into();
                c.attempt(&vars, &run.cancel)
            }
            Probe::Command(c) => {
                let cmd = run
                    .shell(&c.run)
                    .dir(&run.run_dir)
                    .timeout(self.timeout)
                    .log(run.run_dir.join(format!("safeguard-{}.log", self.name)));
                c.judge(cmd, &run.cancel)
            }
        }
    }
}

impl fmt::Display for Safeguard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.kind(), self.describe())
    }
}

/// A `[[safeguard]]` table, with every problem of it reported.
pub fn parse(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<Safeguard, Vec<Diagnostic>> {
    let (kind, rest) = doc.split_kind(value, "safeguard", &[http::KIND, command::KIND]).map_err(|d| vec![d])?;
    let DeValue::Table(table) = rest.get_ref() else {
        return Err(vec![doc.at(value.span(), "safeguard must be a table".into(), None)]);
    };
    // The kind's own table is what is left without the safeguard's keys, so
    // the check kinds' parsers judge it exactly as they judge a check.
    let mut probe_table = table.clone();
    let [name, interval, timeout] = OWN_KEYS.map(|k| probe_table.remove(k));
    let probe_value = Spanned::new(rest.span(), DeValue::Table(probe_table));
    let mut errors = Vec::new();

    let name: Option<String> = match name {
        None => {
            errors.push(doc.at(
                value.span(),
                "[[safeguard]] has no `name`".into(),
                Some("add `name = \"orders-api\"`: the abort reason quotes it".into()),
            ));
            None
        }
        Some(n) => match doc.deserialize::<String>(&n) {
            Ok(s) if plain_name(&s) => Some(s),
            Ok(s) => {
                errors.push(doc.at(
                    n.span(),
                    format!("safeguard name {s:?} is not allowed"),
                    Some("use 1 to 64 letters, digits, `-`, `_` and `.`, not starting with `.`".into()),
                ));
                None
            }
            Err(d) => {
                errors.push(d);
                None
            }
        },
    };
    let interval = match &interval {
        Some(v) => doc.deserialize::<Bounded<Interval>>(v).map(|b| b.0).map_err(|d| errors.push(d)).ok(),
        None => Some(DEFAULT_INTERVAL),
    };
    let timeout = match &timeout {
        Some(v) => match doc.deserialize::<Bounded<Timeout>>(v) {
            Ok(t) if interval.is_some_and(|i| t.0 > i) => {
                errors.push(doc.at(
                    v.span(),
                    format!(
                        "[[safeguard]] timeout {t} is longer than its interval {}: a probe that hangs would go unnoticed for longer than one interval",
                        humantime::format_duration(interval.unwrap_or_default())
                    ),
                    Some("set `timeout` to at most the `interval`".into()),
                ));
                None
            }
            Ok(t) => Some(t.0),
            Err(d) => {
                errors.push(d);
                None
            }
        },
        None => interval.map(|i| i.min(DEFAULT_TIMEOUT_MAX)),
    };

    let probe = match kind.as_str() {
        http::KIND => http::parse_check(doc, &probe_value).map(|mut c| {
            c.timeout = timeout.map(Bounded::of);
            Probe::Http(c)
        }),
        _ => command::parse_command(doc, &probe_value).map(Probe::Command),
    };
    let probe = match probe {
        Ok(p) => Some(p),
        Err(mut d) => {
            // The kind's parser lists its own keys; a safeguard takes three more.
            if let Some(rest) = d.message.strip_prefix("unknown field `") {
                let field = rest.split('`').next().unwrap_or_default().to_string();
                let mut allowed: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
                allowed.extend(OWN_KEYS);
                let listed: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
                d.fix = Some(match crate::diag::closest(&field, &allowed) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!("remove it; allowed keys here: {}", allowed.join(", ")),
                });
                d.message = format!("unknown field `{field}`, expected one of {}", listed.join(", "));
            }
            errors.push(d);
            None
        }
    };
    if let Some(Probe::Http(c)) = &probe {
        for var in c.variables_named().into_iter().filter(|v| !VARIABLES.contains(v)) {
            errors.push(doc.at(
                value.span(),
                format!(
                    "safeguard `{}` names ${{{var}}}, which a safeguard does not have",
                    name.as_deref().unwrap_or("?")
                ),
                Some(format!(
                    "a safeguard probes the live system, not the restore: it may name {}",
                    VARIABLES.map(|v| format!("${{{v}}}")).join(", ")
                )),
            ));
        }
    }

    match (name, interval, timeout, probe) {
        (Some(name), Some(interval), Some(timeout), Some(probe)) if errors.is_empty() => {
            Ok(Safeguard { name, interval, timeout, probe })
        }
        _ => Err(errors),
    }
}

/// Names end up in log file names: keep them plain.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse_text(text: &str) -> Result<Safeguard, Vec<Diagnostic>> {
        let doc = TomlDoc::parse(Path::new("p.toml"), text).unwrap();
        parse(&doc, doc.root())
    }

    #[test]
    fn defaults_and_the_kinds_keys() {
        let s =
            parse_text("name = \"api\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/health\"\nexpect_status = 200\n")
                .unwrap();
        assert_eq!((s.interval, s.timeout), (DEFAULT_INTERVAL, DEFAULT_INTERVAL));
        assert_eq!(s.describe(), "GET http://127.0.0.1:1/health expect 200");
        let s = parse_text("name = \"flag\"\nkind = \"command\"\nrun = \"true\"\ninterval = \"1m\"\n").unwrap();
        assert_eq!((s.kind(), s.timeout), ("command", Duration::from_secs(10)));
    }

    #[test]
    fn every_problem_is_reported_at_its_line() {
        let e = parse_text("kind = \"http\"\nurl = \"ftp://x\"\ninterval = \"2h\"\n").unwrap_err();
        let text: Vec<String> = e.iter().map(|d| d.to_string()).collect();
        assert_eq!(e.len(), 3, "{text:#?}");
        assert!(text.iter().any(|t| t.contains("has no `name`")), "{text:#?}");
        assert!(
            text.iter()
                .any(|t| t.starts_with("p.toml:3:12: [[safeguard]] interval = \"2h\" is out of range 100ms to 1h")),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.contains("ftp://x")), "{text:#?}");
        let e = parse_text("name = \"a\"\nkind = \"command\"\nrun = \"true\"\ninterval = \"1s\"\ntimeout = \"5s\"\n")
            .unwrap_err();
        assert!(
            e[0].to_string().starts_with("p.toml:5:11:") && e[0].message.contains("longer than its interval"),
            "{e:?}"
        );
        let e = parse_text("name = \"a\"\nkind = \"sqlite-query\"\n").unwrap_err();
        assert!(e[0].fix.as_deref().unwrap_or("").contains("http | command"), "{e:?}");
        let e = parse_text("name = \"a\"\nkind = \"command\"\nrun = \"true\"\nintervall = \"1s\"\n").unwrap_err();
        assert_eq!(e[0].message, "unknown field `intervall`, expected one of `run`, `name`, `interval`, `timeout`");
        assert_eq!(e[0].fix.as_deref(), Some("did you mean `interval`?"));
        let e = parse_text("name = \"a b\"\nkind = \"http\"\nurl = \"http://h/${DRDRILL_PORT}\"\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[1].message.contains("${DRDRILL_PORT}"), "{e:?}");
    }
}
