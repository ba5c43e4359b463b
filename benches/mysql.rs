//! A MariaDB drill of a large database, side by side with the tools alone on
//! the same data. Run with:
//!
//!     cargo bench --bench mysql
//!
//! It needs the MariaDB server that `scripts/services/15-mariadb.sh` starts
//! (the `DRDRILL_TEST_MYSQL_*` variables) and `zstd`. The database is made once
//! in that server: `BENCH_MYSQL_ORDERS` orders (default 1,000,000) of three
//! items each, with a text column, about 200 MB of dump. It prints:
//!
//! - backup: drdrill's backup phase (dump, zstd, sha256, store) against
//!   `mariadb-dump --single-transaction ... | zstd -1 > file`;
//! - restore: drdrill's load share of the restore phase (fetch, decompress,
//!   load) against `zstd -dc file | mariadb` into a server started the same way;
//! - orchestration on its own: creating the data folder, starting the server,
//!   and stopping it and removing its folder at cleanup, which a restore by
//!   hand needs too.
//!
//! A first dump warms the server's cache; then both sides run `BENCH_REPS`
//! times (default 2), alternating, and each figure is the best of those.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DRDRILL: &str = env!("CARGO_BIN_EXE_drdrill");

struct Live {
    host: String,
    port: String,
    user: String,
    password: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this bench needs the MariaDB server of scripts/services/15-mariadb.sh (run it through scripts/test, or source that file)")
    })
}

impl Live {
    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.args(["--no-defaults", "-h", &self.host, "-P", &self.port, "-u", &self.user, "-N", "--batch"])
            .env("MYSQL_PWD", &self.password);
        c
    }

    fn sql(&self, sql: &str) -> String {
        let out = self.client().args(["-e", sql]).output().unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The bench database with `orders` orders, made once.
    fn database(&self, orders: u64) -> String {
        let db = format!("drdrill_bench_{orders}");
        let done = self.sql(&format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_name = 'complete'"
        ));
        if done == "1" {
            return db;
        }
        eprintln!("making database {db} ({orders} orders, {} items)", orders * 3);
        self.sql(&format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db};
             CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL) ENGINE=InnoDB;
             INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_1000;
             CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(12,2),
               note VARCHAR(80), created DATETIME NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB;
             INSERT INTO orders (customer_id, total, note, created)
               SELECT 1 + seq % 1000, seq * 1.25, MD5(seq), '2026-01-01' + INTERVAL seq SECOND FROM seq_1_to_{orders};
             CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT NOT NULL, sku VARCHAR(16),
               FOREIGN KEY (order_id) REFERENCES orders (id)) ENGINE=InnoDB;
             INSERT INTO items (order_id, sku) SELECT o.id, CONCAT('SKU-', s.seq) FROM orders o, seq_1_to_3 s;
             CREATE TABLE complete (x INT);"
        ));
        db
    }
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a small drill and
    // the same baselines prove the harness, instead of a minutes-long bench.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let live = Live {
        host: env("DRDRILL_TEST_MYSQL_HOST"),
        port: env("DRDRILL_TEST_MYSQL_PORT"),
        user: env("DRDRILL_TEST_MYSQL_USER"),
        password: env("DRDRILL_TEST_MYSQL_PASSWORD"),
    };
    let orders: u64 = if smoke {
        300
    } else {
        std::env::var("BENCH_MYSQL_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
    };
    let db = live.database(orders);
    // The throwaway servers run as the mysql user, who must reach this folder.
    let base = std::env::var_os("DRDRILL_TEST_ROOT").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new().prefix("drdrill-bench-mysql-").tempdir_in(base).unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = root.path().canonicalize().unwrap();

    // A first dump reads the tables into the server's buffer pool (and lets a
    // freshly made database settle), so neither side pays for a cold cache.
    baseline_backup(&live, &db, &root);
    let reps = if smoke { 1 } else { std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(2) };
    let (mut d, mut backup, mut b) = (None::<Drill>, None::<Duration>, None::<Restore>);
    let (mut dump_bytes, mut zst_bytes) = (0, 0);
    // Alternating, best of `reps` for each figure: the machine is shared.
    for _ in 0..reps {
        let run = drill(&live, &db, orders, &root);
        let (took, raw, zst, dump) = baseline_backup(&live, &db, &root);
        let base = baseline_restore(&dump, &root, &db, orders);
        (dump_bytes, zst_bytes) = (raw, zst);
        backup = Some(backup.map_or(took, |b| b.min(took)));
        d = Some(match d {
            Some(prev) => prev.best(run),
            None => run,
        });
        b = Some(match b {
            Some(prev) => prev.best(base),
            None => base,
        });
    }
    let (d, backup, b) = (d.unwrap(), backup.unwrap(), b.unwrap());

    if smoke {
        println!(
            "mysql bench smoke run: {orders} orders; drdrill backup {:.2}s restore {:.2}s (run `cargo bench --bench mysql` for figures)",
            d.backup.as_secs_f64(),
            d.restore.as_secs_f64()
        );
        return;
    }
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!();
    println!(
        "MariaDB drill of {orders} orders + {} items: dump {:.1} MB, {:.1} MB with zstd -1",
        orders * 3,
        dump_bytes as f64 / 1e6,
        zst_bytes as f64 / 1e6
    );
    println!("{:<14} {:>10} {:>10}  baseline", "phase", "drdrill", "baseline");
    println!(
        "{:<14} {:>10} {:>10}  mariadb-dump --single-transaction ... | zstd -1 > file",
        "backup",
        s(d.backup),
        s(backup)
    );
    println!(
        "{:<14} {:>10} {:>10}  zstd -dc file | mariadb (drdrill: its restore phase {}, less the server's data folder and start)",
        "restore (load)",
        s(d.load),
        s(b.load),
        s(d.restore)
    );
    println!(
        "{:<14} {:>10} {:>10}  data folder (mariadb-install-db) {} / {}, start {} / {}, stop and remove {} / {}",
        "orchestration",
        s(d.orchestration()),
        s(b.orchestration()),
        s(d.install),
        s(b.install),
        s(d.start),
        s(b.start),
        s(d.stop),
        s(b.stop)
    );
    println!(
        "drdrill vs the tools alone: backup {:.0}%, load {:.0}% of their time; RTO {} (verify {} included)",
        100.0 * d.backup.as_secs_f64() / backup.as_secs_f64(),
        100.0 * d.load.as_secs_f64() / b.load.as_secs_f64(),
        s(d.rto),
        s(d.verify)
    );
}

