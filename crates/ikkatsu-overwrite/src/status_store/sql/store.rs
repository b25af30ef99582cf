//! The [`StatusStore`] implementation of [`SqlStatusStore`].

use async_trait::async_trait;
use chrono::Utc;
use ikkatsu_core::Result;
use ikkatsu_storage::FileInfo;

use super::rows::{clip, encode_info};
use super::{Pool, SqlStatusStore};
use crate::status_store::{
    Claimed, FileState, FileStatus, Lease, LeaseAttempt, StatusCounts, StatusStore,
    StatusStoreOptions,
};

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
