//! A backup whose archive tries to write outside the scratch folder is refused,
//! and nothing is written outside. The payloads here are crafted by hand (with a
//! matching manifest and checksum, as an attacker with store access could).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::common::{Workspace, unique};
use drdrill::store::{Entries, EntryKind, FileEntry, MANIFEST_FORMAT, Manifest, PayloadInfo};

/// A tar header with the name written raw: the tar crate's own setters refuse
/// `..` and absolute names, which is exactly what an attacker would not use.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn file_entry(path: &str, data: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        kind: EntryKind::File,
        mode: 0o644,
        mtime: 1_600_000_000,
        size: data.len() as u64,
        sha256: Some(drdrill::hashing::sha256_hex(data).parse().unwrap()),
        target: None,
    }
}

/// Stores a backup of plan `evil` made of `tar` and `files` in the workspace's local store.
fn plant_backup(ws: &Workspace, mut tar: Vec<u8>, files: Vec<FileEntry>) {
    tar.extend_from_slice(&[0u8; 1024]);
    let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
    enc.write_all(&tar).unwrap();
    let payload = enc.finish().unwrap();
    let now = chrono::Utc::now();
    let id = drdrill::store::new_backup_id(now);
    let m = Manifest {
        format: MANIFEST_FORMAT,
        plan: "evil".into(),
        backup_id: id.clone(),
        source_kind: "directory".into(),
        created_at: now,
        consistency_point: now,
        drdrill_version: "attacker".into(),
        payload: PayloadInfo {
            name: "payload.tar.zst".into(),
            format: "tar".into(),
            compression: "zstd".into(),
            size: payload.len() as u64,
            sha256: drdrill::hashing::sha256_hex(&payload),
            raw_size: tar.len() as u64,
        },
        skipped: Vec::new(),
        entries: Entries::listed(files),
    };
    let dir = ws.join(&format!("var/store/evil/{id}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("payload.tar.zst"), payload).unwrap();
    let mut json = Vec::new();
    m.write_to(&mut json).unwrap();
    fs::write(dir.join("manifest.json.sha256"), drdrill::store::manifest_checksum(&json)).unwrap();
    fs::write(dir.join("manifest.json"), json).unwrap();
}

fn evil_workspace() -> Workspace {
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    ws.write(
        "drills/evil.toml",
        "[targets]\nrto = \"1m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[backup]\nmode = \"latest\"\n[[check]]\nkind = \"tree-matches-source\"\n",
    );
    ws
}

fn assert_refused(ws: &Workspace, needle: &str) {
    let (code, report, _) = ws.drill_report("evil", &[]);
    assert_eq!(code, 1, "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains(needle), "{reason}");
    assert!(ws.scratch_leftovers().is_empty());
}

#[test]
fn dot_dot_entries_are_refused() {
    let ws = evil_workspace();
    let name = format!("{}.txt", unique("drdrill-escaped"));
    // Deep enough to climb out of var/scratch/run-N/restore/tree and the workspace.
    let escape = format!("../../../../../../../{name}");
    let mut tar = Vec::new();
    raw_entry(&mut tar, &escape, tar::EntryType::Regular, b"pwned", None);
    plant_backup(&ws, tar, vec![file_entry(&escape, b"pwned")]);
    assert_refused(&ws, "would land outside the scratch folder");
    let tmp = std::env::temp_dir();
    assert!(!tmp.join(&name).exists() && !ws.path().join(&name).exists() && !Path::new("/").join(&name).exists());
}

#[test]
fn absolute_entries_are_refused() {
    let ws = evil_workspace();
    let target = std::env::temp_dir().join(format!("{}.txt", unique("drdrill-absolute")));
    let name = target.to_str().unwrap().to_string();
    let mut tar = Vec::new();
    raw_entry(&mut tar, &name, tar::EntryType::Regular, b"pwned", None);
    plant_backup(&ws, tar, vec![file_entry(&name, b"pwned")]);
    assert_refused(&ws, "would land outside the scratch folder");
    assert!(!target.exists());
}

#[test]
fn writing_through_a_planted_symlink_is_refused() {
    let ws = evil_workspace();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let mut tar = Vec::new();
    raw_entry(&mut tar, "link", tar::EntryType::Symlink, b"", Some(&target));
    raw_entry(&mut tar, "link/pwned.txt", tar::EntryType::Regular, b"pwned", None);
    let files = vec![
        FileEntry {
            path: "link".into(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            mtime: 1_600_000_000,
            size: 0,
            sha256: None,
            target: Some(target.clone()),
        },
        file_entry("link/pwned.txt", b"pwned"),
    ];
    plant_backup(&ws, tar, files);
    assert_refused(&ws, "written through the symlink");
    assert!(!outside.path().join("pwned.txt").exists(), "a file was written outside scratch");
}
