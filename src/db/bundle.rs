//! Evidence bundles: what `drdrill evidence export` writes so an auditor can
//! check the evidence with standard tools alone.
//!
//! ```text
//! DIR/statement.json       canonical JSON: the period, each node's key, its records and signed head
//! DIR/statement.json.sig   SSHSIG of statement.json, namespace drdrill-evidence (ssh-keygen -Y verify)
//! DIR/allowed_signers      each node's public key as an OpenSSH allowed_signers line
//! DIR/SHA256SUMS           sha256sum -c checks the three files above
//! ```
//!
//! The statement is compact JSON of structs with a fixed field order and only
//! strings, integers, booleans and nulls, so it has one spelling; the
//! signature covers its bytes as written. An auditor should compare
//! `allowed_signers` with the key the node showed them (`drdrill evidence key`)
//! rather than trust the copy in the bundle.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::Db;
use super::evidence::{ChainEntry, EvidenceRecord, GENESIS, verify_exported};
use super::signing::{NAMESPACE, NodeKey, NodePublic, head_message, record_message};
use crate::hashing::sha256_hex;

pub const STATEMENT: &str = "statement.json";
pub const SIGNATURE: &str = "statement.json.sig";
pub const ALLOWED_SIGNERS: &str = "allowed_signers";
pub const SUMS: &str = "SHA256SUMS";
/// Bumped if the statement's fields ever change.
pub const STATEMENT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub format: u32,
    /// Always [`NAMESPACE`]: what the signature's namespace must be.
    pub namespace: String,
    pub generated_at: String,
    /// The node whose key signed the statement.
    pub generated_by: String,
    pub drdrill_version: String,
    pub period: Period,
    pub nodes: Vec<NodeStatement>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Runs started at or after this; `null` for the whole history.
    pub since: Option<String>,
    pub until: String,
}

/// One node's chain: from the first record of the period to its head.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeStatement {
    pub node: String,
    /// `ssh-ed25519 AAAA...`
    pub public_key: String,
    pub fingerprint: String,
    pub head: SignedHead,
    pub records: Vec<SignedEntry>,
}

/// The chain had `count` records, the newest with `hash`; signed by the node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    pub count: i64,
    pub hash: String,
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignedEntry {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    /// The node's signature of [`record_message`]; `null` for a record the
    /// database holds no signature for (verification names it).
    pub signature: Option<String>,
    pub record: EvidenceRecord,
}

impl SignedEntry {
    pub fn entry(&self) -> ChainEntry {
        ChainEntry {
            seq: self.seq,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
            record: self.record.clone(),
        }
    }
}

impl Statement {
    /// The bytes that are signed and written.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement of strings and integers always serializes")
    }
}

