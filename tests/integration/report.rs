//! `drdrill report` in every format, each read back with a real parser.

use crate::common::{Workspace, stderr, stdout};

fn report(ws: &Workspace, format: &str) -> String {
    let file = format!("report.{format}");
    let out = ws.output(&["report", "--since", "30d", "--format", format, "-o", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::read_to_string(ws.path().join(file)).unwrap()
}

fn chain_head(ws: &Workspace) -> String {
    ws.sqlite3("SELECT hash FROM evidence ORDER BY seq DESC LIMIT 1")
}

#[test]
fn every_format_parses_with_a_real_parser() {
    let ws = Workspace::quickstart_history();
    let head = chain_head(&ws);

    // JSON: all records with their hashes, and the summary.
    let json: serde_json::Value = serde_json::from_str(&report(&ws, "json")).unwrap();
    assert_eq!(json["evidence"].as_array().unwrap().len(), 3);
    assert_eq!(json["chain_head"]["hash"], head.as_str());
    assert_eq!(json["chain_status"], "verified");
    let plan = &json["plans"][0];
    assert_eq!(
        (plan["plan"].as_str(), plan["runs"].as_u64(), plan["passed"].as_u64()),
        (Some("quickstart"), Some(3), Some(2))
    );
    assert_eq!(plan["health"], "failing");
    assert_eq!(plan["rto"]["target_ms"].as_f64(), Some(1.0));

    // CSV: a header and one row per run.
    let csv_text = report(&ws, "csv");
    let mut rdr = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().map(|r| r[col("result")].to_string()).collect::<Vec<_>>(), ["passed", "passed", "failed"]);
    assert_eq!(&rows[2][col("rto_met")], "no");
    assert!(rows[2][col("reason")].contains("RTO"), "{:?}", rows[2]);
    assert_eq!(&rows[2][col("hash")], head.as_str());
    assert!(rows.iter().all(|r| r[col("rto_ms")].parse::<f64>().is_ok()));

    // JUnit XML: a testcase per run, a failure element on the failed one.
    let xml = report(&ws, "junit");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 3);
    let failed: Vec<_> = cases.iter().filter(|c| c.children().any(|n| n.has_tag_name("failure"))).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].attribute("name").unwrap().starts_with("run 3 "));
    let failure = failed[0].children().find(|n| n.has_tag_name("failure")).unwrap();
    assert!(failure.attribute("message").unwrap().contains("exceeded its target"));
    let root = doc.root_element();
    assert_eq!((root.attribute("tests"), root.attribute("failures")), (Some("3"), Some("1")));

    // Markdown: the summary row and a row per run.
    let md = report(&ws, "md");
    assert!(md.contains("| quickstart | FAILING | 3 | 67% |"), "{md}");
    assert_eq!(md.lines().filter(|l| l.starts_with("| ") && l.contains("| quickstart | 20")).count(), 3, "{md}");
    assert!(md.contains(&head));
}

#[test]
fn html_is_self_contained_with_charts_and_the_chain_head() {
    let ws = Workspace::quickstart_history();
    let head = chain_head(&ws);
    let html = report(&ws, "html");
    // Nothing is fetched or linked: no URL scheme (not even protocol-relative
    // `//host`), no external resource syntax.
    for needle in ["http:", "https:", "//", "<script", "<link", "<img", "<iframe", "url(", "@import", " src="] {
        let hit = html.match_indices(needle).next();
        assert!(
            hit.is_none(),
            "HTML contains {needle:?} near {:?}",
            hit.map(|(i, _)| &html[i.saturating_sub(60)..(i + 60).min(html.len())])
        );
    }
    assert_eq!(html.matches("<svg").count(), 2, "an RTO and an RPO chart for the one plan");
    assert_eq!(html.matches("class=\"target\"").count(), 2, "each chart draws its target");
    assert!(html.contains("RTO of quickstart") && html.contains("RPO of quickstart"));
    assert!(html.contains(&format!("#3 {head}")), "chain head is shown");
    assert!(html.contains("tile failing"), "the failing plan is marked");
    assert_eq!(html.matches("<tr><td title=").count(), 3, "a table row per run");
}

