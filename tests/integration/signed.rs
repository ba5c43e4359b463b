//! Signed evidence: the node's key signs every record and head; an exported
//! bundle verifies with `sha256sum -c` and `ssh-keygen -Y verify` alone (the
//! commands docs/evidence.md shows), one changed byte fails both, and a chain
//! recomputed after an edit fails the signature check.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::{Workspace, describe, repo, stdout};

/// The two auditor commands, verbatim from docs/evidence.md.
fn documented_commands() -> Vec<String> {
    let doc = fs::read_to_string(repo().join("docs/evidence.md")).unwrap();
    let wanted = [
        "sha256sum -c SHA256SUMS",
        "ssh-keygen -Y verify -f allowed_signers -I <node> -n drdrill-evidence -s statement.json.sig < statement.json",
    ];
    for w in wanted {
        assert!(doc.lines().any(|l| l.trim() == w), "docs/evidence.md no longer shows `{w}` on a line of its own");
    }
    wanted.iter().map(|w| w.to_string()).collect()
}

/// Runs a documented command in the bundle folder with `sh`; (success, output).
fn auditor(dir: &Path, command: &str, node: &str) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(command.replace("<node>", node))
        .current_dir(dir)
        .output()
        .expect("sh, sha256sum and ssh-keygen are needed: scripts/services/05-tools.sh installs openssh-client");
    (out.status.success(), format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)))
}

