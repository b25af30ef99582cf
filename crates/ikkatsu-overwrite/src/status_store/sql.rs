//! [`SqlStatusStore`]: the table `ikkatsu_file_status` in PostgreSQL or MySQL/MariaDB.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;
use sqlx::{Connection, Row};

use super::{
    Claimed, FileState, FileStatus, Lease, LeaseAttempt, StatusCounts, StatusStore,
    StatusStoreOptions, StatusStoreUrl, mask_url,
};

mod claims;
mod connect;
mod lease;

/// The table holding the status store's migration history (sqlx's format), distinct from
/// the job repository's `ikkatsu_schema_migrations`.
pub const STATUS_MIGRATIONS_TABLE: &str = "ikkatsu_status_migrations";

/// Paths per `IN (…)` lookup on MySQL.
#[cfg(feature = "mysql")]
const MYSQL_CHUNK: usize = 1_000;

/// Error texts are cut to this many characters before they are stored.
const MAX_ERROR_CHARS: usize = 8_000;

/// A status store in PostgreSQL (`postgres://…`) or MySQL/MariaDB (`mysql://…`): one table,
/// `ikkatsu_file_status`, keyed by (namespace, path), created by embedded migrations whose
/// history is kept in [`STATUS_MIGRATIONS_TABLE`]. Several processes may connect to a
/// fresh database at once.
///
/// A batch of [`StatusStore::needs_processing`] is one `= ANY($2)` query on PostgreSQL and
/// one `IN (…)` query per thousand paths on MySQL; reports are upserts.
///
/// Paths are compared exactly (`COLLATE "C"` text on PostgreSQL, `VARBINARY` on MySQL, so
/// case and trailing spaces matter). Key limits: a path of at most 3,000 bytes on MySQL and
/// about 2,600 bytes on PostgreSQL (its B-tree entry limit).
#[derive(Clone)]
pub struct SqlStatusStore {
    pool: Pool,
    describe: String,
    options: StatusStoreOptions,
}

#[derive(Clone)]
enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// Rows per multi-row upsert when recording successes (4 bound values each, far below the
/// 65,535 bound values PostgreSQL and MySQL allow per statement).
const DONE_ROWS_PER_STATEMENT: usize = 500;

/// The start of the upsert that records successes.
const DONE_UPSERT: &str = "INSERT INTO ikkatsu_file_status \
    (namespace, path, state, uploaded, failed, error_count, last_error, updated_at) ";

impl std::fmt::Debug for SqlStatusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStatusStore")
            .field("url", &self.describe)
            .field("options", &self.options)
            .finish()
    }
}

fn map_sqlx(describe: &str, what: &str, err: sqlx::Error) -> Error {
    let temporary = match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            matches!(code.as_ref(), "40001" | "40P01" | "53300")
                || code.starts_with("08")
                || db.message().contains("Deadlock found")
                || db.message().contains("Lock wait timeout")
        }
        _ => false,
    };
    let error = Error::new(
        ErrorKind::Repository,
        format!(
            "status store {describe}: {what}: {}",
            connect::driver_message(&err)
        ),
    )
    .set_temporary(temporary);
    connect::with_driver_source(error, err)
}

fn decode_info(describe: &str, path: &str, text: Option<String>) -> Result<Option<FileInfo>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|err| {
            Error::new(
                ErrorKind::Parse,
                format!(
                    "status store {describe}: the record of `{path}` has invalid file info: {err}"
                ),
            )
            .with_source(err)
        })
    })
    .transpose()
}

fn encode_info(info: &FileInfo) -> Result<String> {
    serde_json::to_string(info).map_err(|err| {
        Error::new(ErrorKind::Unexpected, format!("encoding file info: {err}")).with_source(err)
    })
}

fn clip(error: &str) -> &str {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((at, _)) => &error[..at],
        None => error,
    }
}

/// The columns of a record as read, before decoding.
struct RawRow {
    path: String,
    state: String,
    uploaded: Option<String>,
    failed: Option<String>,
    error_count: i32,
    last_error: Option<String>,
    updated: DateTime<Utc>,
}

