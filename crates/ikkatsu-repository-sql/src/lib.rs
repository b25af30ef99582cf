//! # ikkatsu-repository-sql
//!
//! The persistent [`JobRepository`] of ikkatsu, over [sqlx]: SQLite (feature `sqlite`, the
//! default — the CLI's `./ikkatsu.db`), PostgreSQL (feature `postgres`) and MySQL/MariaDB
//! (feature `mysql`). One module per backend; the statements and row mapping they share are
//! written once.
//!
//! [`connect`] picks the backend from the URL (`sqlite://PATH`, `sqlite:PATH`,
//! `sqlite::memory:`, `postgres://…`, `postgresql://…`, `mysql://…`, `mariadb://…`) and
//! applies the embedded migrations (tables prefixed `ikkatsu_`, migration history in
//! `ikkatsu_schema_migrations`). The schema follows Spring Batch's: see
//! `docs/adr/0003-repository-schema.md`. Parsing the URL, connecting (a missing database
//! says which and how to create it) and mapping driver errors are `ikkatsu-sql`'s, shared
//! with the SQL status store (`docs/adr/0014-where-data-access-lives.md`).
//!
//! A chunk commit costs one statement: the step execution's counts, status and execution
//! context live in one row, updated by one `UPDATE`. Launching is atomic: concurrent starts
//! of the same job instance serialize on a lock (SQLite `BEGIN IMMEDIATE`, a row lock
//! `SELECT … FOR UPDATE` elsewhere) and all but one are refused with
//! [`ErrorKind::AlreadyRunning`](ikkatsu_core::ErrorKind::AlreadyRunning).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use ikkatsu_core::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("ikkatsu.db").display());
//! let repository = ikkatsu_repository_sql::connect(&url).await?;
//!
//! let writer = VecItemWriter::new();
//! let step = ChunkStep::<i64, i64>::builder("copy")
//!     .reader(VecItemReader::new((1..=5).collect()))
//!     .writer(writer.clone())
//!     .chunk_size(2)
//!     .build()?;
//! let job = Job::linear("numbers", vec![Arc::new(step)])?;
//! let operator = JobOperator::new(repository.clone());
//! let params = JobParameters::new().with("day", ParameterValue::String("2026-01-31".into()));
//! let execution = operator.start(&job, params.clone(), CancellationToken::new()).await?;
//! assert_eq!(execution.status, BatchStatus::Completed);
//!
//! // The run is on disk: a second start with the same identifying parameters is refused.
//! let again = operator.start(&job, params, CancellationToken::new()).await;
//! assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyComplete);
//! let steps = repository.step_executions(execution.id).await?;
//! assert_eq!(steps[0].counts.write_count, 5);
//! assert_eq!(steps[0].counts.commit_count, 3);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod error;
mod rows;
mod shared;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod sql_qmark;
pub mod url;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::sync::Arc;

use ikkatsu_core::secret::mask_url;
use ikkatsu_core::{Error, ErrorKind, JobRepository, Result};

#[cfg(feature = "mysql")]
pub use mysql::MySqlJobRepository;
#[cfg(feature = "postgres")]
pub use postgres::PostgresJobRepository;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteJobRepository;
pub use url::RepositoryUrl;

/// The table holding the migration history (sqlx's format), named so that it does not meet an
/// application's own `_sqlx_migrations` in a shared database.
pub const MIGRATIONS_TABLE: &str = "ikkatsu_schema_migrations";

/// A connected SQL repository of any compiled-in backend, with its statement counter.
#[derive(Clone)]
pub enum SqlJobRepository {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(Arc<SqliteJobRepository>),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(Arc<PostgresJobRepository>),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    MySql(Arc<MySqlJobRepository>),
}

impl SqlJobRepository {
    /// Connects to the database at `url` and applies pending migrations.
    ///
    /// Fails with [`ErrorKind::Config`] naming the (password-masked) URL when the scheme is
    /// unknown or its backend's cargo feature is not compiled in.
    pub async fn connect(url: &str) -> Result<Self> {
        let parsed = url::parse(url)?;
        match parsed {
            #[cfg(feature = "sqlite")]
            RepositoryUrl::Sqlite { path: Some(path) } => Ok(SqlJobRepository::Sqlite(Arc::new(
                SqliteJobRepository::open(&path).await?,
            ))),
            #[cfg(feature = "sqlite")]
            RepositoryUrl::Sqlite { path: None } => Ok(SqlJobRepository::Sqlite(Arc::new(
                SqliteJobRepository::in_memory().await?,
            ))),
            #[cfg(feature = "postgres")]
            RepositoryUrl::Postgres { url } => Ok(SqlJobRepository::Postgres(Arc::new(
                PostgresJobRepository::connect(&url).await?,
            ))),
            #[cfg(feature = "mysql")]
            RepositoryUrl::MySql { url } => Ok(SqlJobRepository::MySql(Arc::new(
                MySqlJobRepository::connect(&url).await?,
            ))),
            #[allow(unreachable_patterns)]
            other => Err(Error::new(
                ErrorKind::Config,
                format!(
                    "job repository URL `{}` needs the `{}` feature of ikkatsu-repository-sql, which this build does not include; rebuild with `--features {}`",
                    mask_url(url),
                    other.feature(),
                    other.feature()
                ),
            )),
        }
    }

