//! Reading records: their columns, decoded, and the lookup of a batch of paths.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;
use sqlx::Row;

use super::{Pool, SqlStatusStore};
use crate::status_store::{FileState, FileStatus};

/// Paths per `IN (…)` lookup on MySQL.
#[cfg(feature = "mysql")]
const MYSQL_CHUNK: usize = 1_000;

/// Error texts are cut to this many characters before they are stored.
const MAX_ERROR_CHARS: usize = 8_000;

/// Decodes a file info stored as JSON in the record of `path`.
pub(super) fn decode_info(
    describe: &str,
    path: &str,
    text: Option<String>,
) -> Result<Option<FileInfo>> {
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

/// Encodes a file info as JSON for a record.
pub(super) fn encode_info(info: &FileInfo) -> Result<String> {
    serde_json::to_string(info).map_err(|err| {
        Error::new(ErrorKind::Unexpected, format!("encoding file info: {err}")).with_source(err)
    })
}

/// `error` cut to [`MAX_ERROR_CHARS`] characters.
pub(super) fn clip(error: &str) -> &str {
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

impl SqlStatusStore {
    /// The records of `paths` that the store has, by path.
    pub(super) async fn lookup(&self, paths: Vec<String>) -> Result<HashMap<String, FileStatus>> {
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
