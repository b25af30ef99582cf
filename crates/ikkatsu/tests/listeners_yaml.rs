//! Listener types in job files: `command` runs a program on job and step events (the event
//! in its environment), `fail-job` decides whether its failure fails the job, and unknown
//! types or types at the wrong level are errors naming them.

use std::sync::Arc;

use ikkatsu::config::{AppConfig, ConfigErrors, JobDefinition};
use ikkatsu::core::prelude::*;

fn job(dir: &std::path::Path, extra: &str) -> String {
    let log = dir.join("events.log");
    format!(
        r#"
id: noticed
listeners:
  - type: command
    properties:
      command: sh
      args: ["-c", 'echo "$IKKATSU_EVENT $IKKATSU_JOB_NAME $IKKATSU_STATUS $IKKATSU_EXIT_CODE" >> {log}']
  - type: log
steps:
  - name: first
    tasklet: {{ type: noop }}
    listeners:
      - type: command
        properties:
          command: sh
          args: ["-c", 'echo "$IKKATSU_EVENT $IKKATSU_STEP_NAME $IKKATSU_STATUS" >> {log}; echo "$IKKATSU_EVENT_JSON" > {json}']
          events: [step-ended]
{extra}"#,
        log = log.display(),
        json = dir.join("step-ended.json").display()
    )
}

async fn run(yaml: &str) -> JobExecution {
    let definition = JobDefinition::from_str(yaml, "job.yaml").unwrap();
    let registry = ikkatsu::registry(AppConfig::default());
    let job = definition.build(&registry, &JobParameters::new()).unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_command_listener_runs_on_job_and_step_events() {
    let dir = tempfile::tempdir().unwrap();
    let execution = run(&job(dir.path(), "")).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    let log = std::fs::read_to_string(dir.path().join("events.log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "job-started noticed STARTED EXECUTING",
            "step-ended first COMPLETED",
            "job-ended noticed COMPLETED COMPLETED",
        ]
    );
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("step-ended.json")).unwrap())
            .unwrap();
    assert_eq!(event["event"], "step-ended");
    assert_eq!(event["step_name"], "first");
    assert_eq!(event["counts"]["commit_count"], 1, "{event}");
    let resources = &event["resources"];
    assert!(resources["cpu_time_ms"].is_u64(), "{event}");
    assert!(resources["rss_bytes"].as_u64().unwrap() > 0, "{event}");
    assert!(resources["open_files"].as_u64().unwrap() > 0, "{event}");
}

/// A failing command is a warning, unless `fail-job: true`.
#[tokio::test]
async fn a_failing_command_fails_the_job_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let failing = "  - name: second\n    tasklet: { type: noop }\n    listeners:\n      - type: command\n        properties: { command: \"false\", FAIL }\n";
    let execution = run(&job(dir.path(), &failing.replace(", FAIL", ""))).await;
    assert_eq!(execution.status, BatchStatus::Completed);

    let execution = run(&job(dir.path(), &failing.replace("FAIL", "fail-job: true"))).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    assert!(
        execution
            .exit_status
            .description
            .contains("command listener on step-ended: `false` ended with exit status: 1"),
        "{}",
        execution.exit_status.description
    );
}

fn errors(yaml: &str) -> ConfigErrors {
    JobDefinition::from_str(yaml, "job.yaml")
        .unwrap()
        .validate(
            &ikkatsu::registry(AppConfig::default()),
            &JobParameters::new(),
        )
        .unwrap_err()
}

#[test]
fn unknown_listener_types_and_bad_properties_are_errors() {
    let e = errors(
        "id: x\nlisteners: [ { type: pager } ]\nsteps:\n  - { name: a, tasklet: { type: noop } }\n",
    );
    let text = e.to_string();
    assert!(
        text.contains("job.yaml:2:22: unknown listener type `pager` in the job (registered listener types: command, log, webhook)"),
        "{text}"
    );
    let e = errors(
        "id: x\nsteps:\n  - name: a\n    tasklet: { type: noop }\n    listeners: [ { type: command, properties: { command: \"\" } } ]\n",
    );
    assert!(e.to_string().contains("`command` is empty"), "{e}");
    let e = errors(
        "id: x\nsteps:\n  - name: a\n    tasklet: { type: noop }\n    listeners: [ { type: log, properties: { events: [job-exploded] } } ]\n",
    );
    assert!(
        e.to_string().contains("unknown variant `job-exploded`"),
        "{e}"
    );
}
