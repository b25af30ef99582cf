//! What the commands print: tables for people, stable JSON for programs.
//!
//! The JSON shapes are documented in `docs/cli.md`; fields are only ever added.

use chrono::{DateTime, Utc};
use ikkatsu_core::{JobExecution, StepExecution};
use serde::Serialize;

/// An execution as printed by `--json`.
#[derive(Debug, Serialize)]
pub struct ExecutionJson<'a> {
    pub id: i64,
    pub instance_id: i64,
    pub job: &'a str,
    pub status: &'static str,
    pub exit_code: &'a str,
    pub exit_description: &'a str,
    pub parameters: &'a ikkatsu_core::JobParameters,
    pub create_time: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    pub owner: Option<&'a str>,
    pub job_configuration_location: Option<&'a str>,
    pub steps: Vec<StepJson<'a>>,
}

/// A step execution as printed by `--json`.
#[derive(Debug, Serialize)]
pub struct StepJson<'a> {
    pub id: i64,
    pub name: &'a str,
    pub status: &'static str,
    pub exit_code: &'a str,
    pub exit_description: &'a str,
    pub read_count: u64,
    pub write_count: u64,
    pub filter_count: u64,
    pub skip_count: u64,
    pub read_skip_count: u64,
    pub process_skip_count: u64,
    pub write_skip_count: u64,
    pub commit_count: u64,
    pub rollback_count: u64,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

impl<'a> ExecutionJson<'a> {
    pub fn new(execution: &'a JobExecution, steps: &'a [StepExecution]) -> Self {
        ExecutionJson {
            id: execution.id,
            instance_id: execution.instance_id,
            job: &execution.job_name,
            status: execution.status.as_str(),
            exit_code: &execution.exit_status.exit_code,
            exit_description: &execution.exit_status.description,
            parameters: &execution.parameters,
            create_time: execution.create_time,
            start_time: execution.start_time,
            end_time: execution.end_time,
            last_updated: execution.last_updated,
            owner: execution.owner.as_deref(),
            job_configuration_location: execution.job_configuration_location.as_deref(),
            steps: steps.iter().map(StepJson::new).collect(),
        }
    }
}

impl<'a> StepJson<'a> {
    pub fn new(step: &'a StepExecution) -> Self {
        StepJson {
            id: step.id,
            name: &step.step_name,
            status: step.status.as_str(),
            exit_code: &step.exit_status.exit_code,
            exit_description: &step.exit_status.description,
            read_count: step.counts.read_count,
            write_count: step.counts.write_count,
            filter_count: step.counts.filter_count,
            skip_count: step.counts.skip_count(),
            read_skip_count: step.counts.read_skip_count,
            process_skip_count: step.counts.process_skip_count,
            write_skip_count: step.counts.write_skip_count,
            commit_count: step.counts.commit_count,
            rollback_count: step.counts.rollback_count,
            start_time: step.start_time,
            end_time: step.end_time,
        }
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_string())
}

fn duration(execution: &JobExecution) -> String {
    match (execution.start_time, execution.end_time) {
        (Some(start), Some(end)) => {
            let ms = (end - start).num_milliseconds().max(0);
            format!("{}.{:03}s", ms / 1000, ms % 1000)
        }
        (Some(start), None) => {
            let s = (Utc::now() - start).num_seconds().max(0);
            format!("{s}s so far")
        }
        _ => "-".to_string(),
    }
}

/// The human summary of one execution with its steps.
pub fn summary(execution: &JobExecution, steps: &[StepExecution]) -> String {
    let mut out = format!(
        "job `{}` execution {} {} in {} (exit code {})\n",
        execution.job_name,
        execution.id,
        execution.status,
        duration(execution),
        execution.exit_status.exit_code
    );
    if !execution.exit_status.description.is_empty() {
        out.push_str(&format!("  {}\n", execution.exit_status.description));
    }
    for step in steps {
        out.push_str(&format!(
            "  step {:<20} {:<10} read {:>9}  written {:>9}  filtered {:>6}  skipped {:>6}  commits {:>6}  rollbacks {}\n",
            step.step_name,
            step.status.as_str(),
            step.counts.read_count,
            step.counts.write_count,
            step.counts.filter_count,
            step.counts.skip_count(),
            step.counts.commit_count,
            step.counts.rollback_count,
        ));
        if step.status != ikkatsu_core::BatchStatus::Completed
            && !step.exit_status.description.is_empty()
        {
            out.push_str(&format!("       {}\n", step.exit_status.description));
        }
    }
    out
}

/// One line per execution.
pub fn table(executions: &[JobExecution]) -> String {
    let mut out = format!(
        "{:>6}  {:<24} {:<10} {:<16} {:<19}  {:<19}\n",
        "ID", "JOB", "STATUS", "EXIT CODE", "START", "END"
    );
    for e in executions {
        out.push_str(&format!(
            "{:>6}  {:<24} {:<10} {:<16} {:<19}  {:<19}\n",
            e.id,
            e.job_name,
            e.status.as_str(),
            e.exit_status.exit_code,
            time(e.start_time),
            time(e.end_time)
        ));
    }
    out
}
