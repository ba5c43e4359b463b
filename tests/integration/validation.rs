//! What `validate` accepts is what runs: bounded durations and counts, every
//! problem of a file in one pass, crontab's meaning of schedules (checked
//! against croniter, an implementation that is not drdrill's), and printing
//! commands that survive a closed stdout.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{DateTime, TimeZone, Utc};
use drdrill::schedule::Schedule;

use crate::common::{Workspace, stdout};

const TARGETS: &str = "[targets]\nrto = \"5m\"\nrpo = \"5m\"\n";
const SOURCE: &str = "[source]\nkind = \"directory\"\npath = \"data\"\n[[check]]\nkind = \"tree-matches-source\"\n";

/// `drdrill validate` in `ws`: exit code and stdout.
fn validate(ws: &Workspace, args: &[&str]) -> (i32, String) {
    let out = ws.cmd().arg("validate").args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "validate panicked: {err}");
    (out.status.code().unwrap_or(-1), format!("{}{err}", stdout(&out)))
}

/// Asserts that `text` has `line` followed (on it or the next line) by `fix`.
fn assert_reported(text: &str, line: &str, fix: &str) {
    let at = text.find(line).unwrap_or_else(|| panic!("missing `{line}` in:\n{text}"));
    let mut lines = text[at..].lines();
    let (first, next) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    assert!(first.contains(fix) || next.contains(fix), "no fix `{fix}` after `{line}`:\n{text}");
}

#[test]
fn absurd_durations_and_counts_are_refused_with_their_range() {
    let ws = Workspace::empty();
    std::fs::create_dir_all(ws.join("data")).unwrap();
    // Each of these validated before, then panicked mid-run (overflow when adding
    // a duration to an instant), hung, or flooded the source with canary rows.
    ws.write_plan(
        "absurd",
        &format!(
            "timeout = \"99999999999h\"\nschedule = \"@daily\"\njitter = \"9999999999h\"\ndestructive = true\n\
             [targets]\nrto = \"5m\"\nrpo = \"0s\"\n{SOURCE}\
             [backup]\nkeep_last = 0\ncompression_level = 99\nmax_age = \"9999999999999h\"\n\
             [probe]\nkind = \"canary\"\ninterval = \"1ms\"\n\
             [[failure]]\nkind = \"corrupt\"\npath = \"data/f\"\ncount = 99999999\n"
        ),
    );
    ws.write_plan(
        "kill",
        &format!(
            "destructive = true\n{TARGETS}{SOURCE}[[failure]]\nkind = \"kill\"\nname = \"app\"\nwait = \"99999999h\"\n"
        ),
    );
    let (code, text) = validate(&ws, &[]);
    assert_eq!(code, 2, "{text}");
    for (line, fix) in [
        (
            "drills/absurd.toml:1:11: timeout = \"99999999999h\" is out of range 1s to 7days",
            "set `timeout` to a value from 1s to 7days",
        ),
        ("drills/absurd.toml:3:10: jitter = \"9999999999h\" is out of range 0s to 1day", "set `jitter`"),
        ("drills/absurd.toml:7:7: [targets] rpo = \"0s\" is out of range 1ms to 10years", "set `rpo`"),
        ("drills/absurd.toml:14:13: [backup] keep_last = 0 is out of range 1 to 10000", "set `keep_last`"),
        (
            "drills/absurd.toml:15:21: [backup] compression_level = 99 is out of range 1 to 22",
            "set `compression_level`",
        ),
        (
            "drills/absurd.toml:16:11: [backup] max_age = \"9999999999999h\" is out of range 1ms to 10years",
            "set `max_age`",
        ),
        ("drills/absurd.toml:19:12: [probe] interval = \"1ms\" is out of range 100ms to 1h", "set `interval`"),
        ("drills/absurd.toml:23:9: [[failure]] count = 99999999 is out of range 1 to 1000", "set `count`"),
        ("drills/kill.toml:13:8: [[failure]] wait = \"99999999h\" is out of range 100ms to 1h", "set `wait`"),
    ] {
        assert_reported(&text, line, fix);
    }
    assert!(text.contains("2 of 2 plans have problems"), "{text}");

    ws.write_config(
        "[daemon]\nconcurrency = 9223372036854775807\ngrace_period = \"99999999999h\"\n\
         [notify]\nsmtp_host = \"127.0.0.1\"\nsecurity = \"plain\"\nfrom = \"dr@example.com\"\nto = [\"ops@example.com\"]\ntimeout = \"0s\"\n",
    );
    let (code, text) = validate(&ws, &[]);
    assert_eq!(code, 2, "{text}");
    assert_reported(
        &text,
        "config/drdrill.toml:2:15: [daemon] concurrency = 9223372036854775807 is out of range 1 to 256",
        "set `concurrency` to a value from 1 to 256",
    );
    // The rest of [daemon] is one serde table; [notify] is read on its own.
    assert_reported(
        &text,
        "config/drdrill.toml:9:11: [notify] timeout = \"0s\" is out of range 1s to 5m",
        "set `timeout`",
    );
}

