//! `kind = "command"` sources: the user's backup command streams to stdout and
//! the restore command reads stdin, with scratch, run id and a free port.

use crate::common::{Workspace, reason};

fn plan(name: &str, backup: &str, restore: &str, check: &str) -> String {
    format!(
        r#"name = "{name}"
timeout = "1m"
[targets]
rto = "30s"
rpo = "1m"
[source]
kind = "command"
backup = '''{backup}'''
restore = '''{restore}'''
[[check]]
kind = "command"
run = '''{check}'''
"#
    )
}

#[test]
fn round_trip_streams_through_the_store_with_scratch_run_id_and_port() {
    let ws = Workspace::empty();
    let data = ws.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // 3 MiB of incompressible data plus a known file.
    let noise: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(data.join("noise.bin"), &noise).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the command source\n").unwrap();
    let backup = format!("tar -C {} -cf - .", data.display());
    let restore = "tar -xf - && echo \"$DRDRILL_PORT $DRDRILL_RUN_ID $DRDRILL_SCRATCH\" > env.txt";
    let check = format!(
        "cmp \"$DRDRILL_RESTORE/noise.bin\" {noise} && grep -q 'hello from' \"$DRDRILL_RESTORE/hello.txt\" && read port run scratch < \"$DRDRILL_RESTORE/env.txt\" && [ \"$port\" -gt 0 ] && [ \"$port\" = \"$DRDRILL_PORT\" ] && [ \"$run\" = \"$DRDRILL_RUN_ID\" ] && [ \"$scratch\" = \"$DRDRILL_SCRATCH\" ]",
        noise = data.join("noise.bin").display()
    );
    ws.write_plan("cmd", &plan("cmd", &backup, restore, &check));
    let report = ws.drill("cmd", &[]);
    assert_eq!(report["status"], "passed", "{report:#}");
    let listing = ws.backups(&["--plan", "cmd"], &[]);
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0]["complete"], true);
    let (code, out, _) = ws.run(&["backups", "verify", "--plan", "cmd"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 intact, 0 bad"), "{out}");
}

#[test]
fn failing_or_silent_commands_fail_the_run_with_their_stderr() {
    let ws = Workspace::empty();
    ws.write_plan("bk-fails", &plan("bk-fails", "echo 'dump: access denied' >&2; exit 3", "cat >/dev/null", "true"));
    let r = ws.drill("bk-fails", &[]);
    assert_eq!(r["status"], "failed");
    assert!(reason(&r).contains("exit status: 3") && reason(&r).contains("dump: access denied"), "{r:#}");

    ws.write_plan("bk-empty", &plan("bk-empty", "echo 'nothing to dump' >&2", "cat >/dev/null", "true"));
    let r = ws.drill("bk-empty", &[]);
    assert!(reason(&r).contains("wrote nothing") && reason(&r).contains("nothing to dump"), "{r:#}");
    // A failed backup leaves no complete backup behind.
    assert!(ws.backups(&["--plan", "bk-empty"], &[]).iter().all(|b| b["complete"] == false));

    ws.write_plan(
        "rs-fails",
        &plan("rs-fails", "echo payload", "cat >/dev/null; echo 'restore: disk on fire' >&2; exit 1", "true"),
    );
    let r = ws.drill("rs-fails", &[]);
    assert_eq!(r["status"], "failed");
    assert!(reason(&r).starts_with("restore failed") && reason(&r).contains("restore: disk on fire"), "{r:#}");
}

#[test]
fn cleanup_command_stops_what_restore_started() {
    let ws = Workspace::empty();
    let marker = ws.path().join("stopped-port");
    let text =
        plan("svc", "echo payload", "cat > data; sleep 300 & echo $! > pid", "test -s \"$DRDRILL_RESTORE/data\"")
            .replace(
                "[[check]]",
                &format!("cleanup = '''kill $(cat pid) && echo $DRDRILL_PORT > {}'''\n[[check]]", marker.display()),
            );
    ws.write_plan("svc", &text);
    let r = ws.drill("svc", &[]);
    assert_eq!(r["status"], "passed", "{r:#}");
    let port: u16 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    assert!(port > 0);
}
