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
        let store = SqlStatusStore {
            pool,
            describe,
            site,
            options,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded migrations not applied yet (done by [`SqlStatusStore::connect`]).
    /// sqlx holds a database lock while migrating; a lost race is retried.
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let mut migrator = sqlx::migrate!("migrations/postgres");
                migrator.dangerous_set_table_name(STATUS_MIGRATIONS_TABLE);
                ikkatsu_sql::migrate(&self.site, &migrator, pool).await
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                let mut migrator = sqlx::migrate!("migrations/mysql");
                migrator.dangerous_set_table_name(STATUS_MIGRATIONS_TABLE);
                ikkatsu_sql::migrate(&self.site, &migrator, pool).await
            }
        }
    }

    fn error(&self, what: &str, err: sqlx::Error) -> Error {
        self.site.error(what, err)
    }
}