#[test]
fn every_problem_of_a_plan_is_reported_in_one_pass() {
    let ws = Workspace::empty();
    // Each line is wrong on its own; before, fixing one revealed the next.
    ws.write_plan(
        "many",
        "shedule = \"@daily\"\ntimeout = \"10\"\ndestructive = \"yes\"\n\
         [targets]\nrto = \"300\"\nrpo = \"5m\"\nrtp = \"1m\"\n\
         [source]\nkind = \"directory\"\npath = \"data\"\n\
         [backup]\nmdoe = \"fresh\"\nstore = \"offsite\"\n\
         [probe]\nkind = \"canary\"\ninterval = \"0s\"\n\
         [[check]]\nkind = \"tree-matches-source\"\n",
    );
    let (code, text) = validate(&ws, &[]);
    assert_eq!(code, 2, "{text}");
    for (line, fix) in [
        ("drills/many.toml:1:1: unknown field `shedule`", "did you mean `schedule`?"),
        ("drills/many.toml:2:11: invalid duration \"10\"", "\"5m\""),
        ("drills/many.toml:3:15: invalid type", "check this value's type"),
        ("drills/many.toml:5:7: invalid duration \"300\"", "\"5m\""),
        ("drills/many.toml:7:1: unknown field `rtp`", "did you mean `rto`?"),
        ("drills/many.toml:12:1: unknown field `mdoe`", "did you mean `mode`?"),
        ("drills/many.toml:13:9: unknown store `offsite`", "use one of the stores"),
        ("drills/many.toml:16:12: [probe] interval = \"0s\" is out of range", "set `interval`"),
    ] {
        assert_reported(&text, line, fix);
    }
    // In file order, one line each (plus its fix), and nothing invented from the
    // values that could not be read (no "jitter without schedule" and the like).
    let problems: Vec<&str> = text.lines().filter(|l| l.starts_with("drills/many.toml:")).collect();
    assert_eq!(problems.len(), 8, "{text}");
    let lines: Vec<usize> = problems.iter().map(|l| l.split(':').nth(1).unwrap().parse().unwrap()).collect();
    assert!(lines.is_sorted(), "{text}");
}

