//! The page shell every console page shares: the header (with the emergency
//! stop for a signed-in viewer), the embedded style sheet, and the escaping
//! helpers. Pages are whole HTML documents that read without any script.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::session::Session;
use crate::db::pause::Pause;
pub use crate::report::escape as e;

/// The style sheet, embedded: the console loads nothing from anywhere else.
pub const CSS: &str = include_str!("console.css");

/// Who is looking: a session (may act) or nobody signed in (may read).
pub struct Viewer {
    pub session: Option<Session>,
    pub paused: Option<Pause>,
}

impl Viewer {
    /// The hidden CSRF field every action form carries.
    pub fn csrf_field(&self) -> String {
        match &self.session {
            Some(s) => format!(r#"<input type="hidden" name="csrf" value="{}">"#, e(&s.csrf)),
            None => String::new(),
        }
    }

    /// A form that posts to `action`, for signed-in viewers only.
    pub fn form(&self, action: &str, fields: &str, button: &str, class: &str) -> String {
        if self.session.is_none() {
            return String::new();
        }
        format!(
            r#"<form method="post" action="{}">{}{fields}<button type="submit" class="{class}">{}</button></form>"#,
            e(action),
            self.csrf_field(),
            e(button)
        )
    }
}

/// A whole page. `script` adds the live-update script (run pages).
pub fn page(title: &str, viewer: &Viewer, body: &str, script: bool) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{} · drdrill</title><link rel="stylesheet" href="/console.css"></head><body><header><a href="/">drdrill console</a>"#,
        e(title)
    );
    match &viewer.session {
        Some(s) => {
            let stop = match &viewer.paused {
                Some(_) => viewer.form("/console/resume", "", "Resume scheduler", "go"),
                None => viewer.form(
                    "/console/stop",
                    r#"<input type="text" name="reason" placeholder="why" size="18">"#,
                    "Emergency stop",
                    "danger",
                ),
            };
            let _ = write!(
                out,
                r#"{stop}<span class="who">signed in as {}</span>{}"#,
                e(&s.who),
                viewer.form("/logout", "", "Log out", "")
            );
        }
        None => {
            out.push_str(r#"<span class="who"><a href="/login">Log in</a> to act (approve, note, abort, stop)</span>"#)
        }
    }
    out.push_str("</header><main>");
    out.push_str(body);
    out.push_str("</main>");
    if script {
        out.push_str(r#"<script src="/console.js"></script>"#);
    }
    out.push_str("</body></html>\n");
    out
}

/// A time to the second, UTC.
pub fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An RFC 3339 time from a record, to the second.
pub fn at_text(t: &str) -> String {
    crate::report::rfc(t).map(at).unwrap_or_else(|| t.to_string())
}

/// A measured value against its target: `48ms / 30s (met, 29s headroom)`.
pub fn against(value_ms: Option<f64>, target_ms: Option<f64>) -> String {
    use crate::duration::fmt_ms;
    match (value_ms, target_ms) {
        (Some(v), Some(t)) if v <= t => format!(
            r#"{} / {} <span class="met">met, {} headroom</span>"#,
            e(&fmt_ms(Some(v))),
            e(&fmt_ms(Some(t))),
            e(&fmt_ms(Some(t - v)))
        ),
        (Some(v), Some(t)) => format!(
            r#"{} / {} <span class="missed">missed by {}</span>"#,
            e(&fmt_ms(Some(v))),
            e(&fmt_ms(Some(t))),
            e(&fmt_ms(Some(v - t)))
        ),
        (Some(v), None) => e(&fmt_ms(Some(v))),
        (None, Some(t)) => format!(r#"<span class="missed">not measured</span> / {}"#, e(&fmt_ms(Some(t)))),
        (None, None) => "-".into(),
    }
}

/// A status word with its colour class.
pub fn status(s: &str) -> String {
    format!(r#"<span class="{0}">{0}</span>"#, e(s))
}
