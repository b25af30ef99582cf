//! [`SqlStatusStore`]: the table `ikkatsu_file_status` in PostgreSQL or MySQL/MariaDB.
//!
//! Connecting, the URL and what a failed statement says come from `ikkatsu-sql` (shared with
//! the job repository); this module holds the statements:
//!
//! * `rows`: reading records (`lookup`) and their columns;
//! * `done`: recording successes (multi-row upserts);
//! * `store`: the [`StatusStore`] implementation;
//! * `lease` and `claims`: the run lease and the claims of cooperating runs.

use ikkatsu_core::{Error, Result};
use ikkatsu_sql::{PoolSettings, SqlSite};

use super::{StatusStoreOptions, StatusStoreUrl, mask_url};

mod claims;
mod done;
mod lease;
mod rows;
mod store;

/// The table holding the status store's migration history (sqlx's format), distinct from
/// the job repository's `ikkatsu_schema_migrations`.
pub const STATUS_MIGRATIONS_TABLE: &str = "ikkatsu_status_migrations";

/// A status store in PostgreSQL (`postgres://…`) or MySQL/MariaDB (`mysql://…`): one table,
/// `ikkatsu_file_status`, keyed by (namespace, path), created by embedded migrations whose
/// history is kept in [`STATUS_MIGRATIONS_TABLE`]. Several processes may connect to a
/// fresh database at once.
///
/// A batch of [`StatusStore::needs_processing`](super::StatusStore::needs_processing) is one
/// `= ANY($2)` query on PostgreSQL and one `IN (…)` query per thousand paths on MySQL;
/// reports are upserts.
///
/// Paths are compared exactly (`COLLATE "C"` text on PostgreSQL, `VARBINARY` on MySQL, so
/// case and trailing spaces matter). Key limits: a path of at most 3,000 bytes on MySQL and
/// about 2,600 bytes on PostgreSQL (its B-tree entry limit).
#[derive(Clone)]
pub struct SqlStatusStore {
    pool: Pool,
    /// The masked URL.
    describe: String,
    /// What errors name.
    site: SqlSite,
    options: StatusStoreOptions,
}

#[derive(Clone)]
enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

impl std::fmt::Debug for SqlStatusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStatusStore")
            .field("url", &self.describe)
            .field("options", &self.options)
            .finish()
    }
}

impl SqlStatusStore {
    /// Connects to `url` (`postgres://`, `postgresql://`, `mysql://` or `mariadb://`) and
    /// applies the pending migrations.
    pub async fn connect(url: &str, options: StatusStoreOptions) -> Result<Self> {
        let store = Self::connect_only(url, options).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to `url` to read only (a dry run): no table is created and no migration
    /// applied. `None` when the database has no status store table (no flow recorded
    /// anything there); a schema with migrations pending, or upgraded by a newer binary, is
    /// an [`ErrorKind::Config`](ikkatsu_core::ErrorKind::Config) error.
    pub async fn connect_read_only(url: &str, options: StatusStoreOptions) -> Result<Option<Self>> {
        let store = Self::connect_only(url, options).await?;
        let state = match &store.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                ikkatsu_sql::schema_state(
                    &store.site,
                    &postgres_migrator(),
                    STATUS_MIGRATIONS_TABLE,
                    pool,
                )
                .await?
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                ikkatsu_sql::schema_state(
                    &store.site,
                    &mysql_migrator(),
                    STATUS_MIGRATIONS_TABLE,
                    pool,
                )
                .await?
            }
        };
        match state {
            ikkatsu_sql::SchemaState::Current => Ok(Some(store)),
            ikkatsu_sql::SchemaState::Missing => Ok(None),
            ikkatsu_sql::SchemaState::Behind { applied, latest } => Err(Error::config(format!(
                "{}: its schema is older than this ikkatsu: migration {} is the latest applied there, this binary needs migrations up to {latest}; a dry run does not upgrade it: run once without --dry-run",
                store.site,
                applied.map_or_else(|| "none".to_string(), |v| v.to_string())
            ))),
        }
    }

    /// Connects to `url`, nothing more.
    async fn connect_only(url: &str, options: StatusStoreOptions) -> Result<Self> {
        options.validate()?;
        let describe = mask_url(url);
        let site = SqlSite::new("status store", "status store URL", url);
        let settings = PoolSettings::new("ikkatsu-status");
        let pool = match StatusStoreUrl::parse(url)? {
            #[cfg(feature = "postgres")]
            StatusStoreUrl::Postgres { url } => {
                Pool::Postgres(ikkatsu_sql::connect_postgres(&site, &url, &settings).await?)
            }
            #[cfg(feature = "mysql")]
            StatusStoreUrl::MySql { url } => {
                Pool::MySql(ikkatsu_sql::connect_mysql(&site, &url, &settings).await?)
            }
            other => {
                return Err(Error::config(format!(
                    "status store URL `{describe}` is not a SQL database URL{}",
                    match other.feature() {
                        Some(f @ ("postgres" | "mysql")) =>
                            format!(" this build supports (enable the `{f}` feature)"),
                        _ => String::new(),
                    }
                )));
            }
        };
        Ok(SqlStatusStore {
            pool,
            describe,
            site,
            options,
        })
    }

    /// Applies the embedded migrations not applied yet (done by [`SqlStatusStore::connect`]).
    /// sqlx holds a database lock while migrating; a lost race is retried.
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                ikkatsu_sql::migrate(&self.site, &postgres_migrator(), pool).await
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => ikkatsu_sql::migrate(&self.site, &mysql_migrator(), pool).await,
        }
    }

    fn error(&self, what: &str, err: sqlx::Error) -> Error {
        self.site.error(what, err)
    }
}

/// The PostgreSQL migrations, history in [`STATUS_MIGRATIONS_TABLE`].
#[cfg(feature = "postgres")]
fn postgres_migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("migrations/postgres");
    migrator.dangerous_set_table_name(STATUS_MIGRATIONS_TABLE);
    migrator
}

/// The MySQL/MariaDB migrations, history in [`STATUS_MIGRATIONS_TABLE`].
#[cfg(feature = "mysql")]
fn mysql_migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("migrations/mysql");
    migrator.dangerous_set_table_name(STATUS_MIGRATIONS_TABLE);
    migrator
}
