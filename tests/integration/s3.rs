//! The S3 store against a real S3-compatible server (moto, started by
//! scripts/services/20-s3.sh), plus a private moto that a test stops mid-upload.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Workspace, env, example_plan, measurement, reason, unique};
use drdrill::store::Store;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, PutPayload};

fn keys() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", env("DRDRILL_TEST_S3_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", env("DRDRILL_TEST_S3_SECRET_ACCESS_KEY")),
    ]
}

fn config(endpoint: &str, bucket: &str) -> String {
    format!(
        "[stores.s3]\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nretry_timeout = \"3s\"\nmax_retries = 3\n"
    )
}

/// drills/s3-orders.toml under another name, seeded from the repository.
fn s3_plan(name: &str) -> String {
    example_plan(
        "s3-orders.toml",
        &[
            ("name = \"s3-orders\"", &format!("name = \"{name}\"")),
            (
                "seed = \"drills/quickstart/orders.sql\"",
                &format!("seed = \"{}/drills/quickstart/orders.sql\"", env!("CARGO_MANIFEST_DIR")),
            ),
        ],
    )
}

fn drill(ws: &Workspace, plan: &str) -> serde_json::Value {
    let keys = keys();
    let envs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ws.drill(plan, &envs)
}

fn run(ws: &Workspace, args: &[&str]) -> (i32, String, String) {
    let keys = keys();
    let envs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ws.run(args, &envs)
}

