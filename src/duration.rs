//! Human durations ("90s", "5m", "1h30m") as plans and configs write them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration parsed from a human string. Plans never take bare integers, so a
/// target can never be read as seconds by one person and milliseconds by another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

/// No setting takes longer than this. Settings with a range of their own
/// (`Bounded` in the diagnostics module) are checked against it; this cap covers the rest,
/// so no value read from a file can overflow arithmetic on instants and dates.
pub const LONGEST: Duration = Duration::from_secs(100 * YEAR);

/// Seconds in a minute, an hour, a day and a year, for ranges written as constants.
pub const MINUTE: u64 = 60;
pub const HOUR: u64 = 60 * MINUTE;
pub const DAY: u64 = 24 * HOUR;
/// humantime's year (365.25 days), so that ranges print as "10years".
pub const YEAR: u64 = 31_557_600;

impl HumanDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let d = parse_any(text)?;
        if d > LONGEST {
            return Err(format!(
                "duration {text:?} is longer than {}, the longest any setting takes; write a shorter one, like \"30d\"",
                humantime::format_duration(LONGEST)
            ));
        }
        Ok(HumanDuration(d))
    }
}

/// Parses the syntax only, however long: for callers that check a range of their own.
pub(crate) fn parse_any(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write a number with a unit, like \"90s\", \"5m\" or \"1h30m\"")
    })
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HumanDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// Formats a measured duration for people: milliseconds below ten seconds,
/// otherwise rounded to whole seconds, in humantime's notation.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        let ms = d.as_secs_f64() * 1000.0;
        if ms < 1000.0 { format!("{ms:.0}ms") } else { format!("{:.2}s", d.as_secs_f64()) }
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// Milliseconds as a record stores them, for people; `-` when not measured.
pub fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(ms) if ms.is_finite() && ms >= 0.0 => format_duration(Duration::from_secs_f64(ms / 1000.0)),
        Some(ms) => format!("{ms:.0}ms"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(HumanDuration::parse("5m").unwrap().0, Duration::from_secs(300));
        assert_eq!(HumanDuration::parse("1h30m").unwrap().0, Duration::from_secs(5400));
        assert_eq!(HumanDuration::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert!(HumanDuration::parse("5 minutes please").is_err());
        assert!(HumanDuration::parse("300").is_err());
    }

    #[test]
    fn nothing_longer_than_the_cap() {
        // Added to an Instant this panicked ("overflow when adding duration to instant").
        let e = HumanDuration::parse("9999999999999h").unwrap_err();
        assert!(e.contains("longer than"), "{e}");
        assert!(HumanDuration::parse("36500d").is_ok());
        assert_eq!(humantime::format_duration(LONGEST).to_string(), "100years");
        assert!(std::time::Instant::now().checked_add(LONGEST).is_some());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_duration(Duration::from_millis(42)), "42ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.50s");
        assert_eq!(format_duration(Duration::from_secs(75)), "1m 15s");
    }
}
