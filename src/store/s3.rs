//! `kind = "s3"`: an S3-compatible bucket through object_store's AmazonS3 client.
//!
//! Credentials never live in the config text: they come from environment
//! variables (named by the config, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
//! by default) or from an AWS-style credentials file. Transient errors (5xx,
//! timeouts, refused connections) are retried with exponential backoff for at
//! most `retry_timeout`, so a blip does not fail a drill but a dead store does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::StoreSpec;
use crate::diag::{Diagnostic, TomlDoc};
use crate::duration::HumanDuration;

pub const KIND: &str = "s3";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Spec {
    pub bucket: String,
    /// `http(s)://host:port` of an S3-compatible server; AWS itself when absent.
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    /// `bucket.host/key` instead of the default path style `host/bucket/key`.
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// Plain HTTP; allowed without saying so only for a loopback endpoint.
    pub allow_http: Option<bool>,
    /// Environment variables holding the keys (their names, not the keys).
    #[serde(default = "default_key_env")]
    pub access_key_id_env: String,
    #[serde(default = "default_secret_env")]
    pub secret_access_key_env: String,
    /// AWS shared-credentials file (`aws_access_key_id = ...`), used instead of the environment.
    pub credentials_file: Option<PathBuf>,
    /// Section of `credentials_file` to read.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// How long one request may keep being retried on transient errors.
    #[serde(default = "default_retry_timeout")]
    pub retry_timeout: HumanDuration,
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_key_env() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_env() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}
fn default_profile() -> String {
    "default".into()
}
fn default_retry_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_max_retries() -> usize {
    8
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Box<dyn StoreSpec>, Diagnostic> {
    let spec: S3Spec = doc.deserialize(&value)?;
    let bad = |msg: String, fix: &str| doc.at(value.span(), msg, Some(fix.into()));
    if spec.bucket.is_empty() || spec.bucket.contains('/') {
        return Err(bad(format!("bucket name {:?} is not valid", spec.bucket), "set `bucket = \"name\"` (no slashes)"));
    }
    if let Some(ep) = &spec.endpoint {
        let Some(host) = crate::net::url_host(ep) else {
            return Err(bad(
                format!("endpoint {ep:?} is not a URL"),
                "write it as `endpoint = \"https://s3.example.com\"` or `\"http://127.0.0.1:9000\"`",
            ));
        };
        if ep.starts_with("http://") && !spec.allow_http.unwrap_or(false) && !crate::net::is_loopback(host) {
            return Err(bad(
                format!(
                    "endpoint {ep:?} is plain HTTP to a remote host: keys and backups would cross the network unencrypted"
                ),
                "use https://, or set `allow_http = true` if the network is trusted",
            ));
        }
    }
    if spec.retry_timeout.0.is_zero() {
        return Err(bad("retry_timeout must be longer than zero".into(), "e.g. `retry_timeout = \"60s\"`"));
    }
    Ok(Box::new(spec))
}

/// Keys read at build time; Debug hides them so they never reach a log.
struct Keys {
    id: String,
    secret: String,
    token: Option<String>,
}

impl S3Spec {
    fn keys(&self) -> anyhow::Result<Keys> {
        if let Some(file) = &self.credentials_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read S3 credentials file {}", file.display()))?;
            return parse_credentials(&text, &self.profile).with_context(|| {
                format!(
                    "S3 credentials file {} has no usable [{}] section: it needs `aws_access_key_id = ...` and `aws_secret_access_key = ...`",
                    file.display(),
                    self.profile
                )
            });
        }
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (get(&self.access_key_id_env), get(&self.secret_access_key_env)) {
            (Some(id), Some(secret)) => Ok(Keys { id, secret, token: get("AWS_SESSION_TOKEN") }),
            _ => bail!(
                "S3 credentials missing: set the environment variables {} and {} for drdrill, or `credentials_file` in the store's config",
                self.access_key_id_env,
                self.secret_access_key_env
            ),
        }
    }
}

