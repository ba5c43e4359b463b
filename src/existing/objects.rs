//! `from = "objects"`: dump files that some other job writes into a store (a
//! nightly `pg_dump` or `mysqldump` to S3, SQLite copies, tarballs), restored
//! the way their format is restored: `pg_restore` or `psql` into a throwaway
//! cluster, the `mariadb` client into a throwaway MariaDB/MySQL server, a
//! SQLite file as it is, a tar archive unpacked with drdrill's escape checks.
//!
//! gzip, zstd, xz and bzip2 are recognised by their magic bytes, whatever the
//! name says. A backup's time is parsed from its key with `time_pattern`, or
//! else is the object's last-modified time. Objects are only read.

use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Access, Existing, Found};
use crate::context::RunCtx;
use crate::diag::{Diagnostic, TomlDoc};
use crate::restored::{Restored, Yields};
use crate::source::mysql::server as mysql;
use crate::source::postgres::cluster::{self, PgConn, Throwaway, quote_ident};
use crate::store::Store;

pub const KIND: &str = "objects";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `pg_dump` output, custom (`-Fc`) or plain SQL: told apart by content.
    PgDump,
    /// Plain SQL for PostgreSQL (`psql -f`).
    Sql,
    /// `mysqldump` / `mariadb-dump` output, loaded into a throwaway MariaDB/MySQL server.
    Mysqldump,
    /// A SQLite database file.
    Sqlite,
    /// A tar archive of a folder.
    Tar,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objects {
    /// A store of the config (`local`, `s3`, ...).
    pub store: Spanned<String>,
    /// Only keys below this prefix (`nightly/orders/`).
    #[serde(default)]
    pub prefix: String,
    pub format: Format,
    /// A chrono format of the time in each key's file name (`%Y%m%d-%H%M%S`);
    /// fixed-width fields only. Without it, an object's last-modified time.
    pub time_pattern: Option<String>,
    /// The database created for SQL dumps (default: the `[source]` database, else `restored`).
    pub database: Option<String>,
    /// Folder with the PostgreSQL (or, for `mysqldump`, MariaDB/MySQL) tools.
    pub bin_dir: Option<PathBuf>,
}

pub fn parse(doc: &TomlDoc, value: Spanned<DeValue>) -> Result<Arc<dyn Existing>, Diagnostic> {
    let o: Objects = doc.deserialize(&value)?;
    if let Some(p) = &o.time_pattern {
        let sample = sample_time().format(p).to_string();
        if NaiveDateTime::parse_from_str(&sample, p).is_err() {
            return Err(doc.at(
                value.span(),
                format!("`time_pattern` {p:?} cannot be read back as a date and time"),
                Some("give year to seconds, e.g. `time_pattern = \"%Y%m%d-%H%M%S\"`".into()),
            ));
        }
    }
    Ok(Arc::new(o))
}

fn sample_time() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 30).and_then(|d| d.and_hms_opt(12, 34, 56)).unwrap_or_default()
}

/// The time in `name` written with `pattern`, wherever it stands in the name.
fn time_in(name: &str, pattern: &str) -> Option<DateTime<Utc>> {
    let width = sample_time().format(pattern).to_string().len();
    (0..=name.len().saturating_sub(width))
        .filter(|i| name.is_char_boundary(*i) && name.is_char_boundary(i + width))
        .find_map(|i| NaiveDateTime::parse_from_str(&name[i..i + width], pattern).ok())
        .map(|t| t.and_utc())
}

impl Objects {
    fn store<'a>(&self, at: &'a Access) -> anyhow::Result<&'a Store> {
        at.store.with_context(|| format!("store `{}` was not opened for [backup.objects]", self.store.get_ref()))
    }

    fn database(&self, at: &Access) -> String {
        self.database
            .clone()
            .or_else(|| at.source.database_name().map(str::to_string))
            .unwrap_or_else(|| "restored".into())
    }

    fn format_name(&self) -> &'static str {
        match self.format {
            Format::PgDump => "pg_dump",
            Format::Sql => "sql",
            Format::Mysqldump => "mysqldump",
            Format::Sqlite => "sqlite",
            Format::Tar => "tar",
        }
    }
}

