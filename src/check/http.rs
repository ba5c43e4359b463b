//! `kind = "http"`: a request to the application the drill started on the
//! restored data (`[service]`, or a restore that starts one), and what its
//! answer must be: a status (a number or a range), a body that contains a
//! text or matches a regex, JSON values at JSON pointers.
//!
//! `url`, `body` and header values may name the run's variables
//! (`${DRDRILL_PORT}`, `${DRDRILL_SCRATCH}`, the restore's `PGHOST`, ...).
//! Header values that are secrets come from the environment or a file and are
//! masked in every output. It is a readiness check: a failed attempt is
//! retried until the run's deadline, each bounded by `timeout`. Redirects are
//! followed only while they stay on loopback, unless `redirects = "any"`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;
use toml::de::DeValue;

use super::{Check, CheckCtx, Need};
use crate::cancel::Cancel;
use crate::diag::{Bounded, Diagnostic, TomlDoc, limit};

pub const KIND: &str = "http";

/// Bodies longer than this are read only this far: a check is not a download.
const BODY_MAX: usize = 8 << 20;

limit!(
    /// One attempt; the check as a whole is retried until the run's deadline.
    pub AttemptTimeout: Duration = "[[check]] timeout", Duration::from_millis(100), Duration::from_secs(600)
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,
    pub body: Option<String>,
    #[serde(default)]
    pub expect_status: StatusRange,
    pub expect_body: Option<BodyExpect>,
    /// JSON pointer (`/orders/0/id`) = the value there.
    #[serde(default)]
    pub expect_json: BTreeMap<String, serde_json::Value>,
    /// Per attempt (default 10s).
    pub timeout: Option<Bounded<AttemptTimeout>>,
    /// PEM certificates trusted for `https://` besides the system's.
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub redirects: Redirects,
}

fn default_method() -> String {
    "GET".into()
}

/// A header's value as written, or a secret read when the check runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Text(String),
    Secret(SecretHeader),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretHeader {
    /// Environment variable of drdrill holding the value.
    pub env: Option<String>,
    /// File whose first line is the value.
    pub file: Option<PathBuf>,
    /// Written before the secret (`"Bearer "`).
    #[serde(default)]
    pub prefix: String,
}

/// Which redirects are followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redirects {
    /// Only to loopback addresses: a restored application must not send the
    /// drill to production.
    #[default]
    Loopback,
    None,
    Any,
}

/// `200`, `"200-299"` or `"2xx"`; default any 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange(pub u16, pub u16);

impl Default for StatusRange {
    fn default() -> Self {
        StatusRange(200, 299)
    }
}

impl std::fmt::Display for StatusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == self.1 { write!(f, "{}", self.0) } else { write!(f, "{}-{}", self.0, self.1) }
    }
}

impl StatusRange {
    fn parse(text: &str) -> Result<StatusRange, String> {
        let t = text.trim();
        let bad = || format!("`expect_status` {text:?} is not a status or a range: write 200, \"200-299\" or \"2xx\"");
        let code = |s: &str| s.trim().parse::<u16>().ok().filter(|c| (100..=599).contains(c));
        if let Some(d) = t.strip_suffix("xx").and_then(|d| d.parse::<u16>().ok()).filter(|d| (1..=5).contains(d)) {
            return Ok(StatusRange(d * 100, d * 100 + 99));
        }
        if let Some((a, b)) = t.split_once('-') {
            let (a, b) = (code(a).ok_or_else(bad)?, code(b).ok_or_else(bad)?);
            return if a <= b { Ok(StatusRange(a, b)) } else { Err(bad()) };
        }
        code(t).map(|c| StatusRange(c, c)).ok_or_else(bad)
    }

    fn contains(&self, code: u16) -> bool {
        (self.0..=self.1).contains(&code)
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(i64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Code(c) => c.to_string(),
            Raw::Text(t) => t,
        };
        StatusRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `expect_body = "ok"` (contains), `{ contains = "ok" }` or `{ regex = "^ok" }`.
#[derive(Debug, Clone)]
pub enum BodyExpect {
    Contains(String),
    Regex(regex::Regex),
}

impl<'de> Deserialize<'de> for BodyExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            contains: Option<String>,
            regex: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Table(Table),
        }
        use serde::de::Error;
        match Raw::deserialize(d)? {
            Raw::Text(t) | Raw::Table(Table { contains: Some(t), regex: None }) => Ok(BodyExpect::Contains(t)),
            Raw::Table(Table { contains: None, regex: Some(r) }) => regex::Regex::new(&r)
                .map(BodyExpect::Regex)
                .map_err(|e| D::Error::custom(format!("`expect_body` regex {r:?} does not compile: {e}"))),
            Raw::Table(_) => Err(D::Error::custom(
                "`expect_body` takes one of `contains` or `regex`, e.g. `expect_body = { contains = \"ok\" }`",
            )),
        }
    }
}

