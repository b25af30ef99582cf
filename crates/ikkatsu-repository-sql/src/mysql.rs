//! [`MySqlJobRepository`]: the job repository in MySQL or MariaDB.

use chrono::{DateTime, Utc};
use ikkatsu_core::secret::mask_url;
use ikkatsu_core::{BatchStatus, JobExecution, Result, StepExecution};
use ikkatsu_sql::{PoolSettings, connect_mysql};

use crate::shared::{bind_job_update, bind_step_update, job_repository_impl, repository_type};

type Db = sqlx::MySql;

mod sql {
    pub(crate) use crate::sql_qmark::*;
    use crate::sql_qmark::{update_execution_set, update_step_set};

    /// Binds: job name, job key. Touching an existing row takes its lock, like a new one.
    pub(crate) const INSERT_INSTANCE: &str = "INSERT INTO ikkatsu_job_instance (job_name, job_key) VALUES (?, ?) ON DUPLICATE KEY UPDATE version = version";
    /// Binds: job name, job key. Locks the instance row: concurrent launches queue here.
    pub(crate) const LOCK_INSTANCE: &str = "SELECT id, job_name, job_key FROM ikkatsu_job_instance WHERE job_name = ? AND job_key = ? FOR UPDATE";
    /// MySQL has no `UPDATE … RETURNING`: the new version comes back through
    /// `LAST_INSERT_ID(expr)`, which the server reports with the statement's result.
    pub(crate) const UPDATE_EXECUTION: &str = concat!(
        "UPDATE ikkatsu_job_execution SET ",
        update_execution_set!(),
        ", version = LAST_INSERT_ID(version + 1) WHERE id = ?"
    );
    /// Binds: id.
    pub(crate) const EXECUTION_STATUS: &str =
        "SELECT status FROM ikkatsu_job_execution WHERE id = ?";
    /// Binds: last updated, id.
    pub(crate) const HEARTBEAT: &str =
        "UPDATE ikkatsu_job_execution SET last_updated = ? WHERE id = ?";
    /// Binds: last updated, id.
    pub(crate) const STEP_HEARTBEAT: &str =
        "UPDATE ikkatsu_step_execution SET last_updated = ? WHERE id = ?";
    pub(crate) const UPDATE_STEP: &str = concat!(
        "UPDATE ikkatsu_step_execution SET ",
        update_step_set!(),
        ", version = LAST_INSERT_ID(version + 1) WHERE id = ?"
    );
}

repository_type!(
    /// The job repository in a MySQL or MariaDB database.
    MySqlJobRepository,
    "migrations/mysql",
    /// Launches are serialized by the row lock `LOCK_INSTANCE` takes in this transaction.
    begin_create(pool) {
        pool.begin().await
    },
    insert_id(executor, query) {
        let id = query.execute(executor).await?.last_insert_id();
        i64::try_from(id).map_err(|err| sqlx::Error::Decode(Box::new(err)))
    },
);

impl MySqlJobRepository {
    /// Connects to `url` (`mysql://…`; `mariadb://` is accepted by [`crate::connect`]) and
    /// applies migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let site = crate::error::site(&mask_url(url));
        let pool = connect_mysql(&site, url, &PoolSettings::new("ikkatsu")).await?;
        Self::with_pool(pool, site.describe().to_string()).await
    }

    /// Connects to `url` for reading only: no table is created, no migration applied (see
    /// [`crate::connect_existing`]).
    pub async fn connect_existing(url: &str) -> Result<Self> {
        let site = crate::error::site(&mask_url(url));
        let pool = connect_mysql(&site, url, &PoolSettings::new("ikkatsu")).await?;
        Self::existing_with_pool(pool, site.describe().to_string()).await
    }

    async fn store_job_execution(
        &self,
        execution: &JobExecution,
        last_updated: DateTime<Utc>,
    ) -> Result<(BatchStatus, i64)> {
        let what = || format!("updating job execution {}", execution.id);
        self.counted(1);
        let done = bind_job_update!(sqlx::query(sql::UPDATE_EXECUTION), execution, last_updated)
            .execute(&self.pool)
            .await
            .map_err(|err| self.sql_error(&what(), err))?;
        if done.rows_affected() == 0 {
            return Err(self.not_found("job execution", execution.id));
        }
        let version = i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX);
        self.counted(1);
        let status: Option<String> = sqlx::query_scalar(sql::EXECUTION_STATUS)
            .bind(execution.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|err| self.sql_error(&what(), err))?;
        let status = status.ok_or_else(|| self.not_found("job execution", execution.id))?;
        Ok((status.parse()?, version))
    }

    async fn store_heartbeat(
        &self,
        job_execution_id: i64,
        now: DateTime<Utc>,
    ) -> Result<BatchStatus> {
        let what = || format!("heartbeat of job execution {job_execution_id}");
        self.counted(1);
        sqlx::query(sql::HEARTBEAT)
            .bind(now)
            .bind(job_execution_id)
            .execute(&self.pool)
            .await
            .map_err(|err| self.sql_error(&what(), err))?;
        self.counted(1);
        let status: Option<String> = sqlx::query_scalar(sql::EXECUTION_STATUS)
            .bind(job_execution_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|err| self.sql_error(&what(), err))?;
        status
            .ok_or_else(|| self.not_found("job execution", job_execution_id))?
            .parse()
    }

    async fn store_step_execution(
        &self,
        execution: &StepExecution,
        last_updated: DateTime<Utc>,
    ) -> Result<i64> {
        self.counted(1);
        let update = bind_step_update!(sqlx::query(sql::UPDATE_STEP), execution, last_updated)
            .execute(&self.pool);
        let done = ikkatsu_sql::observed(
            <Db as sqlx::Database>::NAME,
            sql::UPDATE_STEP,
            update,
            |done: &sqlx::mysql::MySqlQueryResult| done.rows_affected(),
        )
        .await
        .map_err(|err| self.sql_error(&format!("updating step execution {}", execution.id), err))?;
        if done.rows_affected() == 0 {
            return Err(self.not_found("step execution", execution.id));
        }
        Ok(i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX))
    }
}

job_repository_impl!(MySqlJobRepository);
