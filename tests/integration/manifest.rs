//! Manifest format 3 (JSON Lines in path order): older formats stay restorable,
//! the README's by-hand recipe checks a restore against one, and bad manifests
//! at scale (truncated, cut off, out of order, a duplicate path, more than the
//! header declares) fail the restore naming the first bad line, with nothing
//! written past the declared sizes.
//!
//! Bad manifests are crafted the way an attacker with store access could: a
//! tar stream and a manifest that agree with each other, resealed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::{Workspace, manifest_json, phase, reason, write_manifest_json};
use drdrill::hashing::sha256_hex;

/// A directory plan over `data`, restoring `mode` backups, compared with the live folder.
fn dir_plan(name: &str, mode: &str) -> String {
    format!(
        "name = \"{name}\"\ntimeout = \"60s\"\n[targets]\nrto = \"1m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[backup]\nmode = \"{mode}\"\n[[check]]\nkind = \"tree-matches-source\"\n"
    )
}

fn small_tree(ws: &Workspace) {
    let data = ws.join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("a.txt"), b"alpha\n").unwrap();
    fs::write(data.join("sub/b c.txt"), b"bravo bravo\n").unwrap();
    std::os::unix::fs::symlink("a.txt", data.join("link")).unwrap();
}

fn passed(ws: &Workspace, plan: &str) -> Value {
    let r = ws.drill(plan, &[]);
    assert_eq!(r["status"], "passed", "{r:#}");
    r
}

#[test]
fn a_format_2_manifest_still_restores_and_passes_the_tree_check() {
    let ws = Workspace::empty();
    small_tree(&ws);
    ws.write_plan("two", &dir_plan("two", "fresh"));
    passed(&ws, "two");
    // What drdrill wrote before JSON Lines: one object with `files`, sealed.
    let dir = ws.backup_dirs("two").pop().unwrap();
    let mut m = manifest_json(&dir);
    m["format"] = 2.into();
    m.as_object_mut().unwrap().remove("totals");
    let bytes = serde_json::to_vec(&m).unwrap();
    fs::write(dir.join("manifest.json"), &bytes).unwrap();
    fs::write(dir.join("manifest.json.sha256"), drdrill::store::manifest_checksum(&bytes)).unwrap();

    ws.write_plan("two", &dir_plan("two", "latest"));
    let r = passed(&ws, "two");
    assert_eq!(r["backup_id"], dir.file_name().unwrap().to_str().unwrap(), "{r:#}");
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "two"], &[]);
    assert_eq!(code, 0, "{out}");
}

/// The README's recipe for checking a restore by hand, exactly as printed.
fn readme_recipe() -> String {
    let readme = fs::read_to_string(crate::common::repo().join("README.md")).unwrap();
    let marker = "<!-- recipe: check a restore against its manifest";
    let after = &readme[readme.find(marker).expect("the README has the manifest recipe")..];
    let block = &after[after.find("```sh\n").unwrap() + 6..];
    block[..block.find("```").unwrap()].to_string()
}

/// Runs the recipe with `sh -e` in a copy of `backup`; returns (success, output).
fn run_recipe(backup: &Path, scratch: &Path) -> (bool, String) {
    fs::create_dir_all(scratch).unwrap();
    for e in fs::read_dir(backup).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), scratch.join(e.file_name())).unwrap();
    }
    let out = std::process::Command::new("sh").arg("-ec").arg(readme_recipe()).current_dir(scratch).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_readme_recipe_checks_a_restore_against_the_manifest_with_jq_and_sha256sum() {
    let ws = Workspace::empty();
    small_tree(&ws);
    ws.write_plan("hand", &dir_plan("hand", "fresh"));
    passed(&ws, "hand");
    fs::write(ws.join("data/a.txt"), b"alpha, changed\n").unwrap();
    passed(&ws, "hand");
    let dirs = ws.backup_dirs("hand");
    let (ok, out) = run_recipe(&dirs[1], &ws.join("by-hand/good"));
    assert!(ok, "the recipe failed on an intact backup (jq installed? scripts/services/05-tools.sh): {out}");
    assert!(ws.join("by-hand/good/restored/sub/b c.txt").is_file(), "{out}");

    // The older backup's payload under the newer manifest: the recipe says which file.
    let swapped = ws.join("swapped");
    fs::create_dir_all(&swapped).unwrap();
    for e in fs::read_dir(&dirs[1]).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), swapped.join(e.file_name())).unwrap();
    }
    fs::copy(dirs[0].join("payload.tar.zst"), swapped.join("payload.tar.zst")).unwrap();
    let (ok, out) = run_recipe(&swapped, &ws.join("by-hand/bad"));
    assert!(!ok, "the recipe accepted another backup's payload: {out}");
    assert!(out.contains("a.txt: FAILED"), "{out}");
}

const N: usize = 3_000;

/// File `i` of a crafted backup, named so that names sort in number order.
fn name(i: usize) -> String {
    format!("d{:02}/f{i:05}.txt", i / 500)
}

fn data(i: usize) -> Vec<u8> {
    format!("file {i:05}\n").into_bytes()
}

