//! PostgreSQL point-in-time drills: a pgBackRest stanza whose WAL archive
//! holds heartbeat markers (written here by the test into the live
//! `_drdrill_canary` table, as the daemon would), restored to a target time.
//! The restore holds every marker up to the target and none after it, and RPO
//! is read against the target.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};

use crate::common::Archived;
use crate::common::{Workspace, env, measurement, phase, processes_with, reason};

/// One marker, stamped by the server inside its own transaction; its time in ms.
fn marker(socket_dir: &Path, port: u16) -> i64 {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{}/psql", env("DRDRILL_TEST_PG_BIN")))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(socket_dir)
        .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres", "-c"])
        .arg("INSERT INTO _drdrill_canary (at_ms) VALUES ((extract(epoch FROM clock_timestamp()) * 1000)::bigint) RETURNING at_ms")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap().trim().parse().unwrap()
}

/// Forces the current WAL segment into the archive and waits until it is there.
fn archive_now(pg: &Archived) {
    let after = pg.sql("SELECT now()");
    pg.sql("SELECT pg_switch_wal()");
    for _ in 0..100 {
        if pg.sql(&format!("SELECT last_archived_time >= '{after}' FROM pg_stat_archiver")) == "t" {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the WAL segment was not archived");
}

fn plan(pg: &Archived, target: &str, checks: &str) -> String {
    format!(
        "name = \"pitr\"\ntimeout = \"3m\"\n[targets]\nrto = \"2m\"\nrpo = \"1d\"\n[source]\nkind = \"postgres\"\nhost = \"{d}\"\n\
         port = {port}\ndatabase = \"postgres\"\nuser = \"postgres\"\n[backup]\nmode = \"existing\"\nfrom = \"pgbackrest\"\n\
         [backup.pgbackrest]\nstanza = \"main\"\nconfig = \"{c}\"\ntarget = \"{target}\"\n\
         [probe]\nkind = \"heartbeat\"\ninterval = \"100ms\"\n\
         [[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM _drdrill_canary\"\nexpect = \">= 1\"\n{checks}",
        d = pg.dir.display(),
        port = pg.port,
        c = pg.conf.display()
    )
}

#[test]
fn a_restore_to_a_point_in_time_holds_the_markers_before_it_and_none_after() {
    let ws = Workspace::empty();
    let pg = Archived::start(&ws);
    pg.sql("CREATE TABLE _drdrill_canary (at_ms bigint NOT NULL)");
    pg.pgbackrest(&["backup", "--type=full"]);
    // pgBackRest stamps backups to the second: markers start after its stamp.
    std::thread::sleep(Duration::from_millis(1100));
    let markers: Vec<i64> = (0..30)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            marker(&pg.dir, pg.port)
        })
        .collect();
    archive_now(&pg);

    // An absolute target between the 20th and 21st markers.
    let target_ms = markers[19] + 40;
    assert!(markers[20] > target_ms + 20, "markers too close together: {markers:?}");
    let target = Utc.timestamp_millis_opt(target_ms).unwrap().to_rfc3339();
    let checks = format!(
        "[[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM _drdrill_canary WHERE at_ms > {target_ms}\"\nexpect = \"= 0\"\n\
         [[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM _drdrill_canary WHERE at_ms <= {target_ms}\"\nexpect = \"= 20\"\n"
    );
    ws.write_plan("pitr", &plan(&pg, &target, &checks));
    let report = ws.drill("pitr", &[]);
    assert_eq!(report["status"], "passed", "{report:#}");
    assert!(phase(&report, "restore")["detail"].as_str().unwrap().contains("recovered to"), "{report:#}");
    let pitr = measurement(&report, "pitr");
    assert_eq!(pitr["met"], true, "{pitr}");
    assert!(pitr["method"].as_str().unwrap().starts_with("PITR target met: newest marker"), "{pitr}");
    // RPO is read against the target: the 40 ms between the last marker and it.
    let rpo = measurement(&report, "rpo");
    assert_eq!(rpo["value_ms"].as_f64().unwrap(), 40.0, "{rpo}");
    assert!(rpo["method"].as_str().unwrap().contains("against the recovery target"), "{rpo}");

    // A target relative to the incident, with the heartbeat running through
    // the drill: resolved when the restore runs, and RPO is read against it,
    // not against T_fail three seconds later.
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (stop, dir, port) = (stop.clone(), pg.dir.clone(), pg.port);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                marker(&dir, port);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    ws.write_plan("pitr", &plan(&pg, "T_fail - 3s", ""));
    let report = ws.drill("pitr", &[]);
    stop.store(true, Ordering::SeqCst);
    heartbeat.join().unwrap();
    assert_eq!(report["status"], "passed", "{report:#}");
    let pitr = measurement(&report, "pitr");
    assert_eq!(pitr["met"], true, "{pitr}");
    let rpo = measurement(&report, "rpo")["value_ms"].as_f64().unwrap();
    assert!(rpo < 1000.0, "RPO {rpo} ms was not read against the target: {report:#}");
    assert!(ws.scratch_leftovers().is_empty());
    assert!(processes_with(ws.join("var/scratch").to_str().unwrap()).is_empty(), "a restored cluster survived");

    // A target before every backup is refused with the fix, before anything runs.
    ws.write_plan("pitr", &plan(&pg, "2001-01-01T00:00:00Z", ""));
    let report = ws.drill("pitr", &[]);
    assert_eq!(report["status"], "failed", "{report:#}");
    assert!(reason(&report).contains("ended before the recovery target"), "{report:#}");
}
