//! Drill schedules in the syntax operators already write in crontab(5), meaning
//! what cronie (the cron of Debian, Fedora and RHEL) makes of them.
//!
//! Every field is read here, with crontab's names and bounds (minute 0-59, hour
//! 0-23, day-of-month 1-31, month 1-12 or jan-dec, weekday 0-7 or sun-sat, with 0
//! and 7 both Sunday), and handed to the `cron` crate as explicit lists in its own
//! numbering, so its six-field form and Sunday = 1 weekdays never leak into what
//! a plan means or into an error message.
//!
//! Day-of-month and day-of-week follow cronie's rule: when either field starts
//! with `*` (`*`, `*/3`) a day must match both; otherwise, with both restricted
//! (`0 0 1 * Mon`), a day matching either fires. The crate only knows "both", so
//! the "either" case is two crate schedules whose firings are merged.
//!
//! Beyond cronie: 6 fields with seconds first, `?` in a day field as `*`, and
//! `N/step` as `N-max/step` (cronie refuses it; croniter and the crate accept it).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::diag::FIX;

#[derive(Clone, Debug)]
pub struct Schedule {
    /// What the plan said, for messages and reports.
    pub text: String,
    /// Firings are the union of these (one, or two under the "either day" rule).
    parts: Vec<cron::Schedule>,
    either_day: bool,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

const HINT: &str = "write crontab syntax such as \"30 3 * * 1-5\" or \"0 3 * * Sun\" (minute hour day-of-month month day-of-week), 6 fields with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly";

const MONTH_NAMES: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One crontab field: its name in messages, its bounds, and the names it takes
/// (the first name stands for `lo`).
struct Field {
    name: &'static str,
    lo: u32,
    hi: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field { name: "second", lo: 0, hi: 59, names: &[] };
const MINUTE: Field = Field { name: "minute", lo: 0, hi: 59, names: &[] };
const HOUR: Field = Field { name: "hour", lo: 0, hi: 23, names: &[] };
const DAY_OF_MONTH: Field = Field { name: "day-of-month", lo: 1, hi: 31, names: &[] };
const MONTH: Field = Field { name: "month", lo: 1, hi: 12, names: &MONTH_NAMES };
const WEEKDAY: Field = Field { name: "weekday", lo: 0, hi: 7, names: &DAY_NAMES };

/// The values a field allows, as bits `lo..=hi`.
type Bits = u64;

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let (parts, either_day) = build(text).map_err(|e| format!("schedule {text:?}: {e}{FIX}{HINT}"))?;
        Ok(Schedule { text: text.to_string(), parts, either_day })
    }

    /// Both day fields are restricted, so a day matching either one fires.
    pub fn fires_on_either_day(&self) -> bool {
        self.either_day
    }

    /// The next `n` times this schedule fires strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        self.next_after_in(after, chrono_tz::UTC, n)
    }

    /// Like [`Schedule::next_after`], reading the fields as wall-clock time in
    /// `tz` (the daemon's `timezone`), so `0 3 * * *` stays 03:00 across DST.
    pub fn next_after_in(&self, after: DateTime<Utc>, tz: chrono_tz::Tz, n: usize) -> Vec<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        let mut all: Vec<DateTime<Utc>> =
            self.parts.iter().flat_map(|p| p.after(&local).take(n).map(|t| t.with_timezone(&Utc))).collect();
        all.sort();
        all.dedup();
        all.truncate(n);
        all
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

