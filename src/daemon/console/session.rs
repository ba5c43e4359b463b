//! Console sessions: the API token is given once, in the login form, and
//! exchanged for a random session id in an HttpOnly, SameSite=Strict cookie.
//! The map lives in the daemon's memory only (a restart logs everyone out),
//! so the token is never stored, shown or put in a URL.
//!
//! Every action also carries the session's CSRF token in a hidden field and
//! must come from the console's own origin (`Origin`, `Sec-Fetch-Site`), so a
//! page elsewhere cannot post a form with the browser's cookie.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

/// The cookie's name.
pub const COOKIE: &str = "drdrill_session";

/// A session unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions are kept; the least recently used goes first.
const MAX_SESSIONS: usize = 256;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// Sent back in every action's form.
    pub csrf: String,
    /// Who signed in, as records name them: `console (<name>)`.
    pub who: String,
    last_used: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `name` (who they say they are; the token proved the rest).
    pub fn create(&self, name: &str) -> anyhow::Result<Session> {
        let session = Session {
            id: super::super::token::random_hex("a console session id")?,
            csrf: super::super::token::random_hex("a console CSRF token")?,
            who: format!("console ({name})"),
            last_used: Instant::now(),
        };
        let mut map = self.map();
        map.retain(|_, s| s.last_used.elapsed() < IDLE);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.values().min_by_key(|s| s.last_used).map(|s| s.id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The session the request's cookie names, if it is one of ours and alive.
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers)?;
        let mut map = self.map();
        let s = map.get_mut(&id)?;
        if s.last_used.elapsed() >= IDLE {
            map.remove(&id);
            return None;
        }
        s.last_used = Instant::now();
        Some(s.clone())
    }

    pub fn end(&self, id: &str) {
        self.map().remove(id);
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value for a new session.
pub fn set_cookie(s: &Session) -> String {
    format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", s.id)
}

/// The `Set-Cookie` value that removes it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Why a form post is not from the console itself, if it is not: a browser
/// says where a request comes from in `Sec-Fetch-Site` and `Origin`, and a
/// page on another site cannot make it lie.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
    {
        return Some(format!("the browser says this form comes from a {site} page (Sec-Fetch-Site)"));
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or_default();
        if origin != format!("http://{host}") {
            return Some(format!("the form comes from {origin}, not from this console (http://{host})"));
        }
    }
    None
}

/// Whether `given` is the session's CSRF token, compared in constant time.
pub fn csrf_ok(s: &Session, given: &str) -> bool {
    super::super::token::matches(&s.csrf, given)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only() {
        let sessions = Sessions::default();
        let s = sessions.create("alice").unwrap();
        assert_eq!(s.who, "console (alice)");
        let cookie = format!("other=1; {COOKIE}={}", s.id);
        assert_eq!(sessions.of(&headers(&[("cookie", &cookie)])).map(|f| f.id), Some(s.id.clone()));
        assert!(sessions.of(&headers(&[("cookie", &format!("{COOKIE}=forged"))])).is_none());
        assert!(sessions.of(&HeaderMap::new()).is_none());
        assert!(csrf_ok(&s, &s.csrf) && !csrf_ok(&s, "x"));
        sessions.end(&s.id);
        assert!(sessions.of(&headers(&[("cookie", &cookie)])).is_none());
        assert!(set_cookie(&s).contains("HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn cross_site_posts_are_named() {
        assert_eq!(cross_site(&headers(&[("host", "127.0.0.1:7878"), ("origin", "http://127.0.0.1:7878")])), None);
        assert_eq!(cross_site(&headers(&[("sec-fetch-site", "same-origin")])), None);
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).unwrap().contains("cross-site"));
        let evil = cross_site(&headers(&[("host", "127.0.0.1:7878"), ("origin", "http://evil.example")])).unwrap();
        assert!(evil.contains("evil.example"), "{evil}");
    }
}
