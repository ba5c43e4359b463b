//! What a store holds is trusted only once proven: a manifest is checked against
//! the checksum beside it and the folder it sits in before use, `latest` picks
//! by verified creation time, `backups verify` walks the archive against the
//! manifest, unpacking stops at declared sizes and checks free space first,
//! named pipes are backed up and sockets skipped on the record, and partial
//! uploads of killed backups are swept.
//!
//! Damage is made the way a store can hold it: real backups with flipped bits,
//! copied folders, and manifests edited and resealed (as an attacker with store
//! access could), written as files into the local store.

use std::fs;
use std::io::{Read as _, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Workspace, manifest_json, phase, reason, write_manifest_json};
use drdrill::hashing::sha256_hex;
use drdrill::store::Store;
use drdrill::store::local::LocalSpec;

/// A directory plan `name` over `data`, compared with the live folder.
fn dir_plan(name: &str, mode: &str, timeout: &str) -> String {
    format!(
        "name = \"{name}\"\ntimeout = \"{timeout}\"\n[targets]\nrto = \"1m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"data\"\n[backup]\nmode = \"{mode}\"\n[[check]]\nkind = \"tree-matches-source\"\n"
    )
}

fn small_tree(ws: &Workspace) {
    let data = ws.join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("a.txt"), b"alpha\n").unwrap();
    fs::write(data.join("sub/b.txt"), b"bravo bravo\n").unwrap();
    std::os::unix::fs::symlink("a.txt", data.join("link")).unwrap();
}

fn passed(ws: &Workspace, plan: &str) -> Value {
    let r = ws.drill(plan, &[]);
    assert_eq!(r["status"], "passed", "{r:#}");
    r
}

fn id_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_str().unwrap().to_string()
}

fn read_json(dir: &Path) -> Value {
    manifest_json(dir)
}

/// Rewrites a backup's manifest with `edit` applied and a matching checksum.
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut m = read_json(dir);
    edit(&mut m);
    write_manifest_json(dir, &m);
}