/// The crate schedules whose union is `text`, and whether the "either day" rule applies.
fn build(text: &str) -> Result<(Vec<cron::Schedule>, bool), String> {
    // cronie's shorthands, as the five fields they stand for.
    let expanded = match text.strip_prefix('@').map(str::to_ascii_lowercase) {
        None => text.to_string(),
        Some(short) => match short.as_str() {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            _ => return Err(format!("unknown shorthand @{short}")),
        }
        .to_string(),
    };
    let mut fields: Vec<&str> = expanded.split_whitespace().collect();
    match fields.len() {
        5 => fields.insert(0, "0"),
        6 => {}
        n => return Err(format!("{n} fields")),
    }
    let seconds = parse_field(fields[0], &SECOND)?;
    let minutes = parse_field(fields[1], &MINUTE)?;
    let hours = parse_field(fields[2], &HOUR)?;
    let (dom_text, dow_text) = (day_field(fields[3]), day_field(fields[5]));
    let days = parse_field(dom_text, &DAY_OF_MONTH)?;
    let months = parse_field(fields[4], &MONTH)?;
    let mut weekdays = parse_field(dow_text, &WEEKDAY)?;
    if weekdays & (1 << 7) != 0 {
        weekdays = (weekdays | 1) & !(1 << 7);
    }

    let emit = |dom: Bits, dow: Bits| {
        let six = format!(
            "{} {} {} {} {} {}",
            list(seconds, &SECOND, 0),
            list(minutes, &MINUTE, 0),
            list(hours, &HOUR, 0),
            list(dom, &DAY_OF_MONTH, 0),
            list(months, &MONTH, 0),
            // The crate numbers weekdays 1-7 from Sunday.
            list(dow, &Field { hi: 6, ..WEEKDAY }, 1),
        );
        cron::Schedule::from_str(&six).map_err(|e| format!("cannot be scheduled ({e})"))
    };
    let all_days = full(&DAY_OF_MONTH);
    let all_weekdays = full(&Field { hi: 6, ..WEEKDAY });
    let dates_exist = dates_exist(days, months);
    if dom_text.starts_with('*') || dow_text.starts_with('*') {
        // Every date that exists falls on every weekday some year, so only the
        // dates can make a schedule that never fires.
        if !dates_exist {
            return Err(never_fires(dom_text, months));
        }
        Ok((vec![emit(days, weekdays)?], false))
    } else {
        let mut parts = vec![emit(all_days, weekdays)?];
        // `0 0 31 2 Mon` still fires on Mondays; the day-of-month half never does.
        if dates_exist {
            parts.push(emit(days, all_weekdays)?);
        }
        Ok((parts, true))
    }
}

/// `?` means `*` in the day fields, as Quartz and the crate write it.
fn day_field(text: &str) -> &str {
    if text == "?" { "*" } else { text }
}

fn parse_field(text: &str, field: &Field) -> Result<Bits, String> {
    let mut bits: Bits = 0;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step = s
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{} step {s:?} in {item:?} is not a whole number from 1", field.name))?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (field.lo, field.hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, mut b) = (value(a, field)?, value(b, field)?);
            // cronie reads `5-0` (Friday to Sunday) as 5-7.
            if field.name == WEEKDAY.name && b == 0 && a > 0 {
                b = 7;
            }
            if b < a {
                return Err(format!("{} range {range:?} runs backwards: write it low-high", field.name));
            }
            (a, b)
        } else {
            let a = value(range, field)?;
            (a, if item.contains('/') { field.hi } else { a })
        };
        for v in (lo..=hi).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let sunday = if field.name == WEEKDAY.name { " (0 and 7 are Sunday)" } else { "" };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (field.lo..=field.hi).contains(&n) => Ok(n),
            _ => Err(format!("{} {text} is out of range {}-{}{sunday}", field.name, field.lo, field.hi)),
        };
    }
    let lower = text.to_ascii_lowercase();
    match field.names.iter().position(|n| *n == lower) {
        Some(i) => Ok(field.lo + i as u32),
        None if field.names.is_empty() => {
            Err(format!("{} {text:?} is not a number from {} to {}", field.name, field.lo, field.hi))
        }
        None => Err(format!(
            "unknown {} {text:?}: write {}-{} or a name ({}){sunday}",
            field.name,
            field.lo,
            field.hi,
            field.names.join(", ")
        )),
    }
}

fn full(field: &Field) -> Bits {
    (field.lo..=field.hi).fold(0, |b, v| b | 1 << v)
}

/// `bits` in the crate's syntax: `*`, or the values shifted by `offset`.
fn list(bits: Bits, field: &Field, offset: u32) -> String {
    if bits & full(field) == full(field) {
        return "*".into();
    }
    let values: Vec<String> =
        (field.lo..=field.hi).filter(|v| bits & (1 << v) != 0).map(|v| (v + offset).to_string()).collect();
    values.join(",")
}

