//! PostgreSQL drills against the real server that scripts/test starts
//! (scripts/services/10-postgres.sh): dump, throwaway cluster, sql-query checks,
//! canary RPO, and the cluster gone afterwards.

use std::process::Command;

use crate::common::{Workspace, env, example_plan, measurement, phase, reason, unique};

struct Pg {
    host: String,
    port: String,
    user: String,
    password: String,
    bin: String,
}

fn pg() -> Pg {
    Pg {
        host: env("DRDRILL_TEST_PG_HOST"),
        port: env("DRDRILL_TEST_PG_PORT"),
        user: env("DRDRILL_TEST_PG_USER"),
        password: env("DRDRILL_TEST_PG_PASSWORD"),
        bin: env("DRDRILL_TEST_PG_BIN"),
    }
}

impl Pg {
    fn psql(&self, db: &str, sql: &str) {
        let out = Command::new(format!("{}/psql", self.bin))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &self.host, "-p", &self.port, "-U", &self.user, "-d", db])
            .args(["-c", sql])
            .env("PGPASSWORD", &self.password)
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A fresh source database with customers and orders.
    fn orders_db(&self, rows: u32) -> String {
        let db = unique("orders");
        self.psql("postgres", &format!("CREATE DATABASE {db}"));
        self.psql(
            &db,
            &format!(
                "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
                 INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 50) g;
                 CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, total numeric);
                 INSERT INTO orders (customer_id, total) SELECT 1 + g % 50, g * 1.25 FROM generate_series(1, {rows}) g;"
            ),
        );
        db
    }

    /// The example plan, pointed at the test server and database.
    fn plan(&self, db: &str, extra: &[(&str, &str)]) -> String {
        let mut replace = vec![
            ("port = 5432", format!("port = {}", self.port)),
            ("database = \"orders\"", format!("database = \"{db}\"")),
            ("user = \"drill\"", format!("user = \"{}\"", self.user)),
            ("interval = \"1s\"", "interval = \"100ms\"".to_string()),
        ];
        replace.extend(extra.iter().map(|(a, b)| (*a, b.to_string())));
        let pairs: Vec<(&str, &str)> = replace.iter().map(|(a, b)| (*a, b.as_str())).collect();
        example_plan("postgres-orders.toml", &pairs)
    }
}

/// PIDs of processes whose command line mentions `needle` (e.g. a scratch path).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

fn no_cluster_left(ws: &Workspace) {
    let scratch = ws.path().join("var/scratch");
    let left = processes_mentioning(&scratch.to_string_lossy());
    assert!(left.is_empty(), "processes still use the scratch folder: {left:?}");
    let runs: Vec<_> = std::fs::read_dir(&scratch).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(runs.is_empty(), "scratch not removed: {runs:?}");
}

