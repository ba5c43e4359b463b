//! Drill schedules in the syntax operators already write in crontab(5).
//!
//! The `cron` crate wants six fields with seconds first and numbers weekdays
//! 1-7 from Sunday, while crontab uses five fields and 0-7 with 0 and 7 both
//! Sunday. A plan written as `0 3 * * 1-5` must fire Monday to Friday, so the
//! weekday field is expanded to an explicit set of days and re-emitted in the
//! crate's numbering instead of being passed through and silently shifted.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

#[derive(Clone, Debug)]
pub struct Schedule {
    /// What the plan said, for messages and reports.
    pub text: String,
    inner: cron::Schedule,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let translated = translate(text.trim())?;
        let inner = cron::Schedule::from_str(&translated).map_err(|e| format!("invalid schedule {text:?}: {e}"))?;
        Ok(Schedule { text: text.trim().to_string(), inner })
    }

    /// The next `n` times this schedule fires strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        self.inner.after(&after).take(n).collect()
    }

    /// Like [`Schedule::next_after`], reading the fields as wall-clock time in
    /// `tz` (the daemon's `timezone`), so `0 3 * * *` stays 03:00 across DST.
    pub fn next_after_in(&self, after: DateTime<Utc>, tz: chrono_tz::Tz, n: usize) -> Vec<DateTime<Utc>> {
        self.inner.after(&after.with_timezone(&tz)).take(n).map(|t| t.with_timezone(&Utc)).collect()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn translate(text: &str) -> Result<String, String> {
    let hint = "write crontab syntax such as \"30 3 * * 1-5\" or \"0 3 * * Sun\" (min hour day-of-month month day-of-week), 6 fields with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly";
    if let Some(short) = text.strip_prefix('@') {
        let six = match short.to_ascii_lowercase().as_str() {
            "yearly" | "annually" => "0 0 0 1 1 *",
            "monthly" => "0 0 0 1 * *",
            "weekly" => "0 0 0 * * 1",
            "daily" | "midnight" => "0 0 0 * * *",
            "hourly" => "0 0 * * * *",
            _ => return Err(format!("unknown schedule shorthand {text:?}; {hint}")),
        };
        return Ok(six.to_string());
    }
    let mut fields: Vec<&str> = text.split_whitespace().collect();
    match fields.len() {
        5 => fields.insert(0, "0"),
        6 => {}
        n => return Err(format!("schedule {text:?} has {n} fields; {hint}")),
    }
    let (dom, dow) = (fields[3], fields[5]);
    let restricted = |f: &str| f != "*" && f != "?";
    if restricted(dom) && restricted(dow) {
        return Err(format!(
            "schedule {text:?} restricts both day-of-month and day-of-week; crontab runs on either, which is rarely meant: keep one and set the other to *"
        ));
    }
    let dow = translate_weekdays(dow).map_err(|e| format!("schedule {text:?}: {e}; {hint}"))?;
    Ok(format!("{} {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], fields[4], dow))
}

/// Expands a crontab weekday field to cron-crate numbering (Sunday = 1).
fn translate_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".to_string());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: usize = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| format!("bad weekday step {s:?}"))?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (weekday(a)?, weekday(b)?)
        } else {
            let d = weekday(range)?;
            // "1/2" in crontab means "from Monday, every other day".
            (d, if item.contains('/') { 6 } else { d })
        };
        // 7 is Sunday too, so "5-7" means Friday through Sunday.
        let hi = if hi < lo && hi == 0 { 7 } else { hi };
        if hi < lo {
            return Err(format!("weekday range {range:?} runs backwards"));
        }
        for d in (lo..=hi).step_by(step) {
            days[d % 7] = true;
        }
    }
    if days.iter().all(|d| *d) {
        return Ok("*".to_string());
    }
    let list: Vec<String> = (0..7).filter(|d| days[*d]).map(|d| (d + 1).to_string()).collect();
    Ok(list.join(","))
}

fn weekday(text: &str) -> Result<usize, String> {
    if let Ok(n) = text.parse::<usize>() {
        return match n {
            0..=6 => Ok(n),
            7 => Ok(7),
            _ => Err(format!("weekday {n} is out of range 0-7 (0 and 7 are Sunday)")),
        };
    }
    let lower = text.to_ascii_lowercase();
    DAY_NAMES.iter().position(|d| *d == lower).ok_or_else(|| format!("unknown weekday {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Weekday};

    fn weekdays_of(expr: &str) -> Vec<Weekday> {
        let s = Schedule::parse(expr).unwrap();
        // 2026-11-29 is a Sunday: a week of firings from there.
        let start = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        s.next_after(start, 7)
            .into_iter()
            .filter(|t| *t < start + chrono::Duration::days(7))
            .map(|t| t.weekday())
            .collect()
    }

    #[test]
    fn crontab_weekdays_mean_what_crontab_means() {
        use Weekday::*;
        assert_eq!(weekdays_of("0 3 * * 1-5"), vec![Mon, Tue, Wed, Thu, Fri]);
        assert_eq!(weekdays_of("0 3 * * 0"), vec![Sun]);
        assert_eq!(weekdays_of("0 3 * * 7"), vec![Sun]);
        assert_eq!(weekdays_of("0 3 * * Sun"), vec![Sun]);
        assert_eq!(weekdays_of("0 3 * * sat,sun"), vec![Sun, Sat]);
        assert_eq!(weekdays_of("0 3 * * 5-7"), vec![Sun, Fri, Sat]);
        assert_eq!(weekdays_of("0 3 * * */2"), vec![Sun, Tue, Thu, Sat]);
        assert_eq!(weekdays_of("0 0 3 * * 1"), vec![Mon]);
    }

    #[test]
    fn five_six_and_shorthand_forms() {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 13, 0, 0).unwrap();
        let s = Schedule::parse("30 9 * * *").unwrap();
        assert_eq!(s.next_after(t, 1)[0], Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap());
        let s = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(s.next_after(t, 1)[0], t + chrono::Duration::seconds(10));
        let s = Schedule::parse("@daily").unwrap();
        assert_eq!(s.next_after(t, 1)[0], Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn zones_shift_the_wall_clock() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        // Paris is UTC+1 in winter: 03:00 there is 02:00 UTC.
        let next = s.next_after_in(t, chrono_tz::Europe::Paris, 1)[0];
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap());
        assert_eq!(s.next_after_in(t, chrono_tz::UTC, 1), s.next_after(t, 1));
    }

    #[test]
    fn errors_say_what_to_write() {
        for bad in ["", "* * *", "0 3 * * 8", "0 3 * * funday", "61 * * * *", "@every 5m", "0 3 1 * 1"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("schedule") || e.contains("invalid"), "{bad}: {e}");
        }
    }
}