const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Some allowed day-of-month exists in some allowed month (29 February counts).
fn dates_exist(days: Bits, months: Bits) -> bool {
    (1..=12u32).any(|m| months & (1 << m) != 0 && (1..=MONTH_DAYS[m as usize - 1]).any(|d| days & (1 << d) != 0))
}

fn never_fires(dom_text: &str, months: Bits) -> String {
    let names: Vec<String> = (1..=12u32)
        .filter(|m| months & (1 << m) != 0)
        .map(|m| {
            let n = MONTH_NAMES[m as usize - 1];
            n[..1].to_ascii_uppercase() + &n[1..]
        })
        .collect();
    format!(
        "it can never fire: day-of-month {dom_text} does not occur in {} (pick days every listed month has, or list months that have them)",
        names.join(", ")
    )
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
        assert_eq!(weekdays_of("0 3 * * 5-0"), vec![Sun, Fri, Sat]);
        assert_eq!(weekdays_of("0 3 * * mon-fri"), vec![Mon, Tue, Wed, Thu, Fri]);
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
        // cronie's @weekly is Sunday midnight; 2026-12-06 is a Sunday.
        let s = Schedule::parse("@weekly").unwrap();
        assert_eq!(s.next_after(t, 1)[0], Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap());
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
    fn both_day_fields_restricted_fire_on_either() {
        // Dec 2026: the 1st is a Tuesday, Mondays are the 7th, 14th, ...
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let days: Vec<u32> = Schedule::parse("0 3 1 * 1").unwrap().next_after(t, 4).iter().map(|d| d.day()).collect();
        assert_eq!(days, vec![1, 7, 14, 21]);
        // A field starting with `*` makes it "both": Mondays that are 1st, 4th, 7th, ...
        let days: Vec<u32> = Schedule::parse("0 3 */3 * 1").unwrap().next_after(t, 2).iter().map(|d| d.day()).collect();
        assert_eq!(days, vec![7, 28]);
        // Feb 31 never comes, but Mondays in February do.
        let s = Schedule::parse("0 0 31 2 Mon").unwrap();
        assert!(s.next_after(t, 3).iter().all(|d| d.month() == 2 && d.weekday() == Weekday::Mon));
    }

    #[test]
    fn schedules_that_never_fire_are_refused() {
        for bad in ["0 0 31 2 *", "0 0 30,31 feb *", "0 0 31 4,6,9,11 *", "0 0 31 2 */2"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("can never fire"), "{bad}: {e}");
        }
        let e = Schedule::parse("0 0 31 4,6 *").unwrap_err();
        assert!(e.contains("does not occur in Apr, Jun"), "{e}");
        // 29 February exists, every fourth year.
        let s = Schedule::parse("0 0 29 2 *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(s.next_after(t, 1)[0], Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap());
    }

    #[test]
    fn errors_speak_crontab() {
        for (bad, says) in [
            ("0 25 * * *", "hour 25 is out of range 0-23"),
            ("61 * * * *", "minute 61 is out of range 0-59"),
            ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
            ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
            ("0 0 * 13 *", "month 13 is out of range 1-12"),
            ("0 3 * * 8", "weekday 8 is out of range 0-7"),
            ("0 3 * * funday", "unknown weekday \"funday\""),
            ("0 3 * smarch *", "unknown month \"smarch\""),
            ("0 3 * * 5-3", "runs backwards"),
            ("*/0 * * * *", "step \"0\""),
            ("0 99999999999 * * *", "hour 99999999999 is out of range 0-23"),
            ("* * *", "3 fields"),
            ("", "0 fields"),
            ("@every 5m", "unknown shorthand @every"),
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains(says) && e.contains("crontab syntax"), "{bad}: {e}");
            assert!(!e.contains("must be less than"), "the crate's six-field wording leaked: {e}");
        }
        assert!(Schedule::parse("0 3 1 * 1").is_ok());
    }
}
