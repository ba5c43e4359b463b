//! Signed evidence: each node's Ed25519 key signs every record's hash and, in
//! the head log, the chain's head with its count.
//!
//! A hash chain alone proves only that records agree with each other: whoever
//! can write the database can edit a run and recompute every later hash. A
//! signature over each hash needs the node's private key, which the database's
//! editors do not have, so a recomputed chain no longer verifies, and a signed
//! head with its count shows how long the chain was when it was signed.
//!
//! The key is an unencrypted OpenSSH private key (mode 0600, created on first
//! use, refused if group or other can read it), so standard tools read it too:
//! `ssh-keygen -y -f KEY` prints its public half. Records are signed with
//! plain Ed25519 over a short text naming what is signed (below); bundles are
//! signed as SSHSIG, which `ssh-keygen -Y verify` checks.
//!
//! Records that existed before signing (a database from an older drdrill) are
//! signed once, when signing starts, and the database remembers from which
//! record on signatures were made as the records were written
//! (`evidence_signing`). After that, a record without a valid signature is a break.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::{Signer, Verifier};
use rusqlite::{Connection, OptionalExtension, params};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::evidence::Break;
use super::headlog::HeadLine;
use crate::hashing::sha256_hex;

/// The SSHSIG namespace of every drdrill signature: `ssh-keygen -Y verify -n drdrill-evidence`.
pub const NAMESPACE: &str = "drdrill-evidence";

/// The text a record's signature covers.
pub fn record_message(seq: i64, hash: &str) -> String {
    format!("{NAMESPACE} record\nseq {seq}\nhash {hash}\n")
}

/// The text a head's signature covers: the chain had `count` records, the newest with `hash`.
pub fn head_message(count: i64, hash: &str) -> String {
    format!("{NAMESPACE} head\ncount {count}\nhash {hash}\n")
}

/// A node's signing key. Its Debug shows only the public half.
pub struct NodeKey {
    node: String,
    path: PathBuf,
    private: PrivateKey,
    signing: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({} {} at {})", self.node, self.public().fingerprint(), self.path.display())
    }
}

impl NodeKey {
    /// Reads the key at `path`, creating it (mode 0600) if missing. Returns
    /// whether it was created. A key file any group or other bit allows to be
    /// read or changed is refused: whoever has the key can sign forged evidence.
    pub fn load_or_create(path: &Path, node: &str) -> anyhow::Result<(NodeKey, bool)> {
        match fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                anyhow::ensure!(
                    mode & 0o077 == 0,
                    "evidence signing key {} has mode {mode:04o}, so users other than its owner can read or change it, and whoever holds it can sign forged evidence: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
                Ok((Self::read(path, node)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::create(path, node)?, true)),
            Err(e) => Err(e).with_context(|| format!("cannot read evidence signing key {}", path.display())),
        }
    }

