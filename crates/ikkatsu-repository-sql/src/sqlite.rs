//! [`SqliteJobRepository`]: the job repository in a SQLite file (the default, `./ikkatsu.db`).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ikkatsu_core::{BatchStatus, JobExecution, Result, StepExecution};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::shared::{job_repository_impl, repository_type, returning_stores};

type Db = sqlx::Sqlite;

/// How long a statement waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

mod sql {
    pub(crate) use crate::sql_qmark::*;
    use crate::sql_qmark::{update_execution_set, update_step_set};

    /// Binds: job name, job key.
    pub(crate) const INSERT_INSTANCE: &str =
        "INSERT OR IGNORE INTO ikkatsu_job_instance (job_name, job_key) VALUES (?, ?)";
    /// Binds: job name, job key. The launch transaction already holds the write lock.
    pub(crate) const LOCK_INSTANCE: &str =
        "SELECT id, job_name, job_key FROM ikkatsu_job_instance WHERE job_name = ? AND job_key = ?";
    pub(crate) const UPDATE_EXECUTION: &str = concat!(
        "UPDATE ikkatsu_job_execution SET ",
        update_execution_set!(),
        ", version = version + 1 WHERE id = ? RETURNING status, version"
    );
    /// Binds: last updated, id.
    pub(crate) const HEARTBEAT: &str =
        "UPDATE ikkatsu_job_execution SET last_updated = ? WHERE id = ? RETURNING status";
    /// Binds: last updated, id.
    pub(crate) const STEP_HEARTBEAT: &str =
        "UPDATE ikkatsu_step_execution SET last_updated = ? WHERE id = ?";
    pub(crate) const UPDATE_STEP: &str = concat!(
        "UPDATE ikkatsu_step_execution SET ",
        update_step_set!(),
        ", version = version + 1 WHERE id = ? RETURNING version"
    );
}

repository_type!(
    /// The job repository in a SQLite database file: WAL journal, 10 s busy timeout, foreign
    /// keys on, the file created when missing.
    SqliteJobRepository,
    "migrations/sqlite",
    /// Launches of one instance are serialized by taking SQLite's write lock up front
    /// (`BEGIN IMMEDIATE`), so that the check and the insert see the same state.
    begin_create(pool) {
        pool.begin_with("BEGIN IMMEDIATE").await
    },
    insert_id(executor, query) {
        Ok(query.execute(executor).await?.last_insert_rowid())
    },
);

impl SqliteJobRepository {
    /// Opens (creating it if missing) the database file at `path` and applies migrations.
    pub async fn open(path: &str) -> Result<Self> {
        let describe = format!("sqlite://{path}");
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::with_options(options, 8, describe).await
    }

    /// Opens the existing database file at `path` for reading only: the file is not created
    /// ([`ErrorKind::NotFound`](ikkatsu_core::ErrorKind::NotFound) when it is missing) and
    /// no migration is applied (see [`crate::connect_existing`]).
    pub async fn open_existing(path: &str) -> Result<Self> {
        let describe = format!("sqlite://{path}");
        if !std::path::Path::new(path).exists() {
            return Err(crate::error::site(&describe).fault(
                ikkatsu_core::ErrorKind::NotFound,
                format!("there is no file `{path}`"),
            ));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false);
        let pool = Self::open_pool(options, 8, &describe).await?;
        Self::existing_with_pool(pool, describe).await
    }

    /// An in-memory database (one connection, gone when the repository is dropped).
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(|err| {
            crate::error::map_sqlx("sqlite::memory:", "configuring the connection", err)
        })?;
        Self::with_options(options, 1, "sqlite::memory:".to_string()).await
    }

    async fn with_options(
        options: SqliteConnectOptions,
        max_connections: u32,
        describe: String,
    ) -> Result<Self> {
        let pool = Self::open_pool(options, max_connections, &describe).await?;
        Self::with_pool(pool, describe).await
    }

    async fn open_pool(
        options: SqliteConnectOptions,
        max_connections: u32,
        describe: &str,
    ) -> Result<sqlx::SqlitePool> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Switching a new database file to WAL takes a lock that SQLite's busy timeout does
        // not wait for: a second process opening the file while the first one creates it
        // gets "database is locked" at once. Such a refusal is retried until the busy
        // timeout; any other error is returned as it is.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match Self::connect_pool(&options, max_connections).await {
                Err(err) if is_busy(&err) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                result => {
                    return result.map_err(|err| {
                        crate::error::map_sqlx(describe, "opening the database", err)
                    });
                }
            }
        }
    }

    async fn connect_pool(
        options: &SqliteConnectOptions,
        max_connections: u32,
    ) -> std::result::Result<sqlx::SqlitePool, sqlx::Error> {
        SqlitePoolOptions::new()
            .max_connections(max_connections)
            .min_connections(if max_connections == 1 { 1 } else { 0 })
            .idle_timeout(if max_connections == 1 {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if max_connections == 1 {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .acquire_timeout(Duration::from_secs(30))
            // A SQLite connection is a file handle on a worker thread: it cannot go stale
            // the way a network connection can, and a ping before every statement would
            // double the thread hand-offs of a chunk commit.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
    }

    returning_stores!();
}

job_repository_impl!(SqliteJobRepository);

/// Whether `err` is SQLite's `SQLITE_BUSY` ("database is locked"), of any extended code.
fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(|code| code & 0xff == 5),
        _ => false,
    }
}
