//! `kind = "postgres"`: one PostgreSQL database, dumped with `pg_dump -Fc` and
//! restored into a throwaway cluster in the run's scratch folder.
//!
//! Backup streams pg_dump's stdout straight into the payload; pg_dump reads in
//! one repeatable-read snapshot, so the dump is consistent while the application
//! keeps writing. Restore runs `initdb` into `<restore>/pgdata` (as the `postgres`
//! OS user when drdrill runs as root, since initdb refuses root), starts it with
//! `pg_ctl` on a free loopback port with its socket in the restore folder, and
//! `pg_restore`s into a database of the source's name. The restore yields a SQL
//! service ([`PgConn`], also written to `<restore>/connection.json` for people
//! and scripts) and `PG*` variables for command checks. [`Source::cleanup`]
//! stops the cluster at the end of every run, found from its `postmaster.pid` alone.
//!
//! The password never appears in the plan: it is read from `password_env` or
//! `password_file` when needed and handed to the tools as `PGPASSWORD`, which
//! no log, record or error message ever includes.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Canary, Restored, Source, SourceBackup, Yields};
use crate::cancel::Cancel;
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};

use crate::store::{Entries, Manifest};

pub mod cluster;

use cluster::{CLUSTER_SUPERUSER, Throwaway, quote_ident};
pub use cluster::{CONNECTION_FILE, PgConn, Tools};

pub const KIND: &str = "postgres";

/// The canary's side table in the protected database.
pub const CANARY_TABLE: &str = "_drdrill_canary";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub database: String,
    pub user: String,
    /// Environment variable holding the password (its name, not the password).
    pub password_env: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Folder with pg_dump, pg_restore, psql, initdb and pg_ctl; found when absent.
    pub bin_dir: Option<PathBuf>,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    5432
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Source>, Diagnostic> {
    let mut src: PostgresSource = doc.deserialize(&value)?;
    src.password_file = src.password_file.map(|f| doc.plan_path(&f));
    src.bin_dir = src.bin_dir.map(|d| doc.plan_path(&d));
    let bad = |msg: &str, fix: &str| Err(doc.at(value.span(), msg.into(), Some(fix.into())));
    if src.database.is_empty() || src.user.is_empty() {
        return bad("postgres source needs `database` and `user`", "set both in [source]");
    }
    if src.password_env.is_some() && src.password_file.is_some() {
        return bad(
            "postgres source sets both `password_env` and `password_file`",
            "keep one: the password comes from one place",
        );
    }
    Ok(Arc::new(src))
}

/// Creates `conn`'s database in a started throwaway cluster and `pg_restore`s a
/// custom-format dump from `input` into it. Returns the dump's size.
pub(crate) fn load_dump(ctx: &RunCtx, cluster: &Throwaway, conn: &PgConn, input: &mut dyn Read) -> anyhow::Result<u64> {
    let admin = PgConn { dbname: "postgres".into(), ..conn.clone() };
    admin
        .execute(&format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(&conn.dbname)), None, &ctx.cancel)
        .context("cannot create the database in the throwaway cluster")?;
    let done = ctx
        .cmd(cluster.tools.path("pg_restore"))
        .label("pg_restore into the throwaway cluster")
        .log(ctx.run_dir.join("pg_restore.log"))
        .args(["-w", "--no-owner", "--no-privileges", "--exit-on-error", "-h", &conn.host])
        .args(["-p", &conn.port.to_string(), "-U", &conn.user, "-d", &conn.dbname])
        .run_feeding(&ctx.cancel, input)
        .context("reading the dump from the store failed")?;
    if !done.success() {
        bail!("pg_restore into the throwaway cluster failed ({}): {}", done.status, done.tail_or_none());
    }
    Ok(done.bytes)
}

impl PostgresSource {
    fn password(&self) -> anyhow::Result<Option<String>> {
        if let Some(var) = &self.password_env {
            let p = std::env::var(var).with_context(|| {
                format!("environment variable {var} (named by `password_env`) is not set: export it for drdrill")
            })?;
            crate::redact::register(&p);
            return Ok(Some(p));
        }
        if let Some(file) = &self.password_file {
            let text = fs::read_to_string(file)
                .with_context(|| format!("cannot read password file {} named by `password_file`", file.display()))?;
            let p = text.lines().next().unwrap_or("").to_string();
            crate::redact::register(&p);
            return Ok(Some(p));
        }
        Ok(None)
    }

    fn live(&self, tools: &Tools) -> PgConn {
        PgConn {
            host: self.host.clone(),
            port: self.port,
            dbname: self.database.clone(),
            user: self.user.clone(),
            psql: tools.path("psql"),
        }
    }

    fn target(&self) -> String {
        format!("database `{}` as `{}` at {}:{}", self.database, self.user, self.host, self.port)
    }
}

