//! `kind = "mysql"`: databases of a MariaDB or MySQL server, dumped with
//! `mariadb-dump` (or `mysqldump`) and restored into a throwaway server in the
//! run's scratch folder.
//!
//! Backup streams the dump tool's stdout straight into the payload. With
//! `--single-transaction` it reads every InnoDB table in one consistent
//! snapshot while the application keeps writing; routines, triggers and events
//! come along. The dump names its databases (`--databases`), so it restores
//! into a fresh server as it is.
//!
//! Restore creates a data folder in `<restore>/data` (as the `mysql` OS user
//! when drdrill runs as root, since the server refuses root), starts the
//! server on a free loopback port with its socket in the restore folder,
//! loads the dump, and yields a SQL service: `sql-query` checks run unchanged,
//! and `command` checks get `MYSQL_HOST`, `MYSQL_TCP_PORT` and `MYSQL_HOME`
//! (whose `my.cnf` holds a check account), so a plain `mariadb -e "..."`
//! reaches the restored database. [`Source::cleanup`] stops the server from its
//! pid file at the end of every run.
//!
//! The password never appears in the plan: it is read from `password_env` or
//! `password_file` and handed to the tools in a private defaults file, never on
//! a command line or in `MYSQL_PWD`.

pub mod server;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
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
use server::{Endpoint, Flavor, MyConn, Throwaway, Tools};

pub const KIND: &str = "mysql";

/// The canary's side table in the (first) protected database, as for PostgreSQL.
pub const CANARY_TABLE: &str = crate::source::postgres::CANARY_TABLE;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSource {
    /// A host name or address, or the path of the server's socket.
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub database: Option<String>,
    #[serde(default)]
    pub databases: Vec<String>,
    pub user: String,
    /// Environment variable holding the password (its name, not the password).
    pub password_env: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Folder with the client, dump tool and server; searched on PATH and in
    /// /usr/sbin when absent.
    pub bin_dir: Option<PathBuf>,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    3306
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Source>, Diagnostic> {
    let mut src: MysqlSource = doc.deserialize(&value)?;
    let bad = |msg: &str, fix: &str| Err(doc.at(value.span(), msg.into(), Some(fix.into())));
    match (&src.database, src.databases.is_empty()) {
        (Some(_), false) => {
            return bad(
                "mysql source sets both `database` and `databases`",
                "keep one: `database = \"shop\"` or `databases = [\"shop\", \"billing\"]`",
            );
        }
        (None, true) => return bad("mysql source needs `database` (or `databases`)", "add `database = \"...\"`"),
        (Some(db), true) => src.databases = vec![db.clone()],
        (None, false) => {}
    }
    if src.user.is_empty() || src.databases.iter().any(|d| d.trim().is_empty()) {
        return bad("mysql source needs a `user` and database names", "set them in [source]");
    }
    if src.password_env.is_some() && src.password_file.is_some() {
        return bad(
            "mysql source sets both `password_env` and `password_file`",
            "keep one: the password comes from one place",
        );
    }
    Ok(Arc::new(src))
}

impl MysqlSource {
    fn password(&self) -> anyhow::Result<Option<String>> {
        if let Some(var) = &self.password_env {
            let p = std::env::var(var).with_context(|| {
                format!("environment variable {var} (named by `password_env`) is not set: export it for drdrill")
            })?;
            crate::redact::register(&p);
            return Ok(Some(p));
        }
        if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read password file {} named by `password_file`", file.display()))?;
            let p = text.lines().next().unwrap_or("").to_string();
            crate::redact::register(&p);
            return Ok(Some(p));
        }
        Ok(None)
    }

    fn first_database(&self) -> &str {
        self.databases.first().map(String::as_str).unwrap_or("")
    }

    fn target(&self) -> String {
        let at = if self.host.starts_with('/') { self.host.clone() } else { format!("{}:{}", self.host, self.port) };
        format!(
            "database{} `{}` as `{}` at {at}",
            if self.databases.len() > 1 { "s" } else { "" },
            self.databases.join("`, `"),
            self.user
        )
    }

    /// A connection to the live server through a private temporary defaults
    /// file, removed when the returned guard is dropped.
    fn live(&self, tools: &Tools) -> anyhow::Result<(MyConn, tempfile::TempPath)> {
        let file = tempfile::Builder::new().prefix("drdrill-mysql-").suffix(".cnf").tempfile()?.into_temp_path();
        let at = if self.host.starts_with('/') {
            Endpoint::Socket(self.host.clone().into())
        } else {
            Endpoint::Tcp { host: self.host.clone(), port: self.port }
        };
        server::write_defaults(&file, &at, &self.user, self.password()?.as_deref(), None)?;
        let conn = MyConn {
            client: tools.client.clone(),
            defaults: file.to_path_buf(),
            database: Some(self.first_database().to_string()),
            label: self.target(),
        };
        Ok((conn, file))
    }
}

