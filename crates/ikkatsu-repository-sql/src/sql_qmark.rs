//! Statements shared by the backends that use `?` placeholders (SQLite, MySQL/MariaDB).
//! Every backend binds the same values in the same order.

macro_rules! execution_select {
    () => {
        "SELECT e.id, e.job_instance_id, i.job_name, e.parameters, e.status, e.exit_code, e.exit_description, e.create_time, e.start_time, e.end_time, e.last_updated, e.owner, e.job_configuration_location, e.execution_context, e.version FROM ikkatsu_job_execution e JOIN ikkatsu_job_instance i ON i.id = e.job_instance_id"
    };
}

macro_rules! step_select {
    () => {
        "SELECT s.id, s.job_execution_id, s.step_name, s.status, s.exit_code, s.exit_description, s.read_count, s.write_count, s.filter_count, s.read_skip_count, s.process_skip_count, s.write_skip_count, s.commit_count, s.rollback_count, s.start_time, s.end_time, s.last_updated, s.execution_context, s.version FROM ikkatsu_step_execution s"
    };
}

/// The newest execution of an instance plus any running one. Binds: instance id (twice).
pub(crate) const LAST_AND_RUNNING_EXECUTIONS: &str = concat!(
    execution_select!(),
    " WHERE e.job_instance_id = ? AND (e.id = (SELECT MAX(id) FROM ikkatsu_job_execution WHERE job_instance_id = ?) OR e.status IN ('STARTING', 'STARTED', 'STOPPING'))"
);

/// Binds: instance id, parameters, status, exit code, exit description, create, start, end,
/// last updated, owner, configuration location, context, version.
pub(crate) const INSERT_EXECUTION: &str = "INSERT INTO ikkatsu_job_execution (job_instance_id, parameters, status, exit_code, exit_description, create_time, start_time, end_time, last_updated, owner, job_configuration_location, execution_context, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Binds: job execution id, step name, status, exit code, exit description, 8 counts, start,
/// end, last updated, context, version.
pub(crate) const INSERT_STEP: &str = "INSERT INTO ikkatsu_step_execution (job_execution_id, step_name, status, exit_code, exit_description, read_count, write_count, filter_count, read_skip_count, process_skip_count, write_skip_count, commit_count, rollback_count, start_time, end_time, last_updated, execution_context, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Binds: instance id.
pub(crate) const JOB_INSTANCE: &str =
    "SELECT id, job_name, job_key FROM ikkatsu_job_instance WHERE id = ?";

/// Binds: job name, job key.
pub(crate) const FIND_JOB_INSTANCE: &str =
    "SELECT id, job_name, job_key FROM ikkatsu_job_instance WHERE job_name = ? AND job_key = ?";

/// Binds: execution id.
pub(crate) const JOB_EXECUTION: &str = concat!(execution_select!(), " WHERE e.id = ?");

/// Binds: instance id.
pub(crate) const JOB_EXECUTIONS: &str = concat!(
    execution_select!(),
    " WHERE e.job_instance_id = ? ORDER BY e.id DESC"
);

/// Binds: job name (twice), status (twice), limit.
pub(crate) const FIND_JOB_EXECUTIONS: &str = concat!(
    execution_select!(),
    " WHERE (? IS NULL OR i.job_name = ?) AND (? IS NULL OR e.status = ?) ORDER BY e.id DESC LIMIT ?"
);

/// Binds: job execution id.
pub(crate) const STEP_EXECUTIONS: &str = concat!(
    step_select!(),
    " WHERE s.job_execution_id = ? ORDER BY s.id"
);

/// Binds: instance id, step name.
pub(crate) const LAST_STEP_EXECUTION: &str = concat!(
    step_select!(),
    " JOIN ikkatsu_job_execution e ON e.id = s.job_execution_id WHERE e.job_instance_id = ? AND s.step_name = ? ORDER BY s.id DESC LIMIT 1"
);

/// Binds: instance id, step name.
pub(crate) const STEP_EXECUTION_COUNT: &str = "SELECT COUNT(*) FROM ikkatsu_step_execution s JOIN ikkatsu_job_execution e ON e.id = s.job_execution_id WHERE e.job_instance_id = ? AND s.step_name = ?";

/// No binds.
pub(crate) const JOB_NAMES: &str = "SELECT DISTINCT job_name FROM ikkatsu_job_instance";

/// The `SET` list of a job execution update. Binds: status (twice), exit code, exit
/// description, start, end, last updated, owner, configuration location, context.
macro_rules! update_execution_set {
    () => {
        "status = CASE WHEN status = 'STOPPING' AND ? IN ('STARTING', 'STARTED') THEN status ELSE ? END, exit_code = ?, exit_description = ?, start_time = ?, end_time = ?, last_updated = ?, owner = ?, job_configuration_location = ?, execution_context = ?"
    };
}

/// The `SET` list of a step execution update. Binds: status, exit code, exit description,
/// 8 counts, start, end, last updated, context.
macro_rules! update_step_set {
    () => {
        "status = ?, exit_code = ?, exit_description = ?, read_count = ?, write_count = ?, filter_count = ?, read_skip_count = ?, process_skip_count = ?, write_skip_count = ?, commit_count = ?, rollback_count = ?, start_time = ?, end_time = ?, last_updated = ?, execution_context = ?"
    };
}

pub(crate) use {update_execution_set, update_step_set};