impl Source for PostgresSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("postgres {}", self.target())
    }

    fn yields(&self) -> Yields {
        Yields::sql_service("PostgreSQL")
    }

    fn database_name(&self) -> Option<&str> {
        Some(&self.database)
    }

    /// Tools present and matching, the server reachable with these credentials,
    /// and not newer than pg_dump (which refuses to dump newer servers).
    fn preflight(&self, ctx: &RunCtx) -> anyhow::Result<()> {
        let tools = Tools::find(self.bin_dir.as_deref())?;
        let password = self.password()?;
        let num = self
            .live(&tools)
            .query_first("SHOW server_version_num", password.as_deref(), &ctx.cancel)
            .with_context(|| format!("cannot connect to {}", self.target()))?
            .unwrap_or_default();
        let server_major = num.trim().parse::<u32>().map(|n| n / 10000).unwrap_or(0);
        if server_major > tools.major {
            bail!(
                "pg_dump {} in {} cannot dump the PostgreSQL {server_major} server at {}:{}: install the version {server_major} tools (`apt-get install postgresql-{server_major}`) and set `bin_dir` in [source] to their folder",
                tools.version,
                tools.dir.display(),
                self.host,
                self.port
            );
        }
        Ok(())
    }

    fn payload_format(&self) -> &'static str {
        "pgdump"
    }

    fn backup(&self, ctx: &RunCtx, out: &mut dyn Write) -> anyhow::Result<SourceBackup> {
        let tools = Tools::find(self.bin_dir.as_deref())?;
        let password = self.password()?;
        let mut cmd = ctx
            .cmd(tools.path("pg_dump"))
            .label(format!("pg_dump of {}", self.target()))
            .log(ctx.staging().join("pg_dump.stderr"))
            // A lock wait is not I/O: give up on it well before the run's deadline.
            .args(["-Fc", "-w", "--lock-wait-timeout=60s", "-h", &self.host, "-p", &self.port.to_string()])
            .args(["-U", &self.user, "-d", &self.database])
            .env("PGCONNECT_TIMEOUT", "10");
        if let Some(p) = &password {
            cmd = cmd.env("PGPASSWORD", p);
        }
        // pg_dump's snapshot is taken after it connects, so a clock read before
        // it starts is never later than the data it holds.
        let consistency_point = Utc::now();
        let done = cmd.run_reading(&ctx.cancel, out)?;
        if !done.success() {
            bail!("pg_dump of {} failed ({}): {}", self.target(), done.status, done.tail_or_none());
        }
        if done.bytes == 0 {
            bail!("pg_dump of {} wrote nothing: {}", self.target(), done.tail_or_none());
        }
        Ok(SourceBackup { entries: Entries::none(), consistency_point, skipped: Vec::new() })
    }

    fn restore(&self, ctx: &RunCtx, input: &mut dyn Read, _manifest: &Manifest) -> anyhow::Result<Restored> {
        let cluster = Throwaway::prepare(ctx, self.bin_dir.as_deref())?;
        cluster.initdb(ctx)?;
        let port = cluster.start(ctx)?;
        let conn = cluster.conn(port, &self.database, CLUSTER_SUPERUSER)?;
        let bytes = load_dump(ctx, &cluster, &conn, input)?;
        cluster.restored(conn, bytes)
    }

    fn cleanup(&self, ctx: &RunCtx) -> anyhow::Result<Option<String>> {
        cluster::stop(ctx, self.bin_dir.as_deref())
    }

    fn canary(&self, _marker: Option<&std::path::Path>) -> Option<Arc<dyn Canary>> {
        Some(Arc::new(PgCanary { src: self.clone() }))
    }
}

/// Writes markers into the live database with the source's own settings.
struct PgCanary {
    src: PostgresSource,
}

impl Canary for PgCanary {
    fn write_marker(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        let src = &self.src;
        let tools = Tools::find(src.bin_dir.as_deref())?;
        let ms = at.timestamp_millis();
        // Keep the side table small: an hour of markers is plenty to find the newest.
        let sql = format!(
            "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (at_ms bigint NOT NULL); DELETE FROM {CANARY_TABLE} WHERE at_ms < {}; INSERT INTO {CANARY_TABLE} (at_ms) VALUES ({ms})",
            ms - 3_600_000
        );
        src.live(&tools).execute(&sql, src.password()?.as_deref(), &Cancel::new())?;
        Ok(())
    }

    fn newest_marker(
        &self,
        restored: &Restored,
        until: DateTime<Utc>,
        cancel: &Cancel,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let sql = restored.sql.as_ref().context("the restore yields no SQL service to read the canary from")?;
        let exists = sql.query_first(&format!("SELECT to_regclass('{CANARY_TABLE}') IS NOT NULL"), None, cancel)?;
        if exists.as_deref() != Some("t") {
            return Ok(None);
        }
        let until = until.timestamp_millis();
        let ms =
            sql.query_first(&format!("SELECT max(at_ms) FROM {CANARY_TABLE} WHERE at_ms <= {until}"), None, cancel)?;
        Ok(ms.and_then(|m| m.trim().parse::<i64>().ok()).and_then(|ms| Utc.timestamp_millis_opt(ms).single()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn plans_never_hold_the_password() {
        let cfg = crate::config::Config::defaults();
        let text = "[targets]\nrto = \"1m\"\nrpo = \"1m\"\n[source]\nkind = \"postgres\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"hunter2\"\n[[check]]\nkind = \"sql-query\"\nsql = \"select 1\"\nexpect = \"= 1\"\n";
        let e = crate::plan::Plan::parse(Path::new("p.toml"), text, &cfg).unwrap_err().to_string();
        assert!(e.contains("password"), "{e}");
        assert!(!e.contains("hunter2"), "the password must not be echoed: {e}");
    }
}
