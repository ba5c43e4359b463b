//! Keeps secrets out of everything drdrill stores or prints: the results
//! database, the evidence chain, reports, logs and error messages.
//!
//! Two rules, applied by [`scrub`] wherever text leaves drdrill's hands:
//! - the values of secret-looking environment variables (`*PASSWORD*`,
//!   `*SECRET*`, `*TOKEN*`, ...) and every secret drdrill reads from a file or
//!   variable it was told about ([`register`]) are replaced by `[redacted]`;
//! - the user-info of a URL (`http://user:pass@host`) is replaced by `***`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{OnceLock, RwLock};

/// What a redacted secret becomes.
pub const MASK: &str = "[redacted]";

/// Shorter values are too likely to be ordinary words or numbers to replace.
const MIN_SECRET_LEN: usize = 4;

/// Parts of environment variable names that mark the value as a secret.
const SECRET_NAME_PARTS: &[&str] =
    &["PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE_KEY", "API_KEY", "ACCESS_KEY"];

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let mut found: Vec<String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, v)| is_secret_name(k) && v.len() >= MIN_SECRET_LEN)
            .flat_map(|(_, v)| forms(&v))
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        RwLock::new(found)
    })
}

/// Whether an environment variable of this name holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
}

/// Adds a secret drdrill has read (a password file's content, a key), so it is
/// masked wherever it would appear later.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut all = secrets().write().unwrap_or_else(|p| p.into_inner());
    for form in forms(secret) {
        if !all.contains(&form) {
            all.push(form);
        }
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// A secret as it appears in plain text, and as it appears inside a JSON
/// string (a JSON log line escapes `"`, `\` and control characters).
fn forms(secret: &str) -> Vec<String> {
    let mut v = vec![secret.to_string()];
    if let Ok(quoted) = serde_json::to_string(secret) {
        let inner = &quoted[1..quoted.len() - 1];
        if inner != secret {
            v.push(inner.to_string());
        }
    }
    v
}

/// `text` with every known secret and every URL's user-info masked.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let all = secrets().read().unwrap_or_else(|p| p.into_inner());
    let mut out: Cow<str> = Cow::Borrowed(text);
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    match url_userinfo(&out) {
        Some(masked) => Cow::Owned(masked),
        None => out,
    }
}

/// Masks `user:pass@` in every `scheme://user:pass@host` of `text`; `None` if there is none.
fn url_userinfo(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or white space.
        let end = tail.find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace()).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// A URL for people: its user-info masked.
pub fn url(u: &str) -> String {
    url_userinfo(u).unwrap_or_else(|| u.to_string())
}

/// The log's writer: each event is formatted whole into a buffer, then
/// written scrubbed, so no log line shows a secret whatever was formatted into
/// it (an error chain quoting a store URL, a command line).
pub struct Scrubbed<M>(pub M);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a> for Scrubbed<M> {
    type Writer = ScrubbedEvent<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedEvent { buf: Vec::new(), out: self.0.make_writer() }
    }
}

/// One log event on its way out; written when dropped.
pub struct ScrubbedEvent<W: Write> {
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> Write for ScrubbedEvent<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ScrubbedEvent<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        // Nowhere to report a failed log write.
        let _ = self.out.write_all(scrub(&text).as_bytes());
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_user_info() {
        assert_eq!(url("http://user:pass@127.0.0.1:9000/b"), "http://***@127.0.0.1:9000/b");
        assert_eq!(url("https://s3.example.com"), "https://s3.example.com");
        assert_eq!(
            scrub("store at http://a:b@h:1 and s3://k@bucket/x failed").as_ref(),
            "store at http://***@h:1 and s3://***@bucket/x failed"
        );
        assert_eq!(scrub("user@example.com wrote").as_ref(), "user@example.com wrote");
    }

    #[test]
    fn log_lines_are_scrubbed() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(Scrubbed(move || out.clone())).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("cannot list http://user:s3cret@127.0.0.1:9000/drills");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("cannot list http://***@127.0.0.1:9000/drills"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn secrets_are_masked_inside_json_too() {
        register("pa\"ss\\word");
        let line = serde_json::json!({ "message": "login with pa\"ss\\word failed" }).to_string();
        assert!(scrub(&line).contains("login with [redacted] failed"), "{}", scrub(&line));
    }

    #[test]
    fn registered_secrets_are_masked() {
        register("correct-horse-battery");
        register("abc");
        assert_eq!(scrub("pw=correct-horse-battery; abc").as_ref(), "pw=[redacted]; abc");
        assert!(is_secret_name("AWS_SECRET_ACCESS_KEY") && is_secret_name("DRDRILL_SMTP_PASSWORD"));
        assert!(!is_secret_name("PATH") && !is_secret_name("DRDRILL_PORT"));
    }
}