/// Reads one profile of an AWS shared-credentials file.
fn parse_credentials(text: &str, profile: &str) -> anyhow::Result<Keys> {
    let (mut in_profile, mut id, mut secret, mut token) = (false, None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Keys { id, secret, token }),
        _ => bail!("profile [{profile}] lacks aws_access_key_id or aws_secret_access_key"),
    }
}

impl StoreSpec for S3Spec {
    fn kind(&self) -> &'static str {
        KIND
    }

    /// Shown in logs, phase details, reports and errors: an endpoint's
    /// `user:password@` never is.
    fn describe(&self) -> String {
        match &self.endpoint {
            Some(ep) => format!("s3 bucket {} at {}", self.bucket, crate::redact::url(ep)),
            None => format!("s3 bucket {} in {}", self.bucket, self.region),
        }
    }

    fn build(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let keys = self.keys()?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout.0,
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120))
            .with_allow_http(
                self.allow_http.unwrap_or(self.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))),
            );
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_virtual_hosted_style_request(self.virtual_hosted_style)
            .with_access_key_id(keys.id)
            .with_secret_access_key(keys.secret)
            .with_retry(retry)
            .with_client_options(client);
        if let Some(token) = keys.token {
            b = b.with_token(token);
        }
        if let Some(ep) = &self.endpoint {
            b = b.with_endpoint(ep);
        }
        Ok(Arc::new(b.build().with_context(|| format!("cannot configure {}", self.describe()))?))
    }

    fn hinter(&self) -> super::Hinter {
        let bucket = self.bucket.clone();
        Arc::new(move |e| hint(e, &bucket))
    }
}

/// The fix for the S3 errors people actually meet, recognised from the error text.
fn hint(error: &str, bucket: &str) -> Option<String> {
    let h = if error.contains("NoSuchBucket") {
        format!("bucket `{bucket}` does not exist: create it (e.g. `aws s3 mb s3://{bucket}`) or fix `bucket`")
    } else if error.contains("InvalidAccessKeyId") || error.contains("SignatureDoesNotMatch") {
        "the server rejected the credentials: check the key variables or `credentials_file`".into()
    } else if error.contains("AccessDenied") || error.contains("403") {
        format!("access denied: the credentials need read, write, list and delete on bucket `{bucket}`")
    } else if error.contains("onnection refused")
        || error.contains("error sending request")
        || error.contains("dns error")
    {
        "the store is unreachable: check that the server runs and `endpoint` is right".into()
    } else {
        return None;
    };
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n[ci]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        let k = parse_credentials(text, "ci").unwrap();
        assert_eq!((k.id.as_str(), k.secret.as_str(), k.token.as_deref()), ("C", "D", Some("T")));
        assert_eq!(parse_credentials(text, "default").unwrap().id, "A");
        assert!(parse_credentials(text, "prod").is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let ok = |t: &str| {
            let text = format!("[stores.s3]\nkind = \"s3\"\nbucket = \"b\"\n{t}\n");
            crate::config::Config::parse(std::path::Path::new("c.toml"), &text).map(|_| ()).map_err(|d| d.to_string())
        };
        assert!(ok("endpoint = \"http://127.0.0.1:9000\"").is_ok());
        assert!(ok("endpoint = \"https://s3.example.com\"").is_ok());
        let e = ok("endpoint = \"http://s3.example.com\"").unwrap_err();
        assert!(e.contains("allow_http"), "{e}");
        assert!(ok("endpoint = \"http://s3.example.com\"\nallow_http = true").is_ok());
        let e = ok("secret_access_key = \"x\"").unwrap_err();
        assert!(e.contains("secret_access_key"), "{e}");
    }

    #[test]
    fn hints_name_the_bucket() {
        assert!(hint("... NoSuchBucket ...", "drills").unwrap().contains("`drills`"));
        assert!(hint("all good", "drills").is_none());
    }
}
