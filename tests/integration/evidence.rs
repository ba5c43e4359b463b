//! The evidence chain catches edits and deletions made behind drdrill's back
//! with the real sqlite3 tool, and re-verifies an exported JSON report offline.

use crate::common::{Workspace, stdout};

/// Three finished runs: passed, passed, failed (RTO target 1ms).
fn three_runs() -> Workspace {
    let ws = Workspace::quickstart_history();
    let out = ws.output(&["evidence", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("OK, 3 record(s)"), "{}", stdout(&out));
    ws
}

fn verify_fails(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.output(args);
    assert_eq!(out.status.code(), Some(1), "verify should fail: {}", stdout(&out));
    stdout(&out)
}

#[test]
fn editing_a_run_field_with_sqlite3_is_named() {
    let ws = three_runs();
    // Turn the failed run into a pass, as someone hiding a failure would.
    ws.sqlite3("UPDATE runs SET status = 'passed', reason = NULL WHERE id = 3");
    let msg = verify_fails(&ws, &["evidence", "verify"]);
    assert!(msg.contains("evidence record #3 (run 3)") && msg.contains("`result`"), "{msg}");
}

#[test]
fn editing_a_measurement_with_sqlite3_is_named() {
    let ws = three_runs();
    ws.sqlite3("UPDATE measurements SET value_ms = 1.0 WHERE run_id = 2 AND name = 'rpo'");
    let msg = verify_fails(&ws, &["evidence", "verify"]);
    assert!(msg.contains("run 2") && msg.contains("rpo value_ms"), "{msg}");
}

#[test]
fn editing_the_evidence_record_itself_breaks_its_hash() {
    let ws = three_runs();
    // The triggers stop accidental edits; a determined editor drops them first.
    let err = ws.sqlite3_output("UPDATE evidence SET record = replace(record, 'manual', 'schedule') WHERE seq = 2");
    assert!(!err.status.success(), "the append-only trigger should refuse the update");
    ws.sqlite3(
        "DROP TRIGGER evidence_append_only_update;
         UPDATE evidence SET record = replace(record, '\"trigger\":\"manual\"', '\"trigger\":\"schedule\"') WHERE seq = 2",
    );
    let msg = verify_fails(&ws, &["evidence", "verify"]);
    assert!(msg.contains("evidence record #2 (run 2)") && msg.contains("altered"), "{msg}");
}

#[test]
fn deleting_an_evidence_row_is_named() {
    let ws = three_runs();
    ws.sqlite3("DROP TRIGGER evidence_append_only_delete; DELETE FROM evidence WHERE seq = 2");
    let msg = verify_fails(&ws, &["evidence", "verify"]);
    assert!(msg.contains("record #2 is missing"), "{msg}");
}

#[test]
fn deleting_the_newest_evidence_row_leaves_its_run_unchained() {
    let ws = three_runs();
    ws.sqlite3("DROP TRIGGER evidence_append_only_delete; DELETE FROM evidence WHERE seq = 3");
    let msg = verify_fails(&ws, &["evidence", "verify"]);
    assert!(msg.contains("run 3") && msg.contains("no evidence record"), "{msg}");
}

#[test]
fn deleting_a_run_is_named() {
    let ws = three_runs();
    ws.sqlite3(
        "DELETE FROM checks WHERE run_id = 1; DELETE FROM measurements WHERE run_id = 1;
         DELETE FROM phases WHERE run_id = 1; DELETE FROM runs WHERE id = 1",
    );
    let msg = verify_fails(&ws, &["evidence", "verify"]);
    assert!(msg.contains("evidence record #1 (run 1)") && msg.contains("deleted"), "{msg}");
}

#[test]
fn operator_notes_are_part_of_the_record() {
    let ws = Workspace::quickstart();
    let out = ws.output(&["run", "quickstart", "--note", "game day, observer: J. Doe"]);
    assert_eq!(out.status.code(), Some(0));
    let record = ws.sqlite3("SELECT record FROM evidence WHERE seq = 1");
    assert!(record.contains(r#"] operator (--note): game day, observer: J. Doe""#), "{record}");
    ws.sqlite3("UPDATE run_notes SET text = 'game day' WHERE run_id = 1");
    let msg = verify_fails(&ws, &["evidence", "verify"]);
    assert!(msg.contains("field `notes`"), "{msg}");
    // A remark added after the run finished is kept, but outside the chained record.
    ws.sqlite3("UPDATE run_notes SET text = 'game day, observer: J. Doe' WHERE run_id = 1");
    assert_eq!(ws.output(&["note", "1", "post-mortem: all good"]).status.code(), Some(0));
    assert_eq!(ws.output(&["evidence", "verify"]).status.code(), Some(0));
}

#[test]
fn exported_json_verifies_offline_and_catches_edits() {
    let ws = three_runs();
    let out = ws.output(&["report", "--format", "json", "-o", "report.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::common::stderr(&out));
    // Offline: the database is gone.
    std::fs::remove_dir_all(ws.path().join("var")).unwrap();
    let ok = ws.output(&["evidence", "verify", "--file", "report.json"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("OK, 3 record(s)"), "{}", stdout(&ok));

    let path = ws.path().join("report.json");
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let m = doc["evidence"][1]["record"]["measurements"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["name"] == "rto")
        .unwrap();
    m["value_ms"] = serde_json::json!("0.001");
    std::fs::write(ws.path().join("edited.json"), serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let msg = verify_fails(&ws, &["evidence", "verify", "--file", "edited.json"]);
    assert!(msg.contains("evidence record #2 (run 2)") && msg.contains("altered"), "{msg}");

    let evidence = doc["evidence"].as_array_mut().unwrap();
    evidence.remove(1);
    std::fs::write(ws.path().join("cut.json"), serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let msg = verify_fails(&ws, &["evidence", "verify", "--file", "cut.json"]);
    assert!(msg.contains("record #2 is missing"), "{msg}");
}

#[test]
fn an_export_filtered_by_plan_still_verifies_offline() {
    let ws = Workspace::quickstart();
    let text = std::fs::read_to_string(ws.path().join("drills/quickstart.toml")).unwrap();
    ws.write_plan("second", &text.replace("name = \"quickstart\"", "name = \"second\""));
    // Interleaved: quickstart, second, quickstart, second.
    for plan in ["quickstart", "second", "quickstart", "second"] {
        assert_eq!(ws.output(&["run", plan]).status.code(), Some(0), "{plan}");
    }
    let out = ws.output(&["report", "--plan", "quickstart", "--format", "json", "-o", "q.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::common::stderr(&out));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path().join("q.json")).unwrap()).unwrap();
    assert_eq!(doc["selected_runs"], serde_json::json!([1, 3]));
    let seqs: Vec<i64> = doc["evidence"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "the slice is contiguous, other plans' records included");
    let ok = ws.output(&["evidence", "verify", "--file", "q.json"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
}

/// A long chain whose runs finished out of order (so chain order is not run
/// order), with notes and gate decisions, written by the library's writers
/// with signatures and a head log. Returns the database and, per run id, its
/// sequence number in the chain.
fn long_chain(dir: &std::path::Path, runs: usize) -> (drdrill::db::Db, std::collections::BTreeMap<i64, i64>) {
    use drdrill::record::{CheckRecord, GateRecord, Measurement, PhaseRecord, RunNote};
    let text = format!("database = \"{}/drdrill.db\"\n", dir.display());
    let config = drdrill::config::Config::parse(&dir.join("drdrill.toml"), &text).unwrap();
    let db = drdrill::db::Db::open_for(&config).unwrap();
    let host = drdrill::net::hostname();
    let t0 = chrono::Utc::now() - chrono::Duration::days(1);
    let mut pending = Vec::new();
    for i in 0..runs {
        let at = t0 + chrono::Duration::seconds(i as i64);
        let new = drdrill::db::NewRun {
            plan: if i % 2 == 0 { "even" } else { "odd" },
            plan_file: "p.toml",
            plan_sha256: "ab",
            description: "",
            trigger: "schedule",
            host: &host,
            started_at: at,
        };
        let id = db.start_run(&new).unwrap();
        if i % 7 == 0 {
            let note = RunNote { at, author: "alice".into(), text: format!("note {i}\nsecond line") };
            db.add_note(id, &note).unwrap();
        }
        if i % 11 == 0 {
            let gate = GateRecord {
                gate: "restore".into(),
                waiting_since: at,
                decided_at: at,
                outcome: "approved".into(),
                decided_by: "terminal (user bob)".into(),
                note: None,
            };
            db.add_gate(id, &gate).unwrap();
        }
        pending.push((id, at));
        // Every third run finishes after the next one: out of run order.
        if i % 3 == 1 || i + 1 == runs {
            for (id, at) in pending.drain(..).rev() {
                let phases = [PhaseRecord {
                    name: "restore".into(),
                    started_at: at,
                    duration_ms: 12.5 + id as f64,
                    status: "ok".into(),
                    detail: String::new(),
                }];
                let checks = [CheckRecord {
                    kind: "command".into(),
                    description: "true".into(),
                    passed: true,
                    attempts: 1,
                    duration_ms: 1.25,
                    output: String::new(),
                }];
                let rto = Measurement {
                    name: "rto".into(),
                    value_ms: Some(100.0 + id as f64),
                    target_ms: Some(60_000.0),
                    method: "monotonic".into(),
                    met: Some(true),
                };
                let end = drdrill::db::RunEnd {
                    status: "passed".into(),
                    finished_at: Some(at + chrono::Duration::milliseconds(500)),
                    ..Default::default()
                };
                db.finish_run(id, &end, &phases, &checks, &[rto]).unwrap();
            }
        }
    }
    let seqs = db.evidence_entries(None, None).unwrap().iter().map(|e| (e.record.run_id, e.seq)).collect();
    (db, seqs)
}

#[test]
fn a_long_chain_verifies_and_the_first_edited_record_in_chain_order_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (db, seqs) = long_chain(dir.path(), 600);
    let v = db.verify_evidence().unwrap().unwrap();
    assert_eq!(v.records, 600);
    assert_eq!(Some((600, v.head.clone())), db.evidence_head().unwrap());
    assert_eq!(v.signatures.as_ref().map(|s| s.records), Some(600), "{v:?}");
    assert_eq!(v.logged, Some(600));
    // The same verdict the links alone give, from an export of every record.
    let offline = drdrill::db::evidence::verify_exported(&db.evidence_entries(None, None).unwrap()).unwrap();
    assert_eq!((offline.records, &offline.head), (v.records, &v.head));
    // Two runs in the middle that finished out of order: the later run id has
    // the earlier record. Edit both: the earlier record in the chain is named.
    let (a, b) = seqs
        .iter()
        .filter(|(id, _)| **id > 250)
        .find_map(|(id, seq)| seqs.get(&(id + 1)).filter(|next| **next < *seq).map(|_| (*id, id + 1)))
        .expect("runs finished out of order");
    assert!(seqs[&b] < seqs[&a]);
    db.with_conn(|c| {
        c.execute("UPDATE measurements SET value_ms = 1.0 WHERE run_id IN (?1, ?2) AND name = 'rto'", [a, b])
    })
    .unwrap();
    let broken = db.verify_evidence().unwrap().unwrap_err();
    assert_eq!((broken.seq, broken.run_id), (Some(seqs[&b]), Some(b)), "{broken}");
    assert!(broken.to_string().contains("measurements[0] rto value_ms"), "{broken}");
    // A note edited in an earlier record comes first.
    let noted = *seqs.keys().rfind(|id| (**id - 1) % 7 == 0 && **id < b - 50).unwrap();
    db.with_conn(|c| c.execute("UPDATE run_notes SET text = 'nothing happened' WHERE run_id = ?1", [noted])).unwrap();
    let broken = db.verify_evidence().unwrap().unwrap_err();
    assert_eq!((broken.seq, broken.run_id), (Some(seqs[&noted]), Some(noted)), "{broken}");
    assert!(broken.to_string().contains("`notes`"), "{broken}");
}
