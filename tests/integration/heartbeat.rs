//! The daemon's heartbeat: markers written into live sources all the time, so
//! that a drill of a backup the team's own tool made reads the newest marker
//! in the restore and measures the RPO of the backup regime as it runs. A
//! snapshot holds the marker of its own time (RPO = its age); a PostgreSQL
//! cluster shipping WAL into pgBackRest holds markers up to seconds before the
//! incident, far newer than its base backup.

use std::fs;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::common::{Archived, Workspace, measurement, sh, wait_until};

const HEARTBEAT: &str = "measured (heartbeat in the restore)";

/// `drdrill trigger NAME --follow`, which must pass; the run as `drdrill show` has it.
fn triggered(ws: &Workspace, plan: &str) -> Value {
    let (code, out, err) = ws.run(&["trigger", plan, "--follow"], &[]);
    let run = ws.last_run();
    assert_eq!(code, 0, "the triggered drill did not pass: {out}{err}\n{run:#}");
    run
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap().to_utc()
}

/// RPO, T_fail minus the backup's own time, and the RPO's method, in seconds.
fn rpo_and_backup_age(run: &Value) -> (f64, f64, String) {
    let rpo = measurement(run, "rpo");
    let value = rpo["value_ms"].as_f64().unwrap_or_else(|| panic!("RPO not measured: {run:#}")) / 1000.0;
    let backup = &run["evidence"]["record"]["backup"];
    let age = (time(&run["t_fail"]) - time(&backup["created_at"])).num_milliseconds() as f64 / 1000.0;
    (value, age, rpo["method"].as_str().unwrap().to_string())
}

#[test]
fn a_restic_snapshot_holds_the_heartbeat_of_its_time_so_the_rpo_is_its_age() {
    let ws = Workspace::empty();
    let data = ws.join("live/app");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("orders.csv"), "1,coffee\n2,tea\n").unwrap();
    let (repo, pass) = (ws.join("restic-repo"), ws.write("restic.pass", "hb secret\n"));
    let restic =
        |args: &[&str]| sh(Command::new("restic").arg("-r").arg(&repo).arg("--password-file").arg(&pass).args(args));
    restic(&["init", "-q"]);
    ws.write_plan(
        "app",
        &format!(
            "timeout = \"2m\"\n[targets]\nrto = \"1m\"\nrpo = \"1h\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n\
             [backup]\nmode = \"existing\"\nfrom = \"restic\"\n[backup.restic]\nrepository = \"{}\"\npassword_file = \"{}\"\n\
             [probe]\nkind = \"heartbeat\"\ninterval = \"1s\"\nmarker = \".drdrill/heartbeat\"\n\
             [[check]]\nkind = \"tree-matches-source\"\n",
            data.display(),
            repo.display(),
            pass.display()
        ),
    );
    let port = ws.write_daemon_config("");
    let d = ws.spawn_daemon(port);
    let marker = data.join(".drdrill/heartbeat");
    wait_until("the first heartbeat marker", Duration::from_secs(30), || marker.exists().then_some(()));
    // The team's nightly job, here and now; then the day goes on without another.
    restic(&["backup", "-q", data.to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(8));
    let live: DateTime<Utc> = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    assert!((Utc::now() - live).num_seconds() <= 3, "the daemon stopped writing markers: {live}\n{}", d.log());

    let run = triggered(&ws, "app");
    let (rpo, age, method) = rpo_and_backup_age(&run);
    assert_eq!(method, HEARTBEAT);
    assert!(rpo >= 7.0, "the marker in the snapshot is old, yet RPO is {rpo}s");
    // The marker in the snapshot is within an interval of the snapshot's own time.
    assert!((rpo - age).abs() <= 2.0, "RPO {rpo}s is not the snapshot's age {age}s");
    let beat = &d.plan("app")["heartbeat"];
    assert!(beat["written"].as_u64().unwrap() >= 8 && beat["last_error"].is_null(), "{beat:#}");
    assert!(ws.scratch_leftovers().is_empty(), "{:?}", ws.scratch_leftovers());
}

#[test]
fn with_wal_archiving_the_heartbeat_shows_the_rpo_of_wal_shipping_not_of_the_base_backup() {
    let ws = Workspace::empty();
    let pg = Archived::start(&ws);
    pg.sql("CREATE TABLE orders (id serial PRIMARY KEY, total int); INSERT INTO orders (total) SELECT g FROM generate_series(1, 100) g");
    pg.pgbackrest(&["backup", "--type=full"]);
    let check = "[[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"= 100\"\n";
    ws.write_plan("pgbr", &pg.plan_with("pgbr", "[probe]\nkind = \"heartbeat\"\ninterval = \"1s\"\n", check));
    let port = ws.write_daemon_config("");
    let d = ws.spawn_daemon(port);
    wait_until("heartbeats in the live cluster", Duration::from_secs(30), || {
        (pg.sql("SELECT to_regclass('_drdrill_canary') IS NOT NULL") == "t").then_some(())
    });
    // Only the WAL archive (archive_timeout = 1) holds the heartbeats: the base backup predates them.
    std::thread::sleep(Duration::from_secs(15));
    assert!(pg.sql("SELECT count(*) FROM _drdrill_canary").parse::<u32>().unwrap() >= 10, "{}", d.log());

    let run = triggered(&ws, "pgbr");
    let (rpo, age, method) = rpo_and_backup_age(&run);
    assert_eq!(method, HEARTBEAT);
    assert!(age >= 15.0, "the base backup is {age}s old");
    // One interval between markers, plus the archive's delay (archive_timeout = 1s, the push).
    assert!(rpo < 4.0, "RPO {rpo}s is not the seconds of WAL shipping (the base backup is {age}s old)");
    assert!(age - rpo > 10.0, "RPO {rpo}s is the base backup's age {age}s, not WAL shipping's");
    // Heartbeats kept landing during the drill; none after the incident counts.
    let newest: i64 = pg.sql("SELECT max(at_ms) FROM _drdrill_canary").parse().unwrap();
    assert!(newest > time(&run["t_fail"]).timestamp_millis(), "no heartbeat after the incident: {}", d.log());
}