#[derive(Default)]
struct Restore {
    install: Duration,
    start: Duration,
    load: Duration,
    stop: Duration,
}

impl Restore {
    fn orchestration(&self) -> Duration {
        self.install + self.start + self.stop
    }

    fn best(self, o: Restore) -> Restore {
        Restore {
            install: self.install.min(o.install),
            start: self.start.min(o.start),
            load: self.load.min(o.load),
            stop: self.stop.min(o.stop),
        }
    }
}

struct Drill {
    backup: Duration,
    restore: Duration,
    load: Duration,
    install: Duration,
    start: Duration,
    stop: Duration,
    verify: Duration,
    rto: Duration,
}

impl Drill {
    fn orchestration(&self) -> Duration {
        self.install + self.start + self.stop
    }

    fn best(self, o: Drill) -> Drill {
        Drill {
            backup: self.backup.min(o.backup),
            restore: self.restore.min(o.restore),
            load: self.load.min(o.load),
            install: self.install.min(o.install),
            start: self.start.min(o.start),
            stop: self.stop.min(o.stop),
            verify: self.verify.min(o.verify),
            rto: self.rto.min(o.rto),
        }
    }
}

/// `234ms`, `2.12s`, `1m 15s`: drdrill's durations for people.
fn parse_duration(text: &str) -> Duration {
    let t = text.trim();
    if let Some(ms) = t.strip_suffix("ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::from_secs_f64(ms / 1000.0);
    }
    if let Some(s) = t.strip_suffix('s').and_then(|v| v.parse::<f64>().ok()) {
        return Duration::from_secs_f64(s);
    }
    humantime::parse_duration(t).unwrap_or_else(|e| panic!("duration {t:?}: {e}"))
}

fn drill(live: &Live, db: &str, orders: u64, root: &Path) -> Drill {
    let ws = root.join("ws");
    let _ = fs::remove_dir_all(&ws);
    fs::create_dir_all(ws.join("drills")).unwrap();
    fs::set_permissions(&ws, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        ws.join("drills/bench.toml"),
        format!(
            "timeout = \"1h\"\n[targets]\nrto = \"1h\"\nrpo = \"1h\"\n[source]\nkind = \"mysql\"\nhost = \"{}\"\nport = {}\ndatabase = \"{db}\"\nuser = \"{}\"\npassword_env = \"BENCH_PW\"\n\
             [[check]]\nkind = \"sql-query\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"= {orders}\"\n",
            live.host, live.port, live.user
        ),
    )
    .unwrap();
    let out = Command::new(DRDRILL)
        .args(["run", "bench", "--json"])
        .current_dir(&ws)
        .env("BENCH_PW", &live.password)
        .env_remove("DRDRILL_CONFIG")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["status"], "passed", "{report:#}");
    let phase = |n: &str| report["phases"].as_array().unwrap().iter().find(|p| p["name"] == n).unwrap().clone();
    let took = |n: &str| Duration::from_secs_f64(phase(n)["duration_ms"].as_f64().unwrap() / 1000.0);
    let measured = |n: &str| {
        let m = report["measurements"].as_array().unwrap().iter().find(|m| m["name"] == n).unwrap().clone();
        Duration::from_secs_f64(m["value_ms"].as_f64().unwrap() / 1000.0)
    };
    // `...; throwaway MariaDB 10.11.14: data folder 2.12s, start 234ms, dump loaded 40s`
    let detail = phase("restore")["detail"].as_str().unwrap().to_string();
    let note = detail.rsplit(": ").next().unwrap();
    let share = |name: &str| {
        let part = note.split(", ").find_map(|p| p.strip_prefix(name)).unwrap_or_else(|| panic!("{name} in {detail}"));
        parse_duration(part)
    };
    Drill {
        backup: took("backup"),
        restore: took("restore"),
        load: took("restore").saturating_sub(share("data folder ") + share("start ")),
        install: share("data folder "),
        start: share("start "),
        stop: took("cleanup"),
        verify: measured("verify"),
        rto: measured("rto"),
    }
}