#[test]
fn bad_arguments_name_the_fix() {
    let ws = Workspace::quickstart_history();
    let out = ws.output(&["report", "--format", "pdf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("use html, md, json, csv or junit"), "{}", stderr(&out));
    let out = ws.output(&["report", "--since", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--since"), "{}", stderr(&out));
    let out = ws.output(&["report", "--plan", "nope", "--format", "md"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("| nope | UNTESTED | 0 |"), "{}", stdout(&out));
}

/// Seeds `n` runs of two plans (every 7th a failure, every 11th skipped) as the
/// report bench does, with their evidence appended.
fn seed(db: &drdrill::db::Db, dir: &std::path::Path, n: usize, now: chrono::DateTime<chrono::Utc>) {
    use drdrill::db::ts;
    use rusqlite::params;
    db.with_conn(|c| {
        let tx = c.transaction().unwrap();
        for name in ["alpha", "beta"] {
            let file = dir.join(format!("{name}.toml"));
            std::fs::write(&file, format!("name = \"{name}\"\nschedule = \"0 3 * * *\"\n")).unwrap();
            tx.execute(
                "INSERT INTO plans (name, file, sha256, description, updated_at) VALUES (?1, ?2, 'ab', '', ?3)",
                params![name, file.to_string_lossy(), ts(now)],
            )
            .unwrap();
        }
        for i in 0..n {
            let plan = if i % 3 == 0 { "beta" } else { "alpha" };
            let started = now - chrono::Duration::minutes((n - i) as i64 * 10);
            let status = match i {
                i if i % 11 == 0 => "skipped",
                i if i % 7 == 0 => "failed",
                _ => "passed",
            };
            tx.execute(
                "INSERT INTO runs (plan, plan_sha256, trigger, status, started_at, finished_at, t_fail, backup_mode,
                   store, backup_id, backup_sha256, backup_created_at, host, version, reason)
                 VALUES (?1, 'ab', 'schedule', ?2, ?3, ?3, ?3, 'fresh', 'local', ?4, 'cd', ?3, 'test', '0.1.0', NULL)",
                params![plan, status, ts(started), format!("backup-{}", i / 2)],
            )
            .unwrap();
            let id = tx.last_insert_rowid();
            for (m, target) in [("rto", 60_000.0), ("rpo", 900_000.0)] {
                let v = target * ((i * 37 % 100) as f64 / 80.0);
                tx.execute(
                    "INSERT INTO measurements (run_id, name, value_ms, target_ms, method, met) VALUES (?1, ?2, ?3, ?4, 'test', ?5)",
                    params![id, m, v, target, v <= target],
                )
                .unwrap();
            }
            tx.execute(
                "INSERT INTO phases (run_id, seq, name, started_at, duration_ms, status, detail) VALUES (?1, 0, 'restore', ?2, 10.0, 'ok', '')",
                params![id, ts(started)],
            )
            .unwrap();
            drdrill::db::evidence::append(&tx, id).unwrap();
        }
        tx.commit().unwrap();
    });
}

#[test]
fn the_streamed_html_report_equals_the_one_built_from_every_record() {
    use drdrill::report::{Format, Report, ReportOptions, html::MAX_TABLE_ROWS};
    let dir = tempfile::tempdir().unwrap();
    let db = drdrill::db::Db::open(&dir.path().join("drdrill.db")).unwrap();
    let now = chrono::Utc::now();
    let n = MAX_TABLE_ROWS + 300;
    seed(&db, dir.path(), n, now);
    for (since, plan) in [(None, None), (Some(now - chrono::Duration::days(3)), None), (None, Some("beta"))] {
        let opts = ReportOptions { since, plan: plan.map(String::from), now, max_interval: None };
        let full = Report::build(&db, &opts).unwrap();
        let streamed = Report::build_html(&db, &opts).unwrap();
        assert_eq!(streamed.runs, full.entries.len(), "{since:?} {plan:?}");
        assert_eq!(streamed.entries.len(), full.entries.len().min(MAX_TABLE_ROWS), "{since:?} {plan:?}");
        let newest = |r: &Report| r.entries.last().map(|e| e.seq);
        assert_eq!(newest(&streamed), newest(&full));
        assert_eq!(streamed.render(Format::Html).unwrap(), full.render(Format::Html).unwrap(), "{since:?} {plan:?}");
    }
    let all = Report::build_html(&db, &ReportOptions { since: None, plan: None, now, max_interval: None }).unwrap();
    assert_eq!((all.runs, all.entries.len()), (n, MAX_TABLE_ROWS));
    let html = all.render(Format::Html).unwrap();
    assert!(html.contains(&format!("<h2>Runs ({n} in the period; the newest {MAX_TABLE_ROWS} are listed")));
}