fn ok(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.output(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
    format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
}

fn broken(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.output(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {}", describe(&out));
    assert!(stdout(&out).contains("BROKEN"), "{}", describe(&out));
    stdout(&out)
}

/// This node's name, as `drdrill evidence key` puts it in its allowed_signers line.
fn node_of(ws: &Workspace) -> String {
    let line = ok(ws, &["evidence", "key", "--format", "allowed-signers"]);
    line.split_whitespace().next().unwrap().to_string()
}

#[test]
fn an_exported_bundle_verifies_with_standard_tools_and_one_changed_byte_fails_both() {
    let ws = Workspace::quickstart_history();
    let node = node_of(&ws);
    // The auditor was handed the public key beforehand, not through the bundle.
    let signers = ok(&ws, &["evidence", "key", "--format", "allowed-signers"]);
    ok(&ws, &["evidence", "export", "--since", "1y", "-o", "bundle"]);
    let dir = ws.join("bundle");
    assert_eq!(fs::read_to_string(dir.join("allowed_signers")).unwrap(), signers);

    for c in documented_commands() {
        let (passed, out) = auditor(&dir, &c, &node);
        assert!(passed, "`{c}` failed on an untouched bundle: {out}");
    }
    let out = ok(&ws, &["evidence", "verify", "--bundle", "bundle"]);
    assert!(out.contains("OK") && out.contains("3 record(s), every one signed"), "{out}");
    let statement: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("statement.json")).unwrap()).unwrap();
    assert_eq!(statement["nodes"][0]["records"].as_array().unwrap().len(), 3, "{statement:#}");
    assert_eq!(statement["nodes"][0]["head"]["count"], 3);

    // One byte: the failed run (result "failed") now says "fajled".
    let path = dir.join("statement.json");
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.windows(17).position(|w| w == br#""result":"failed""#).expect("a failed run in the statement");
    bytes[at + 12] = b'j';
    fs::write(&path, &bytes).unwrap();
    for c in documented_commands() {
        let (passed, out) = auditor(&dir, &c, &node);
        assert!(!passed, "`{c}` passed on a changed statement: {out}");
    }
    let msg = broken(&ws, &["evidence", "verify", "--bundle", "bundle"]);
    assert!(msg.contains("statement.json was altered after export"), "{msg}");

    // Even with SHA256SUMS redone to match, the signature names the statement.
    let sums = fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let fixed: String = sums
        .lines()
        .map(|l| match l.strip_suffix("  statement.json") {
            Some(_) => format!("{}  statement.json\n", drdrill::hashing::sha256_hex(&bytes)),
            None => format!("{l}\n"),
        })
        .collect();
    fs::write(dir.join("SHA256SUMS"), fixed).unwrap();
    let msg = broken(&ws, &["evidence", "verify", "--bundle", "bundle"]);
    assert!(msg.contains("statement.json.sig does not verify statement.json"), "{msg}");
}

/// What a tamperer can do with the database today: edit a run, rebuild its
/// record, and recompute every later hash and the head log, so the chain and
/// the head log agree with each other again.
fn recompute_chain_after_editing_run(db: &Path, run_id: i64) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch("DROP TRIGGER evidence_append_only_update;").unwrap();
    tx.execute("UPDATE runs SET status = 'passed', reason = NULL WHERE id = ?1", [run_id]).unwrap();
    let rows: Vec<(i64, i64)> = tx
        .prepare("SELECT seq, run_id FROM evidence ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev = drdrill::db::evidence::GENESIS.to_string();
    let mut log = String::new();
    for (seq, run) in rows {
        let record = drdrill::db::evidence::build_record(&tx, run).unwrap().unwrap().canonical();
        let hash = drdrill::db::evidence::chain_hash(&prev, &record);
        tx.execute(
            "UPDATE evidence SET prev_hash = ?2, hash = ?3, record = ?4 WHERE seq = ?1",
            rusqlite::params![seq, prev, hash, record],
        )
        .unwrap();
        log += &format!("#{seq} {hash} run {run} at 2026-01-01T00:00:00.000Z\n");
        prev = hash;
    }
    tx.commit().unwrap();
    let mut head_log = db.as_os_str().to_owned();
    head_log.push(".evidence-heads");
    fs::write(head_log, log).unwrap();
}

#[test]
fn a_recomputed_chain_fails_the_signature_check() {
    let ws = Workspace::quickstart_history();
    ok(&ws, &["evidence", "verify"]);
    // Run 3 failed; the tamperer makes it a pass and rehashes from there on.
    recompute_chain_after_editing_run(&ws.db_path(), 3);
    let msg = broken(&ws, &["evidence", "verify"]);
    assert!(
        msg.contains("evidence record #3 (run 3)")
            && msg.contains("signature does not verify")
            && msg.contains("recomputed"),
        "{msg}"
    );
    // A chain that does not verify is not exported as if whole.
    let out = ws.output(&["evidence", "export", "-o", "bundle"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!ws.join("bundle/statement.json").exists());
}

#[test]
fn a_deleted_signature_is_named() {
    let ws = Workspace::quickstart_history();
    ws.sqlite3("DROP TRIGGER evidence_signatures_delete; DELETE FROM evidence_signatures WHERE seq = 2");
    let msg = broken(&ws, &["evidence", "verify"]);
    assert!(msg.contains("evidence record #2 (run 2)") && msg.contains("has no signature"), "{msg}");
}

#[test]
fn the_key_is_an_openssh_key_in_the_configured_place_and_refused_when_others_may_read_it() {
    let ws = Workspace::quickstart();
    let key = ws.join("keys/evidence-key");
    ws.write_config(&format!("[evidence]\nkey_file = \"{}\"\n", key.display()));
    assert_eq!(ws.run_quickstart(), 0);
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!ws.join("var/drdrill.db.signing-key").exists());
    // ssh-keygen reads the key file; its public half is what `evidence key` shows.
    let out = Command::new("ssh-keygen").arg("-y").arg("-f").arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let public = stdout(&out);
    let shown = ok(&ws, &["evidence", "key", "--format", "openssh"]);
    let words = |s: &str| s.split_whitespace().take(2).map(String::from).collect::<Vec<_>>();
    assert_eq!(words(&public), words(&shown));
    let minisign = ok(&ws, &["evidence", "key", "--format", "minisign"]);
    assert!(minisign.starts_with("untrusted comment: minisign public key "), "{minisign}");
    // No process prints the private key, nor logs it.
    let private = fs::read_to_string(&key).unwrap();
    let body: String = private.lines().nth(1).unwrap().to_string();
    let all = ok(&ws, &["evidence", "key"]);
    assert!(!all.contains(&body), "{all}");

    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let out = ws.output(&["run", "quickstart"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mode 0640") && err.contains(&format!("chmod 600 {}", key.display())), "{err}");
}
