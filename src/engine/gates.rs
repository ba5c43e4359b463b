//! Approval gates: a run with `pause_before = [...]` waits before those phases
//! until someone approves. The engine only waits; who approves is up to the
//! caller: `drdrill run` approves on Enter at the terminal, the daemon's API
//! calls [`Gates::approve`]. One [`Gates`] may serve many runs (keyed by run id),
//! so the daemon shares a single one between every run it starts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::cancel::Cancel;

#[derive(Clone, Default)]
pub struct Gates {
    waiting: Arc<Mutex<HashMap<i64, Waiting>>>,
}

impl std::fmt::Debug for Gates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates").field("pending", &self.pending()).finish()
    }
}

struct Waiting {
    gate: String,
    since: DateTime<Utc>,
    tx: oneshot::Sender<Approval>,
}

/// Who let the run through, for the record (`terminal (user alice)`, `api (...)`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Approval {
    pub by: String,
    pub note: Option<String>,
}

/// A run waiting at a gate.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PendingGate {
    pub run_id: i64,
    /// The phase it waits before.
    pub gate: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GateError {
    #[error("run {0} is not waiting at any gate")]
    NotWaiting(i64),
    #[error("run {run_id} is waiting at gate `{waiting}`, not `{asked}`")]
    OtherGate { run_id: i64, waiting: String, asked: String },
}

impl Gates {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every run waiting at a gate now, oldest first.
    pub fn pending(&self) -> Vec<PendingGate> {
        let mut v: Vec<PendingGate> = self
            .lock()
            .iter()
            .map(|(id, w)| PendingGate { run_id: *id, gate: w.gate.clone(), since: w.since })
            .collect();
        v.sort_by_key(|p| p.since);
        v
    }

    /// Lets run `run_id` past the gate it waits at. With `gate`, only if it is
    /// that gate, so that a late approval cannot pass the next gate by mistake.
    pub fn approve(&self, run_id: i64, gate: Option<&str>, approval: Approval) -> Result<PendingGate, GateError> {
        let mut waiting = self.lock();
        let w = waiting.get(&run_id).ok_or(GateError::NotWaiting(run_id))?;
        if let Some(asked) = gate
            && asked != w.gate
        {
            return Err(GateError::OtherGate { run_id, waiting: w.gate.clone(), asked: asked.into() });
        }
        let w = waiting.remove(&run_id).expect("present: checked under the same lock");
        let pending = PendingGate { run_id, gate: w.gate, since: w.since };
        // The receiver is gone only if the run stopped waiting (aborted) at
        // this very moment; it then records the abort itself.
        let _ = w.tx.send(approval);
        Ok(pending)
    }

    /// Opens the gate for `run_id`: from now on [`Gates::approve`] finds it.
    /// Opened before anyone is told the run waits, so that an approval sent
    /// the moment the prompt appears is not lost.
    pub(crate) fn open(&self, run_id: i64, gate: &str, since: DateTime<Utc>) -> oneshot::Receiver<Approval> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(run_id, Waiting { gate: gate.into(), since, tx });
        rx
    }

    /// Waits until the gate opened with [`Gates::open`] is approved; `None`
    /// if `cancel` was set first.
    pub(crate) async fn wait(
        &self,
        run_id: i64,
        mut rx: oneshot::Receiver<Approval>,
        cancel: &Cancel,
    ) -> Option<Approval> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                self.lock().remove(&run_id);
                // An approval may have slipped in between; the abort wins.
                None
            }
            got = &mut rx => got.ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[tokio::test]
    async fn a_gate_waits_until_approved_and_refuses_the_wrong_gate() {
        let gates = Gates::new();
        let cancel = Cancel::new();
        let g = gates.clone();
        let rx = gates.open(7, "restore", Utc::now());
        let waiter = tokio::spawn(async move { g.wait(7, rx, &cancel).await });
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!waiter.is_finished());
        let approval = Approval { by: "test".into(), note: Some("go".into()) };
        assert!(matches!(gates.approve(7, Some("failure"), approval.clone()), Err(GateError::OtherGate { .. })));
        assert_eq!(gates.approve(8, None, approval.clone()), Err(GateError::NotWaiting(8)));
        assert_eq!(gates.approve(7, Some("restore"), approval.clone()).unwrap().gate, "restore");
        assert_eq!(waiter.await.unwrap(), Some(approval));
        assert!(gates.pending().is_empty());
    }

    #[tokio::test]
    async fn cancel_releases_a_waiting_gate() {
        let gates = Gates::new();
        let cancel = Cancel::new();
        let (g, c) = (gates.clone(), cancel.clone());
        let rx = gates.open(1, "failure", Utc::now());
        let waiter = tokio::spawn(async move { g.wait(1, rx, &c).await });
        cancel.cancel();
        assert_eq!(waiter.await.unwrap(), None);
        assert!(gates.pending().is_empty());
    }
}