    fn read(path: &Path, node: &str) -> anyhow::Result<NodeKey> {
        let text = fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read evidence signing key {} ([evidence] key_file): run as the drdrill user",
                path.display()
            )
        })?;
        let private = PrivateKey::from_openssh(text.trim_start()).map_err(|e| {
            anyhow::anyhow!(
                "evidence signing key {} is not an OpenSSH private key ({e}): restore it from its backup; a new key cannot vouch for records the old one signed",
                path.display()
            )
        })?;
        let Some(pair) = private.key_data().ed25519() else {
            anyhow::bail!(
                "evidence signing key {} is a {} key; drdrill signs with Ed25519 only",
                path.display(),
                private.algorithm()
            );
        };
        anyhow::ensure!(
            !private.is_encrypted(),
            "evidence signing key {} is encrypted: drdrill needs it unencrypted (mode 0600 protects it)",
            path.display()
        );
        let signing = ed25519_dalek::SigningKey::from(&pair.private);
        Ok(NodeKey { node: node.into(), path: path.into(), private, signing })
    }

    fn create(path: &Path, node: &str) -> anyhow::Result<NodeKey> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {} for the evidence signing key", parent.display()))?;
        }
        let mut seed = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .context("cannot read /dev/urandom for the evidence signing key")?;
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
        let mut private = PrivateKey::from(pair);
        private.set_comment(format!("{NAMESPACE}@{node}"));
        let text = private.to_openssh(LineEnding::LF).context("cannot encode the evidence signing key")?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create evidence signing key {}", path.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write evidence signing key {}", path.display()))?;
        let key = Self::read(path, node)?;
        tracing::info!(
            "created evidence signing key {} (mode 0600, public key {}): back it up; `drdrill evidence key` shows the public key for auditors",
            path.display(),
            key.public().fingerprint()
        );
        Ok(key)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn public(&self) -> NodePublic {
        NodePublic { node: self.node.clone(), key: self.signing.verifying_key() }
    }

    /// Hex Ed25519 signature of `message`.
    pub fn sign(&self, message: &str) -> String {
        hex::encode(self.signing.sign(message.as_bytes()).to_bytes())
    }

    /// An armored SSHSIG of `data` in [`NAMESPACE`], as `ssh-keygen -Y sign` writes.
    pub fn sshsig(&self, data: &[u8]) -> anyhow::Result<String> {
        let sig = self.private.sign(NAMESPACE, HashAlg::Sha512, data).context("cannot make the SSH signature")?;
        sig.to_pem(LineEnding::LF).context("cannot encode the SSH signature")
    }
}

/// A node's public key, with the node's name.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePublic {
    pub node: String,
    pub key: ed25519_dalek::VerifyingKey,
}

impl NodePublic {
    /// Reads `ssh-ed25519 AAAA... [comment]`.
    pub fn from_openssh(node: &str, text: &str) -> anyhow::Result<NodePublic> {
        let key = PublicKey::from_openssh(text.trim())
            .map_err(|e| anyhow::anyhow!("{text:?} is not an OpenSSH public key: {e}"))?;
        let ed = key.key_data().ed25519().with_context(|| format!("the key of {node} is not an Ed25519 key"))?;
        let key = ed25519_dalek::VerifyingKey::try_from(ed).map_err(|e| anyhow::anyhow!("the key of {node}: {e}"))?;
        Ok(NodePublic { node: node.into(), key })
    }

    fn ssh(&self) -> PublicKey {
        let mut k = PublicKey::from(ssh_key::public::Ed25519PublicKey::from(&self.key));
        k.set_comment(format!("{NAMESPACE}@{}", self.node));
        k
    }

    /// `ssh-ed25519 AAAA... drdrill-evidence@node`.
    pub fn openssh(&self) -> String {
        self.ssh().to_openssh().expect("an Ed25519 public key always encodes")
    }

    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.ssh().fingerprint(HashAlg::Sha256).to_string()
    }

    /// One line of an OpenSSH `allowed_signers` file for this node.
    pub fn allowed_signers_line(&self) -> String {
        format!("{} namespaces=\"{NAMESPACE}\" {}", self.node, self.openssh())
    }

    /// The key as minisign writes a public key file (`minisign -V -p FILE`):
    /// `Ed`, an 8-byte key id (here the start of the key's sha256), the key.
    pub fn minisign(&self) -> String {
        use base64ct::Encoding;
        let id: [u8; 8] =
            hex::decode(&sha256_hex(self.key.as_bytes())[..16]).unwrap_or_default().try_into().unwrap_or_default();
        let mut bytes = b"Ed".to_vec();
        bytes.extend_from_slice(&id);
        bytes.extend_from_slice(self.key.as_bytes());
        let shown = u64::from_le_bytes(id);
        format!("untrusted comment: minisign public key {shown:016X}\n{}\n", base64ct::Base64::encode_string(&bytes))
    }

    /// Whether `signature` (hex) is this key's signature of `message`.
    pub fn verifies(&self, message: &str, signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else { return false };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else { return false };
        self.key.verify(message.as_bytes(), &sig).is_ok()
    }

    /// Checks an armored SSHSIG of `data` in [`NAMESPACE`] made by this key.
    pub fn verify_sshsig(&self, data: &[u8], armored: &str) -> anyhow::Result<()> {
        let sig = SshSig::from_pem(armored.trim()).map_err(|e| anyhow::anyhow!("not an SSH signature: {e}"))?;
        anyhow::ensure!(
            sig.namespace() == NAMESPACE,
            "it is a signature for namespace {:?}, not {NAMESPACE:?}",
            sig.namespace()
        );
        let key = self.ssh();
        anyhow::ensure!(
            sig.public_key() == key.key_data(),
            "it was made by key {}, not by {}'s key {}",
            sig.public_key().fingerprint(HashAlg::Sha256),
            self.node,
            self.fingerprint()
        );
        key.verify(NAMESPACE, data, &sig).map_err(|_| anyhow::anyhow!("the signature does not match the data"))
    }
}

