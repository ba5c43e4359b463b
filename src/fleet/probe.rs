//! The probe before a node joins: the store must honour the preconditions the
//! firing protocol rests on, or two nodes could run one drill.
//!
//! 1. create-only twice: the second must be refused (`If-None-Match: *`);
//! 2. update with a wrong ETag: refused (`If-Match`); with the right one: done;
//! 3. eight concurrent create-only writes of one key: exactly one may win.
//!
//! Its objects live under `fleet/probe/<node>/<nonce>/` and are deleted after.

use bytes::Bytes;

use super::{Fleet, Put};

/// Concurrent creates in step 3.
const RACERS: usize = 8;

pub async fn run(f: &Fleet) -> anyhow::Result<()> {
    let nonce = format!("{}-{:x}", std::process::id(), rand_u64());
    let base = |name: &str| Fleet::path(&["probe", &f.node, &nonce, name]);
    let result = steps(f, &base).await;
    for name in ["once", "race"] {
        f.delete(&base(name)).await;
    }
    result
}

async fn steps(f: &Fleet, base: &impl Fn(&str) -> object_store::path::Path) -> anyhow::Result<()> {
    let once = base("once");
    let etag = match f.create(&once, Bytes::from_static(b"1")).await? {
        Put::Done(Some(etag)) => etag,
        Put::Done(None) => anyhow::bail!(
            "this S3 server returns no ETag on a write: renewals with If-Match are impossible, so a dead node's firing could not be taken over safely"
        ),
        Put::Refused => anyhow::bail!("this S3 server refused to create a new object with If-None-Match: *"),
    };
    if let Put::Done(_) = f.create(&once, Bytes::from_static(b"2")).await? {
        anyhow::bail!(
            "this S3 server ignores If-None-Match: a second create-only write of {once} succeeded, so fleet mode would run drills twice"
        );
    }
    if let Put::Done(_) = f.update(&once, "\"drdrill-not-the-etag\"", Bytes::from_static(b"3")).await? {
        anyhow::bail!(
            "this S3 server ignores If-Match: an update of {once} with a wrong ETag succeeded, so a stalled node's late writes would overwrite the node that took its firing over"
        );
    }
    if let Put::Refused = f.update(&once, &etag, Bytes::from_static(b"4")).await? {
        anyhow::bail!(
            "this S3 server refuses If-Match with the object's own ETag: a node could not renew its claim, and every firing would be taken over"
        );
    }
    let race = base("race");
    let attempts = (0..RACERS).map(|i| f.create(&race, Bytes::from(format!("{i}"))));
    let results = futures::future::join_all(attempts).await;
    let mut won = 0;
    for r in results {
        if let Put::Done(_) = r? {
            won += 1;
        }
    }
    if won != 1 {
        anyhow::bail!(
            "{won} of {RACERS} concurrent create-only writes of {race} succeeded (exactly one may): this S3 server's If-None-Match is not atomic, so fleet mode would run drills twice"
        );
    }
    Ok(())
}

/// A little randomness for names, from /dev/urandom.
pub fn rand_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    u64::from_le_bytes(b) ^ std::process::id() as u64
}
