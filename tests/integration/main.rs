//! drdrill's integration tests: one test binary (linked once, as ripgrep does)
//! with a module per area, over one shared harness ([`common::Workspace`]).
//! They drive the real binary and real parts: SQLite files, a PostgreSQL
//! server, an S3 server, SMTP sinks, Chromium, the tools a user would run.
//! The servers come from `scripts/test`.

mod common;

mod backups;
mod browser;
mod command_source;
mod console;
mod coverage;
mod daemon;
mod doors;
mod drill;
mod evidence;
mod existing;
mod failures;
mod fleet;
mod freshness;
mod gameday;
mod heartbeat;
mod html_render;
mod integrity;
mod layers;
mod malicious;
mod manifest;
mod mysql;
mod notify;
mod oncall;
mod pitr;
mod postgres;
mod records;
mod report;
mod roundtrip;
mod s3;
mod safeguards;
mod service;
mod signed;
mod systemd_unit;
mod trust;
mod validation;
