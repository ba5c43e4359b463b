//! drdrill: a disaster-recovery drill orchestrator.
//!
//! A drill *plan* (`drills/*.toml`) names a [`source`] to protect, a [`store`] that
//! holds its backups, the [`failure`] that starts the incident, and the [`check`]s
//! that prove a restore works. The [`engine`] runs one plan end to end and measures
//! RTO and RPO; [`db`] keeps every run in SQLite.
//!
//! Modules form layers, lowest first; each uses only layers below it (or its own
//! layer without a cycle), which `tests/integration/layers.rs` enforces and
//! ARCHITECTURE.md draws:
//!
//! | layer    | modules |
//! | -------- | ------- |
//! | util     | diag, duration, hashing, cancel, schedule, proc, net, redact, backoff, clock, paths, errors |
//! | store    | store |
//! | settings | config |
//! | kinds    | context, restored, archive, scratch, quarantine, source, check, failure, backup, existing |
//! | plan     | plan |
//! | record   | record, db |
//! | engine   | engine |
//! | outputs  | report, alert |
//! | fleet    | fleet |
//! | daemon   | daemon |
//!
//! The command line (`src/cli`, in the binary) sits on top of all of them.

// util
pub mod backoff;
pub mod cancel;
pub mod clock;
pub mod diag;
pub mod duration;
pub mod errors;
pub mod hashing;
pub mod net;
pub mod paths;
pub mod proc;
pub mod redact;
pub mod schedule;
// store
pub mod store;
// settings
pub mod config;
// kinds
pub mod archive;
pub mod backup;
pub mod check;
pub mod context;
pub mod existing;
pub mod failure;
pub mod quarantine;
pub mod restored;
pub mod scratch;
pub mod source;
// plan
pub mod plan;
// record
pub mod db;
pub mod record;
// engine
pub mod engine;
// outputs
pub mod alert;
pub mod report;
// fleet
pub mod fleet;
// daemon
pub mod daemon;

/// The version recorded on every run, so evidence names the tool that produced it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
