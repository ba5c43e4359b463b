//! The evidence chain's status for the console, verified once per chain head:
//! a full verification (links, hashes, every record's signature) of a long
//! history takes seconds, and pages are loaded far more often than runs end.

use std::sync::Mutex;

use crate::db::Db;
use crate::db::evidence::Verified;

/// The chain's head and how it verified.
pub type Status = (Option<(i64, String)>, Result<Verified, String>);

#[derive(Default)]
pub struct ChainCache {
    last: Mutex<Option<Status>>,
}

impl ChainCache {
    /// The chain's status now: verified again only when its head moved.
    pub fn status(&self, db: &Db) -> anyhow::Result<Status> {
        let head = db.evidence_head()?;
        if let Some(s) = self.last.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && s.0 == head
        {
            return Ok(s.clone());
        }
        let verified = db.verify_chain()?.map_err(|b| b.to_string());
        let status = (head, verified);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.clone());
        Ok(status)
    }
}