/// Reads an object as a blocking stream, for the restore tools.
fn open(store: &Store, key: &str) -> anyhow::Result<impl BufRead + Send + use<>> {
    let inner: Arc<dyn ObjectStore> = store.object_store();
    let path = ObjPath::from(key);
    let rt = tokio::runtime::Handle::current();
    let got = rt
        .block_on(inner.get(&path))
        .map_err(|e| store.annotate(e, format!("cannot fetch {key} from store `{}`", store.name)))?;
    let stream = got.into_stream().map_err(io::Error::other).boxed();
    let reader = tokio_util::io::StreamReader::new(stream);
    Ok(BufReader::with_capacity(1 << 20, tokio_util::io::SyncIoBridge::new_with_handle(reader, rt)))
}

/// Decompresses by magic bytes: gzip, zstd, xz, bzip2, or none.
fn decompressed(mut input: impl BufRead + Send + 'static) -> anyhow::Result<(Box<dyn BufRead + Send>, &'static str)> {
    let head = input.fill_buf().context("cannot read the object")?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        (Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(input))), "gzip")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        (Box::new(BufReader::new(zstd::Decoder::with_buffer(input)?)), "zstd")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        (Box::new(BufReader::new(liblzma::bufread::XzDecoder::new(input))), "xz")
    } else if head.starts_with(b"BZh") {
        (Box::new(BufReader::new(bzip2::bufread::MultiBzDecoder::new(input))), "bzip2")
    } else {
        (Box::new(input), "uncompressed")
    })
}

/// A reader that fails once the run is cancelled, so no tool is fed after it.
struct Cancellable<R> {
    inner: R,
    ctx: RunCtx,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ctx.cancel.check()?;
        self.inner.read(buf)
    }
}

impl Existing for Objects {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn repository(&self) -> String {
        format!("objects:{}/{}", self.store.get_ref(), self.prefix)
    }

    fn describe(&self) -> String {
        format!("{} dumps under `{}` in store `{}`", self.format_name(), self.prefix, self.store.get_ref())
    }

    fn yields(&self, source: &dyn crate::source::Source) -> Yields {
        match self.format {
            Format::PgDump | Format::Sql => Yields::sql_service("PostgreSQL"),
            Format::Mysqldump => Yields::sql_service(mysql::DIALECT),
            Format::Sqlite => Yields::file(),
            Format::Tar => Yields::tree(source.live_tree().is_some()),
        }
    }

    fn store(&self) -> Option<&str> {
        Some(self.store.get_ref())
    }

    fn preflight(&self, _ctx: &RunCtx) -> anyhow::Result<()> {
        match self.format {
            Format::PgDump | Format::Sql => {
                cluster::Tools::find(self.bin_dir.as_deref())?;
            }
            Format::Mysqldump => {
                mysql::Tools::find(self.bin_dir.as_deref())?;
                mysql::ServerTools::find(self.bin_dir.as_deref())?;
            }
            Format::Sqlite | Format::Tar => {}
        }
        Ok(())
    }

    fn list(&self, at: &Access) -> anyhow::Result<Vec<Found>> {
        let store = self.store(at)?;
        let prefix = (!self.prefix.is_empty()).then(|| ObjPath::from(self.prefix.as_str()));
        let inner = store.object_store();
        let objects: Vec<_> = tokio::runtime::Handle::current()
            .block_on(inner.list(prefix.as_ref()).try_collect::<Vec<_>>())
            .map_err(|e| store.annotate(e, format!("cannot list `{}` in store `{}`", self.prefix, store.name)))?;
        let mut found = Vec::new();
        for meta in objects {
            let key = meta.location.to_string();
            let name = meta.location.filename().unwrap_or(&key).to_string();
            let time = match &self.time_pattern {
                Some(p) => match time_in(&name, p) {
                    Some(t) => t,
                    None => continue,
                },
                None => meta.last_modified,
            };
            found.push(Found { label: format!("{key} ({} bytes)", meta.size), id: key, time });
        }
        if found.is_empty() {
            let pattern =
                self.time_pattern.as_ref().map(|p| format!(" with a time like {p:?} in its name")).unwrap_or_default();
            bail!(
                "no object under `{}` in store `{}`{pattern}: check `prefix` (and `time_pattern`) in [backup.objects]",
                self.prefix,
                store.name
            );
        }
        Ok(found)
    }

