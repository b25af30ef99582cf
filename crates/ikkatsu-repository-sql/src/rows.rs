//! Decoding of rows into the core's records, shared by all backends.

use chrono::{DateTime, Utc};
use ikkatsu_core::{
    BatchStatus, Error, ErrorKind, ExecutionContext, ExitStatus, JobExecution, JobInstance,
    JobParameters, StepCounts, StepExecution,
};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::error::{map_sqlx, repository_error};

/// Reads one column, naming it in the error.
fn get<'r, R, T>(repository: &str, row: &'r R, column: &str) -> Result<T, Error>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    row.try_get::<T, _>(column)
        .map_err(|err| map_sqlx(repository, &format!("reading column `{column}`"), err))
}

fn count<R>(repository: &str, row: &R, column: &str) -> Result<u64, Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let value: i64 = get(repository, row, column)?;
    u64::try_from(value).map_err(|_| {
        repository_error(
            repository,
            ErrorKind::Repository,
            format!("column `{column}` holds the negative count {value}"),
        )
    })
}

fn status(repository: &str, text: &str) -> Result<BatchStatus, Error> {
    text.parse().map_err(|err: Error| {
        repository_error(repository, ErrorKind::Repository, err.message().to_string())
    })
}

/// A [`JobInstance`] from a row with columns `id, job_name, job_key`.
pub(crate) fn job_instance<R>(repository: &str, row: &R) -> Result<JobInstance, Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(JobInstance {
        id: get(repository, row, "id")?,
        job_name: get(repository, row, "job_name")?,
        job_key: get(repository, row, "job_key")?,
    })
}

/// A [`JobExecution`] from a row with the columns of `ikkatsu_job_execution` plus `job_name`
/// (JSON columns read as text).
pub(crate) fn job_execution<R>(repository: &str, row: &R) -> Result<JobExecution, Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let id: i64 = get(repository, row, "id")?;
    let parameters: String = get(repository, row, "parameters")?;
    let parameters: JobParameters = serde_json::from_str(&parameters).map_err(|err| {
        repository_error(
            repository,
            ErrorKind::Repository,
            format!("job execution {id}: stored parameters are not valid: {err}"),
        )
    })?;
    let context: String = get(repository, row, "execution_context")?;
    let status_text: String = get(repository, row, "status")?;
    Ok(JobExecution {
        id,
        instance_id: get(repository, row, "job_instance_id")?,
        job_name: get(repository, row, "job_name")?,
        parameters,
        status: status(repository, &status_text)?,
        exit_status: ExitStatus {
            exit_code: get(repository, row, "exit_code")?,
            description: get(repository, row, "exit_description")?,
        },
        create_time: get(repository, row, "create_time")?,
        start_time: get(repository, row, "start_time")?,
        end_time: get(repository, row, "end_time")?,
        last_updated: get(repository, row, "last_updated")?,
        owner: get(repository, row, "owner")?,
        job_configuration_location: get(repository, row, "job_configuration_location")?,
        execution_context: ExecutionContext::from_json(&context).map_err(|err| {
            err.context(format!("job repository {repository}: job execution {id}"))
        })?,
        version: get(repository, row, "version")?,
    })
}

/// A [`StepExecution`] from a row of `ikkatsu_step_execution` (JSON read as text).
pub(crate) fn step_execution<R>(repository: &str, row: &R) -> Result<StepExecution, Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let id: i64 = get(repository, row, "id")?;
    let context: String = get(repository, row, "execution_context")?;
    let status_text: String = get(repository, row, "status")?;
    Ok(StepExecution {
        id,
        job_execution_id: get(repository, row, "job_execution_id")?,
        step_name: get(repository, row, "step_name")?,
        status: status(repository, &status_text)?,
        exit_status: ExitStatus {
            exit_code: get(repository, row, "exit_code")?,
            description: get(repository, row, "exit_description")?,
        },
        counts: StepCounts {
            read_count: count(repository, row, "read_count")?,
            write_count: count(repository, row, "write_count")?,
            filter_count: count(repository, row, "filter_count")?,
            read_skip_count: count(repository, row, "read_skip_count")?,
            process_skip_count: count(repository, row, "process_skip_count")?,
            write_skip_count: count(repository, row, "write_skip_count")?,
            commit_count: count(repository, row, "commit_count")?,
            rollback_count: count(repository, row, "rollback_count")?,
        },
        start_time: get(repository, row, "start_time")?,
        end_time: get(repository, row, "end_time")?,
        last_updated: get(repository, row, "last_updated")?,
        execution_context: ExecutionContext::from_json(&context).map_err(|err| {
            err.context(format!("job repository {repository}: step execution {id}"))
        })?,
        version: get(repository, row, "version")?,
    })
}

/// A count as stored (`BIGINT`).
pub(crate) fn stored_count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Now, at the microsecond precision all backends store, so that what is returned equals
/// what is read back.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
