//! Recording successes: multi-row upserts, in one transaction when there are several.

use chrono::{DateTime, Utc};
use ikkatsu_core::Result;
use ikkatsu_storage::FileInfo;

use super::rows::encode_info;
use super::{Pool, SqlStatusStore};

/// Rows per multi-row upsert when recording successes (4 bound values each, far below the
/// 65,535 bound values PostgreSQL and MySQL allow per statement).
pub(super) const DONE_ROWS_PER_STATEMENT: usize = 500;

/// The start of the upsert that records successes.
const DONE_UPSERT: &str = "INSERT INTO ikkatsu_file_status \
    (namespace, path, state, uploaded, failed, error_count, last_error, updated_at) ";

/// The upsert recording `rows` (path, uploaded file info as JSON) as done on PostgreSQL.
#[cfg(feature = "postgres")]
pub(super) fn pg_done(
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
pub(super) fn my_done(
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
    pub(super) async fn record_done(
        &self,
        done: &[(FileInfo, FileInfo)],
        what: &str,
    ) -> Result<()> {
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
}