#[test]
fn postgres_drill_passes_with_sql_checks_and_canary_then_the_cluster_is_gone() {
    let pg = pg();
    let db = pg.orders_db(3000);
    let ws = Workspace::empty();
    ws.write_plan(
        "postgres-orders",
        &format!(
            "{}\n[[check]]\nkind = \"sql-query\"\nsql = \"SELECT name FROM customers WHERE id = 7\"\nexpect = \"= 'customer 7'\"\n[[check]]\nkind = \"command\"\nrun = \"test $({}/psql -XAtc 'SELECT count(*) FROM customers') = 50\"\n",
            pg.plan(&db, &[("expect = \">= 1\"", "expect = \"= 3000\"")]),
            pg.bin
        ),
    );
    let report = ws.drill("postgres-orders", &[("DRDRILL_PG_PASSWORD", &pg.password)]);
    assert_eq!(report["status"], "passed", "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4);
    assert!(checks[0]["output"].as_str().unwrap().contains("-> 3000"), "{report:#}");
    assert!(checks[2]["output"].as_str().unwrap().contains("'customer 7'"), "{report:#}");
    let rpo = measurement(&report, "rpo");
    assert_eq!(rpo["method"], "canary marker in the restored copy");
    assert!(rpo["value_ms"].as_f64().unwrap() < 60_000.0, "{rpo}");
    let cleanup = phase(&report, "cleanup");
    assert!(cleanup["detail"].as_str().unwrap().contains("throwaway PostgreSQL cluster"), "{cleanup}");
    no_cluster_left(&ws);
    // The password never reaches the results database.
    let db_bytes = std::fs::read(ws.path().join("var/drdrill.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db_bytes).contains(&pg.password));
}

#[test]
fn a_failing_check_still_stops_the_cluster() {
    let pg = pg();
    let db = pg.orders_db(10);
    let ws = Workspace::empty();
    let plan =
        pg.plan(&db, &[("timeout = \"5m\"", "timeout = \"20s\""), ("expect = \">= 1\"", "expect = \">= 999999\"")]);
    ws.write_plan("pg-bad-check", &plan.replace("name = \"postgres-orders\"", "name = \"pg-bad-check\""));
    let report = ws.drill("pg-bad-check", &[("DRDRILL_PG_PASSWORD", &pg.password)]);
    assert_eq!(report["status"], "failed", "{report:#}");
    assert!(reason(&report).contains("check sql-query failed"), "{report:#}");
    no_cluster_left(&ws);
}

#[test]
fn wrong_password_fails_clearly_and_is_not_shown() {
    let pg = pg();
    let db = pg.orders_db(10);
    let ws = Workspace::empty();
    ws.write_plan("postgres-orders", &pg.plan(&db, &[]));
    let report = ws.drill("postgres-orders", &[("DRDRILL_PG_PASSWORD", "not-the-password")]);
    assert_eq!(report["status"], "failed");
    let why = reason(&report);
    assert!(why.contains("password authentication failed"), "{why}");
    assert!(!report.to_string().contains("not-the-password"), "{report:#}");
    no_cluster_left(&ws);
}

#[test]
fn missing_password_variable_and_missing_database_fail_clearly() {
    let pg = pg();
    let ws = Workspace::empty();
    ws.write_plan("postgres-orders", &pg.plan("no_such_db", &[]));
    let report = ws.drill("postgres-orders", &[("DRDRILL_PG_PASSWORD", &pg.password)]);
    assert!(reason(&report).contains("database \"no_such_db\" does not exist"), "{report:#}");
    let report = ws.drill("postgres-orders", &[]);
    assert!(reason(&report).contains("DRDRILL_PG_PASSWORD"), "{report:#}");
}

#[test]
fn latest_mode_restores_the_newest_backup_and_rpo_is_its_age() {
    let pg = pg();
    let db = pg.orders_db(100);
    let ws = Workspace::empty();
    ws.write_plan("postgres-orders", &pg.plan(&db, &[]));
    let fresh = ws.drill("postgres-orders", &[("DRDRILL_PG_PASSWORD", &pg.password)]);
    assert_eq!(fresh["status"], "passed", "{fresh:#}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // Same plan name, mode latest, no canary: RPO is the backup's age at T_fail.
    let latest = pg
        .plan(&db, &[("mode = \"fresh\"", "mode = \"latest\"")])
        .replace("[probe]\nkind = \"canary\"\ninterval = \"100ms\"\n", "");
    ws.write_plan("postgres-orders", &latest);
    let report = ws.drill("postgres-orders", &[("DRDRILL_PG_PASSWORD", &pg.password)]);
    assert_eq!(report["status"], "passed", "{report:#}");
    assert_eq!(report["backup_id"], fresh["backup_id"]);
    let rpo = measurement(&report, "rpo");
    assert_eq!(rpo["method"], "backup consistency point");
    assert!(rpo["value_ms"].as_f64().unwrap() >= 1500.0, "{rpo}");
    no_cluster_left(&ws);
}

#[test]
fn a_run_that_hits_its_timeout_still_stops_the_cluster() {
    let pg = pg();
    let db = pg.orders_db(10);
    let ws = Workspace::empty();
    let plan = pg
        .plan(&db, &[("timeout = \"5m\"", "timeout = \"20s\"")])
        .replace("name = \"postgres-orders\"", "name = \"pg-timeout\"");
    ws.write_plan("pg-timeout", &format!("{plan}\n[[check]]\nkind = \"command\"\nrun = \"sleep 600\"\n"));
    let started = std::time::Instant::now();
    let report = ws.drill("pg-timeout", &[("DRDRILL_PG_PASSWORD", &pg.password)]);
    assert!(started.elapsed() < std::time::Duration::from_secs(90), "the deadline did not stop the run");
    assert_eq!(report["status"], "failed", "{report:#}");
    assert!(reason(&report).contains("deadline"), "{report:#}");
    no_cluster_left(&ws);
}