impl std::fmt::Display for BodyExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyExpect::Contains(t) => write!(f, "body contains {t:?}"),
            BodyExpect::Regex(r) => write!(f, "body matches /{}/", r.as_str()),
        }
    }
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Check>, Diagnostic> {
    parse_check(doc, &value).map(|c| Arc::new(c) as Arc<dyn Check>)
}

/// The check itself, for callers that run it outside the checks (`[service] ready`).
pub fn parse_check(doc: &TomlDoc, value: &Spanned<DeValue>) -> Result<HttpCheck, Diagnostic> {
    let mut c: HttpCheck = doc.deserialize(value)?;
    let bad = |msg: String, fix: &str| Err(doc.at(value.span(), msg, Some(fix.into())));
    if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
        return bad(
            format!("http check `url` {:?} is not an http:// or https:// URL", c.url),
            "e.g. `url = \"http://127.0.0.1:${DRDRILL_PORT}/health\"`",
        );
    }
    c.method = c.method.to_ascii_uppercase();
    if reqwest::Method::from_bytes(c.method.as_bytes()).is_err() {
        return bad(format!("http check `method` {:?} is not an HTTP method", c.method), "e.g. GET, POST, HEAD");
    }
    for (name, v) in &c.headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return bad(format!("header name {name:?} is not valid"), "use letters, digits and `-`");
        }
        if let HeaderValue::Secret(s) = v
            && s.env.is_some() == s.file.is_some()
        {
            return bad(
                format!("header {name:?} needs one of `env` or `file`"),
                "e.g. `headers = { Authorization = { env = \"APP_TOKEN\", prefix = \"Bearer \" } }`",
            );
        }
    }
    for p in c.expect_json.keys() {
        if !p.is_empty() && !p.starts_with('/') {
            return bad(
                format!("`expect_json` key {p:?} is not a JSON pointer"),
                "pointers start with `/`: `\"/status\" = \"ok\"`, `\"/items/0/id\" = 1`",
            );
        }
    }
    for text in [Some(&c.url), c.body.as_ref()].into_iter().flatten() {
        if let Err(e) = variables(text) {
            return bad(e, "write variables as ${NAME}, e.g. ${DRDRILL_PORT}");
        }
    }
    Ok(c)
}