impl RawRow {
    fn decode(self, describe: &str) -> Result<(String, FileStatus)> {
        let state = FileState::parse(&self.state).ok_or_else(|| {
            Error::new(
                ErrorKind::Parse,
                format!(
                    "status store {describe}: the record of `{}` has an unknown state `{}`",
                    self.path, self.state
                ),
            )
        })?;
        let uploaded = decode_info(describe, &self.path, self.uploaded)?;
        let failed = decode_info(describe, &self.path, self.failed)?;
        Ok((
            self.path,
            FileStatus {
                state,
                uploaded,
                failed,
                error_count: u32::try_from(self.error_count).unwrap_or(0),
                last_error: self.last_error,
                updated: self.updated,
            },
        ))
    }
}

const COLUMNS: &str = "path, state, uploaded, failed, error_count, last_error, updated_at";

#[cfg(feature = "postgres")]
fn pg_row(row: &sqlx::postgres::PgRow) -> std::result::Result<RawRow, sqlx::Error> {
    Ok(RawRow {
        path: row.try_get(0)?,
        state: row.try_get(1)?,
        uploaded: row.try_get(2)?,
        failed: row.try_get(3)?,
        error_count: row.try_get(4)?,
        last_error: row.try_get(5)?,
        updated: row.try_get(6)?,
    })
}

#[cfg(feature = "mysql")]
fn my_row(row: &sqlx::mysql::MySqlRow) -> std::result::Result<RawRow, sqlx::Error> {
    let path: Vec<u8> = row.try_get(0)?;
    let updated: chrono::NaiveDateTime = row.try_get(6)?;
    Ok(RawRow {
        path: String::from_utf8_lossy(&path).into_owned(),
        state: row.try_get(1)?,
        uploaded: row.try_get(2)?,
        failed: row.try_get(3)?,
        error_count: row.try_get(4)?,
        last_error: row.try_get(5)?,
        updated: updated.and_utc(),
    })
}

/// The upsert recording `rows` (path, uploaded file info as JSON) as done on PostgreSQL.
#[cfg(feature = "postgres")]
fn pg_done(
    namespace: &str,
    rows: &[(&str, String)],
    now: DateTime<Utc>,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(DONE_UPSERT);
    query.push_values(rows.iter(), |mut row, (path, uploaded)| {
        row.push_bind(namespace)
            .push_bind(*path)
            .push("'done'")
            .push_bind(uploaded.as_str())
            .push("NULL, 0, NULL")
            .push_bind(now);
    });
    query.push(
        " ON CONFLICT (namespace, path) DO UPDATE SET state = 'done', \
         uploaded = EXCLUDED.uploaded, failed = NULL, error_count = 0, \
         last_error = NULL, updated_at = EXCLUDED.updated_at",
    );
    query
}

/// The upsert recording `rows` (path, uploaded file info as JSON) as done on MySQL.
#[cfg(feature = "mysql")]
fn my_done(
    namespace: &str,
    rows: &[(&str, String)],
    now: DateTime<Utc>,
) -> sqlx::QueryBuilder<sqlx::MySql> {
    let mut query = sqlx::QueryBuilder::<sqlx::MySql>::new(DONE_UPSERT);
    query.push_values(rows.iter(), |mut row, (path, uploaded)| {
        row.push_bind(namespace.as_bytes())
            .push_bind(path.as_bytes())
            .push("'done'")
            .push_bind(uploaded.as_str())
            .push("NULL, 0, NULL")
            .push_bind(now.naive_utc());
    });
    query.push(
        " ON DUPLICATE KEY UPDATE state = 'done', uploaded = VALUES(uploaded), \
         failed = NULL, error_count = 0, last_error = NULL, \
         updated_at = VALUES(updated_at)",
    );
    query
}