/// Stores the signature of a record just appended (inside its transaction).
pub fn sign_record(conn: &Connection, key: &NodeKey, seq: i64, hash: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO evidence_signatures (seq, key, signature) VALUES (?1, ?2, ?3)",
        params![seq, key.public().fingerprint(), key.sign(&record_message(seq, hash))],
    )?;
    Ok(())
}

/// When signing started, and from which record on records were signed as they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct Signing {
    pub started_at: String,
    pub key: String,
    /// Records up to this one existed before signing and were signed when it started.
    pub upto_seq: i64,
}

pub fn started(conn: &Connection) -> rusqlite::Result<Option<Signing>> {
    conn.query_row("SELECT started_at, key, from_seq FROM evidence_signing WHERE id = 1", [], |r| {
        Ok(Signing { started_at: r.get(0)?, key: r.get(1)?, upto_seq: r.get(2)? })
    })
    .optional()
}

/// Starts signing in a database that does not sign yet: every record it holds
/// is signed now, once. Returns how many were. Never again afterwards, so a
/// record whose signature is removed later stays unsigned, for verification to name.
pub fn ensure_started(conn: &mut Connection, key: &NodeKey) -> anyhow::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if started(&tx)?.is_some() {
        return Ok(0);
    }
    let rows: Vec<(i64, String)> = tx
        .prepare(
            "SELECT seq, hash FROM evidence e WHERE NOT EXISTS (SELECT 1 FROM evidence_signatures s WHERE s.seq = e.seq)
             ORDER BY seq",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (seq, hash) in &rows {
        sign_record(&tx, key, *seq, hash)?;
    }
    let upto: i64 = tx.query_row("SELECT coalesce(max(seq), 0) FROM evidence", [], |r| r.get(0))?;
    tx.execute(
        "INSERT INTO evidence_signing (id, started_at, key, from_seq) VALUES (1, ?1, ?2, ?3)",
        params![super::ts(chrono::Utc::now()), key.public().fingerprint(), upto],
    )?;
    tx.commit()?;
    Ok(rows.len())
}

/// What signature verification covered.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SignaturesOk {
    pub node: String,
    pub fingerprint: String,
    pub records: usize,
    /// Signed heads in the head log that verified.
    pub heads: usize,
    /// Records that predate signing and were signed when it started.
    pub signed_at_start: i64,
    pub started_at: String,
}