    fn restore(&self, at: &Access, found: &Found) -> anyhow::Result<Restored> {
        let ctx = at.ctx;
        let (data, compression) = decompressed(open(self.store(at)?, &found.id)?)?;
        let mut data = BufReader::new(Cancellable { inner: data, ctx: ctx.clone() });
        let head = data.fill_buf().context("cannot read the object")?.to_vec();
        let not = |what: &str| {
            anyhow::anyhow!(
                "object {} ({compression}) is not {what}: it starts with {:?}; fix `format` in [backup.objects] or `prefix`",
                found.id,
                String::from_utf8_lossy(&head[..head.len().min(16)])
            )
        };
        let dest = ctx.restore_dir();
        match self.format {
            Format::Sqlite => {
                if !head.starts_with(b"SQLite format 3\0") {
                    return Err(not("a SQLite database"));
                }
                let file = dest.join("restored.db");
                let mut out = std::fs::File::create(&file)?;
                let bytes = io::copy(&mut data, &mut out).context("cannot write the restored database")?;
                out.sync_all()?;
                Ok(Restored::file(dest, file, 1, bytes))
            }
            Format::Tar => {
                let root = dest.join("tree");
                std::fs::create_dir(&root)?;
                let stats = crate::archive::unpack_untrusted(data, &root, &ctx.cancel)
                    .map_err(|e| not("a tar archive").context(format!("{e:#}")))?;
                Ok(Restored::tree(root, stats.files, stats.bytes))
            }
            Format::Mysqldump => {
                if head.starts_with(b"PGDMP") || head.starts_with(b"SQLite format 3\0") {
                    return Err(not("a mysqldump (it is a PostgreSQL or SQLite file: fix `format`)"));
                }
                let server = mysql::Throwaway::prepare(ctx, self.bin_dir.as_deref())?;
                let database = self.database(at);
                let (running, bytes) = server.install_start_load(ctx, Some(&database), &mut data)?;
                let check = server.accounts(ctx, &running, Some(&database))?;
                server.restored(running, check, bytes)
            }
            Format::PgDump | Format::Sql => {
                let cluster = Throwaway::prepare(ctx, self.bin_dir.as_deref())?;
                cluster.initdb(ctx)?;
                let port = cluster.start(ctx)?;
                let conn = cluster.conn(port, &self.database(at), cluster::CLUSTER_SUPERUSER)?;
                let bytes = if head.starts_with(b"PGDMP") {
                    if self.format == Format::Sql {
                        return Err(not(
                            "plain SQL (it is a pg_dump custom-format archive: use `format = \"pg_dump\"`)",
                        ));
                    }
                    crate::source::postgres::load_dump(ctx, &cluster, &conn, &mut data)?
                } else {
                    load_sql(ctx, &cluster, &conn, &mut data)?
                };
                cluster.restored(conn, bytes)
            }
        }
    }

    fn cleanup(&self, ctx: &RunCtx) -> anyhow::Result<Option<String>> {
        match self.format {
            Format::Mysqldump => mysql::stop(ctx),
            _ => cluster::stop(ctx, self.bin_dir.as_deref()),
        }
    }
}

/// Creates `conn`'s database and feeds plain SQL to psql, stopping at the first error.
fn load_sql(ctx: &RunCtx, cluster: &Throwaway, conn: &PgConn, input: &mut dyn Read) -> anyhow::Result<u64> {
    let admin = PgConn { dbname: "postgres".into(), ..conn.clone() };
    admin
        .execute(&format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(&conn.dbname)), None, &ctx.cancel)
        .context("cannot create the database in the throwaway cluster")?;
    let done = cluster::psql(&cluster.tools.path("psql"), &conn.host, conn.port, &conn.user, &conn.dbname, None)
        .label("psql loading the SQL dump")
        .log(ctx.run_dir.join("psql-load.log"))
        .args(["-f", "-"])
        .run_feeding(&ctx.cancel, input)
        .context("reading the dump from the store failed")?;
    if !done.success() {
        bail!("the SQL dump does not load into PostgreSQL ({}): {}", done.status, done.tail_or_none());
    }
    Ok(done.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn times_are_found_anywhere_in_a_key() {
        let t = time_in("orders-20261130-023000.dump.gz", "%Y%m%d-%H%M%S").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-30T02:30:00+00:00");
        assert!(time_in("orders-latest.dump", "%Y%m%d-%H%M%S").is_none());
    }

    #[test]
    fn compression_is_told_by_magic_bytes() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello").unwrap();
        let bytes = gz.finish().unwrap();
        let (mut r, kind) = decompressed(io::Cursor::new(bytes)).unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!((kind, out.as_str()), ("gzip", "hello"));
        let (_, kind) = decompressed(io::Cursor::new(b"plain".to_vec())).unwrap();
        assert_eq!(kind, "uncompressed");
    }
}