impl SqlStatusStore {
    /// Records every `(source, uploaded)` pair as done: one multi-row upsert per
    /// [`DONE_ROWS_PER_STATEMENT`] pairs, in one transaction when there are several.
    async fn record_done(&self, done: &[(FileInfo, FileInfo)], what: &str) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let namespace = self.options.namespace.as_str();
        let now = Utc::now();
        let mut encoded = Vec::with_capacity(done.len());
        for (source, uploaded) in done {
            encoded.push((source.path.as_str(), encode_info(uploaded)?));
        }
        let fail = |err: sqlx::Error| self.error(what, err);
        // One statement is atomic by itself; several need a transaction.
        macro_rules! run {
            ($pool:expr, $build:expr) => {
                if encoded.len() <= DONE_ROWS_PER_STATEMENT {
                    $build(&encoded)
                        .build()
                        .execute($pool)
                        .await
                        .map_err(fail)?;
                } else {
                    let mut tx = $pool.begin().await.map_err(fail)?;
                    for rows in encoded.chunks(DONE_ROWS_PER_STATEMENT) {
                        $build(rows).build().execute(&mut *tx).await.map_err(fail)?;
                    }
                    tx.commit().await.map_err(fail)?;
                }
            };
        }
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let build = |rows: &[(&str, String)]| pg_done(namespace, rows, now);
                run!(pool, build);
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                let build = |rows: &[(&str, String)]| my_done(namespace, rows, now);
                run!(pool, build);
            }
        }
        Ok(())
    }

    /// Connects to `url` (`postgres://`, `postgresql://`, `mysql://` or `mariadb://`) and
    /// applies the pending migrations.
    pub async fn connect(url: &str, options: StatusStoreOptions) -> Result<Self> {
        options.validate()?;
        let describe = mask_url(url);
        let pool = match StatusStoreUrl::parse(url)? {
            #[cfg(feature = "postgres")]
            StatusStoreUrl::Postgres { url } => {
                let connect_options = sqlx::postgres::PgConnectOptions::from_str(&url)
                    .map_err(|err| map_sqlx(&describe, "parsing the URL", err))?
                    .application_name("ikkatsu-status");
                let database = connect_options
                    .get_database()
                    .unwrap_or(connect_options.get_username())
                    .to_string();
                let server = format!(
                    "{}:{}",
                    connect_options.get_host(),
                    connect_options.get_port()
                );
                // One direct connection first: an unreachable server or a missing database
                // fails at once with the driver's message instead of after the pool's
                // acquire timeout.
                sqlx::PgConnection::connect_with(&connect_options)
                    .await
                    .map_err(|err| {
                        let create = format!("createdb {database}");
                        connect::map_connect(&describe, &server, &database, &create, err)
                    })?
                    .close()
                    .await
                    .map_err(|err| map_sqlx(&describe, "connecting", err))?;
                let pool = connect::quiet_notices(sqlx::postgres::PgPoolOptions::new())
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(connect_options)
                    .await
                    .map_err(|err| map_sqlx(&describe, "connecting", err))?;
                Pool::Postgres(pool)
            }
            #[cfg(feature = "mysql")]
            StatusStoreUrl::MySql { url } => {
                let connect_options = sqlx::mysql::MySqlConnectOptions::from_str(&url)
                    .map_err(|err| map_sqlx(&describe, "parsing the URL", err))?;
                let database = connect_options
                    .get_database()
                    .unwrap_or_default()
                    .to_string();
                let server = format!(
                    "{}:{}",
                    connect_options.get_host(),
                    connect_options.get_port()
                );
                sqlx::MySqlConnection::connect_with(&connect_options)
                    .await
                    .map_err(|err| {
                        let create = format!("CREATE DATABASE {database}");
                        connect::map_connect(&describe, &server, &database, &create, err)
                    })?
                    .close()
                    .await
                    .map_err(|err| map_sqlx(&describe, "connecting", err))?;
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(connect_options)
                    .await
                    .map_err(|err| map_sqlx(&describe, "connecting", err))?;
                Pool::MySql(pool)
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
            options,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded migrations not applied yet (done by [`SqlStatusStore::connect`]).
    /// sqlx holds a database lock while migrating; a lost race is retried.
    pub async fn migrate(&self) -> Result<()> {
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let result = match &self.pool {
                #[cfg(feature = "postgres")]
                Pool::Postgres(pool) => {
                    let mut migrator = sqlx::migrate!("migrations/postgres");
                    migrator.dangerous_set_table_name(STATUS_MIGRATIONS_TABLE);
                    migrator.run(pool).await
                }
                #[cfg(feature = "mysql")]
                Pool::MySql(pool) => {
                    let mut migrator = sqlx::migrate!("migrations/mysql");
                    migrator.dangerous_set_table_name(STATUS_MIGRATIONS_TABLE);
                    migrator.run(pool).await
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // `Dirty`: another process is applying the migration right now (its history
                // row is marked unfinished until it is done); wait for it.
                Err(
                    sqlx::migrate::MigrateError::Execute(_)
                    | sqlx::migrate::MigrateError::ExecuteMigration(..)
                    | sqlx::migrate::MigrateError::Dirty(_),
                ) if attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(err) => {
                    return Err(Error::new(
                        ErrorKind::Repository,
                        format!("status store {}: applying migrations: {err}", self.describe),
                    )
                    .with_source(err));
                }
            }
        }
    }

    fn error(&self, what: &str, err: sqlx::Error) -> Error {
        map_sqlx(&self.describe, what, err)
    }

    async fn lookup(&self, paths: Vec<String>) -> Result<HashMap<String, FileStatus>> {
        let namespace = self.options.namespace.as_str();
        let mut raw = Vec::new();
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM ikkatsu_file_status WHERE namespace = $1 AND path = ANY($2)"
                )))
                .bind(namespace)
                .bind(&paths)
                .fetch_all(pool)
                .await
                .map_err(|err| self.error("looking up files", err))?;
                for row in &rows {
                    raw.push(pg_row(row).map_err(|err| self.error("reading a record", err))?);
                }
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                for chunk in paths.chunks(MYSQL_CHUNK) {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let sql = format!(
                        "SELECT {COLUMNS} FROM ikkatsu_file_status WHERE namespace = ? AND path IN ({marks})"
                    );
                    let mut query =
                        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(namespace.as_bytes());
                    for path in chunk {
                        query = query.bind(path.as_bytes());
                    }
                    let rows = query
                        .fetch_all(pool)
                        .await
                        .map_err(|err| self.error("looking up files", err))?;
                    for row in &rows {
                        raw.push(my_row(row).map_err(|err| self.error("reading a record", err))?);
                    }
                }
            }
        }
        raw.into_iter()
            .map(|row| row.decode(&self.describe))
            .collect()
    }
}