/// The `${NAME}`s in `text`.
fn variables(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{name}}}` in {text:?} is not a variable name"));
        }
        out.push(name);
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// `text` with each `${NAME}` replaced from `vars`.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = text.to_string();
    for name in variables(text)? {
        let value = vars.get(name).ok_or_else(|| {
            format!(
                "${{{name}}} is not a variable of this run; known: {}",
                vars.keys().map(|k| format!("${{{k}}}")).collect::<Vec<_>>().join(", ")
            )
        })?;
        out = out.replace(&format!("${{{name}}}"), value);
    }
    Ok(out)
}

/// The variables a check may name: the run's and the restore's.
fn run_variables(ctx: &CheckCtx) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    vars.insert("DRDRILL_SCRATCH".into(), ctx.run.run_dir.display().to_string());
    vars.insert("DRDRILL_RUN_ID".into(), ctx.run.run_id.to_string());
    vars.insert("DRDRILL_RESTORE".into(), ctx.restored.path.display().to_string());
    vars.extend(ctx.restored.env.iter().cloned());
    vars
}

impl HeaderValue {
    fn resolve(&self, vars: &BTreeMap<String, String>) -> Result<String, String> {
        match self {
            HeaderValue::Text(t) => substitute(t, vars),
            HeaderValue::Secret(s) => {
                let value = if let Some(var) = &s.env {
                    std::env::var(var).map_err(|_| {
                        format!("environment variable {var} (a header's `env`) is not set: export it for drdrill")
                    })?
                } else if let Some(f) = &s.file {
                    let text = std::fs::read_to_string(f)
                        .map_err(|e| format!("cannot read header file {}: {e}", f.display()))?;
                    text.lines().next().unwrap_or("").to_string()
                } else {
                    String::new()
                };
                crate::redact::register(&value);
                Ok(format!("{}{value}", s.prefix))
            }
        }
    }
}

/// How a JSON value reads in messages: strings quoted, the rest as JSON.
fn show(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 200 { format!("{}…", s.chars().take(200).collect::<String>()) } else { s }
}

/// JSON equality where 1 and 1.0 are the same number.
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn snippet(body: &str) -> String {
    let one: String = body.chars().take(300).collect::<String>().replace(['\n', '\r'], " ");
    if body.chars().count() > 300 { format!("{one}…") } else { one }
}

impl HttpCheck {
    /// `GET url`, expecting any 2xx: `[service] ready = "http://..."`.
    pub fn get(url: &str) -> Result<HttpCheck, String> {
        variables(url)?;
        Ok(HttpCheck {
            url: url.to_string(),
            method: default_method(),
            headers: BTreeMap::new(),
            body: None,
            expect_status: StatusRange::default(),
            expect_body: None,
            expect_json: BTreeMap::new(),
            timeout: None,
            ca_file: None,
            redirects: Redirects::default(),
        })
    }

    /// One request with `vars` substituted, judged against the expectations:
    /// what it observed, or why it fails. A check and a safeguard both run this.
    pub fn attempt(&self, vars: &BTreeMap<String, String>, cancel: &Cancel) -> Result<String, String> {
        let url = substitute(&self.url, vars)?;
        let body = self.body.as_deref().map(|b| substitute(b, vars)).transpose()?;
        let headers =
            self.headers.iter().map(|(k, v)| Ok((k.clone(), v.resolve(vars)?))).collect::<Result<Vec<_>, String>>()?;
        let client = self.client()?;
        let line = format!("{} {url}", self.method);
        let answer = block_on(async {
            tokio::select! {
                r = self.fetch(client, &url, headers, body) => Some(r),
                _ = cancel.cancelled() => None,
            }
        })?;
        match answer {
            None => Err(format!("{line}: cancelled")),
            Some(Err(e)) => Err(format!("{line}: {e}")),
            Some(Ok((status, location, text))) => self.judge(&line, status, location, &text),
        }
    }

    /// The `${NAME}`s that `url` and `body` name.
    pub fn variables_named(&self) -> Vec<&str> {
        [Some(&self.url), self.body.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|t| variables(t).unwrap_or_default())
            .collect()
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        let redirects = self.redirects;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let allowed = match redirects {
                Redirects::Any => true,
                Redirects::None => false,
                Redirects::Loopback => attempt.url().host_str().is_some_and(crate::net::is_loopback),
            };
            if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else if allowed {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let timeout = self.timeout.map_or(Duration::from_secs(10), |t| t.0);
        let mut b = reqwest::Client::builder().no_proxy().redirect(policy).timeout(timeout);
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("cannot read `ca_file` {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("`ca_file` {} holds no PEM certificate: {e}", ca.display()))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        b.build().map_err(|e| format!("cannot set up the HTTP client: {e}"))
    }

    /// Sends the request and reads the answer; `Err` when there is none.
    async fn fetch(
        &self,
        client: reqwest::Client,
        url: &str,
        headers: Vec<(String, String)>,
        body: Option<String>,
    ) -> Result<(reqwest::StatusCode, Option<String>, String), String> {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = client.request(method, url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let mut resp = req.send().await.map_err(|e| describe_error(&e))?;
        let status = resp.status();
        let location = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| format!("reading the answer failed: {}", describe_error(&e)))?
        {
            bytes.extend_from_slice(&chunk[..chunk.len().min(BODY_MAX - bytes.len())]);
            if bytes.len() >= BODY_MAX {
                break;
            }
        }
        Ok((status, location, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// One attempt against the answer: what it observed, or why it fails.
    fn judge(
        &self,
        line: &str,
        status: reqwest::StatusCode,
        location: Option<String>,
        body: &str,
    ) -> Result<String, String> {
        let code = status.as_u16();
        if !self.expect_status.contains(code) {
            let why = match (status.is_redirection(), location) {
                (true, Some(to)) => format!(
                    "; the redirect to {to} was not followed (redirects = \"{}\": set `redirects = \"any\"` to follow it)",
                    format!("{:?}", self.redirects).to_lowercase()
                ),
                _ => String::new(),
            };
            return Err(format!("{line} -> {status} (expected {}){why}; body: {}", self.expect_status, snippet(body)));
        }
        let mut observed = vec![format!("{line} -> {status}")];
        match &self.expect_body {
            Some(BodyExpect::Contains(t)) if !body.contains(t.as_str()) => {
                return Err(format!("{line} -> {status}, but the body does not contain {t:?}: {}", snippet(body)));
            }
            Some(BodyExpect::Regex(r)) if !r.is_match(body) => {
                return Err(format!(
                    "{line} -> {status}, but the body does not match /{}/: {}",
                    r.as_str(),
                    snippet(body)
                ));
            }
            Some(e) => observed.push(e.to_string()),
            None => {}
        }
        if !self.expect_json.is_empty() {
            let json: serde_json::Value = serde_json::from_str(body)
                .map_err(|e| format!("{line} -> {status}, but the body is not JSON ({e}): {}", snippet(body)))?;
            let mut wrong = Vec::new();
            for (pointer, want) in &self.expect_json {
                match json.pointer(pointer) {
                    Some(got) if json_eq(got, want) => observed.push(format!("{pointer} = {}", show(got))),
                    Some(got) => wrong.push(format!("{pointer} = {} (expected {})", show(got), show(want))),
                    None => wrong.push(format!("{pointer} is missing (expected {})", show(want))),
                }
            }
            if !wrong.is_empty() {
                return Err(format!("{line} -> {status}, but {}", wrong.join(", ")));
            }
        }
        Ok(observed.join("; "))
    }
}

