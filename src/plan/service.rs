//! `[service]`: the team's application, started on the restored data after
//! the restore, so the checks prove the service answers and not only that the
//! data is there. Its start is its own share of RTO (`start`).
//!
//! ```toml
//! [service]
//! run = "python3 app.py --db \"$DRDRILL_RESTORE\" --port \"$DRDRILL_PORT\""
//! workdir = "/srv/app"                                  # default: the run's scratch folder
//! ready = "http://127.0.0.1:${DRDRILL_PORT}/health"     # or "tcp", "tcp:8080", or a table of http-check keys
//! ready_timeout = "60s"                                 # default: until the run's deadline
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use crate::check::http::{self, HttpCheck};
use crate::diag::{Bounded, Diagnostic, Keys, TomlDoc, limit};

limit!(pub ReadyTimeout: Duration = "[service] ready_timeout", Duration::from_millis(100), Duration::from_secs(86_400));

#[derive(Debug, Clone)]
pub struct ServiceSection {
    /// A shell command that runs the application in the foreground.
    pub run: String,
    /// Where it runs (default: the run's scratch folder).
    pub workdir: Option<PathBuf>,
    pub ready: Option<Ready>,
    pub ready_timeout: Option<Duration>,
}

/// When the application counts as started.
#[derive(Debug, Clone)]
pub enum Ready {
    /// A TCP port on 127.0.0.1 accepts connections (`None`: `DRDRILL_PORT`).
    Tcp(Option<u16>),
    /// An HTTP check passes.
    Http(Arc<HttpCheck>),
}

impl std::fmt::Display for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::check::Check;
        match self {
            Ready::Tcp(None) => f.write_str("TCP port DRDRILL_PORT accepts connections"),
            Ready::Tcp(Some(p)) => write!(f, "TCP port {p} accepts connections"),
            Ready::Http(c) => f.write_str(&c.describe()),
        }
    }
}

const KEYS: &[&str] = &["run", "workdir", "ready", "ready_timeout"];

/// `[service]`, with every problem of the table reported.
pub fn parse(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<ServiceSection, Vec<Diagnostic>> {
    let mut keys = Keys::new(doc, value, "service", KEYS);
    let run: Option<Spanned<String>> = keys.req("run");
    let workdir = keys.opt("workdir");
    let ready_timeout = keys.opt::<Bounded<ReadyTimeout>>("ready_timeout").map(|t| t.0);
    let ready = keys.raw("ready").and_then(|v| match ready(doc, v) {
        Ok(r) => Some(r),
        Err(d) => {
            keys.push(d);
            None
        }
    });
    if let Some(r) = &run
        && r.get_ref().trim().is_empty()
    {
        keys.push(doc.at(
            r.span(),
            "[service] `run` is empty".into(),
            Some("set `run` to the command that starts your application in the foreground".into()),
        ));
    }
    let errors = keys.finish();
    match run {
        Some(run) if errors.is_empty() => Ok(ServiceSection { run: run.into_inner(), workdir, ready, ready_timeout }),
        _ => Err(errors),
    }
}

fn ready(doc: &TomlDoc, v: &Spanned<DeValue>) -> Result<Ready, Diagnostic> {
    let fix = "write `ready = \"tcp\"` (DRDRILL_PORT), `\"tcp:8080\"`, a URL like `\"http://127.0.0.1:${DRDRILL_PORT}/health\"`, or a table of `http` check keys";
    match v.get_ref() {
        DeValue::String(s) if s == "tcp" => Ok(Ready::Tcp(None)),
        DeValue::String(s) if s.starts_with("tcp:") => match s["tcp:".len()..].parse::<u16>() {
            Ok(p) if p > 0 => Ok(Ready::Tcp(Some(p))),
            _ => Err(doc.at(v.span(), format!("`ready` {s:?} names no port"), Some(fix.into()))),
        },
        DeValue::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            let c = HttpCheck::get(s).map_err(|e| doc.at(v.span(), e, Some(fix.into())))?;
            Ok(Ready::Http(Arc::new(c)))
        }
        DeValue::Table(_) => Ok(Ready::Http(Arc::new(http::parse_check(doc, v)?))),
        _ => Err(doc.at(v.span(), "`ready` is not a port, a URL or a table".into(), Some(fix.into()))),
    }
}