#[async_trait]
impl StatusStore for SqlStatusStore {
    async fn needs_processing(&self, files: Vec<FileInfo>) -> Result<Vec<FileInfo>> {
        if files.is_empty() {
            return Ok(files);
        }
        let records = self
            .lookup(files.iter().map(|f| f.path.clone()).collect())
            .await?;
        Ok(files
            .into_iter()
            .filter(|file| match records.get(&file.path) {
                Some(status) => status.needs_processing(file, self.options.max_errors),
                None => true,
            })
            .collect())
    }

    async fn report_done(&self, source: &FileInfo, uploaded: &FileInfo) -> Result<()> {
        self.record_done(
            &[(source.clone(), uploaded.clone())],
            &format!("recording the success of `{}`", source.path),
        )
        .await
    }

    async fn is_empty(&self) -> Result<bool> {
        let namespace = self.options.namespace.as_str();
        let what = "reading records";
        let found: Option<i32> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                sqlx::query_scalar("SELECT 1 FROM ikkatsu_file_status WHERE namespace = $1 LIMIT 1")
                    .bind(namespace)
                    .fetch_optional(pool)
                    .await
                    .map_err(|err| self.error(what, err))?
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                sqlx::query_scalar("SELECT 1 FROM ikkatsu_file_status WHERE namespace = ? LIMIT 1")
                    .bind(namespace.as_bytes())
                    .fetch_optional(pool)
                    .await
                    .map_err(|err| self.error(what, err))?
            }
        };
        Ok(found.is_none())
    }

    async fn report_done_all(&self, done: &[(FileInfo, FileInfo)]) -> Result<()> {
        self.record_done(done, &format!("recording {} successes", done.len()))
            .await
    }

    async fn report_error(&self, file: &FileInfo, error: &str) -> Result<u32> {
        let namespace = self.options.namespace.as_str();
        let failed = encode_info(file)?;
        let error = clip(error);
        let now = Utc::now();
        let what = || format!("recording a failure of `{}`", file.path);
        let count: i32 = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => sqlx::query_scalar(
                "INSERT INTO ikkatsu_file_status (namespace, path, state, uploaded, failed, error_count, last_error, updated_at) \
                 VALUES ($1, $2, 'failed', NULL, $3, 1, $4, $5) \
                 ON CONFLICT (namespace, path) DO UPDATE SET state = 'failed', failed = EXCLUDED.failed, \
                 error_count = ikkatsu_file_status.error_count + 1, last_error = EXCLUDED.last_error, \
                 updated_at = EXCLUDED.updated_at RETURNING error_count",
            )
            .bind(namespace)
            .bind(&file.path)
            .bind(failed)
            .bind(error)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(|err| self.error(&what(), err))?,
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                let mut txn = pool.begin().await.map_err(|err| self.error(&what(), err))?;
                sqlx::query(
                    "INSERT INTO ikkatsu_file_status (namespace, path, state, uploaded, failed, error_count, last_error, updated_at) \
                     VALUES (?, ?, 'failed', NULL, ?, 1, ?, ?) \
                     ON DUPLICATE KEY UPDATE state = 'failed', failed = VALUES(failed), \
                     error_count = error_count + 1, last_error = VALUES(last_error), updated_at = VALUES(updated_at)",
                )
                .bind(namespace.as_bytes())
                .bind(file.path.as_bytes())
                .bind(failed)
                .bind(error)
                .bind(now.naive_utc())
                .execute(&mut *txn)
                .await
                .map_err(|err| self.error(&what(), err))?;
                let count = sqlx::query_scalar(
                    "SELECT error_count FROM ikkatsu_file_status WHERE namespace = ? AND path = ?",
                )
                .bind(namespace.as_bytes())
                .bind(file.path.as_bytes())
                .fetch_one(&mut *txn)
                .await
                .map_err(|err| self.error(&what(), err))?;
                txn.commit().await.map_err(|err| self.error(&what(), err))?;
                count
            }
        };
        Ok(u32::try_from(count).unwrap_or(0))
    }

    async fn status(&self, path: &str) -> Result<Option<FileStatus>> {
        Ok(self.lookup(vec![path.to_string()]).await?.remove(path))
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let namespace = self.options.namespace.as_str();
        let what = "counting records";
        let rows: Vec<(String, i64)> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => sqlx::query_as(
                "SELECT state, COUNT(*) FROM ikkatsu_file_status WHERE namespace = $1 GROUP BY state",
            )
            .bind(namespace)
            .fetch_all(pool)
            .await
            .map_err(|err| self.error(what, err))?,
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => sqlx::query_as(
                "SELECT state, COUNT(*) FROM ikkatsu_file_status WHERE namespace = ? GROUP BY state",
            )
            .bind(namespace.as_bytes())
            .fetch_all(pool)
            .await
            .map_err(|err| self.error(what, err))?,
        };
        let mut counts = StatusCounts::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match FileState::parse(&state) {
                Some(FileState::Done) => counts.done += n,
                Some(FileState::Failed) => counts.failed += n,
                None => {}
            }
        }
        Ok(counts)
    }

    fn options(&self) -> &StatusStoreOptions {
        &self.options
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn clear(&self) -> Result<()> {
        let namespace = self.options.namespace.as_str();
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                sqlx::query("DELETE FROM ikkatsu_file_status WHERE namespace = $1")
                    .bind(namespace)
                    .execute(pool)
                    .await
                    .map(drop)
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => sqlx::query("DELETE FROM ikkatsu_file_status WHERE namespace = ?")
                .bind(namespace.as_bytes())
                .execute(pool)
                .await
                .map(drop),
        }
        .map_err(|err| self.error("clearing the namespace", err))
    }

    async fn acquire_lease(&self, me: &Lease, take_over: Option<&str>) -> Result<LeaseAttempt> {
        self.sql_acquire_lease(me, take_over).await
    }

    async fn renew_lease(&self, me: &Lease) -> Result<bool> {
        self.sql_renew_lease(me).await
    }

    async fn release_lease(&self, token: &str) -> Result<()> {
        self.sql_release_lease(token).await
    }

    async fn lease(&self) -> Result<Option<Lease>> {
        self.sql_lease().await
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn join_run(&self, me: &Lease, renew: bool) -> Result<bool> {
        self.sql_join_run(me, renew).await
    }

    async fn runs(&self) -> Result<Vec<Lease>> {
        self.sql_runs().await
    }

    async fn leave_run(&self, token: &str) -> Result<()> {
        self.sql_leave_run(token).await
    }

    async fn claim(&self, me: &Lease, files: Vec<FileInfo>) -> Result<Vec<Claimed>> {
        self.sql_claim(me, files).await
    }

    async fn report_done_claimed(
        &self,
        token: &str,
        done: &[(FileInfo, FileInfo)],
    ) -> Result<Vec<String>> {
        self.sql_report_done_claimed(token, done).await
    }

    async fn close(&self) -> Result<()> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => pool.close().await,
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => pool.close().await,
        }
        Ok(())
    }
}
