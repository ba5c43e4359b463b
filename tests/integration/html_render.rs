//! The HTML report renders in a real browser (Debian's headless Chromium) inside
//! a network namespace with no network at all, and its charts are in the DOM.

use std::process::Command;

use crate::common::{Workspace, env, stderr};

fn chromium(ws: &Workspace, args: &[&str]) -> std::process::Output {
    let browser = env("DRDRILL_TEST_CHROMIUM");
    // `unshare -n`: a fresh network namespace without interfaces, so any fetch fails.
    let out = Command::new("unshare")
        .arg("-n")
        .arg(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .arg(format!("--user-data-dir={}", ws.path().join("chromium-profile").display()))
        .args(args)
        .arg(format!("file://{}", ws.path().join("report.html").display()))
        .output()
        .expect("cannot start unshare/chromium: run scripts/test as root (scripts/services/40-chromium.sh)");
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    out
}

#[test]
fn the_html_report_renders_offline_in_chromium() {
    let ws = Workspace::quickstart();
    assert_eq!(ws.run_quickstart(), 0);
    ws.set_rto_target("1ms");
    assert_eq!(ws.run_quickstart(), 1);
    let out = ws.output(&["report", "--format", "html", "-o", "report.html"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let dom = chromium(&ws, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<svg").count(), 2, "both charts are in the rendered DOM");
    assert!(dom.contains("<polyline") && dom.contains("class=\"target\""), "the trend line and the target are drawn");
    assert!(dom.contains("FAILING"));

    let png = ws.path().join("report.png");
    chromium(&ws, &[&format!("--screenshot={}", png.display()), "--window-size=1280,1400"]);
    let bytes = std::fs::read(&png).expect("a screenshot was written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let (wd, ht) =
        (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()));
    assert_eq!((wd, ht), (1280, 1400));
    // A blank page compresses to a few KB; a rendered report does not.
    assert!(bytes.len() > 30_000, "screenshot is only {} bytes: the page looks empty", bytes.len());
    if let Ok(keep) = std::env::var("DRDRILL_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}