/// Every signature the database holds, by record.
fn signatures(db: &Db, from_seq: i64) -> anyhow::Result<BTreeMap<i64, String>> {
    let conn = db.conn();
    let mut stmt = conn.prepare("SELECT seq, signature FROM evidence_signatures WHERE seq >= ?1")?;
    let rows = stmt.query_map([from_seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// This node's chain from the first record of a run started at or after
/// `since` (RFC 3339) to the head, with its signatures and a freshly signed head.
pub fn node_statement(db: &Db, key: &NodeKey, since: Option<&str>) -> anyhow::Result<NodeStatement> {
    let public = key.public();
    let first = db.evidence_entries(since, None)?.first().map(|e| e.seq);
    let records = match first {
        Some(seq) => signed_entries(db, seq)?,
        None => Vec::new(),
    };
    Ok(NodeStatement {
        node: public.node.clone(),
        public_key: public.openssh(),
        fingerprint: public.fingerprint(),
        head: signed_head(db, key)?,
        records,
    })
}

/// The database's head now, signed by `key`.
pub fn signed_head(db: &Db, key: &NodeKey) -> anyhow::Result<SignedHead> {
    let (count, hash) = db.evidence_head()?.unwrap_or((0, GENESIS.to_string()));
    Ok(SignedHead { count, signature: key.sign(&head_message(count, &hash)), hash })
}

/// Every record from `from_seq` on, with its signature.
pub fn signed_entries(db: &Db, from_seq: i64) -> anyhow::Result<Vec<SignedEntry>> {
    let sigs = signatures(db, from_seq)?;
    Ok(db
        .evidence_from_seq(from_seq)?
        .into_iter()
        .map(|e| SignedEntry {
            signature: sigs.get(&e.seq).cloned(),
            seq: e.seq,
            prev_hash: e.prev_hash,
            hash: e.hash,
            record: e.record,
        })
        .collect())
}

/// What one node's part of a statement proved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeVerified {
    pub node: String,
    pub fingerprint: String,
    pub records: usize,
    pub head_count: i64,
    pub head: String,
}

/// Checks one node's chain: links and hashes, every record's signature and
/// the signed head, with the node's key (which must be `trusted`, if given).
pub fn verify_node(n: &NodeStatement, trusted: Option<&NodePublic>) -> Result<NodeVerified, String> {
    let key = NodePublic::from_openssh(&n.node, &n.public_key).map_err(|e| format!("{e:#}"))?;
    if let Some(t) = trusted
        && t.key != key.key
    {
        return Err(format!(
            "its key {} is not the key allowed_signers names for it ({}): the statement was made with another key",
            key.fingerprint(),
            t.fingerprint()
        ));
    }
    let entries: Vec<ChainEntry> = n.records.iter().map(SignedEntry::entry).collect();
    let v = verify_exported(&entries).map_err(|b| b.to_string())?;
    if let Some(first) = n.records.first()
        && first.seq == 1
        && first.prev_hash != GENESIS
    {
        return Err("evidence record #1 does not start from the genesis hash".into());
    }
    for r in &n.records {
        let ok = r.signature.as_deref().is_some_and(|s| key.verifies(&record_message(r.seq, &r.hash), s));
        if !ok {
            let what = if r.signature.is_none() { "has no signature" } else { "has a signature that does not verify" };
            return Err(format!(
                "evidence record #{} (run {}) {what} with key {}: the record's hash was recomputed after an edit, or its signature altered",
                r.seq,
                r.record.run_id,
                key.fingerprint()
            ));
        }
    }
    if let Some(last) = n.records.last()
        && (last.seq != n.head.count || last.hash != n.head.hash)
    {
        return Err(format!(
            "its signed head (record #{} with hash {}) is not its newest record (#{} with hash {}): records were cut or added",
            n.head.count, n.head.hash, last.seq, last.hash
        ));
    }
    if !key.verifies(&head_message(n.head.count, &n.head.hash), &n.head.signature) {
        return Err(format!(
            "its head signature (count {}, hash {}) does not verify with key {}: the head was altered",
            n.head.count,
            n.head.hash,
            key.fingerprint()
        ));
    }
    Ok(NodeVerified {
        node: n.node.clone(),
        fingerprint: key.fingerprint(),
        records: v.records,
        head_count: n.head.count,
        head: n.head.hash.clone(),
    })
}

/// Writes the bundle into `dir` (made if missing), signed by `key`.
pub fn write(dir: &Path, statement: &Statement, key: &NodeKey) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bytes = statement.canonical();
    let sig = key.sshsig(&bytes)?;
    let mut signers = String::new();
    for n in &statement.nodes {
        let public = NodePublic::from_openssh(&n.node, &n.public_key)?;
        signers += &public.allowed_signers_line();
        signers.push('\n');
    }
    if !statement.nodes.iter().any(|n| n.node == key.node()) {
        signers += &key.public().allowed_signers_line();
        signers.push('\n');
    }
    let files: [(&str, &[u8]); 3] =
        [(STATEMENT, &bytes), (SIGNATURE, sig.as_bytes()), (ALLOWED_SIGNERS, signers.as_bytes())];
    let mut sums = String::new();
    for (name, content) in files {
        write_file(&dir.join(name), content)?;
        sums += &format!("{}  {name}\n", sha256_hex(content));
    }
    write_file(&dir.join(SUMS), sums.as_bytes())
}

/// Written beside and renamed, so a reader never sees half a file.
fn write_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    std::fs::write(&tmp, content).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleOk {
    pub signed_by: String,
    pub period: Period,
    pub nodes: Vec<NodeVerified>,
}

/// What was found altered in a bundle, naming the file (and node and record).
#[derive(Debug, Clone, PartialEq)]
pub struct Altered(pub String);

impl fmt::Display for Altered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads an `allowed_signers` file: principal(s), options, key.
pub fn parse_allowed_signers(text: &str) -> Vec<NodePublic> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        let Some(principals) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        let Some(at) = rest.iter().position(|w| w.starts_with("ssh-")) else { continue };
        let key = rest[at..].join(" ");
        for p in principals.split(',') {
            if let Ok(k) = NodePublic::from_openssh(p, &key) {
                out.push(k);
            }
        }
    }
    out
}