/// Checks that every record has a signature by `key` over its hash, and that
/// every signed head in the head log verifies. The chain is already verified.
/// `None` when signing never started here.
///
/// The records and the log are read one at a time while the signatures are
/// checked on every core; the problem named is the first in chain (and log)
/// order, as a walk one by one would find.
///
/// With [`Depth::Head`], every record must still carry a signature by this
/// key, but only the newest record's and the newest signed head's are checked
/// cryptographically: the verified links make the newest hash vouch for every
/// record before it, so a chain recomputed after an edit still fails, at a
/// cost that does not grow with the history (what a report needs). A single
/// altered signature in the middle is left to [`Depth::Every`].
pub fn check(
    conn: &Connection,
    key: &NodePublic,
    head_log: Option<&Path>,
    depth: Depth,
) -> anyhow::Result<Result<Option<SignaturesOk>, Break>> {
    let Some(signing) = started(conn)? else { return Ok(Ok(None)) };
    let fingerprint = key.fingerprint();
    let mut stmt = conn.prepare(
        "SELECT e.seq, e.hash, e.run_id, s.key, s.signature FROM evidence e
         LEFT JOIN evidence_signatures s ON s.seq = e.seq ORDER BY e.seq",
    )?;
    // The first problem found while reading (seq, run id, problem); a bad
    // signature before it is found by the workers.
    let mut records = 0usize;
    let newest: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM evidence", [], |r| r.get(0))?;
    let (inline, bad) = in_parallel(key, |verify| -> anyhow::Result<Option<(i64, i64, String)>> {
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (seq, hash, run_id): (i64, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let (signer, signature): (Option<String>, Option<String>) = (r.get(3)?, r.get(4)?);
            let (Some(signer), Some(signature)) = (signer, signature) else {
                return Ok(Some((
                    seq,
                    run_id,
                    format!(
                        "it has no signature, though every record is signed since {} (from record #{} on as it is written): its signature was deleted, or the record was added behind drdrill's back",
                        signing.started_at,
                        signing.upto_seq + 1
                    ),
                )));
            };
            if signer != fingerprint {
                return Ok(Some((
                    seq,
                    run_id,
                    format!(
                        "it is signed by key {signer}, not by this node's key {fingerprint} ({}): the key file was replaced, or the record was signed elsewhere",
                        key.node
                    ),
                )));
            }
            records += 1;
            if depth == Depth::Every || seq == newest {
                verify(seq, run_id, record_message(seq, &hash), signature);
            }
        }
        Ok(None)
    })?;
    let inline = inline?;
    if let Some((seq, run_id)) = bad.filter(|(s, _)| inline.as_ref().is_none_or(|(i, ..)| s < i)) {
        return Ok(Err(Break {
            seq: Some(seq),
            run_id: Some(run_id),
            problem: format!(
                "its signature does not verify with this node's key {fingerprint}: the record's hash was recomputed (a run was edited and the chain rehashed from here on), or its signature was altered"
            ),
        }));
    }
    if let Some((seq, run_id, problem)) = inline {
        return Ok(Err(Break { seq: Some(seq), run_id: Some(run_id), problem }));
    }
    let mut heads = 0;
    if let Some(log) = head_log {
        // Lines are numbered in the log's order: the order the workers keep.
        let (unsigned, bad) = in_parallel(key, |verify| -> anyhow::Result<Option<i64>> {
            let mut unsigned = None;
            let mut last: Option<(usize, HeadLine)> = None;
            super::headlog::for_each_head(log, |n, line| {
                let Some(sig) = line.signature else {
                    if line.seq > signing.upto_seq {
                        unsigned = Some(line.seq);
                        return false;
                    }
                    return true;
                };
                heads += 1;
                if depth == Depth::Every {
                    verify(n as i64, line.seq, head_message(line.count.unwrap_or(line.seq), &line.hash), sig);
                } else {
                    last = Some((n, HeadLine { signature: Some(sig), ..line }));
                }
                true
            })?;
            if let Some((n, line)) = last.filter(|_| unsigned.is_none()) {
                let sig = line.signature.unwrap_or_default();
                verify(n as i64, line.seq, head_message(line.count.unwrap_or(line.seq), &line.hash), sig);
            }
            Ok(unsigned)
        })?;
        let unsigned = unsigned?;
        if let Some((n, _)) = bad {
            // Read the line again, to name it (only the first bad one was kept).
            let mut named = None;
            super::headlog::for_each_head(log, |i, line| {
                if i as i64 == n {
                    named = Some(line);
                }
                named.is_none()
            })?;
            let line = named.context("the head log changed while it was verified")?;
            let count = line.count.unwrap_or(line.seq);
            return Ok(Err(Break {
                seq: Some(line.seq),
                run_id: None,
                problem: format!(
                    "the signed head in the head log {} (count {count}, hash {}) does not verify with this node's key {fingerprint}: the log was edited",
                    log.display(),
                    line.hash
                ),
            }));
        }
        if let Some(seq) = unsigned {
            return Ok(Err(Break {
                seq: Some(seq),
                run_id: None,
                problem: format!(
                    "its line in the head log {} has no signature, though heads are signed since {}: the log was edited",
                    log.display(),
                    signing.started_at
                ),
            }));
        }
    }
    Ok(Ok(Some(SignaturesOk {
        node: key.node.clone(),
        fingerprint,
        records,
        heads,
        signed_at_start: signing.upto_seq,
        started_at: signing.started_at,
    })))
}