fn copy_folder(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn local_store(ws: &Workspace) -> Store {
    Store::open("local", &LocalSpec { root: ws.join("var/store") }).unwrap()
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[bit / 8] ^= 1 << (bit % 8);
    b
}

#[test]
fn no_single_bit_flip_of_a_manifest_or_its_checksum_is_accepted() {
    let ws = Workspace::empty();
    small_tree(&ws);
    ws.write_plan("p", &dir_plan("p", "fresh", "20s"));
    passed(&ws, "p");
    let dir = ws.backup_dirs("p").pop().unwrap();
    let id = id_of(&dir);
    let (manifest_path, checksum_path) = (dir.join("manifest.json"), dir.join("manifest.json.sha256"));
    let manifest = fs::read(&manifest_path).unwrap();

    // Every bit of both files, through the code every reader of a store uses.
    let store = local_store(&ws);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let accepted = |path: &Path, original: &[u8]| -> Vec<usize> {
        let mut bad = Vec::new();
        for bit in 0..original.len() * 8 {
            fs::write(path, flip(original, bit)).unwrap();
            if rt.block_on(store.read_manifest("p", &id)).is_ok() {
                bad.push(bit);
            }
        }
        fs::write(path, original).unwrap();
        bad
    };
    let bad = accepted(&manifest_path, &manifest);
    assert!(
        bad.is_empty(),
        "{} of {} bit flips of the manifest were accepted, e.g. bit {}",
        bad.len(),
        manifest.len() * 8,
        bad[0]
    );
    let checksum = fs::read(&checksum_path).expect("a backup has its manifest's checksum beside it");
    let bad = accepted(&checksum_path, &checksum);
    assert!(bad.is_empty(), "{} of {} bit flips of the checksum were accepted", bad.len(), checksum.len() * 8);
    rt.block_on(store.read_manifest("p", &id)).unwrap();

    // Without its checksum a current manifest is damaged, never "legacy".
    fs::remove_file(&checksum_path).unwrap();
    let e = rt.block_on(store.read_manifest("p", &id)).unwrap_err();
    assert!(format!("{e:#}").contains("manifest.json.sha256"), "{e:#}");
    fs::write(&checksum_path, &checksum).unwrap();

    // A sample through the real binary: an mtime and a mode digit (the flips a
    // drill passed with before), and bits spread over the whole file.
    ws.write_plan("p", &dir_plan("p", "latest", "20s"));
    let text = String::from_utf8(manifest.clone()).unwrap();
    let digit_after = |key: &str| (text.find(key).unwrap() + key.len()) * 8;
    let mut sample =
        vec![digit_after("\"mtime\":"), digit_after("\"mode\":"), digit_after("\"created_at\":\"") + 8 * 3];
    sample.extend((0..10).map(|i| i * (manifest.len() * 8) / 10 + i));
    for bit in sample {
        fs::write(&manifest_path, flip(&manifest, bit)).unwrap();
        let r = ws.drill("p", &[]);
        assert_ne!(r["status"], "passed", "bit {bit} flipped and the drill passed: {r:#}");
        assert!(reason(&r).contains("damaged"), "bit {bit}: {r:#}");
    }
    fs::write(&manifest_path, &manifest).unwrap();
    passed(&ws, "p");
}

#[test]
fn a_format_1_manifest_stays_restorable_with_a_visible_note() {
    let ws = Workspace::empty();
    small_tree(&ws);
    ws.write_plan("old", &dir_plan("old", "fresh", "20s"));
    passed(&ws, "old");
    // What drdrill wrote before manifests had a checksum: format 1, no sidecar.
    let dir = ws.backup_dirs("old").pop().unwrap();
    let mut m = read_json(&dir);
    m["format"] = 1.into();
    m.as_object_mut().unwrap().remove("totals");
    fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let _ = fs::remove_file(dir.join("manifest.json.sha256"));

    ws.write_plan("old", &dir_plan("old", "latest", "20s"));
    let r = passed(&ws, "old");
    let detail = phase(&r, "backup")["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("format 1 manifest") && detail.contains("unprotected"), "{detail}");
    let listing = ws.backups(&["--plan", "old"], &[]);
    assert!(listing[0]["note"].as_str().is_some_and(|n| n.contains("format 1")), "{listing:?}");
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "old"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("note: format 1 manifest"), "{out}");
}

#[test]
fn latest_picks_the_verified_newest_and_reports_planted_folders_as_damage() {
    let ws = Workspace::empty();
    small_tree(&ws);
    ws.write_plan("p", &dir_plan("p", "fresh", "20s"));
    passed(&ws, "p");
    let newest = passed(&ws, "p")["backup_id"].as_str().unwrap().to_string();
    let dirs = ws.backup_dirs("p");
    let older = &dirs[0];
    let store = ws.join("var/store/p");

    // A copy of the older backup under a name that sorts last...
    let copied = "99991231T235959.999Z-ffff";
    copy_folder(older, &store.join(copied));
    // ...a consistent forgery that claims to be from the year 9999...
    let forged = "99991231T235959.998Z-fffe";
    copy_folder(older, &store.join(forged));
    edit_manifest(&store.join(forged), |m| {
        m["backup_id"] = forged.into();
        m["created_at"] = "9999-12-31T23:59:59.998Z".into();
    });
    // ...and a folder name drdrill never writes.
    copy_folder(older, &store.join("9999"));
    edit_manifest(&store.join("9999"), |m| m["backup_id"] = "9999".into());

    ws.write_plan("p", &dir_plan("p", "latest", "20s"));
    let r = passed(&ws, "p");
    assert_eq!(r["backup_id"], newest.as_str(), "{r:#}");
    let detail = phase(&r, "backup")["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("passed over 3 damaged"), "{detail}");
    assert!(detail.contains(copied) && detail.contains("sits in folder"), "{detail}");
    assert!(detail.contains(forged) && detail.contains("in the future"), "{detail}");
    assert!(detail.contains("9999: ") && detail.contains("not a backup id"), "{detail}");

    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "p"], &[]);
    assert_eq!(code, 1, "{out}");
    for id in [copied, forged, "9999"] {
        assert!(out.lines().any(|l| l.starts_with("BAD") && l.contains(&format!("p/{id}:"))), "{id}: {out}");
    }
    assert!(out.contains("2 intact, 3 bad"), "{out}");
}