/// `mariadb-dump | zstd -1` with the options drdrill uses. Returns its time,
/// the dump's and the compressed file's sizes, and the file.
fn baseline_backup(live: &Live, db: &str, root: &Path) -> (Duration, u64, u64, PathBuf) {
    let file = root.join("dump.sql.zst");
    let script = format!(
        "mariadb-dump --no-defaults -h {} -P {} -u {} --single-transaction --routines --triggers --events --hex-blob --quick --databases {db} | tee >(wc -c > {raw}) | zstd -1 -q -f -o {out}",
        live.host,
        live.port,
        live.user,
        raw = root.join("raw-bytes").display(),
        out = file.display()
    );
    let started = Instant::now();
    let st =
        Command::new("bash").args(["-o", "pipefail", "-c", &script]).env("MYSQL_PWD", &live.password).status().unwrap();
    let took = started.elapsed();
    assert!(st.success(), "baseline backup failed");
    std::thread::sleep(Duration::from_millis(200));
    let raw: u64 = fs::read_to_string(root.join("raw-bytes")).unwrap_or_default().trim().parse().unwrap_or(0);
    (took, raw, fs::metadata(&file).unwrap().len(), file)
}

/// Whether drdrill is root: then servers run as the mysql user, as drdrill's do.
fn as_server_user(program: &str) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "mysql", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

/// A server made and started as drdrill makes and starts its own, then
/// `zstd -dc | mariadb` into it, then stopped.
fn baseline_restore(dump: &Path, root: &Path, db: &str, orders: u64) -> Restore {
    let dir = root.join("baseline");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        Command::new("chown").arg("mysql:").arg(&dir).status().unwrap();
    }
    let data = dir.join("data");
    let sock = dir.join("mysql.sock");
    let mut r = Restore::default();
    let started = Instant::now();
    let st = as_server_user("mariadb-install-db")
        .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"])
        .arg(format!("--datadir={}", data.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "mariadb-install-db failed");
    r.install = started.elapsed();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let mut server: Child = as_server_user("/usr/sbin/mariadbd")
        .args(["--no-defaults", "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin"])
        .args(["--event-scheduler=DISABLED", "--max-allowed-packet=1G"])
        .args(["--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0"])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--log-error={}", dir.join("err.log").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = |sql: &str| {
        Command::new("mariadb")
            .args(["--no-defaults", "-u", "root", "-N", "--batch"])
            .arg(format!("--socket={}", sock.display()))
            .args(["-e", sql])
            .output()
            .unwrap()
    };
    while !client("SELECT 1").status.success() {
        assert!(started.elapsed() < Duration::from_secs(120), "the baseline server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    r.start = started.elapsed();
    let started = Instant::now();
    let st = Command::new("bash")
        .args(["-o", "pipefail", "-c"])
        .arg(format!(
            "zstd -dc {} | mariadb --no-defaults -u root --socket={} --binary-mode --max-allowed-packet=1G",
            dump.display(),
            sock.display()
        ))
        .status()
        .unwrap();
    r.load = started.elapsed();
    assert!(st.success(), "baseline load failed");
    let count = client(&format!("SELECT count(*) FROM {db}.orders"));
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), orders.to_string());
    let started = Instant::now();
    let pid: i32 = fs::read_to_string(dir.join("pid")).unwrap().trim().parse().unwrap();
    unsafe { libc::kill(pid, libc::SIGTERM) };
    server.wait().unwrap();
    // drdrill's cleanup removes the scratch folder too: so does this.
    fs::remove_dir_all(&dir).unwrap();
    r.stop = started.elapsed();
    r
}