#[test]
fn a_missing_source_path_is_a_warning_not_an_error() {
    let ws = Workspace::empty();
    ws.write_plan("elsewhere", &format!("{TARGETS}{SOURCE}"));
    ws.write_plan(
        "db",
        &format!(
            "{TARGETS}[source]\nkind = \"sqlite\"\npath = \"var/lib/app.db\"\n[[check]]\nkind = \"sqlite-integrity\"\n"
        ),
    );
    // A seed creates the database on the first run: nothing to warn about.
    ws.write("seed.sql", "CREATE TABLE t(x);\n");
    ws.write_plan(
        "seeded",
        &format!("{TARGETS}[source]\nkind = \"sqlite\"\npath = \"new.db\"\nseed = \"seed.sql\"\n[[check]]\nkind = \"sqlite-integrity\"\n"),
    );
    let (code, text) = validate(&ws, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok drills/elsewhere.toml (elsewhere)"), "{text}");
    // Shown resolved: relative paths are under the folder that holds drills/.
    for rel in ["data", "var/lib/app.db"] {
        let warning = format!("warning: source path {} does not exist on this host", ws.join(rel).display());
        assert!(text.contains(&warning), "{text}");
    }
    assert_eq!(text.matches("warning: source path").count(), 2, "{text}");

    std::fs::create_dir_all(ws.join("data")).unwrap();
    let (code, text) = validate(&ws, &["drills/elsewhere.toml"]);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn schedules_are_checked_in_crontab_terms() {
    let ws = Workspace::empty();
    std::fs::create_dir_all(ws.join("data")).unwrap();
    for (name, schedule) in [
        ("either", "0 0 1 * Mon"),
        ("paydays", "30 4 1,15 * 5"),
        ("hour", "0 25 * * *"),
        ("feb31", "0 0 31 2 *"),
        ("apr31", "0 0 31 4 *"),
    ] {
        ws.write_plan(name, &format!("schedule = \"{schedule}\"\n{TARGETS}{SOURCE}"));
    }
    let (code, text) = validate(&ws, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("ok drills/either.toml (either)"), "{text}");
    assert!(text.contains("ok drills/paydays.toml (paydays)"), "{text}");
    assert!(text.contains("on either day field"), "{text}");
    assert_reported(
        &text,
        "drills/hour.toml:1:12: schedule \"0 25 * * *\": hour 25 is out of range 0-23",
        "crontab syntax",
    );
    assert!(!text.contains("must be less than"), "the cron crate's six-field wording leaked:\n{text}");
    assert_reported(&text, "drills/feb31.toml:1:12: schedule \"0 0 31 2 *\": it can never fire", "crontab syntax");
    assert!(text.contains("day-of-month 31 does not occur in Feb"), "{text}");
    assert!(text.contains("day-of-month 31 does not occur in Apr"), "{text}");
    assert!(text.contains("3 of 5 plans have problems"), "{text}");
}

/// The next firings of each expression by python3-croniter, which
/// scripts/services/07-croniter.sh installs from Debian.
fn croniter_times(rows: &[(&str, bool, usize)], start: DateTime<Utc>) -> Vec<Vec<String>> {
    const SCRIPT: &str = r#"
import datetime, json, sys
from croniter import croniter
for line in sys.stdin:
    expr, day_or, start, n = line.rstrip("\n").split("|")
    it = croniter(expr, datetime.datetime.fromisoformat(start), day_or=(day_or == "or"))
    print(json.dumps([it.get_next(datetime.datetime).isoformat() for _ in range(int(n))]))
"#;
    // Debian's package is for Debian's interpreter, whatever `python3` is first in PATH.
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/services/07-croniter.sh installs python3-croniter)");
    let mut input = String::new();
    for (expr, or, n) in rows {
        input += &format!("{expr}|{}|{}|{n}\n", if *or { "or" } else { "and" }, start.to_rfc3339());
    }
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "croniter: {}", String::from_utf8_lossy(&out.stderr));
    stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn schedules_fire_when_an_independent_cron_says_they_do() {
    // (drdrill's expression, the same for croniter, croniter's `day_or`, firings).
    // `day_or` is cronie's rule: OR when neither day field starts with `*`.
    let table: &[(&str, &str, bool, usize)] = &[
        // Both day fields restricted: either day fires (the issue's examples).
        ("0 0 1 * Mon", "0 0 1 * Mon", true, 12),
        ("30 4 1,15 * 5", "30 4 1,15 * 5", true, 12),
        ("0 0 13 * 5", "0 0 13 * 5", true, 12),
        ("0 6 1-7 * 1", "0 6 1-7 * 1", true, 16),
        ("0 0 1,15 * 1-5", "0 0 1,15 * 1-5", true, 16),
        // One of them `*`: the other alone decides.
        ("0 3 * * 1-5", "0 3 * * 1-5", false, 12),
        ("*/15 9-17 * * *", "*/15 9-17 * * *", false, 40),
        ("0 9-17/2 * * mon-fri", "0 9-17/2 * * mon-fri", false, 20),
        ("0 0 * * 7", "0 0 * * 7", false, 6),
        ("0 0 * * 0", "0 0 * * 0", false, 6),
        ("0 0 * * sat,sun", "0 0 * * sat,sun", false, 8),
        ("0 0 * * 5-7", "0 0 * * 5-7", false, 9),
        ("0 0 * * 5-0", "0 0 * * 5-0", false, 9),
        ("0 0 * * */2", "0 0 * * */2", false, 12),
        ("10,20 3 * * 1,3-5", "10,20 3 * * 1,3-5", false, 12),
        ("5 4 * jan,jul *", "5 4 * jan,jul *", false, 12),
        // Month ends, and a day that exists every fourth year.
        ("0 0 31 * *", "0 0 31 * *", false, 10),
        ("0 12 30 */2 *", "0 12 30 */2 *", false, 8),
        ("0 0 29 2 *", "0 0 29 2 *", false, 3),
        ("0 0 1 1 *", "0 0 1 1 *", false, 3),
        // @weekly and @monthly as cronie defines them.
        ("@weekly", "0 0 * * 0", false, 6),
        ("@monthly", "0 0 1 * *", false, 6),
        // Seconds first for drdrill, last for croniter.
        ("*/20 30 4 * * *", "30 4 * * * */20", false, 9),
        // `*/3` starts with `*`, so cronie requires both (Mondays that are the 1st,
        // 4th, ...); croniter would OR them (its test is "expands to every value"),
        // so it is asked for AND here. cronie is followed.
        ("0 12 */3 * 1", "0 12 */3 * 1", false, 8),
        // `1-31` does not start with `*`, so cronie ORs it with Monday: every day.
        // croniter turns a full range into `*` and would AND (Mondays only); the
        // same days are asked of it as `* * *`. cronie is followed.
        ("0 12 1-31 * 1", "0 12 * * *", false, 10),
        // `N/step` is not cronie's (it refuses it) but croniter's and the crate's:
        // from N to the field's end. For weekdays that end is 7, Sunday.
        ("0 22 * * 1/2", "0 22 * * 1/2", false, 12),
    ];
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let rows: Vec<(&str, bool, usize)> = table.iter().map(|(_, c, or, n)| (*c, *or, *n)).collect();
    let expected = croniter_times(&rows, start);
    for ((expr, cron_expr, _, n), want) in table.iter().zip(expected) {
        let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let got: Vec<String> = s.next_after(start, *n).iter().map(|t| t.to_rfc3339()).collect();
        assert_eq!(got, want, "{expr} (croniter: {cron_expr}) from {start}");
    }
}

#[test]
fn printing_commands_survive_a_closed_stdout() {
    let ws = Workspace::quickstart();
    // Its output goes nowhere: `drdrill run quickstart | true`.
    let gone = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = ws.cmd().args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{args:?} panicked on a closed stdout: {err}");
        // Ended by SIGPIPE, like any filter (`head` closing the pipe), or done.
        use std::os::unix::process::ExitStatusExt;
        assert!(out.status.signal() == Some(libc::SIGPIPE) || out.status.success(), "{args:?}: {:?} {err}", out.status);
    };
    gone(&["run", "quickstart"]);
    // The drill finished and was recorded before its report could not be printed.
    let history = ws.output(&["history", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(runs[0]["status"], "passed", "{runs:#}");
    for args in [
        &["history"][..],
        &["history", "--json"],
        &["show", "1"],
        &["validate"],
        &["backups", "list"],
        &["report", "--format", "md"],
        &["evidence", "verify"],
        &["run", "quickstart", "--dry-run"],
    ] {
        gone(args);
    }
}
