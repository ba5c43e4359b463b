//! Freshness without a drill: the daemon looks at the newest backup of every
//! `existing` and `latest` plan, calls a plan `stale` when that backup is older
//! than the RPO target (on time, not an interval late), alerts once per stale
//! episode through the outbox, and shows it in `/metrics`, `drdrill status`
//! and the API until a newer backup arrives.

use std::time::Duration;

use chrono::Utc;

use crate::common::{RunningDaemon, WAIT, Workspace, env, wait_until};

/// A dump file some nightly job wrote into the local store, `ago` old by its name.
fn dump(ws: &Workspace, prefix: &str, ago: chrono::Duration) {
    let at = (Utc::now() - ago).format("%Y%m%d-%H%M%S");
    ws.write(&format!("var/store/{prefix}/app-{at}.db"), "not opened: only listed");
}

fn existing_plan(ws: &Workspace, name: &str, prefix: &str, rpo: &str) {
    ws.write_plan(
        name,
        &format!(
            "[targets]\nrto = \"1m\"\nrpo = \"{rpo}\"\n[source]\nkind = \"sqlite\"\npath = \"live.db\"\n\
             [backup]\nmode = \"existing\"\nfrom = \"objects\"\n\
             [backup.objects]\nstore = \"local\"\nprefix = \"{prefix}\"\nformat = \"sqlite\"\ntime_pattern = \"%Y%m%d-%H%M%S\"\n\
             [[check]]\nkind = \"sqlite-integrity\"\n"
        ),
    );
}

fn freshness(d: &RunningDaemon, plan: &str) -> serde_json::Value {
    d.plan(plan)["freshness"].clone()
}

fn stale_alerts(ws: &Workspace, plan: &str) -> Vec<(String, bool)> {
    let db = ws.db();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut stmt = db
        .prepare("SELECT subject, sent_at IS NOT NULL FROM outbox WHERE kind = 'stale-backup' AND subject LIKE ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([format!("[drdrill] {plan} STALE%")], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn an_old_newest_backup_makes_the_plan_stale_with_one_alert_until_a_newer_one_arrives() {
    let ws = Workspace::empty();
    let to = format!("fresh-{}@example.com", std::process::id());
    let port = ws.write_daemon_config(&format!(
        "[daemon]\nfreshness_interval = \"1h\"\n\
         [notify]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsecurity = \"plain\"\nfrom = \"drdrill <dr@example.com>\"\nto = [\"{to}\"]\n",
        env("DRDRILL_TEST_SMTP_PORT")
    ));
    ws.write("live.db", "");
    // A drdrill-made backup for a `latest` plan, made by one fresh run.
    ws.write("own/data.txt", "kept\n");
    let own = |mode: &str| {
        format!(
            "[targets]\nrto = \"1m\"\nrpo = \"1d\"\n[source]\nkind = \"directory\"\npath = \"{}\"\n[backup]\nmode = \"{mode}\"\n\
             [[check]]\nkind = \"tree-matches-source\"\n",
            ws.join("own").display()
        )
    };
    ws.write_plan("own", &own("fresh"));
    assert_eq!(ws.drill("own", &[])["status"], "passed");
    ws.write_plan("own", &own("latest"));
    dump(&ws, "nightly/app", chrono::Duration::hours(2));
    existing_plan(&ws, "nightly", "nightly/app", "1h");
    // Fresh at the first look, too old 15 seconds later: long before the hourly look.
    dump(&ws, "soon/app", chrono::Duration::seconds(45));
    existing_plan(&ws, "soon", "soon/app", "1m");
    let d = ws.spawn_daemon(port);

    wait_until("nightly to be seen stale", WAIT, || (freshness(&d, "nightly")["stale"] == true).then_some(()));
    let f = freshness(&d, "nightly");
    assert_eq!(f["repository"], "objects:local/nightly/app", "{f:#}");
    assert!(f["newest_id"].as_str().unwrap().starts_with("nightly/app/app-"), "{f:#}");
    let age = d.metric("drdrill_backup_age_seconds", &[("plan", "nightly")]).unwrap();
    assert!((7190.0..7400.0).contains(&age), "age {age}");
    assert_eq!(d.metric("drdrill_backup_stale", &[("plan", "nightly")]), Some(1.0));
    wait_until("own to be looked at", WAIT, || (!freshness(&d, "own")["checked_at"].is_null()).then_some(()));
    assert_eq!(d.metric("drdrill_backup_stale", &[("plan", "own")]), Some(0.0));
    assert!(d.metric("drdrill_backup_age_seconds", &[("plan", "own")]).unwrap() < 600.0);

    let soon = wait_until("soon's first look", WAIT, || {
        let f = freshness(&d, "soon");
        (!f["checked_at"].is_null()).then_some(f)
    });
    assert_eq!(soon["stale"], false, "{soon:#}");
    wait_until("soon to turn stale as its backup passes a minute", Duration::from_secs(40), || {
        (freshness(&d, "soon")["stale"] == true).then_some(())
    });

    let (code, status, err) = ws.run(&["status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(status.contains("backup of nightly: STALE since"), "{status}");
    assert!(status.contains("backup of own: fresh (RPO target 1day)"), "{status}");

    // The alert went out through the mail path, once; a reload looks again and is still stale.
    wait_until("the stale alert to be delivered", WAIT, || {
        stale_alerts(&ws, "nightly").iter().any(|(_, sent)| *sent).then_some(())
    });
    let first = freshness(&d, "nightly")["checked_at"].clone();
    let (code, out, err) = ws.run(&["reload"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("a look after the reload", WAIT, || (freshness(&d, "nightly")["checked_at"] != first).then_some(()));
    let alerts = stale_alerts(&ws, "nightly");
    assert_eq!(alerts.len(), 1, "one alert per stale episode: {alerts:?}");
    assert!(alerts[0].0.contains("newest backup is 2h"), "{alerts:?}");
    // A restart during the episode does not alert again either.
    drop(d);
    let d = ws.spawn_daemon(port);
    wait_until("the first look after the restart", WAIT, || (freshness(&d, "nightly")["stale"] == true).then_some(()));
    assert_eq!(stale_alerts(&ws, "nightly").len(), 1, "the restart alerted again");

    // The nightly job runs again: fresh.
    dump(&ws, "nightly/app", chrono::Duration::seconds(5));
    ws.run(&["reload"], &[]);
    wait_until("nightly to be fresh again", WAIT, || (freshness(&d, "nightly")["stale"] == false).then_some(()));
    assert_eq!(d.metric("drdrill_backup_stale", &[("plan", "nightly")]), Some(0.0));
    assert!(d.metric("drdrill_backup_age_seconds", &[("plan", "nightly")]).unwrap() < 120.0);
    assert_eq!(stale_alerts(&ws, "nightly").len(), 1);
    assert!(ws.scratch_leftovers().is_empty(), "looks leave no folder: {:?}", ws.scratch_leftovers());
}