/// Checks a bundle as an auditor's tools would, and more: every file against
/// SHA256SUMS, the statement's SSHSIG with a key from `allowed_signers` (the
/// bundle's own unless `signers` names another file), then each node's chain,
/// record signatures and signed head.
pub fn verify(dir: &Path, signers: Option<&Path>) -> anyhow::Result<Result<BundleOk, Altered>> {
    let read = |name: &str| std::fs::read(dir.join(name));
    let altered = |why: String| Ok(Err(Altered(why)));
    let sums = match read(SUMS) {
        Ok(s) => String::from_utf8_lossy(&s).into_owned(),
        Err(e) => {
            return altered(format!(
                "{SUMS} cannot be read ({e}): this is not a drdrill evidence bundle, or it is incomplete"
            ));
        }
    };
    let mut listed = Vec::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let Some((want, name)) = line.split_once("  ") else {
            return altered(format!("{SUMS} has a line that is not `<sha256>  <file>`: {line:?}"));
        };
        let name = name.trim();
        let got = match read(name) {
            Ok(b) => sha256_hex(&b),
            Err(_) => return altered(format!("{name}, listed in {SUMS}, is missing from the bundle")),
        };
        if got != want {
            return altered(format!("{name} was altered after export: its sha256 is {got}, {SUMS} says {want}"));
        }
        listed.push(name.to_string());
    }
    for need in [STATEMENT, SIGNATURE] {
        if !listed.iter().any(|n| n == need) {
            return altered(format!("{SUMS} does not list {need}: the bundle was altered"));
        }
    }
    let signers_path = signers.map(Path::to_path_buf).unwrap_or_else(|| dir.join(ALLOWED_SIGNERS));
    let signers_text = std::fs::read_to_string(&signers_path)
        .with_context(|| format!("cannot read the allowed signers {}", signers_path.display()))?;
    let allowed = parse_allowed_signers(&signers_text);
    let statement_bytes = read(STATEMENT).with_context(|| format!("cannot read {STATEMENT}"))?;
    let sig_text =
        String::from_utf8_lossy(&read(SIGNATURE).with_context(|| format!("cannot read {SIGNATURE}"))?).into_owned();
    let mut signed_by = None;
    let mut last_error = format!("no key in {} is for node that signed it", signers_path.display());
    for k in &allowed {
        match k.verify_sshsig(&statement_bytes, &sig_text) {
            Ok(()) => {
                signed_by = Some(k.node.clone());
                break;
            }
            Err(e) => last_error = format!("{e:#}"),
        }
    }
    let Some(signed_by) = signed_by else {
        return altered(format!(
            "{SIGNATURE} does not verify {STATEMENT} with any key in {} ({last_error}): the statement or its signature was altered",
            signers_path.display()
        ));
    };
    let statement: Statement = match serde_json::from_slice(&statement_bytes) {
        Ok(s) => s,
        Err(e) => return altered(format!("{STATEMENT} is not a drdrill statement ({e})")),
    };
    if statement.namespace != NAMESPACE || statement.format != STATEMENT_FORMAT {
        return altered(format!(
            "{STATEMENT} has namespace {:?} and format {}; this drdrill reads {NAMESPACE:?} format {STATEMENT_FORMAT}",
            statement.namespace, statement.format
        ));
    }
    let mut nodes = Vec::new();
    for n in &statement.nodes {
        let Some(trusted) = allowed.iter().find(|k| k.node == n.node) else {
            return altered(format!("{STATEMENT}: node {} has no key in {}", n.node, signers_path.display()));
        };
        match verify_node(n, Some(trusted)) {
            Ok(v) => nodes.push(v),
            Err(why) => return altered(format!("{STATEMENT}: node {}: {why}", n.node)),
        }
    }
    Ok(Ok(BundleOk { signed_by, period: statement.period, nodes }))
}
