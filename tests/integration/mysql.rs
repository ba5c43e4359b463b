//! MariaDB/MySQL drills against the real server that scripts/test starts
//! (scripts/services/15-mariadb.sh): a consistent dump while a writer commits,
//! a throwaway server in scratch, sql-query and command checks, canary RPO,
//! dumps in a store drilled with `format = "mysqldump"`, and no server left.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Workspace, env, example_plan, measurement, phase, processes_with, reason, unique};

struct My {
    host: String,
    port: String,
    user: String,
    password: String,
}

fn my() -> My {
    My {
        host: env("DRDRILL_TEST_MYSQL_HOST"),
        port: env("DRDRILL_TEST_MYSQL_PORT"),
        user: env("DRDRILL_TEST_MYSQL_USER"),
        password: env("DRDRILL_TEST_MYSQL_PASSWORD"),
    }
}

impl My {
    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.args(["--no-defaults", "-h", &self.host, "-P", &self.port, "-u", &self.user, "-N", "--batch"])
            .env("MYSQL_PWD", &self.password);
        c
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        let out = self.client().args(["-D", db, "-e", sql]).output().unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A fresh database: 50 customers, `orders` orders of 3 items each, with
    /// foreign keys from orders to customers and from items to orders.
    fn shop(&self, orders: u32) -> String {
        let db = unique("shop");
        let out = self.client().args(["-e", &format!("CREATE DATABASE {db}")]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.sql(
            &db,
            &format!(
                "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL) ENGINE=InnoDB;
                 INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_50;
                 CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL,
                   total DECIMAL(10,2), FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB;
                 CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT NOT NULL,
                   FOREIGN KEY (order_id) REFERENCES orders (id)) ENGINE=InnoDB;
                 INSERT INTO orders (customer_id, total) SELECT 1 + seq % 50, seq * 1.25 FROM seq_1_to_{orders};
                 INSERT INTO items (order_id) SELECT o.id FROM orders o, seq_1_to_3;"
            ),
        );
        db
    }

    /// The example plan, pointed at the test server and database.
    fn plan(&self, name: &str, db: &str) -> String {
        example_plan(
            "mysql-orders.toml",
            &[
                ("name = \"mysql-orders\"", &format!("name = \"{name}\"")),
                ("port = 3306", &format!("port = {}", self.port)),
                ("database = \"shop\"", &format!("database = \"{db}\"")),
                ("user = \"drill\"", &format!("user = \"{}\"", self.user)),
                ("interval = \"1s\"", "interval = \"100ms\""),
            ],
        )
    }
}

/// Commits an order with its three items in one transaction, over and over,
/// through one client session, until stopped.
struct Writer {
    child: Child,
    feeder: Option<std::thread::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Writer {
    fn start(my: &My, db: &str) -> Writer {
        let mut child = my.client().args(["-D", db]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let feeder = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let tx = "BEGIN; INSERT INTO orders (customer_id, total) VALUES (7, 1.00); SET @o = LAST_INSERT_ID(); \
                          INSERT INTO items (order_id) VALUES (@o), (@o), (@o); COMMIT; DO SLEEP(0.002);\n";
                if stdin.write_all(tx.as_bytes()).is_err() {
                    break;
                }
            }
        });
        Writer { child, feeder: Some(feeder), stop }
    }

    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.feeder.take().unwrap().join().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the writer's session failed");
    }
}

/// No process runs from the workspace's scratch folder, and it is empty.
fn no_server_left(ws: &Workspace) {
    let scratch = ws.join("var/scratch");
    let left = processes_with(&scratch.to_string_lossy());
    assert!(left.is_empty(), "processes still use the scratch folder: {left:?}");
    assert!(ws.scratch_leftovers().is_empty(), "scratch not removed: {:?}", ws.scratch_leftovers());
}