/// Every file below `root` with its size, to prove a command wrote nothing.
fn all_files(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| (e.path().to_path_buf(), e.metadata().unwrap().len()))
        .collect();
    v.sort();
    v
}

#[test]
fn verify_walks_every_entry_and_catches_a_payload_under_another_backups_manifest() {
    let ws = Workspace::empty();
    small_tree(&ws);
    ws.write_plan("s", &dir_plan("s", "fresh", "20s"));
    passed(&ws, "s");
    fs::write(ws.join("data/a.txt"), b"alpha, changed\n").unwrap();
    passed(&ws, "s");
    let dirs = ws.backup_dirs("s");
    let (a, b) = (&dirs[0], &dirs[1]);
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "s"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all 4 entries (2 files, 18 bytes) match the manifest"), "{out}");

    // B's manifest over A's payload, its payload fields made to agree: the
    // payload's hash matches, only the walk can tell.
    fs::copy(a.join("payload.tar.zst"), b.join("payload.tar.zst")).unwrap();
    let a_payload = read_json(a)["payload"].clone();
    edit_manifest(b, |m| m["payload"] = a_payload);
    let before = all_files(ws.path());
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "s"], &[]);
    assert_eq!(code, 1, "{out}");
    let b_line = out.lines().find(|l| l.contains(&id_of(b))).unwrap();
    assert!(b_line.starts_with("BAD") && b_line.contains("`a.txt`"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("ok") && l.contains(&id_of(a))), "{out}");
    assert_eq!(all_files(ws.path()), before, "verify wrote something");

    // One file's sha256 changed in the manifest: that entry is named.
    edit_manifest(a, |m| {
        let f = m["files"].as_array_mut().unwrap().iter_mut().find(|f| f["path"] == "sub/b.txt").unwrap();
        f["sha256"] = sha256_hex(b"something else").into();
    });
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "s"], &[]);
    assert_eq!(code, 1, "{out}");
    let a_line = out.lines().find(|l| l.contains(&id_of(a))).unwrap();
    assert!(a_line.starts_with("BAD") && a_line.contains("`sub/b.txt`"), "{out}");

    // A command stream has no entries: its check says it is the payload hash only.
    ws.write_plan(
        "c",
        "name = \"c\"\ntimeout = \"20s\"\n[targets]\nrto = \"1m\"\nrpo = \"1m\"\n[source]\nkind = \"command\"\nbackup = \"echo hello\"\nrestore = \"cat >/dev/null\"\n[[check]]\nkind = \"command\"\nrun = \"true\"\n",
    );
    passed(&ws, "c");
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "c"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("payload hash only"), "{out}");
}

/// A tar stream holding `big.bin` of `size` zero bytes, written to `path`.
fn big_tar(path: &Path, size: u64) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "big.bin", std::io::repeat(0).take(size)).unwrap();
    b.into_inner().unwrap().flush().unwrap();
}