/// How many signatures [`check`] verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every record's and every signed head's: `drdrill evidence verify`.
    Every,
    /// The newest record's and the newest signed head's (every record must
    /// still have one): reports.
    Head,
}

/// Signatures handed to the workers at a time.
const CHUNK: usize = 1024;

/// One signature to check: (order, id, message, signature).
type Item = (i64, i64, String, String);

/// Runs `read`, which hands signatures to check to `verify(order, id,
/// message, signature)`, while threads on every other core check them.
/// Returns what `read` returned and the (order, id) of the lowest-ordered
/// signature that does not verify.
fn in_parallel<R>(
    key: &NodePublic,
    read: impl FnOnce(&mut dyn FnMut(i64, i64, String, String)) -> R,
) -> anyhow::Result<(R, Option<(i64, i64)>)> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(workers * 2);
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = &rx;
                s.spawn(move || {
                    let mut bad: Option<(i64, i64)> = None;
                    loop {
                        let chunk = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                            Ok(c) => c,
                            Err(_) => return bad,
                        };
                        for (order, id, message, signature) in chunk {
                            if bad.is_some_and(|(b, _)| b < order) {
                                continue;
                            }
                            if !key.verifies(&message, &signature) {
                                bad = Some((order, id));
                            }
                        }
                    }
                })
            })
            .collect();
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut send = |order: i64, id: i64, message: String, signature: String| {
            chunk.push((order, id, message, signature));
            if chunk.len() == CHUNK {
                // A send fails only when every worker is gone; their join says why.
                let _ = tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
            }
        };
        let result = read(&mut send);
        if !chunk.is_empty() {
            let _ = tx.send(chunk);
        }
        drop(tx);
        let mut bad: Option<(i64, i64)> = None;
        for h in handles {
            let found = h.join().map_err(|_| anyhow::anyhow!("a signature-checking thread failed"))?;
            bad = match (bad, found) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok((result, bad))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_sign_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let (key, created) = NodeKey::load_or_create(&path, "host-a").unwrap();
        assert!(created);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, created) = NodeKey::load_or_create(&path, "host-a").unwrap();
        assert!(!created);
        assert_eq!(again.public(), key.public());
        let public = key.public();
        let sig = key.sign(&record_message(3, "ab"));
        assert!(public.verifies(&record_message(3, "ab"), &sig));
        assert!(!public.verifies(&record_message(3, "ac"), &sig));
        assert!(!public.verifies(&head_message(3, "ab"), &sig));
        assert!(public.allowed_signers_line().starts_with("host-a namespaces=\"drdrill-evidence\" ssh-ed25519 AAAA"));
        // minisign's public key: base64 of `Ed`, an 8-byte key id, the key itself.
        let line = public.minisign().lines().nth(1).unwrap().to_string();
        let bytes = <base64ct::Base64 as base64ct::Encoding>::decode_vec(&line).unwrap();
        assert_eq!((bytes.len(), &bytes[..2], &bytes[10..]), (42, &b"Ed"[..], &public.key.as_bytes()[..]));
        let round = NodePublic::from_openssh("host-a", &public.openssh()).unwrap();
        assert_eq!(round, public);
        let armored = key.sshsig(b"statement").unwrap();
        public.verify_sshsig(b"statement", &armored).unwrap();
        assert!(public.verify_sshsig(b"statemenT", &armored).is_err());
        assert!(!format!("{key:?}").contains("PRIVATE"), "{key:?}");
        for mode in [0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = NodeKey::load_or_create(&path, "host-a").unwrap_err().to_string();
            assert!(e.contains(&format!("mode {mode:04o}")) && e.contains("chmod 600"), "{e}");
        }
    }
}