/// The number in a sql-query check's output, `... -> 123 (expected ...)`.
fn observed(report: &serde_json::Value, check: usize) -> i64 {
    let out = report["checks"][check]["output"].as_str().unwrap();
    out.split("-> ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap()
}

#[test]
fn a_mysql_drill_is_consistent_while_a_writer_commits_and_leaves_no_server() {
    let my = my();
    let db = my.shop(20_000);
    let writer = Writer::start(&my, &db);
    std::thread::sleep(Duration::from_millis(300));
    let before: i64 = my.sql(&db, "SELECT count(*) FROM orders").parse().unwrap();
    let ws = Workspace::empty();
    let checks = "\n[[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM items i WHERE i.order_id = o.id) <> 3\"\nexpect = \"= 0\"\n\
                  [[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL\"\nexpect = \"= 0\"\n";
    ws.write_plan("shop", &format!("{}{checks}", my.plan("shop", &db)));
    let report = ws.drill("shop", &[("DRDRILL_MYSQL_PASSWORD", &my.password)]);
    let after: i64 = my.sql(&db, "SELECT count(*) FROM orders").parse().unwrap();
    writer.stop();
    assert_eq!(report["status"], "passed", "{report:#}");
    // The dump was taken while the writer committed, and holds whole transactions only.
    let restored = observed(&report, 0);
    assert!(before < restored && restored < after, "restored {restored} orders; before {before}, after {after}");
    let rpo = measurement(&report, "rpo");
    assert_eq!(rpo["method"], "canary marker in the restored copy", "{rpo}");
    let cleanup = phase(&report, "cleanup")["detail"].as_str().unwrap().to_string();
    assert!(cleanup.contains("throwaway MariaDB/MySQL server") && cleanup.contains("stopped"), "{cleanup}");
    no_server_left(&ws);
    let db_bytes = std::fs::read(ws.join("var/drdrill.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db_bytes).contains(&my.password), "the password reached the results DB");
}

#[test]
fn a_foreign_key_violation_or_a_missing_table_fails_the_check() {
    let my = my();
    let db = my.shop(100);
    // Rows a bug wrote with the checks off: the dump keeps them (it loads with
    // FOREIGN_KEY_CHECKS=0), and the orphan check must see them.
    my.sql(&db, "SET FOREIGN_KEY_CHECKS = 0; INSERT INTO orders (customer_id, total) VALUES (9999, 1)");
    let ws = Workspace::empty();
    let plan = my.plan("fk", &db).replace("timeout = \"5m\"", "timeout = \"15s\"");
    ws.write_plan("fk", &plan);
    let report = ws.drill("fk", &[("DRDRILL_MYSQL_PASSWORD", &my.password)]);
    assert_eq!(report["status"], "failed", "{report:#}");
    assert!(report["checks"][0]["passed"] == true, "{report:#}");
    assert!(
        report["checks"][1]["output"].as_str().unwrap().contains("-> 1 (expected = 0)"),
        "the orphan was not seen: {report:#}"
    );
    no_server_left(&ws);

    // A nightly dump in a store, drilled as it is: whole, it passes; without
    // the customers table, the check on it fails naming the table.
    let store = ws.join("var/store/nightly/shop");
    std::fs::create_dir_all(&store).unwrap();
    let dump = |extra: &[&str]| {
        let out = Command::new("mariadb-dump")
            .args(["--no-defaults", "-h", &my.host, "-P", &my.port, "-u", &my.user, "--single-transaction"])
            .args(extra)
            .arg(&db)
            .env("MYSQL_PWD", &my.password)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    my.sql(&db, "DELETE FROM orders WHERE customer_id = 9999");
    let whole = zstd::encode_all(&dump(&[])[..], 3).unwrap();
    std::fs::write(store.join("shop-20261129-023000.sql.zst"), whole).unwrap();
    let objects = |name: &str| {
        format!(
            "name = \"{name}\"\ntimeout = \"20s\"\n[targets]\nrto = \"1m\"\nrpo = \"3650d\"\n[source]\nkind = \"mysql\"\nport = {}\ndatabase = \"{db}\"\nuser = \"{}\"\npassword_env = \"DRDRILL_MYSQL_PASSWORD\"\n\
             [backup]\nmode = \"existing\"\nfrom = \"objects\"\n[backup.objects]\nstore = \"local\"\nprefix = \"nightly/shop\"\nformat = \"mysqldump\"\ntime_pattern = \"%Y%m%d-%H%M%S\"\n\
             [[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM customers\"\nexpect = \"= 50\"\n\
             [[check]]\nkind = \"command\"\nrun = \"test $(mariadb -N -e 'SELECT count(*) FROM orders') = 100\"\n",
            my.port, my.user
        )
    };
    ws.write_plan("nightly", &objects("nightly"));
    let report = ws.drill("nightly", &[("DRDRILL_MYSQL_PASSWORD", &my.password)]);
    assert_eq!(report["status"], "passed", "{report:#}");
    assert!(phase(&report, "backup")["detail"].as_str().unwrap().contains("shop-20261129-023000"), "{report:#}");
    no_server_left(&ws);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&dump(&[&format!("--ignore-table={db}.customers")])).unwrap();
    std::fs::write(store.join("shop-20261130-023000.sql.gz"), gz.finish().unwrap()).unwrap();
    let report = ws.drill("nightly", &[("DRDRILL_MYSQL_PASSWORD", &my.password)]);
    assert_eq!(report["status"], "failed", "{report:#}");
    let out = report["checks"][0]["output"].as_str().unwrap();
    assert!(out.contains("customers") && out.contains("doesn't exist"), "{report:#}");
    no_server_left(&ws);
}

#[test]
fn a_killed_throwaway_server_fails_the_run_with_the_cause_and_leaves_no_process() {
    let my = my();
    let db = my.shop(10);
    let ws = Workspace::empty();
    let plan = my.plan("killed", &db).replace("[[check]]", "[[check]]\nkind = \"command\"\nrun = \"kill -9 $(cat \\\"$DRDRILL_SCRATCH/restore/mariadbd.pid\\\")\"\n\n[[check]]");
    ws.write_plan("killed", &plan);
    let started = Instant::now();
    let report = ws.drill("killed", &[("DRDRILL_MYSQL_PASSWORD", &my.password)]);
    assert!(started.elapsed() < Duration::from_secs(60), "the run waited for a dead server: {report:#}");
    assert_eq!(report["status"], "failed", "{report:#}");
    let why = reason(&report);
    assert!(
        why.contains("no retry can pass") && why.contains("the throwaway MariaDB server") && why.contains("was killed"),
        "{why}"
    );
    let cleanup = phase(&report, "cleanup")["detail"].as_str().unwrap().to_string();
    assert!(cleanup.contains("had already stopped"), "{cleanup}");
    no_server_left(&ws);
}

#[test]
fn a_server_left_by_a_killed_drdrill_is_stopped_from_its_folder_by_the_next_start() {
    let my = my();
    let db = my.shop(10);
    let ws = Workspace::quickstart();
    let marker = unique("drdrill_hang");
    let hang = format!("[[check]]\nkind = \"command\"\nrun = \"python3 -c 'import time; time.sleep(600)' {marker}\"\n");
    ws.write_plan("hang", &format!("{}\n{hang}", my.plan("hang", &db)));
    let mut run = ws.cmd();
    run.args(["run", "hang", "--json"]).env("DRDRILL_MYSQL_PASSWORD", &my.password);
    let mut child = run.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(90);
    while processes_with(&marker).is_empty() {
        assert!(Instant::now() < until, "the drill never reached its checks");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Killed outright: no cleanup runs, and the throwaway server stays up.
    child.kill().unwrap();
    child.wait().unwrap();
    let data = ws.join("var/scratch").display().to_string();
    let servers = processes_with(&format!("--datadir={data}"));
    assert!(!servers.is_empty(), "no server was left to stop");

    let (code, out, err) = ws.run(&["run", "quickstart"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("stopped a server a run that is over left running"), "{err}");
    let until = Instant::now() + Duration::from_secs(10);
    while !processes_with(&format!("--datadir={data}")).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(processes_with(&format!("--datadir={data}")).is_empty(), "the left server still runs");
    for pid in processes_with(&marker) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