#[test]
fn an_entry_larger_than_its_manifest_says_is_stopped_before_it_is_written() {
    const BIG: u64 = 50 * 1024 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = tmp.path().join("big.tar");
    big_tar(&tar_path, BIG);
    let said = drdrill::store::FileEntry {
        path: "big.bin".into(),
        kind: drdrill::store::EntryKind::File,
        mode: 0o644,
        mtime: 1_600_000_000,
        size: 6,
        sha256: Some(sha256_hex(b"hello\n").parse().unwrap()),
        target: None,
    };
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let input = std::io::BufReader::new(fs::File::open(&tar_path).unwrap());
    let said = drdrill::store::Entries::listed(vec![said]);
    let e = drdrill::archive::unpack_verified(input, &dest, &said, &drdrill::cancel::Cancel::new()).unwrap_err();
    let written = fs::metadata(dest.join("big.bin")).map(|m| m.len()).unwrap_or(0);
    assert!(written <= 6, "{written} bytes were written for an entry the manifest says has 6 ({e:#})");
    assert!(format!("{e:#}").contains(&format!("holds {BIG} bytes but the manifest says 6")), "{e:#}");

    // The same through a drill: the reason names both sizes.
    let ws = Workspace::empty();
    fs::create_dir_all(ws.join("data")).unwrap();
    ws.write_plan("big", &dir_plan("big", "latest", "20s"));
    let mut tar = fs::read(&tar_path).unwrap();
    tar.extend_from_slice(&[0u8; 1024]);
    let payload = zstd::encode_all(&tar[..], 1).unwrap();
    let now = chrono::Utc::now();
    let id = drdrill::store::new_backup_id(now);
    let manifest = serde_json::json!({
        "format": drdrill::store::MANIFEST_FORMAT, "plan": "big", "backup_id": id, "source_kind": "directory",
        "created_at": now, "consistency_point": now, "drdrill_version": "crafted",
        "payload": {"name": "payload.tar.zst", "format": "tar", "compression": "zstd",
                    "size": payload.len(), "sha256": sha256_hex(&payload), "raw_size": tar.len()},
        "files": [{"path": "big.bin", "kind": "file", "mode": 420, "mtime": 1_600_000_000, "size": 6,
                   "sha256": sha256_hex(b"hello\n")}],
    });
    let dir = ws.join(&format!("var/store/big/{id}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("payload.tar.zst"), payload).unwrap();
    write_manifest_json(&dir, &manifest);
    let r = ws.drill("big", &[]);
    assert_eq!(r["status"], "failed", "{r:#}");
    assert!(reason(&r).contains(&format!("`big.bin` holds {BIG} bytes but the manifest says 6")), "{r:#}");
}

#[test]
fn a_restore_that_cannot_fit_in_scratch_fails_before_fetching_with_both_sizes() {
    let ws = Workspace::empty();
    small_tree(&ws);
    ws.write_plan("p", &dir_plan("p", "fresh", "20s"));
    passed(&ws, "p");
    let huge: u64 = 1 << 60;
    edit_manifest(&ws.backup_dirs("p")[0], |m| m["payload"]["raw_size"] = huge.into());
    ws.write_plan("p", &dir_plan("p", "latest", "20s"));
    let r = ws.drill("p", &[]);
    assert_eq!(r["status"], "failed", "{r:#}");
    let why = reason(&r);
    assert!(why.contains(&format!("unpacks to {huge} bytes")) && why.contains("bytes free"), "{why}");
    assert!(why.contains("no space left on device"), "{why}");
    assert_eq!(phase(&r, "restore")["status"], "failed", "{r:#}");
}

#[test]
fn a_named_pipe_is_backed_up_and_a_socket_is_skipped_on_the_record() {
    let ws = Workspace::empty();
    small_tree(&ws);
    let data = ws.join("data");
    let made = std::process::Command::new("mkfifo").arg("-m").arg("0640").arg(data.join("pipe")).status().unwrap();
    assert!(made.success());
    // A live service's socket, as in a real data folder.
    let _socket = std::os::unix::net::UnixListener::bind(data.join("sock")).unwrap();
    ws.write_plan("pipes", &dir_plan("pipes", "fresh", "8s"));
    let r = passed(&ws, "pipes");
    let detail = phase(&r, "backup")["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("skipped 1 entry") && detail.contains("`sock` (socket)"), "{detail}");

    let dir = ws.backup_dirs("pipes").pop().unwrap();
    let m = read_json(&dir);
    assert_eq!(m["skipped"], serde_json::json!([{"path": "sock", "kind": "socket"}]), "{m:#}");
    let pipe =
        m["files"].as_array().unwrap().iter().find(|f| f["path"] == "pipe").expect("the pipe is in the manifest");
    assert_eq!((pipe["kind"].as_str(), pipe["mode"].as_u64()), (Some("fifo"), Some(0o640)), "{pipe}");
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "pipes"], &[]);
    assert_eq!(code, 0, "{out}");

    // Standard tools restore the pipe as well.
    let out_dir = ws.join("by-hand");
    fs::create_dir(&out_dir).unwrap();
    let unpacked = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -x -C '{}'", dir.join("payload.tar.zst").display(), out_dir.display()))
        .status()
        .unwrap();
    assert!(unpacked.success());
    assert!(fs::symlink_metadata(out_dir.join("pipe")).unwrap().file_type().is_fifo());
}

/// Staging files (`NAME#N`) below a plan's folder in the local store.
fn staging_files(ws: &Workspace, plan: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(ws.join(&format!("var/store/{plan}")))
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().to_path_buf())
        .filter(|p| {
            p.file_name().unwrap().to_str().unwrap().rsplit_once('#').is_some_and(|(_, n)| n.parse::<u32>().is_ok())
        })
        .collect()
}

