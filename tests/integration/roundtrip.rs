//! Backup and restore through the library with a real local store: what comes
//! back is byte-identical with modes and mtimes, a SQLite copy taken under
//! concurrent writes is consistent, and standard tools can read every payload.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::{make_tricky_tree, tree_fingerprint};
use drdrill::backup::{BackupOptions, restore_backup, take_backup};
use drdrill::context::RunCtx;
use drdrill::source::Source;
use drdrill::source::directory::DirectorySource;
use drdrill::source::sqlite::SqliteSource;
use drdrill::store::local::LocalSpec;
use drdrill::store::{Manifest, Store};

/// A run folder for library calls outside a run (its staging and restore folders below `dir`).
fn run_ctx(dir: &Path) -> RunCtx {
    RunCtx::detached(dir.to_path_buf(), std::time::Duration::from_secs(600))
}

fn local_store(root: &Path) -> Store {
    Store::open("local", &LocalSpec { root: root.to_path_buf() }).unwrap()
}

/// The tricky tree at `dir/data`, backed up as plan `tree` to a local store at `dir/store`.
async fn tricky_tree_backup(dir: &Path) -> (PathBuf, Store, Arc<dyn Source>, Manifest) {
    let data = dir.join("data");
    make_tricky_tree(&data);
    let store = local_store(&dir.join("store"));
    let source: Arc<dyn Source> = Arc::new(DirectorySource { path: data.clone() });
    let ctx = run_ctx(dir);
    fs::create_dir(ctx.staging()).unwrap();
    let manifest = take_backup(source.clone(), &store, "tree", ctx, BackupOptions::default()).await.unwrap();
    (data, store, source, manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_round_trip_is_identical_including_modes_and_mtimes() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store, source, manifest) = tricky_tree_backup(tmp.path()).await;
    assert!(manifest.entries.reader().unwrap().any(|f| f.unwrap().path == "ünïcødé/日本語 ファイル.txt"));

    let ctx = run_ctx(tmp.path());
    fs::create_dir(ctx.restore_dir()).unwrap();
    let outcome = restore_backup(source, &store, &Arc::new(manifest), ctx).await.unwrap();
    assert_eq!(tree_fingerprint(&data), tree_fingerprint(&outcome.restored.path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_tools_restore_a_payload_without_drdrill() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, _, m) = tricky_tree_backup(tmp.path()).await;
    let payload = tmp.path().join("store/tree").join(&m.backup_id).join(&m.payload.name);
    assert_eq!(
        drdrill::hashing::sha256_file(&payload).unwrap().0,
        m.payload.sha256,
        "sha256sum agrees with the manifest"
    );

    let out = tmp.path().join("by-hand");
    fs::create_dir(&out).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -x -p -C '{}'", payload.display(), out.display()))
        .status()
        .expect("sh");
    assert!(status.success(), "zstd -dc | tar x failed (are zstd and tar installed? scripts/services/05-tools.sh)");
    assert_eq!(tree_fingerprint(&data), tree_fingerprint(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_copy_is_consistent_while_the_database_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("bank.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = wal;
             CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO accounts SELECT i, 1000 FROM n;
             CREATE TABLE ledger (id INTEGER PRIMARY KEY, note TEXT NOT NULL);",
        )
        .unwrap();
    }
    // A writer moves money between accounts in transactions; the total never
    // changes in any committed state, so a torn copy would show a different sum.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = rusqlite::Connection::open(&db).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let mut i: i64 = 0;
            while !stop.load(Ordering::SeqCst) {
                let tx = c.transaction().unwrap();
                let (from, to) = (1 + i % 1000, 1 + (i * 7 + 3) % 1000);
                tx.execute("UPDATE accounts SET balance = balance - 1 WHERE id = ?1", [from]).unwrap();
                tx.execute("INSERT INTO ledger (note) VALUES (printf('%.200c', 'x'))", []).unwrap();
                tx.execute("UPDATE accounts SET balance = balance + 1 WHERE id = ?1", [to]).unwrap();
                tx.commit().unwrap();
                i += 1;
            }
            i
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let store = local_store(&tmp.path().join("store"));
    let source: Arc<dyn Source> = Arc::new(SqliteSource { path: db.clone(), seed: None });
    let ctx = run_ctx(tmp.path());
    fs::create_dir(ctx.staging()).unwrap();
    let m = take_backup(source.clone(), &store, "bank", ctx, BackupOptions::default()).await.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let transfers = writer.join().unwrap();
    assert!(transfers > 10, "the writer did not run during the backup");

    let ctx = run_ctx(tmp.path());
    fs::create_dir(ctx.restore_dir()).unwrap();
    let restored = restore_backup(source, &store, &Arc::new(m), ctx).await.unwrap().restored;
    let c = rusqlite::Connection::open(&restored.path).unwrap();
    let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let total: i64 = c.query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0)).unwrap();
    assert_eq!(total, 1_000_000);
    let ledger: i64 = c.query_row("SELECT count(*) FROM ledger", [], |r| r.get(0)).unwrap();
    assert!(ledger > 0 && ledger < transfers, "copy holds {ledger} of {transfers} transfers: a point in between");
}