fn entry(path: &str, data: &[u8]) -> Value {
    json!({"path": path, "kind": "file", "mode": 0o644, "mtime": 1_600_000_000, "size": data.len(),
           "sha256": sha256_hex(data)})
}

/// A tar stream of `files`, in the order given.
fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Plants a backup of plan `plan` holding `files` in the workspace's store,
/// whose manifest lists `listed` under `totals`. Returns its folder and tar.
fn plant(
    ws: &Workspace,
    plan: &str,
    files: &[(String, Vec<u8>)],
    listed: &[(String, Vec<u8>)],
    totals: Value,
) -> (PathBuf, Vec<u8>) {
    let tar = tar_of(files);
    let payload = zstd::encode_all(&tar[..], 1).unwrap();
    let now = chrono::Utc::now();
    let id = drdrill::store::new_backup_id(now);
    let m = json!({
        "format": drdrill::store::MANIFEST_FORMAT, "plan": plan, "backup_id": id, "source_kind": "directory",
        "created_at": now, "consistency_point": now, "drdrill_version": "crafted",
        "payload": {"name": "payload.tar.zst", "format": "tar", "compression": "zstd",
                    "size": payload.len(), "sha256": sha256_hex(&payload), "raw_size": tar.len()},
        "totals": totals,
        "files": listed.iter().map(|(p, d)| entry(p, d)).collect::<Vec<_>>(),
    });
    let dir = ws.join(&format!("var/store/{plan}/{id}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("payload.tar.zst"), payload).unwrap();
    write_manifest_json(&dir, &m);
    (dir, tar)
}

fn totals_of(files: &[(String, Vec<u8>)]) -> Value {
    json!({"entries": files.len(), "files": files.len(), "bytes": files.iter().map(|(_, d)| d.len()).sum::<usize>()})
}

fn all_files() -> Vec<(String, Vec<u8>)> {
    (0..N).map(|i| (name(i), data(i))).collect()
}

/// The drill over the planted backup fails in its restore with `needles` in its reason.
fn assert_restore_fails(ws: &Workspace, plan: &str, needles: &[&str]) {
    ws.write_plan(plan, &dir_plan(plan, "latest"));
    let r = ws.drill(plan, &[]);
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(phase(&r, "restore")["status"], "failed", "{r:#}");
    let why = reason(&r);
    for n in needles {
        assert!(why.contains(n), "`{n}` not in: {why}");
    }
}

/// Unpacks the planted backup with the library, as the restore does, and
/// returns the error and every (path, size) written.
fn unpack_planted(ws: &Workspace, plan: &str, dir: &Path, tar: &[u8]) -> (String, Vec<(String, u64)>) {
    let store =
        drdrill::store::Store::open("local", &drdrill::store::local::LocalSpec { root: ws.join("var/store") }).unwrap();
    let id = dir.file_name().unwrap().to_str().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(store.read_manifest(plan, id)).unwrap();
    let dest = ws.join(&format!("unpacked-{plan}"));
    fs::create_dir_all(&dest).unwrap();
    let e = drdrill::archive::unpack_verified(tar, &dest, &m.entries, &drdrill::cancel::Cancel::new()).unwrap_err();
    let written = walkdir::WalkDir::new(&dest)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(&dest).unwrap().to_str().unwrap().to_string(), e.metadata().unwrap().len()))
        .collect();
    (format!("{e:#}"), written)
}

#[test]
fn a_truncated_manifest_fails_the_restore_naming_its_first_missing_line() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    let files = all_files();
    // The header declares all N; the lines stop 100 short.
    let kept = N - 100;
    plant(&ws, "cut", &files, &files[..kept], totals_of(&files));
    let line = format!("manifest line {} is missing", kept + 2);
    assert_restore_fails(&ws, "cut", &[&line, &format!("ends after {kept} entries"), "truncated"]);

    // Cut inside a line (resealed): that line is named as cut off.
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    let (dir, _) = plant(&ws, "mid", &files, &files, totals_of(&files));
    let bytes = fs::read(dir.join("manifest.json")).unwrap();
    let bytes = &bytes[..bytes.len() - 7];
    fs::write(dir.join("manifest.json"), bytes).unwrap();
    fs::write(dir.join("manifest.json.sha256"), drdrill::store::manifest_checksum(bytes)).unwrap();
    assert_restore_fails(&ws, "mid", &[&format!("manifest line {} is cut off", N + 1), "truncated"]);
}

#[test]
fn an_unsorted_or_duplicated_manifest_fails_the_restore_naming_the_line_and_path() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    // Archive and manifest agree, both out of order at entry k + 1.
    let k = N - 50;
    let mut files = all_files();
    files.swap(k, k + 1);
    plant(&ws, "unsorted", &files, &files, totals_of(&files));
    let at = format!("manifest line {} (`{}`) is out of order", k + 3, name(k));
    assert_restore_fails(&ws, "unsorted", &[&at, &format!("sorts before `{}`", name(k + 1))]);

    let mut files = all_files();
    files[k + 1] = files[k].clone();
    plant(&ws, "dup", &files, &files, totals_of(&files));
    let at = format!("manifest line {} (`{}`): duplicate path", k + 3, name(k));
    assert_restore_fails(&ws, "dup", &[&at]);
}

