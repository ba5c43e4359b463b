//! `drdrill backups list|verify`: what a store holds, and whether it is intact.

use std::sync::Arc;

use anyhow::Context;
use drdrill::backup::scrub_backup;
use drdrill::cancel::Cancel;
use drdrill::config::Config;
use drdrill::store::{Listing, Store};

use super::{EXIT_FAILED, EXIT_PASSED};

/// The store to look in: `--store`, else the plan's store, else `local`.
fn pick_store(config: &Config, plan: Option<&str>, store: Option<&str>) -> anyhow::Result<Store> {
    let name = match (store, plan) {
        (Some(s), _) => s.to_string(),
        (None, Some(p)) => {
            let path = drdrill::plan::find(p, config)?;
            let plan = drdrill::plan::Plan::load(&path, config).map_err(|d| anyhow::anyhow!("{d}"))?;
            plan.store_name().to_string()
        }
        (None, None) => "local".into(),
    };
    let spec = config.stores.get(&name).with_context(|| {
        format!(
            "store `{name}` is not configured in {}: use one of {}",
            config.origin(),
            config.store_names().join(", ")
        )
    })?;
    Store::open(&name, spec.as_ref())
}

/// The plan's folder name in the store (its `name`, which may differ from the file).
fn plan_name(config: &Config, plan: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(p) = plan else { return Ok(None) };
    match drdrill::plan::find(p, config) {
        Ok(path) => match drdrill::plan::Plan::load(&path, config) {
            Ok(plan) => Ok(Some(plan.name)),
            Err(d) => Err(anyhow::anyhow!("{d}")),
        },
        // A plan file that is gone may still have backups under its name.
        Err(_) => Ok(Some(p.to_string())),
    }
}

pub async fn cmd_list(config: Arc<Config>, plan: Option<&str>, store: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let st = pick_store(&config, plan, store)?;
    let name = plan_name(&config, plan)?;
    let listing = st.list(name.as_deref()).await?;
    if json {
        let rows: Vec<_> = listing.iter().map(row_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(EXIT_PASSED);
    }
    println!("store `{}` ({})", st.name, st.describe);
    if listing.is_empty() {
        println!("no backups{}", name.map(|p| format!(" of plan {p}")).unwrap_or_default());
        return Ok(EXIT_PASSED);
    }
    println!("{:<20}  {:<30}  {:<25}  {:>12}  {:<64}  state", "plan", "backup", "created", "size", "sha256");
    for l in &listing {
        let (created, size, sha, state) = match &l.manifest {
            Some(m) => (
                m.created_at.to_rfc3339(),
                m.payload.size,
                m.payload.sha256.clone(),
                match m.integrity_note() {
                    Some(n) => format!("complete; note: {n}"),
                    None => "complete".to_string(),
                },
            ),
            None => (
                "-".into(),
                l.stored_bytes,
                "-".into(),
                match &l.manifest_error {
                    Some(e) => format!("damaged manifest: {}", drdrill::redact::scrub(e)),
                    None => "incomplete (no manifest)".into(),
                },
            ),
        };
        println!("{:<20}  {:<30}  {created:<25}  {size:>12}  {sha:<64}  {state}", l.plan, l.backup_id);
    }
    Ok(EXIT_PASSED)
}

fn row_json(l: &Listing) -> serde_json::Value {
    serde_json::json!({
        "plan": l.plan,
        "backup_id": l.backup_id,
        "complete": l.is_complete(),
        "created_at": l.manifest.as_ref().map(|m| m.created_at),
        "size": l.manifest.as_ref().map_or(l.stored_bytes, |m| m.payload.size),
        "sha256": l.manifest.as_ref().map(|m| m.payload.sha256.clone()),
        "manifest_error": l.manifest_error.as_deref().map(drdrill::redact::scrub),
        "note": l.manifest.as_ref().and_then(|m| m.integrity_note()),
        "skipped": l.manifest.as_ref().map(|m| m.skipped.clone()).unwrap_or_default(),
    })
}

/// Scrubs every complete backup ([`scrub_backup`]) and prints what it proved.
pub async fn cmd_verify(
    config: Arc<Config>,
    plan: Option<&str>,
    store: Option<&str>,
    json: bool,
) -> anyhow::Result<u8> {
    let st = pick_store(&config, plan, store)?;
    let name = plan_name(&config, plan)?;
    let listing = st.list(name.as_deref()).await?;
    let (mut good, mut bad, mut incomplete) = (0, 0, 0);
    let mut rows = Vec::new();
    for l in listing {
        let id = format!("{}/{}", l.plan, l.backup_id);
        let mut row = serde_json::json!({ "plan": l.plan, "backup_id": l.backup_id });
        let Some(m) = l.manifest else {
            if let Some(e) = &l.manifest_error {
                let e = drdrill::redact::scrub(e).into_owned();
                row["state"] = "bad".into();
                row["error"] = e.clone().into();
                if !json {
                    println!("BAD  {id}: {e}");
                }
                bad += 1;
            } else {
                row["state"] = "incomplete".into();
                if !json {
                    println!("skip {id}: incomplete (no manifest), never restored");
                }
                incomplete += 1;
            }
            rows.push(row);
            continue;
        };
        let m = Arc::new(m);
        match scrub_backup(&st, &m, Cancel::new()).await {
            Ok(r) => {
                let walked = match &r.walked {
                    Some(w) => {
                        format!("; all {} entries ({} files, {} bytes) match the manifest", w.entries, w.files, w.bytes)
                    }
                    None => format!(
                        "; payload hash only: a `{}` payload has no entries to check against the manifest",
                        m.payload.format
                    ),
                };
                let note = m.integrity_note().map(|n| format!("; note: {n}")).unwrap_or_default();
                row["state"] = "ok".into();
                row["sha256"] = r.sha256.clone().into();
                row["size"] = r.size.into();
                row["entries"] = r.walked.as_ref().map(|w| w.entries).into();
                row["files"] = r.walked.as_ref().map(|w| w.files).into();
                row["note"] = m.integrity_note().into();
                if !json {
                    println!("ok   {id}: sha256 {} ({} bytes){walked}{note}", r.sha256, r.size);
                }
                good += 1;
            }
            Err(e) => {
                let e = drdrill::errors::explain(&e);
                row["state"] = "bad".into();
                row["error"] = e.clone().into();
                if !json {
                    println!("BAD  {id}: {e}");
                }
                bad += 1;
            }
        }
        rows.push(row);
    }
    if json {
        super::print_json(&serde_json::json!({
            "store": st.name, "intact": good, "bad": bad, "incomplete": incomplete, "backups": rows,
        }))?;
    } else {
        println!("{good} intact, {bad} bad, {incomplete} incomplete in store `{}`", st.name);
    }
    Ok(if bad > 0 { EXIT_FAILED } else { EXIT_PASSED })
}
