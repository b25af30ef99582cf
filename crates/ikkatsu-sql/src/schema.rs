//! Which migrations a database has against the ones a binary embeds: read without writing
//! (for commands that only read), and a database upgraded by a newer binary refused.

use std::ops::{Deref, DerefMut};

use ikkatsu_core::{Error, ErrorKind, Result};
use sqlx::migrate::{Migrate, MigrateError, Migrator};

use crate::error::SqlSite;

/// A database's schema as its migration history tells it, against a [`Migrator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// No migration history table: nothing was ever created there.
    Missing,
    /// Some of the binary's migrations are not applied yet (`applied`: the latest applied
    /// version, if any; `latest`: the binary's latest).
    Behind {
        /// The latest applied version.
        applied: Option<i64>,
        /// The latest version the binary embeds.
        latest: i64,
    },
    /// Every migration of the binary is applied, and no other.
    Current,
}

/// The latest migration version `migrator` embeds (0 when it has none).
pub fn latest_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The schema of the database of `pool` against `migrator`, whose history is kept in the
/// table `table`, read without writing anything. A database with applied migrations the
/// binary does not know (upgraded by a newer binary) is an [`ErrorKind::Config`] error
/// naming both versions ([`newer_schema`]).
pub async fn schema_state<'a, A>(
    site: &SqlSite,
    migrator: &Migrator,
    table: &str,
    pool: A,
) -> Result<SchemaState>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as Deref>::Target: Migrate,
{
    let mut conn = pool
        .acquire()
        .await
        .map_err(|err| site.error("connecting", err))?;
    let applied = match conn.deref_mut().list_applied_migrations(table).await {
        Ok(applied) => applied,
        Err(MigrateError::Execute(err)) if is_missing_table(&err) => {
            return Ok(SchemaState::Missing);
        }
        Err(MigrateError::Execute(err)) => {
            return Err(site.error("reading the migration history", err));
        }
        Err(err) => {
            return Err(Error::new(
                ErrorKind::Repository,
                format!("{site}: reading the migration history: {err}"),
            )
            .with_source(err));
        }
    };
    let latest = latest_version(migrator);
    if let Some(unknown) = applied
        .iter()
        .map(|m| m.version)
        .filter(|v| !migrator.version_exists(*v))
        .max()
    {
        return Err(newer_schema(site, unknown, latest));
    }
    let applied_latest = applied.iter().map(|m| m.version).max();
    if migrator
        .iter()
        .any(|m| !applied.iter().any(|a| a.version == m.version))
    {
        return Ok(SchemaState::Behind {
            applied: applied_latest,
            latest,
        });
    }
    Ok(SchemaState::Current)
}

/// The refusal of a database whose schema a newer binary upgraded: it has migration
/// `applied`, this binary knows migrations up to `latest`.
pub fn newer_schema(site: &SqlSite, applied: i64, latest: i64) -> Error {
    Error::new(
        ErrorKind::Config,
        format!(
            "{site}: its schema is newer than this ikkatsu: migration {applied} is applied there, this binary knows migrations up to {latest}; use the ikkatsu version that upgraded it (or a newer one)"
        ),
    )
}

/// Whether `err` says that a table does not exist (PostgreSQL `42P01`, MySQL/MariaDB
/// `42S02`, SQLite `no such table`).
pub fn is_missing_table(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("42P01" | "42S02"))
                || db.message().starts_with("no such table")
        }
        _ => false,
    }
}
