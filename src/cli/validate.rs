//! `drdrill validate [PATH...]`: every problem as file:line:col with its fix.

use std::path::PathBuf;

use drdrill::config::Config;
use drdrill::plan::{self, Plan};

use super::{EXIT_BAD_INPUT, EXIT_PASSED};

pub fn cmd_validate(config: &Config, paths: Vec<PathBuf>) -> anyhow::Result<u8> {
    let paths = if paths.is_empty() { plan::plan_files(&config.plans)? } else { paths };
    if paths.is_empty() {
        eprintln!("no plans found in {}", config.plans.display());
        return Ok(EXIT_BAD_INPUT);
    }
    let mut bad = 0;
    let mut names = std::collections::HashMap::<String, PathBuf>::new();
    for path in &paths {
        match Plan::load(path, config) {
            Ok(p) => {
                if let Some(other) = names.insert(p.name.clone(), path.clone()) {
                    println!(
                        "{}:1:1: plan name `{}` is also used by {}\n  fix: set a unique `name`",
                        path.display(),
                        p.name,
                        other.display()
                    );
                    bad += 1;
                    continue;
                }
                println!("ok {} ({})", path.display(), p.name);
                // Warnings, not errors: the plan may be meant for another host.
                if let Some(live) = p.source.live_path()
                    && std::fs::symlink_metadata(live).is_err()
                {
                    println!(
                        "   warning: source path {} does not exist on this host; a run here would fail at prepare",
                        live.display()
                    );
                }
                // The allowlist is the host's config, too.
                if let Err(refused) = p.guard_check(&drdrill::failure::Guard::new(config)) {
                    println!("   warning: with this config, {}", refused.to_string().replace('\n', "\n   "));
                }
                if let Some(s) = &p.schedule {
                    let tz = config.daemon.timezone.0;
                    let next: Vec<String> = s
                        .next_after_in(chrono::Utc::now(), tz, 3)
                        .iter()
                        .map(|t| t.with_timezone(&tz).to_rfc3339())
                        .collect();
                    let rule = if s.fires_on_either_day() { ", on either day field (crontab's rule)" } else { "" };
                    println!("   schedule {:?} ({tz}{rule}) next: {}", s.text, next.join(", "));
                }
            }
            Err(d) => {
                println!("{d}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        println!("{bad} of {} plans have problems", paths.len());
        Ok(EXIT_BAD_INPUT)
    } else {
        Ok(EXIT_PASSED)
    }
}