#[test]
fn entries_beyond_the_declared_totals_fail_the_restore_and_nothing_is_written_past_them() {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    let files = all_files();
    // Every entry is right, but the header declares 10 files' bytes fewer.
    let size = files[0].1.len();
    let declared = (N - 10) * size;
    let totals = json!({"entries": N, "files": N, "bytes": declared});
    let (dir, tar) = plant(&ws, "over", &files, &files, totals);
    let at = format!("manifest line {} (`{}`) brings the manifest to {} bytes", N - 8, name(N - 10), declared + size);
    assert_restore_fails(&ws, "over", &[&at, &format!("more than the {declared} its header declares")]);
    let (e, written) = unpack_planted(&ws, "over", &dir, &tar);
    assert!(e.contains(&at), "{e}");
    let bytes: u64 = written.iter().map(|(_, n)| n).sum();
    assert!(bytes <= declared as u64, "{bytes} bytes written, {declared} declared");
    assert!(!written.iter().any(|(p, _)| *p == name(N - 10)), "the entry past the totals was written");

    // Declared entries bound the count the same way.
    let totals = json!({"entries": N - 1, "files": N, "bytes": N * size});
    plant(&ws, "count", &files, &files, totals);
    let at = format!("manifest line {} (`{}`) brings the manifest to {N} entries", N + 1, name(N - 1));
    assert_restore_fails(&ws, "count", &[&at]);
}

/// A change of the live folder, its undo, and what the check must say.
type Case<'a> = (Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>, String);

/// The tree check's output in a drill report.
fn tree_check_output(r: &Value) -> String {
    let checks = r["checks"].as_array().unwrap();
    let c = checks.iter().find(|c| c["kind"] == "tree-matches-source").unwrap_or(&checks[0]);
    c["output"].as_str().unwrap_or_default().to_string()
}

#[test]
fn tree_matches_source_names_what_changed_vanished_or_appeared_live_against_the_verified_manifest() {
    let ws = Workspace::empty();
    small_tree(&ws);
    ws.write_plan("t", &dir_plan("t", "fresh"));
    let r = passed(&ws, "t");
    let out = tree_check_output(&r);
    assert!(out.contains("4 entries identical") && out.contains("the manifest the restore verified"), "{r:#}");

    // Each change of the live folder after the backup, then undone.
    ws.write_plan("t", &dir_plan("t", "latest"));
    let data = ws.join("data");
    let sha = |b: &[u8]| sha256_hex(b);
    let cases: Vec<Case> = vec![
        (
            Box::new(|| fs::write(data.join("a.txt"), b"alphA\n").unwrap()),
            Box::new(|| fs::write(data.join("a.txt"), b"alpha\n").unwrap()),
            format!(
                "`a.txt` changed: live file mode 644 size 6 sha256 {}, restored file mode 644 size 6 sha256 {}",
                sha(b"alphA\n"),
                sha(b"alpha\n")
            ),
        ),
        (
            Box::new(|| fs::set_permissions(data.join("a.txt"), fs::Permissions::from_mode(0o600)).unwrap()),
            Box::new(|| fs::set_permissions(data.join("a.txt"), fs::Permissions::from_mode(0o644)).unwrap()),
            "`a.txt` changed: live file mode 600 size 6".to_string(),
        ),
        (
            Box::new(|| fs::remove_file(data.join("sub/b c.txt")).unwrap()),
            Box::new(|| fs::write(data.join("sub/b c.txt"), b"bravo bravo\n").unwrap()),
            format!(
                "`sub/b c.txt` vanished from the live folder (restored: file mode 644 size 12 sha256 {})",
                sha(b"bravo bravo\n")
            ),
        ),
        (
            Box::new(|| fs::write(data.join("new.txt"), b"new\n").unwrap()),
            Box::new(|| fs::remove_file(data.join("new.txt")).unwrap()),
            "`new.txt` appeared in the live folder (file mode".to_string(),
        ),
        (
            Box::new(|| {
                fs::remove_file(data.join("link")).unwrap();
                std::os::unix::fs::symlink("sub", data.join("link")).unwrap();
            }),
            Box::new(|| {
                fs::remove_file(data.join("link")).unwrap();
                std::os::unix::fs::symlink("a.txt", data.join("link")).unwrap();
            }),
            "`link` changed: live symlink -> sub, restored symlink -> a.txt".to_string(),
        ),
    ];
    for (change, undo, needle) in &cases {
        change();
        let r = ws.drill("t", &[]);
        undo();
        assert_eq!(r["status"], "failed", "{needle}: {r:#}");
        let out = tree_check_output(&r);
        assert!(out.contains("1 differences, first: ") && out.contains(needle.as_str()), "{needle}: {out}");
    }
    // Undone, it passes again: the comparison is with the backup, not a cache.
    passed(&ws, "t");
}
