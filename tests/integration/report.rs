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
