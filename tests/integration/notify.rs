//! Email through a real SMTP server (aiosmtpd started by scripts/test, storing a
//! Maildir), and proof that a dead or silent mail server never fails a drill.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::{Workspace, env, stderr, stdout};
use mail_parser::{MessageParser, MimeHeaders};

/// A recipient unique to this test, to find its messages in the shared Maildir.
fn recipient(tag: &str) -> String {
    format!("{tag}-{}-{}@example.com", std::process::id(), Instant::now().elapsed().as_nanos())
}

fn write_config(ws: &Workspace, port: u16, to: &str, extra: &str) {
    ws.write_config(&
        format!(
            "[notify]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsecurity = \"plain\"\nfrom = \"drdrill <dr@example.com>\"\nto = [\"{to}\"]\n{extra}"
        ),
    );
}

fn smtp_port() -> u16 {
    env("DRDRILL_TEST_SMTP_PORT").parse().expect("DRDRILL_TEST_SMTP_PORT is a port number")
}

/// Raw messages in the test Maildir addressed to `to`, waiting up to 5 s for `n`.
fn messages_to(to: &str, n: usize) -> Vec<Vec<u8>> {
    messages_in("DRDRILL_TEST_MAILDIR", to, n)
}

fn messages_in(maildir_var: &str, to: &str, n: usize) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env(maildir_var)).join("new");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().filter_map(|e| std::fs::read(e.path()).ok()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|raw| String::from_utf8_lossy(raw).contains(to))
            .collect();
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pending_outbox(ws: &Workspace) -> String {
    ws.sqlite3("SELECT count(*) || '|' || coalesce(max(last_error), '') FROM outbox WHERE sent_at IS NULL")
}

#[test]
fn a_failed_run_mails_its_summary() {
    let ws = Workspace::quickstart();
    let to = recipient("alert");
    write_config(&ws, smtp_port(), &to, "");
    assert_eq!(ws.run_quickstart(), 0, "a passing run sends nothing");
    ws.set_rto_target("1ms");
    assert_eq!(ws.run_quickstart(), 1);
    let msgs = messages_to(&to, 1);
    assert_eq!(msgs.len(), 1, "exactly one alert, for the failed run");
    let m = MessageParser::default().parse(&msgs[0]).unwrap();
    let subject = m.subject().unwrap();
    assert!(subject.contains("quickstart FAILED: run 2"), "{subject}");
    let body = m.body_text(0).unwrap();
    assert!(body.contains("RTO") && body.contains("exceeded its target 1ms"), "{body}");
    assert_eq!(pending_outbox(&ws), "0|");
}

