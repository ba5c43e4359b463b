//! Coverage: every run records which backup it restored; `drdrill coverage`
//! lists each plan's backups in its window against that record (which were
//! restore-tested, when, the share covered, plans never drilled), and reports
//! carry a coverage section built from the evidence records.

use std::process::Command;

use chrono::Utc;
use serde_json::Value;

use crate::common::{Workspace, sh};

/// A SQLite copy some nightly job left in the store, `days` old by its name.
fn nightly_copy(ws: &Workspace, days: i64, rows: u32) -> String {
    let db = ws.join(&format!("copy-{days}.db"));
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < {rows}) INSERT INTO orders SELECT i FROM n;"
    ))
    .unwrap();
    drop(c);
    let name = format!("app-{}.db.zst", (Utc::now() - chrono::Duration::days(days)).format("%Y%m%d-%H%M%S"));
    let out = ws.join(&format!("var/store/nightly/app/{name}"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    sh(Command::new("zstd").args(["-q", "-o"]).arg(&out).arg(&db));
    format!("nightly/app/{name}")
}

fn coverage(ws: &Workspace, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["coverage", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = ws.run(&all, &[]);
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}): {out}{err}")))
}

#[test]
fn coverage_lists_the_window_against_the_record_and_reports_carry_it() {
    let ws = Workspace::empty();
    let outside = nightly_copy(&ws, 40, 5);
    let oldest = nightly_copy(&ws, 3, 10);
    let middle = nightly_copy(&ws, 2, 11);
    let newest = nightly_copy(&ws, 1, 12);
    ws.write("live.db", "");
    ws.write_plan(
        "nightly",
        "[targets]\nrto = \"1m\"\nrpo = \"60d\"\n[source]\nkind = \"sqlite\"\npath = \"live.db\"\n\
         [backup]\nmode = \"existing\"\nfrom = \"objects\"\nselect = \"least-tested\"\nwindow = \"30d\"\n\
         [backup.objects]\nstore = \"local\"\nprefix = \"nightly/app\"\nformat = \"sqlite\"\ntime_pattern = \"%Y%m%d-%H%M%S\"\n\
         [[check]]\nkind = \"sqlite-query\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \">= 10\"\n",
    );
    ws.write("other/data.txt", "x\n");
    ws.write_plan(
        "other",
        &format!(
            "[targets]\nrto = \"1m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n[[check]]\nkind = \"tree-matches-source\"\n",
            ws.join("other").display()
        ),
    );
    // Nothing drilled yet: every backup in the window is untested.
    let (code, before) = coverage(&ws, &["nightly"]);
    assert_eq!(code, 0, "{before:#}");
    assert_eq!(
        (before["plans"][0]["in_window"].as_u64(), before["plans"][0]["tested_in_window"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(before["never_drilled"], serde_json::json!(["nightly"]));

    // least-tested restores the never-tested ones, oldest first.
    let first = ws.drill("nightly", &[]);
    let second = ws.drill("nightly", &[]);
    assert_eq!(
        (first["backup_id"].as_str(), second["backup_id"].as_str()),
        (Some(oldest.as_str()), Some(middle.as_str()))
    );

    let (code, all) = coverage(&ws, &[]);
    assert_eq!(code, 0, "{all:#}");
    let plans = all["plans"].as_array().unwrap();
    let n = plans.iter().find(|p| p["plan"] == "nightly").unwrap();
    assert_eq!(n["repository"], "objects:local/nightly/app");
    assert_eq!((n["in_window"].as_u64(), n["tested_in_window"].as_u64()), (Some(3), Some(2)), "{n:#}");
    assert!((n["share"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(n["outside_window"], 1, "{outside} is older than the window");
    let ids: Vec<&str> = n["backups"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [newest.as_str(), middle.as_str(), oldest.as_str()], "newest first");
    let row = |id: &str| n["backups"].as_array().unwrap().iter().find(|b| b["id"] == id).unwrap().clone();
    assert_eq!(row(&newest)["tested"], false);
    assert_eq!(
        (row(&middle)["last_run"].as_i64(), row(&middle)["last_status"].as_str()),
        (second["run_id"].as_i64(), Some("passed"))
    );
    assert_eq!(row(&oldest)["last_run"], first["run_id"]);
    assert_eq!(all["never_drilled"], serde_json::json!(["other"]), "{all:#}");

    let (code, text, err) = ws.run(&["coverage", "nightly"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("2 of 3 backup(s) in the window restore-tested (67%)"), "{text}");
    let line =
        text.lines().find(|l| l.contains(newest.as_str())).unwrap_or_else(|| panic!("{newest} not listed: {text}"));
    assert!(line.trim_end().ends_with("never"), "{line}");
    assert!(text.contains("1 older backup(s) outside the window"), "{text}");

    // The third drill completes the window; the reports say which backups drills restored.
    let third = ws.drill("nightly", &[]);
    assert_eq!(third["backup_id"].as_str(), Some(newest.as_str()));
    let (_, done) = coverage(&ws, &["nightly"]);
    assert_eq!(done["plans"][0]["share"], 1.0);

    let (code, md, err) = ws.run(&["report", "--format", "md"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(md.contains("## Backup coverage"), "{md}");
    for id in [&oldest, &middle, &newest] {
        assert!(md.contains(&format!("| nightly | objects:local/nightly/app | {id} |")), "{id} missing:\n{md}");
    }
    let (code, json, err) = ws.run(&["report", "--format", "json"], &[]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&json).unwrap();
    let cov = &report["plans"].as_array().unwrap().iter().find(|p| p["plan"] == "nightly").unwrap()["coverage"];
    assert_eq!((cov["restores"].as_u64(), cov["tested"].as_array().map(Vec::len)), (Some(3), Some(3)), "{cov:#}");
    let (code, html, err) = ws.run(&["report", "--format", "html"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(html.contains("backups restore-tested") && html.contains(&newest), "the HTML report has no coverage");

    // A repository that cannot be listed is an error of that plan, exit 1.
    let text = std::fs::read_to_string(ws.join("drills/nightly.toml")).unwrap().replace("nightly/app", "nightly/gone");
    ws.write_plan("nightly", &text);
    let (code, gone) = coverage(&ws, &["nightly"]);
    assert_eq!(code, 1);
    assert!(gone["plans"][0]["error"].as_str().unwrap().contains("no object under `nightly/gone`"), "{gone:#}");
    let (code, typo) = coverage(&ws, &["nightlyy"]);
    assert_eq!(code, 2);
    assert!(typo["error"].as_str().unwrap().contains("no plan named `nightlyy`"), "{typo:#}");
}