impl Source for MysqlSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("mysql {}", self.target())
    }

    fn yields(&self) -> Yields {
        Yields::sql_service(server::DIALECT)
    }

    fn database_name(&self) -> Option<&str> {
        Some(self.first_database())
    }

    /// The tools to dump and to restore are there, and the server answers with
    /// these credentials.
    fn preflight(&self, ctx: &RunCtx) -> anyhow::Result<()> {
        let tools = Tools::find(self.bin_dir.as_deref())?;
        server::ServerTools::find(self.bin_dir.as_deref())?;
        let (live, _file) = self.live(&tools)?;
        live.first("SELECT VERSION()", None, &ctx.cancel)
            .with_context(|| format!("cannot connect to {}", self.target()))?;
        Ok(())
    }

    fn payload_format(&self) -> &'static str {
        "mysqldump"
    }

    fn backup(&self, ctx: &RunCtx, out: &mut dyn Write) -> anyhow::Result<SourceBackup> {
        let tools = Tools::find(self.bin_dir.as_deref())?;
        let (live, _file) = self.live(&tools)?;
        let mut cmd = ctx.cmd(&tools.dump).arg(format!("--defaults-file={}", live.defaults.display())).args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--quick",
        ]);
        if tools.flavor == Flavor::MySql {
            // A fresh server must not inherit the source's GTID history, and
            // tablespaces need a privilege a dump account rarely has.
            cmd = cmd.args(["--set-gtid-purged=OFF", "--no-tablespaces"]);
        }
        let cmd = cmd
            .label(tools.dump.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .log(ctx.staging().join("mysqldump.stderr"))
            .arg("--databases")
            .args(&self.databases);
        // The snapshot is taken after the tool connects, so a clock read before
        // it starts is never later than the data it holds.
        let consistency_point = Utc::now();
        let done = cmd.run_reading(&ctx.cancel, out)?;
        if !done.success() {
            bail!("{} failed ({}): {}", done.label, done.status, done.tail_or_none());
        }
        if done.bytes == 0 {
            bail!("the dump of {} wrote nothing: {}", self.target(), done.tail_or_none());
        }
        Ok(SourceBackup { entries: Entries::none(), consistency_point, skipped: Vec::new() })
    }

    fn restore(&self, ctx: &RunCtx, input: &mut dyn Read, _manifest: &Manifest) -> anyhow::Result<Restored> {
        let server = Throwaway::prepare(ctx, self.bin_dir.as_deref())?;
        let (running, bytes) = server.install_start_load(ctx, None, input)?;
        let check = server.accounts(ctx, &running, Some(self.first_database()))?;
        server.restored(running, check, bytes)
    }

    fn cleanup(&self, ctx: &RunCtx) -> anyhow::Result<Option<String>> {
        server::stop(ctx)
    }

    fn canary(&self, _marker: Option<&Path>) -> Option<Arc<dyn Canary>> {
        Some(Arc::new(MyCanary { src: self.clone() }))
    }
}

/// Writes markers into the live (first) database with the source's settings.
struct MyCanary {
    src: MysqlSource,
}

impl Canary for MyCanary {
    fn write_marker(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        let tools = Tools::find(self.src.bin_dir.as_deref())?;
        let (live, _file) = self.src.live(&tools)?;
        let ms = at.timestamp_millis();
        // InnoDB, so the marker is in the dump's snapshot like the data; an hour
        // of markers is plenty to find the newest.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (at_ms BIGINT NOT NULL) ENGINE=InnoDB; DELETE FROM {CANARY_TABLE} WHERE at_ms < {}; INSERT INTO {CANARY_TABLE} (at_ms) VALUES ({ms})",
            ms - 3_600_000
        );
        live.execute(&sql, None, &Cancel::new())?;
        Ok(())
    }

    fn newest_marker(
        &self,
        restored: &Restored,
        until: DateTime<Utc>,
        cancel: &Cancel,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let sql = restored.sql.as_ref().context("the restore yields no SQL service to read the canary from")?;
        let exists = sql.query_first(
            &format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '{CANARY_TABLE}'"),
            None,
            cancel,
        )?;
        if exists.as_deref() != Some("1") {
            return Ok(None);
        }
        let ms = sql.query_first(
            &format!("SELECT MAX(at_ms) FROM {CANARY_TABLE} WHERE at_ms <= {}", until.timestamp_millis()),
            None,
            cancel,
        )?;
        Ok(ms.and_then(|m| m.trim().parse::<i64>().ok()).and_then(|ms| Utc.timestamp_millis_opt(ms).single()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn plan(source: &str) -> Result<crate::plan::Plan, crate::diag::Diagnostics> {
        let cfg = crate::config::Config::defaults();
        let text = format!(
            "[targets]\nrto = \"1m\"\nrpo = \"1m\"\n[source]\nkind = \"mysql\"\nuser = \"u\"\n{source}[[check]]\nkind = \"sql-query\"\nsql = \"select 1\"\nexpect = \"= 1\"\n"
        );
        crate::plan::Plan::parse(Path::new("p.toml"), &text, &cfg)
    }

    #[test]
    fn plans_name_databases_once_and_never_hold_the_password() {
        assert!(plan("database = \"shop\"\n").is_ok());
        assert!(plan("databases = [\"shop\", \"billing\"]\n").is_ok());
        let e = plan("database = \"a\"\ndatabases = [\"b\"]\n").unwrap_err().to_string();
        assert!(e.contains("p.toml:4:1") && e.contains("both `database` and `databases`"), "{e}");
        let e = plan("").unwrap_err().to_string();
        assert!(e.contains("needs `database`"), "{e}");
        let e = plan("database = \"d\"\npassword = \"hunter2\"\n").unwrap_err().to_string();
        assert!(e.contains("password") && !e.contains("hunter2"), "{e}");
    }
}