#[test]
fn the_digest_carries_the_html_report() {
    let ws = Workspace::quickstart();
    let to = recipient("digest");
    write_config(&ws, smtp_port(), &to, "digest = \"0 8 * * Mon\"\ndigest_period = \"30d\"\n");
    assert_eq!(ws.run_quickstart(), 0);
    let out = ws.output(&["notify", "digest"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let msgs = messages_to(&to, 1);
    assert_eq!(msgs.len(), 1);
    let m = MessageParser::default().parse(&msgs[0]).unwrap();
    assert!(m.subject().unwrap().contains("1/1 plans healthy"), "{:?}", m.subject());
    assert!(m.body_text(0).unwrap().contains("quickstart: HEALTHY"));
    let att = m.attachments().next().expect("the HTML report is attached");
    assert!(att.attachment_name().unwrap().starts_with("drdrill-report-"));
    let html = String::from_utf8_lossy(att.contents());
    assert!(html.contains("<svg") && html.contains("quickstart"), "attachment is the report");
    let head = ws.sqlite3("SELECT hash FROM evidence ORDER BY seq DESC LIMIT 1");
    assert!(html.contains(&head));
}

#[test]
fn notify_test_reports_delivery() {
    let ws = Workspace::quickstart();
    let to = recipient("test");
    write_config(&ws, smtp_port(), &to, "");
    let out = ws.output(&["notify", "test"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(messages_to(&to, 1).len(), 1);
}

#[test]
fn starttls_with_a_private_ca() {
    let ws = Workspace::quickstart();
    let to = recipient("tls");
    let port: u16 = env("DRDRILL_TEST_SMTP_TLS_PORT").parse().unwrap();
    let ca = env("DRDRILL_TEST_SMTP_CA");
    ws.write_config(&
        format!(
            "[notify]\nsmtp_host = \"localhost\"\nsmtp_port = {port}\nsecurity = \"starttls\"\nca_file = {ca:?}\nfrom = \"dr@example.com\"\nto = [\"{to}\"]\n"
        ),
    );
    let out = ws.output(&["notify", "test"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(messages_in("DRDRILL_TEST_MAILDIR_TLS", &to, 1).len(), 1);

    // Without the private CA the server's certificate is not trusted: refused, named.
    let text = std::fs::read_to_string(ws.path().join("config/drdrill.toml")).unwrap();
    ws.write_config(&text.lines().filter(|l| !l.starts_with("ca_file")).collect::<Vec<_>>().join("\n"));
    let out = ws.output(&["notify", "test"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("localhost:{port}")), "{}", stderr(&out));
}

#[test]
fn the_smtp_password_never_reaches_output_or_the_database() {
    let ws = Workspace::quickstart();
    let to = recipient("secret");
    // The plain sink offers no AUTH, so the login fails: the error must not echo the password.
    write_config(&ws, smtp_port(), &to, "username = \"dr\"\npassword_file = \"pw\"\n");
    std::fs::write(ws.path().join("pw"), "s3cret-Pa55word\n").unwrap();
    ws.set_rto_target("1ms");
    let out = ws.output(&["-v", "run", "quickstart"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("s3cret") && !stdout(&out).contains("s3cret"));
    for file in ["drdrill.db", "drdrill.db-wal"] {
        let bytes = std::fs::read(ws.path().join("var").join(file)).unwrap_or_default();
        assert!(!bytes.windows(6).any(|x| x == b"s3cret"), "password found in {file}");
    }
    assert_eq!(ws.sqlite3("SELECT count(*) FROM outbox"), "1", "the alert was queued");
}

#[test]
fn a_dead_mail_server_neither_fails_nor_slows_a_drill_and_mail_is_retried() {
    let ws = Workspace::quickstart();
    let to = recipient("dead");
    // A port nobody listens on.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    write_config(&ws, dead, &to, "");
    ws.set_rto_target("1ms");
    let t = Instant::now();
    let out = ws.output(&["run", "quickstart"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "the drill's own result, not a mail error: {}", stderr(&out));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let (count, err) = pending_outbox(&ws).split_once('|').map(|(a, b)| (a.to_string(), b.to_string())).unwrap();
    assert_eq!(count, "1", "the alert is queued");
    assert!(err.contains(&dead.to_string()), "the error is kept: {err}");
    assert!(stderr(&out).contains("will retry"), "{}", stderr(&out));
    let ev = ws.output(&["evidence", "verify"]);
    assert_eq!(ev.status.code(), Some(0), "the run is recorded: {}", stdout(&ev));
    // A second failed run while the server is still dead: two alerts queued,
    // and the run still returns its own result promptly.
    let t = Instant::now();
    assert_eq!(ws.output(&["run", "quickstart"]).status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(pending_outbox(&ws).starts_with("2|"), "{}", pending_outbox(&ws));

    // The server is back: the queued alert goes out.
    write_config(&ws, smtp_port(), &to, "");
    let out = ws.output(&["notify", "flush"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("2 sent, 0 failed, 0 still queued"), "{}", stdout(&out));
    assert_eq!(messages_to(&to, 2).len(), 2);
}

#[test]
fn a_silent_mail_server_is_cut_off_by_the_timeout() {
    let ws = Workspace::quickstart();
    let to = recipient("silent");
    // Accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    write_config(&ws, port, &to, "timeout = \"1s\"\n");
    ws.set_rto_target("1ms");
    let t = Instant::now();
    let out = ws.output(&["run", "quickstart"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < Duration::from_secs(8), "the 1s mail timeout bounds the wait; took {took:?}");
    assert!(pending_outbox(&ws).starts_with("1|"), "{}", pending_outbox(&ws));
    // The RTO was measured before any mail was attempted.
    let rto: f64 = ws.sqlite3("SELECT value_ms FROM measurements WHERE run_id = 1 AND name = 'rto'").parse().unwrap();
    assert!(rto < 1000.0, "rto {rto}ms");
}

#[test]
fn plain_smtp_to_a_remote_host_is_refused_at_load() {
    let ws = Workspace::quickstart();
    ws.write_config(
        "[notify]\nsmtp_host = \"mail.example.com\"\nsecurity = \"plain\"\nfrom = \"dr@example.com\"\nto = [\"ops@example.com\"]\n",
    );
    let out = ws.output(&["notify", "test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("config/drdrill.toml:1:1") && stderr(&out).contains("loopback"), "{}", stderr(&out));
}
