//! Decisions and splits in job files, end to end: a `script` decider choosing a branch on a
//! job parameter and on what a step put in the job context, a split of a `steps` flow and a
//! `flow` flow joined before the next element, and the errors of both.

use std::sync::Arc;

use ikkatsu::config::{AppConfig, ConfigErrors, JobDefinition};
use ikkatsu::core::ParameterValue;
use ikkatsu::core::prelude::*;

const JOB: &str = r#"
id: branching
params:
  mode: delta
flow:
  start-element: choose
  elements:
    choose:
      decision:
        type: script
        properties:
          script: |
            if params.mode == "full" { "FULL" } else { "DELTA" }
      transitions:
        - { on: FULL, to: load-all }
        - { on: "*", to: extract }
    load-all:
      tasklet: { type: noop }
    extract:
      split:
        flows:
          - steps:
              - name: customers
                tasklet: { type: noop }
              - name: orders
                tasklet: { type: noop }
          - start-element: products
            elements:
              products:
                tasklet: { type: shell, properties: { command: "true" } }
      next: after-extract
    after-extract:
      decision:
        type: script
        properties:
          script: |
            if exit_code == "COMPLETED" && status == "COMPLETED" { "ALL-GOOD" } else { exit_code }
      transitions:
        - { on: ALL-GOOD, end: true, exit-code: EXTRACTED }
        - { on: "*", fail: true }
"#;

fn build(yaml: &str, params: &JobParameters) -> Job {
    let definition = JobDefinition::from_str(yaml, "job.yaml").unwrap();
    let registry = ikkatsu::registry(AppConfig::default());
    definition.build(&registry, params).unwrap()
}

async fn run(job: &Job, params: JobParameters) -> (JobExecution, Vec<String>) {
    let repository = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let execution = operator
        .start(job, params, CancellationToken::new())
        .await
        .unwrap();
    let mut steps: Vec<String> = repository
        .step_executions(execution.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_name)
        .collect();
    steps.sort();
    (execution, steps)
}

#[tokio::test]
async fn a_script_decision_and_a_split_route_the_job() {
    let params = JobParameters::new();
    let (execution, steps) = run(&build(JOB, &params), params).await;
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );
    assert_eq!(execution.exit_status.exit_code, "EXTRACTED");
    assert_eq!(steps, ["customers", "orders", "products"]);

    let params = JobParameters::new().with("mode", ParameterValue::String("full".into()));
    let (execution, steps) = run(&build(JOB, &params), params).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(execution.exit_status.exit_code, "COMPLETED");
    assert_eq!(steps, ["load-all"]);
}

/// A failing flow of the split fails the job, and the decision after it is not reached.
#[tokio::test]
async fn a_failing_flow_of_a_split_fails_the_job() {
    let yaml = JOB.replace(r#"command: "true""#, r#"command: "false""#);
    let params = JobParameters::new();
    let (execution, steps) = run(&build(&yaml, &params), params).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    assert!(
        execution
            .exit_status
            .description
            .contains("a flow of split `extract` failed"),
        "{}",
        execution.exit_status.description
    );
    assert_eq!(steps, ["customers", "orders", "products"]);
}

#[tokio::test]
async fn a_decision_script_that_returns_no_status_fails_with_its_name() {
    let yaml = JOB.replace(
        r#"if params.mode == "full" { "FULL" } else { "DELTA" }"#,
        "let x = 1;",
    );
    let params = JobParameters::new();
    let (execution, steps) = run(&build(&yaml, &params), params).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    let description = &execution.exit_status.description;
    assert!(
        description.contains("decision `choose`")
            && description.contains("it must return the status to decide"),
        "{description}"
    );
    assert!(steps.is_empty());
}

fn errors(yaml: &str) -> ConfigErrors {
    match JobDefinition::from_str(yaml, "job.yaml") {
        Err(errors) => errors,
        Ok(definition) => definition
            .validate(
                &ikkatsu::registry(AppConfig::default()),
                &JobParameters::new(),
            )
            .unwrap_err(),
    }
}

#[test]
fn bad_decisions_and_splits_are_reported_with_their_position() {
    let cases = [
        (
            JOB.replace(
                "type: script\n        properties:\n          script: |\n            if params",
                "type: coin\n        properties:\n          script: |\n            if params",
            ),
            "unknown decider type `coin`",
        ),
        (
            JOB.replace(
                "      split:\n        flows:\n",
                "      split:\n        flows: []\n        ignored:\n",
            ),
            "unknown key `ignored`",
        ),
        (
            JOB.replace(
                "          - start-element: products\n",
                "          - steps: []\n            start-element: products\n",
            ),
            "give either `steps` or `start-element` and `elements`, not both",
        ),
        (
            JOB.replace("      next: after-extract\n", "      next: nowhere\n"),
            "`next` of element `extract`: `nowhere` does not exist",
        ),
        (
            JOB.replace("name: orders", "name: products"),
            "two steps are named `products`",
        ),
    ];
    for (yaml, expected) in cases {
        let e = errors(&yaml);
        assert!(
            e.iter().any(|e| e.to_string().contains(expected)),
            "no error contains {expected:?}:\n{e}"
        );
        assert!(e.to_string().starts_with("job.yaml:"), "{e}");
    }
}

/// A decider registered from Rust, named by `ref`.
#[tokio::test]
async fn a_registered_decider_is_named_by_ref() {
    let yaml = r#"
id: by-ref
steps:
  - name: prepare
    tasklet: { type: noop }
  - name: choose
    decision: { ref: weekday }
    transitions:
      - { on: WEEKEND, end: true, exit-code: RESTING }
      - { on: "*", to: work }
  - name: work
    tasklet: { type: noop }
"#;
    let definition = JobDefinition::from_str(yaml, "job.yaml").unwrap();
    let mut registry = ikkatsu::registry(AppConfig::default());
    let decider = FnDecider(|_: &JobExecution, last: Option<&StepExecution>| {
        Ok(match last.map(|s| s.step_name.as_str()) {
            Some("prepare") => "WEEKEND".to_string(),
            other => format!("{other:?}"),
        })
    });
    registry.register_decider_instance("weekday", Arc::new(decider));
    let job = definition.build(&registry, &JobParameters::new()).unwrap();
    let (execution, steps) = run(&job, JobParameters::new()).await;
    assert_eq!(execution.exit_status.exit_code, "RESTING");
    assert_eq!(steps, ["prepare"]);
}

/// A flow of a split may hold a split of its own.
#[tokio::test]
async fn splits_nest() {
    let yaml = r#"
id: nested
steps:
  - name: outer
    split:
      flows:
        - steps:
            - name: a
              tasklet: { type: noop }
            - name: inner
              split:
                flows:
                  - steps: [ { name: b1, tasklet: { type: noop } } ]
                  - steps: [ { name: b2, tasklet: { type: noop } } ]
            - name: c
              tasklet: { type: noop }
        - steps: [ { name: d, tasklet: { type: noop } } ]
  - name: last
    tasklet: { type: noop }
"#;
    let params = JobParameters::new();
    let (execution, steps) = run(&build(yaml, &params), params).await;
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );
    assert_eq!(steps, ["a", "b1", "b2", "c", "d", "last"]);
}
