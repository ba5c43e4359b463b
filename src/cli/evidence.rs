//! `drdrill evidence`: verify the hash chain and its signatures, show the
//! node's public key, export a signed bundle for auditors and verify one.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use drdrill::config::Config;
use drdrill::db::bundle::{self, Period, STATEMENT_FORMAT, Statement};
use drdrill::db::evidence::verify_exported;
use drdrill::db::signing::NAMESPACE;
use drdrill::report::json::Exported;
use drdrill::report::parse_since;

use super::history::open_db;

/// The database with the node's key, which verification and export need.
fn open_signed(config: &Config) -> anyhow::Result<drdrill::db::Db> {
    if !config.database.exists() {
        return open_db(config);
    }
    drdrill::db::Db::open_for(config)
}
use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED};

pub fn cmd_verify(config: Arc<Config>, file: Option<&Path>, json: bool) -> anyhow::Result<u8> {
    let (what, result) = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            let exported: Exported = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a drdrill JSON report (or was edited so it no longer parses): make one with `drdrill report --format json -o FILE`",
                    f.display()
                )
            })?;
            (f.display().to_string(), verify_exported(&exported.evidence))
        }
        None => {
            let db = open_signed(&config)?;
            (config.database.display().to_string(), db.verify_evidence()?)
        }
    };
    if json {
        let view = match &result {
            Ok(v) => serde_json::json!({
                "source": what, "ok": true, "records": v.records, "anchor": v.anchor, "head": v.head,
                "logged": v.logged, "broken": null,
            }),
            Err(b) => serde_json::json!({
                "source": what, "ok": false, "records": null, "anchor": null, "head": null, "logged": null,
                "broken": { "seq": b.seq, "run_id": b.run_id, "problem": b.problem, "text": b.to_string() },
            }),
        };
        super::print_json(&view)?;
        return Ok(if result.is_ok() { EXIT_PASSED } else { EXIT_FAILED });
    }
    match result {
        Ok(v) => {
            println!("evidence chain in {what}: OK, {} record(s)", v.records);
            if v.anchor != drdrill::db::evidence::GENESIS {
                println!("  starts after an earlier record with hash {} (an exported slice)", v.anchor);
            }
            println!("  head {}", v.head);
            if let Some(s) = &v.signatures {
                println!(
                    "  every record is signed by {} ({}); {} signed head(s) in the head log verify",
                    s.node, s.fingerprint, s.heads
                );
                if s.signed_at_start > 0 {
                    println!(
                        "  records #1 to #{} predate signing and were signed when it started, at {}",
                        s.signed_at_start, s.started_at
                    );
                }
            }
            if let Some(seq) = v.logged {
                println!("  the head log beside the database agrees, up to record #{seq}");
            }
            Ok(EXIT_PASSED)
        }
        Err(b) => {
            println!("evidence chain in {what}: BROKEN at {b}");
            Ok(EXIT_FAILED)
        }
    }
}

/// `drdrill evidence key`: the node's public key, for auditors.
pub fn cmd_key(config: Arc<Config>, form: Option<&str>) -> anyhow::Result<u8> {
    let path = config.evidence.key_path(&config.database);
    let (key, created) = drdrill::db::signing::NodeKey::load_or_create(&path, &config.node())?;
    if created {
        eprintln!("created the evidence signing key {} (mode 0600); back it up", path.display());
    }
    let public = key.public();
    match form {
        Some("allowed-signers") => println!("{}", public.allowed_signers_line()),
        Some("minisign") => print!("{}", public.minisign()),
        Some("openssh") => println!("{}", public.openssh()),
        Some(other) => {
            eprintln!("error: --format {other:?} is not one of allowed-signers, minisign, openssh");
            return Ok(EXIT_BAD_INPUT);
        }
        None => {
            println!("# node {} key {} ({})", public.node, public.fingerprint(), path.display());
            println!(
                "# OpenSSH allowed_signers line: ssh-keygen -Y verify -f allowed_signers -I {} -n {NAMESPACE} -s statement.json.sig < statement.json",
                public.node
            );
            println!("{}", public.allowed_signers_line());
            println!("# minisign public key (minisign -V -p FILE):");
            print!("{}", public.minisign());
        }
    }
    Ok(EXIT_PASSED)
}

/// `drdrill evidence export --since 1y -o DIR`: a signed bundle.
pub fn cmd_export(config: Arc<Config>, since: &str, dir: &Path) -> anyhow::Result<u8> {
    let now = Utc::now();
    let since = match parse_since(since, now) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let db = open_signed(&config)?;
    let key = db.key().context("the results database has no signing key")?;
    // A bundle vouches for the chain: a broken one is not exported as if whole.
    if let Err(b) = db.verify_evidence()? {
        eprintln!("error: the evidence chain in {} is BROKEN at {b}; nothing was exported", config.database.display());
        return Ok(EXIT_FAILED);
    }
    let since_text = drdrill::db::ts(since);
    let node = bundle::node_statement(&db, key, Some(&since_text))?;
    let statement = Statement {
        format: STATEMENT_FORMAT,
        namespace: NAMESPACE.into(),
        generated_at: drdrill::db::ts(now),
        generated_by: key.node().into(),
        drdrill_version: drdrill::VERSION.into(),
        period: Period { since: Some(since_text), until: drdrill::db::ts(now) },
        nodes: vec![node],
    };
    bundle::write(dir, &statement, key)?;
    let records: usize = statement.nodes.iter().map(|n| n.records.len()).sum();
    eprintln!(
        "wrote {} ({records} record(s) of node {}, signed with {}); verify with:\n  cd {} && sha256sum -c SHA256SUMS && ssh-keygen -Y verify -f allowed_signers -I {} -n {NAMESPACE} -s statement.json.sig < statement.json",
        dir.display(),
        key.node(),
        key.public().fingerprint(),
        dir.display(),
        key.node()
    );
    Ok(EXIT_PASSED)
}

/// `drdrill evidence verify --bundle DIR`.
pub fn cmd_verify_bundle(dir: &Path, signers: Option<&Path>) -> anyhow::Result<u8> {
    match bundle::verify(dir, signers)? {
        Ok(ok) => {
            println!(
                "evidence bundle {}: OK, signed by {}, period {} to {}",
                dir.display(),
                ok.signed_by,
                ok.period.since.as_deref().unwrap_or("the beginning"),
                ok.period.until
            );
            for n in &ok.nodes {
                println!(
                    "  node {} ({}): {} record(s), every one signed; signed head: {} record(s), hash {}",
                    n.node, n.fingerprint, n.records, n.head_count, n.head
                );
            }
            Ok(EXIT_PASSED)
        }
        Err(altered) => {
            println!("evidence bundle {}: BROKEN: {altered}", dir.display());
            Ok(EXIT_FAILED)
        }
    }
}
