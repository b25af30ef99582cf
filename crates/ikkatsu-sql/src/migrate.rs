//! Applying embedded migrations when several processes may start on a fresh database at once.

use std::time::Duration;

use ikkatsu_core::{Error, ErrorKind, Result};
use sqlx::migrate::{Migrate, MigrateError, Migrator};

use crate::error::SqlSite;

/// Attempts before a failing migration is reported.
const ATTEMPTS: u64 = 5;

/// Applies the migrations of `migrator` not applied yet to the database of `pool`.
///
/// Another process may be applying them at the same moment (SQLite has no migration lock;
/// elsewhere sqlx's lock may be lost to a race, and a migration being applied is marked
/// `Dirty` until it is done): a failed attempt is retried after a short wait, and finds them
/// applied. A migration that keeps failing is an [`ErrorKind::Repository`] error naming
/// `site`. A database with an applied migration this binary does not know (a newer binary
/// upgraded it) is refused before anything is applied: an [`ErrorKind::Config`] error
/// naming both versions.
pub async fn migrate<'a, A>(site: &SqlSite, migrator: &Migrator, pool: A) -> Result<()>
where
    A: sqlx::Acquire<'a> + Copy,
    <A::Connection as std::ops::Deref>::Target: Migrate,
{
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(
                MigrateError::Execute(_)
                | MigrateError::ExecuteMigration(..)
                | MigrateError::Dirty(_),
            ) if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(MigrateError::VersionMissing(applied)) => {
                return Err(crate::schema::newer_schema(
                    site,
                    applied,
                    crate::schema::latest_version(migrator),
                ));
            }
            Err(err) => {
                return Err(Error::new(
                    ErrorKind::Repository,
                    format!("{site}: applying migrations: {err}"),
                )
                .with_source(err));
            }
        }
    }
}