    /// Connects to the existing repository at `url` to read it: nothing is created (no
    /// SQLite file, no table) and no migration is applied. A missing SQLite file or a
    /// database without the repository's tables is an [`ErrorKind::NotFound`] error; a schema
    /// with migrations pending, or upgraded by a newer binary (migrations this one does not
    /// know), is an [`ErrorKind::Config`] error naming both versions.
    pub async fn connect_existing(url: &str) -> Result<Self> {
        match url::parse(url)? {
            #[cfg(feature = "sqlite")]
            RepositoryUrl::Sqlite { path: Some(path) } => Ok(SqlJobRepository::Sqlite(Arc::new(
                SqliteJobRepository::open_existing(&path).await?,
            ))),
            #[cfg(feature = "postgres")]
            RepositoryUrl::Postgres { url } => Ok(SqlJobRepository::Postgres(Arc::new(
                PostgresJobRepository::connect_existing(&url).await?,
            ))),
            #[cfg(feature = "mysql")]
            RepositoryUrl::MySql { url } => Ok(SqlJobRepository::MySql(Arc::new(
                MySqlJobRepository::connect_existing(&url).await?,
            ))),
            // An in-memory database, and a backend this build lacks, as `connect` says.
            #[allow(unreachable_patterns)]
            _ => Self::connect(url).await,
        }
    }

    /// The repository as the core's port.
    pub fn as_dyn(&self) -> Arc<dyn JobRepository> {
        match self {
            #[cfg(feature = "sqlite")]
            SqlJobRepository::Sqlite(r) => r.clone(),
            #[cfg(feature = "postgres")]
            SqlJobRepository::Postgres(r) => r.clone(),
            #[cfg(feature = "mysql")]
            SqlJobRepository::MySql(r) => r.clone(),
        }
    }

    /// The number of SQL statements executed by repository operations so far (transaction
    /// control included; connection setup and migrations excluded).
    pub fn statements_executed(&self) -> u64 {
        match self {
            #[cfg(feature = "sqlite")]
            SqlJobRepository::Sqlite(r) => r.statements_executed(),
            #[cfg(feature = "postgres")]
            SqlJobRepository::Postgres(r) => r.statements_executed(),
            #[cfg(feature = "mysql")]
            SqlJobRepository::MySql(r) => r.statements_executed(),
        }
    }

    /// Applies pending migrations (already done by [`SqlJobRepository::connect`]).
    pub async fn migrate(&self) -> Result<()> {
        match self {
            #[cfg(feature = "sqlite")]
            SqlJobRepository::Sqlite(r) => r.migrate().await,
            #[cfg(feature = "postgres")]
            SqlJobRepository::Postgres(r) => r.migrate().await,
            #[cfg(feature = "mysql")]
            SqlJobRepository::MySql(r) => r.migrate().await,
        }
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            SqlJobRepository::Sqlite(r) => r.close().await,
            #[cfg(feature = "postgres")]
            SqlJobRepository::Postgres(r) => r.close().await,
            #[cfg(feature = "mysql")]
            SqlJobRepository::MySql(r) => r.close().await,
        }
    }
}

/// Connects to the job repository at `url` (see [`SqlJobRepository::connect`]) and applies
/// pending migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn JobRepository>> {
    Ok(SqlJobRepository::connect(url).await?.as_dyn())
}

/// Connects to the existing job repository at `url` to read it, creating and migrating
/// nothing (see [`SqlJobRepository::connect_existing`]).
pub async fn connect_existing(url: &str) -> Result<Arc<dyn JobRepository>> {
    Ok(SqlJobRepository::connect_existing(url).await?.as_dyn())
}

/// Applies the pending migrations of the database at `url`, then closes the connection.
pub async fn migrate(url: &str) -> Result<()> {
    let repository = SqlJobRepository::connect(url).await?;
    repository.close().await;
    Ok(())
}