/// reqwest's error with its causes (connection refused, certificate, timeout).
fn describe_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text += &format!(": {s_text}");
        }
        source = s.source();
    }
    if e.is_timeout() { format!("{text} (no answer within the attempt's `timeout`)") } else { text }
}

/// Runs `fut` to completion on the runtime the check's thread belongs to (a
/// blocking thread of the engine's), or a small one of its own elsewhere.
fn block_on<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => Ok(h.block_on(fut)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
            .map_err(|e| format!("cannot start an HTTP runtime: {e}")),
    }
}

impl Check for HttpCheck {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        let mut d = format!("{} {} expect {}", self.method, self.url, self.expect_status);
        if let Some(b) = &self.expect_body {
            d += &format!(", {b}");
        }
        for (p, v) in &self.expect_json {
            d += &format!(", {p} = {}", show(v));
        }
        d
    }

    fn needs(&self) -> Need {
        Need::Endpoint
    }

    /// The application may still be starting.
    fn retries(&self) -> bool {
        true
    }

    fn run(&self, ctx: &CheckCtx) -> Result<String, String> {
        self.attempt(&run_variables(ctx), &ctx.run.cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_numbers_or_ranges() {
        assert_eq!(StatusRange::parse("200").unwrap(), StatusRange(200, 200));
        assert_eq!(StatusRange::parse("2xx").unwrap(), StatusRange(200, 299));
        assert_eq!(StatusRange::parse("200-399").unwrap(), StatusRange(200, 399));
        assert!(StatusRange::parse("399-200").is_err());
        assert!(StatusRange::parse("abc").unwrap_err().contains("\"2xx\""));
        assert!(StatusRange::parse("700").is_err());
    }

    #[test]
    fn variables_are_substituted_or_named_with_the_known_ones() {
        let vars: BTreeMap<String, String> = [("DRDRILL_PORT".to_string(), "8080".to_string())].into();
        assert_eq!(substitute("http://127.0.0.1:${DRDRILL_PORT}/x", &vars).unwrap(), "http://127.0.0.1:8080/x");
        let e = substitute("${NOPE}", &vars).unwrap_err();
        assert!(e.contains("${NOPE}") && e.contains("${DRDRILL_PORT}"), "{e}");
        assert!(variables("${bad name}").is_err());
        assert!(variables("${OPEN").is_err());
    }

    #[test]
    fn json_values_compare_numbers_by_value() {
        assert!(json_eq(&serde_json::json!(1), &serde_json::json!(1.0)));
        assert!(!json_eq(&serde_json::json!("1"), &serde_json::json!(1)));
    }
}