/// The workspace's `s3` store, opened by drdrill's own code, for tampering.
fn open_store(ws: &Workspace) -> Store {
    for (k, v) in keys() {
        // SAFETY: set before any thread of this test reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
    let path = ws.path().join("config/drdrill.toml");
    let config = drdrill::config::Config::load(Some(&path)).unwrap();
    Store::open("s3", config.stores["s3"].as_ref()).unwrap()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

#[test]
fn s3_drill_passes_and_backups_are_listed_and_verified() {
    let ws = Workspace::with_config(&config(&env("DRDRILL_TEST_S3_ENDPOINT"), &env("DRDRILL_TEST_S3_BUCKET")));
    let name = unique("s3-orders");
    ws.write_plan("s3-orders", &s3_plan(&name));
    let r = drill(&ws, "s3-orders");
    assert_eq!(r["status"], "passed", "{r:#}");
    let (code, out, err) = run(&ws, &["backups", "list", "--plan", "s3-orders"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r["backup_id"].as_str().unwrap()) && out.contains("complete"), "{out}");
    let (code, out, _) = run(&ws, &["backups", "verify", "--plan", "s3-orders"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 intact, 0 bad"), "{out}");

    // `latest` restores that backup from S3; RPO is its age at T_fail.
    std::thread::sleep(Duration::from_millis(1000));
    ws.write_plan("s3-orders", &s3_plan(&name).replace("mode = \"fresh\"", "mode = \"latest\""));
    let l = drill(&ws, "s3-orders");
    assert_eq!(l["status"], "passed", "{l:#}");
    assert_eq!(l["backup_id"], r["backup_id"]);
    assert!(measurement(&l, "rpo")["value_ms"].as_f64().unwrap() >= 1000.0, "{l:#}");
}

#[test]
fn flipped_byte_and_deleted_payload_in_s3_fail_runs_and_verify_names_them() {
    let ws = Workspace::with_config(&config(&env("DRDRILL_TEST_S3_ENDPOINT"), &env("DRDRILL_TEST_S3_BUCKET")));
    let name = unique("s3-scrub");
    ws.write_plan("scrub", &s3_plan(&name));
    let a = drill(&ws, "scrub");
    let b = drill(&ws, "scrub");
    let (a_id, b_id) = (a["backup_id"].as_str().unwrap().to_string(), b["backup_id"].as_str().unwrap().to_string());
    let store = open_store(&ws);
    let os = store.object_store();
    block_on(async {
        let b_path = ObjPath::from(format!("{name}/{b_id}/payload.tar.zst"));
        let mut bytes = os.get(&b_path).await.unwrap().bytes().await.unwrap().to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x80;
        os.put(&b_path, PutPayload::from(bytes)).await.unwrap();
        os.delete(&ObjPath::from(format!("{name}/{a_id}/payload.tar.zst"))).await.unwrap();
    });

    let (code, out, _) = run(&ws, &["backups", "verify", "--plan", "scrub"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().any(|l| l.starts_with("BAD") && l.contains(&b_id) && l.contains("manifest says")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("BAD") && l.contains(&a_id) && l.contains("missing")), "{out}");

    ws.write_plan("scrub", &s3_plan(&name).replace("mode = \"fresh\"", "mode = \"latest\""));
    let r = drill(&ws, "scrub");
    assert_eq!(r["status"], "failed");
    assert!(reason(&r).contains("checksum mismatch") && reason(&r).contains(&b_id), "{r:#}");

    // The newest backup now has a manifest but no payload.
    block_on(os.delete(&ObjPath::from(format!("{name}/{b_id}/payload.tar.zst")))).unwrap();
    let r = drill(&ws, "scrub");
    assert!(reason(&r).contains("is missing from store `s3` although its manifest exists"), "{r:#}");
}

#[test]
fn missing_bucket_and_missing_keys_give_clear_errors() {
    let ws = Workspace::with_config(&config(&env("DRDRILL_TEST_S3_ENDPOINT"), "no-such-bucket-here"));
    ws.write_plan("nob", &s3_plan(&unique("nob")));
    let r = drill(&ws, "nob");
    assert_eq!(r["status"], "failed");
    assert!(reason(&r).contains("bucket `no-such-bucket-here` does not exist"), "{r:#}");

    let (_, out, _) = ws.run(&["run", "nob", "--json"], &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")]);
    assert!(out.contains("S3 credentials missing"), "{out}");
}

/// A moto_server of our own, so it can be stopped mid-upload.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(port: u16) -> Moto {
        let venv = env("DRDRILL_TEST_VENV");
        let child = Command::new(format!("{venv}/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        // moto keeps state in memory: every start needs the bucket again.
        let ok = Command::new(format!("{venv}/bin/python"))
            .args(["-c", "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing').create_bucket(Bucket='drills')", &endpoint])
            .status()
            .unwrap();
        assert!(ok.success(), "cannot create the bucket on {endpoint}");
        Moto { child, endpoint }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn server_stopped_mid_upload_leaves_no_manifest_then_the_drill_succeeds_when_it_is_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut moto = Moto::start(port);
    let ws = Workspace::with_config(&config(&moto.endpoint, "drills"));
    let marker = ws.path().join("first-half-written");
    // 24 MiB (three 8 MiB parts) go up, then the command pauses so the test can
    // stop the server while the multipart upload is open, then 8 MiB more.
    let backup = format!(
        "head -c 25165824 /dev/urandom; touch {m}; while [ -e {m} ]; do sleep 0.05; done; head -c 8388608 /dev/urandom",
        m = marker.display()
    );
    let plan = format!(
        "name = \"s3-cut\"\ntimeout = \"2m\"\n[targets]\nrto = \"1m\"\nrpo = \"1m\"\n[source]\nkind = \"command\"\nbackup = '''{backup}'''\nrestore = \"wc -c > size\"\n[backup]\nstore = \"s3\"\n[[check]]\nkind = \"command\"\nrun = 'test \"$(cat $DRDRILL_RESTORE/size)\" = 33554432'\n"
    );
    ws.write_plan("s3-cut", &plan);
    let keys = keys();
    let running = ws
        .cmd()
        .args(["run", "s3-cut", "--json"])
        .envs(keys.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < until, "the backup command never reached its midpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    moto.stop();
    std::fs::remove_file(&marker).unwrap();
    let out = running.wait_with_output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "failed", "{r:#}");
    let why = reason(&r);
    eprintln!("mid-upload failure reason: {why}");
    assert!(why.contains("backup failed") && why.contains("store `s3`"), "{why}");
    assert!(why.contains("unreachable") || why.contains("upload"), "{why}");

    // Back up (empty, as moto forgets everything): no manifest exists, and the
    // same drill now passes.
    let _moto = Moto::start(port);
    let envs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert!(ws.backups(&["--plan", "s3-cut"], &envs).iter().all(|b| b["complete"] == false));
    ws.write_plan(
        "s3-cut",
        &plan.replace(&format!("while [ -e {m} ]; do sleep 0.05; done; ", m = marker.display()), ""),
    );
    let r = ws.drill("s3-cut", &envs);
    assert_eq!(r["status"], "passed", "{r:#}");
}
