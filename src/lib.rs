//! drdrill: a disaster-recovery drill orchestrator.
//!
//! A drill *plan* (`drills/*.toml`) names a [`source`] to protect, a [`store`] that
//! holds its backups, the [`failure`] that starts the incident, and the [`check`]s
//! that prove a restore works. The [`engine`] runs one plan end to end and measures
//! RTO and RPO; [`db`] keeps every run in SQLite.

pub mod archive;
pub mod backup;
pub mod cancel;
pub mod check;
pub mod config;
pub mod daemon;
pub mod db;
pub mod diag;
pub mod duration;
pub mod engine;
pub mod failure;
pub mod hashing;
pub mod notify;
pub mod plan;
pub mod report;
pub mod schedule;
pub mod scratch;
pub mod source;
pub mod store;

/// The version recorded on every run, so evidence names the tool that produced it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