#[test]
fn partial_uploads_of_a_killed_backup_are_removed_by_the_next_run() {
    use std::os::unix::process::CommandExt;
    let ws = Workspace::empty();
    let pid_file = ws.join("backup.pid");
    // 12 MB of noise is more than one upload part, so a multipart upload is in
    // flight when the backup hangs.
    let hanging = format!("echo $$ > '{}'; head -c 12000000 /dev/urandom; exec sleep 20", pid_file.display());
    let plan = |backup: &str, timeout: &str| {
        format!(
            "name = \"k\"\ntimeout = \"{timeout}\"\n[targets]\nrto = \"1m\"\nrpo = \"1m\"\n[source]\nkind = \"command\"\nbackup = '''{backup}'''\nrestore = \"cat >/dev/null\"\n[[check]]\nkind = \"command\"\nrun = \"true\"\n"
        )
    };
    ws.write_plan("k", &plan(&hanging, "1m"));
    let mut child = ws.cmd().args(["run", "k"]).stdout(std::process::Stdio::null()).process_group(0).spawn().unwrap();
    let waited = std::time::Instant::now();
    while staging_files(&ws, "k").is_empty() {
        assert!(waited.elapsed() < std::time::Duration::from_secs(30), "no upload started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // kill -9: nothing of drdrill runs to clean up after itself.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    child.wait().unwrap();
    if let Ok(pid) = fs::read_to_string(&pid_file) {
        unsafe { libc::kill(-pid.trim().parse::<i32>().unwrap(), libc::SIGKILL) };
    }
    let killed = staging_files(&ws, "k");
    assert_eq!(killed.len(), 1, "{killed:?}");

    // An upload that may still be running (written just now) must be left alone.
    let running = ws.join("var/store/k/29990101T000000.000Z-0000/payload.stream.zst#7");
    fs::create_dir_all(running.parent().unwrap()).unwrap();
    fs::write(&running, b"part").unwrap();
    // The next run's timeout is 2s, so the killed upload is older than any
    // backup of this plan can be alive.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    fs::write(&running, b"part, still growing").unwrap();
    ws.write_plan("k", &plan("echo hello", "2s"));
    let r = passed(&ws, "k");
    let detail = phase(&r, "backup")["detail"].as_str().unwrap().to_string();
    let killed_rel = killed[0].strip_prefix(ws.join("var/store")).unwrap().to_str().unwrap().to_string();
    assert!(detail.contains("removed 1 partial upload") && detail.contains(&killed_rel), "{detail}");
    assert!(!killed[0].exists() && !killed[0].parent().unwrap().exists(), "the killed upload is still there");
    assert!(running.exists(), "an upload that may be in progress was removed");
}
