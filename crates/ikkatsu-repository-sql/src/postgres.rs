//! [`PostgresJobRepository`]: the job repository in PostgreSQL, shareable by many processes
//! and hosts (remote partitioning workers).

use chrono::{DateTime, Utc};
use ikkatsu_core::secret::mask_url;
use ikkatsu_core::{BatchStatus, JobExecution, Result, StepExecution};
use ikkatsu_sql::{PoolSettings, connect_postgres};
use sqlx::Row;

use crate::shared::{job_repository_impl, repository_type, returning_stores};

type Db = sqlx::Postgres;

mod sql {
    macro_rules! execution_select {
        () => {
            "SELECT e.id, e.job_instance_id, i.job_name, e.parameters::text AS parameters, e.status, e.exit_code, e.exit_description, e.create_time, e.start_time, e.end_time, e.last_updated, e.owner, e.job_configuration_location, e.execution_context::text AS execution_context, e.version FROM ikkatsu_job_execution e JOIN ikkatsu_job_instance i ON i.id = e.job_instance_id"
        };
    }
    macro_rules! step_select {
        () => {
            "SELECT s.id, s.job_execution_id, s.step_name, s.status, s.exit_code, s.exit_description, s.read_count, s.write_count, s.filter_count, s.read_skip_count, s.process_skip_count, s.write_skip_count, s.commit_count, s.rollback_count, s.start_time, s.end_time, s.last_updated, s.execution_context::text AS execution_context, s.version FROM ikkatsu_step_execution s"
        };
    }

    pub(crate) const INSERT_INSTANCE: &str = "INSERT INTO ikkatsu_job_instance (job_name, job_key) VALUES ($1, $2) ON CONFLICT (job_name, job_key) DO NOTHING";
    /// Locks the instance row: concurrent launches of the instance queue here.
    pub(crate) const LOCK_INSTANCE: &str = "SELECT id, job_name, job_key FROM ikkatsu_job_instance WHERE job_name = $1 AND job_key = $2 FOR UPDATE";
    pub(crate) const LAST_AND_RUNNING_EXECUTIONS: &str = concat!(
        execution_select!(),
        " WHERE e.job_instance_id = $1 AND (e.id = (SELECT MAX(id) FROM ikkatsu_job_execution WHERE job_instance_id = $2) OR e.status IN ('STARTING', 'STARTED', 'STOPPING'))"
    );
    pub(crate) const INSERT_EXECUTION: &str = "INSERT INTO ikkatsu_job_execution (job_instance_id, parameters, status, exit_code, exit_description, create_time, start_time, end_time, last_updated, owner, job_configuration_location, execution_context, version) VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13) RETURNING id";
    pub(crate) const INSERT_STEP: &str = "INSERT INTO ikkatsu_step_execution (job_execution_id, step_name, status, exit_code, exit_description, read_count, write_count, filter_count, read_skip_count, process_skip_count, write_skip_count, commit_count, rollback_count, start_time, end_time, last_updated, execution_context, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb, $18) RETURNING id";
    pub(crate) const JOB_INSTANCE: &str =
        "SELECT id, job_name, job_key FROM ikkatsu_job_instance WHERE id = $1";
    pub(crate) const FIND_JOB_INSTANCE: &str = "SELECT id, job_name, job_key FROM ikkatsu_job_instance WHERE job_name = $1 AND job_key = $2";
    pub(crate) const JOB_EXECUTION: &str = concat!(execution_select!(), " WHERE e.id = $1");
    pub(crate) const JOB_EXECUTIONS: &str = concat!(
        execution_select!(),
        " WHERE e.job_instance_id = $1 ORDER BY e.id DESC"
    );
    pub(crate) const FIND_JOB_EXECUTIONS: &str = concat!(
        execution_select!(),
        " WHERE ($1::text IS NULL OR i.job_name = $2) AND ($3::text IS NULL OR e.status = $4) ORDER BY e.id DESC LIMIT $5"
    );
    pub(crate) const STEP_EXECUTIONS: &str = concat!(
        step_select!(),
        " WHERE s.job_execution_id = $1 ORDER BY s.id"
    );
    pub(crate) const LAST_STEP_EXECUTION: &str = concat!(
        step_select!(),
        " JOIN ikkatsu_job_execution e ON e.id = s.job_execution_id WHERE e.job_instance_id = $1 AND s.step_name = $2 ORDER BY s.id DESC LIMIT 1"
    );
    pub(crate) const STEP_EXECUTION_COUNT: &str = "SELECT COUNT(*) FROM ikkatsu_step_execution s JOIN ikkatsu_job_execution e ON e.id = s.job_execution_id WHERE e.job_instance_id = $1 AND s.step_name = $2";
    pub(crate) const JOB_NAMES: &str = "SELECT DISTINCT job_name FROM ikkatsu_job_instance";
    pub(crate) const UPDATE_EXECUTION: &str = "UPDATE ikkatsu_job_execution SET status = CASE WHEN status = 'STOPPING' AND $1 IN ('STARTING', 'STARTED') THEN status ELSE $2 END, exit_code = $3, exit_description = $4, start_time = $5, end_time = $6, last_updated = $7, owner = $8, job_configuration_location = $9, execution_context = $10::jsonb, version = version + 1 WHERE id = $11 RETURNING status, version";
    pub(crate) const HEARTBEAT: &str =
        "UPDATE ikkatsu_job_execution SET last_updated = $1 WHERE id = $2 RETURNING status";
    /// Binds: last updated, id.
    pub(crate) const STEP_HEARTBEAT: &str =
        "UPDATE ikkatsu_step_execution SET last_updated = $1 WHERE id = $2";
    pub(crate) const UPDATE_STEP: &str = "UPDATE ikkatsu_step_execution SET status = $1, exit_code = $2, exit_description = $3, read_count = $4, write_count = $5, filter_count = $6, read_skip_count = $7, process_skip_count = $8, write_skip_count = $9, commit_count = $10, rollback_count = $11, start_time = $12, end_time = $13, last_updated = $14, execution_context = $15::jsonb, version = version + 1 WHERE id = $16 RETURNING version";
}

repository_type!(
    /// The job repository in a PostgreSQL database.
    PostgresJobRepository,
    "migrations/postgres",
    /// Launches are serialized by the row lock `LOCK_INSTANCE` takes in this transaction.
    begin_create(pool) {
        pool.begin().await
    },
    insert_id(executor, query) {
        query.fetch_one(executor).await?.try_get(0)
    },
);

impl PostgresJobRepository {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let site = crate::error::site(&mask_url(url));
        let pool = connect_postgres(&site, url, &PoolSettings::new("ikkatsu")).await?;
        Self::with_pool(pool, site.describe().to_string()).await
    }

    /// Connects to `url` for reading only: no table is created, no migration applied (see
    /// [`crate::connect_existing`]).
    pub async fn connect_existing(url: &str) -> Result<Self> {
        let site = crate::error::site(&mask_url(url));
        let pool = connect_postgres(&site, url, &PoolSettings::new("ikkatsu")).await?;
        Self::existing_with_pool(pool, site.describe().to_string()).await
    }

    returning_stores!();
}

job_repository_impl!(PostgresJobRepository);
