//! What fleet mode adds to a run: the claim (a create-only write), the
//! renewals and fencing checks (writes with If-Match) and the result (a
//! create-only write), against the moto S3 server of scripts/services/20-s3.sh.
//! Run with:
//!
//!     source /tmp/devsvc.env   # or under scripts/test
//!     cargo bench --bench fleet
//!
//! Each firing does what a short drill with one destructive failure does: the
//! claim, one renewal, the fence check before the failure and before recording,
//! and the result (with its own last check). `BENCH_FIRINGS` sets how many
//! firings are timed (default 50); the median and the worst are printed
//! against the 100 ms budget.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use drdrill::config::Config;
use drdrill::fleet::Fleet;
use drdrill::fleet::claim::{self, Claimed, Firing};

const BUDGET: Duration = Duration::from_millis(100);

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run under scripts/test or `source /tmp/devsvc.env`"))
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    // `cargo test --all-targets` runs this without `--bench`: two firings prove the harness.
    let firings: usize =
        if bench { std::env::var("BENCH_FIRINGS").ok().and_then(|v| v.parse().ok()).unwrap_or(50) } else { 2 };
    // SAFETY: set before the runtime starts any thread.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", env("DRDRILL_TEST_S3_ACCESS_KEY_ID"));
        std::env::set_var("AWS_SECRET_ACCESS_KEY", env("DRDRILL_TEST_S3_SECRET_ACCESS_KEY"));
    }
    let text = format!(
        "[stores.s3]\nkind = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\n[fleet]\nstore = \"s3\"\nnode = \"bench-{}\"\nlease = \"1m\"\n",
        env("DRDRILL_TEST_S3_BUCKET"),
        env("DRDRILL_TEST_S3_ENDPOINT"),
        std::process::id()
    );
    let config = Config::parse(Path::new("bench.toml"), &text).unwrap_or_else(|d| panic!("{d}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut times = rt.block_on(async {
        // Unprobed: the shared moto's threaded server is not atomic under
        // concurrent load (tests/integration/fleet.rs), and this times one node alone.
        let fleet = Arc::new(Fleet::open_unprobed(&config, config.fleet.as_ref().unwrap()).unwrap());
        let plan = format!("bench-{}-{}", std::process::id(), Utc::now().timestamp_millis());
        let start = Utc::now();
        let mut times = Vec::new();
        for i in 0..firings {
            let firing = Firing { plan: plan.clone(), at: start + TimeDelta::seconds(i as i64) };
            let t = Instant::now();
            let Claimed::Won(held) = claim::claim(&fleet, firing).await.unwrap() else {
                panic!("a fresh firing was not won")
            };
            held.renew().await.unwrap();
            held.check("failure #1").await.unwrap();
            held.check("recording the run").await.unwrap();
            held.finish(i as i64, "passed", None).await.unwrap();
            times.push(t.elapsed());
        }
        times
    });
    times.sort();
    let median = times[times.len() / 2];
    let worst = *times.last().unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "fleet bench{}: {firings} firing(s), claim + renew + 2 fence checks + result: median {:.1} ms, worst {:.1} ms per run (budget {} ms): {}",
        if bench { "" } else { " smoke run" },
        ms(median),
        ms(worst),
        BUDGET.as_millis(),
        if median < BUDGET { "within" } else { "OVER" }
    );
}
