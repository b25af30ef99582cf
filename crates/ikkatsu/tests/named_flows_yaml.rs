//! Named flows (`flows` of the job) run by `flow` elements: reused by several elements and
//! inside splits with their steps named `ELEMENT.STEP`, written in place, restarted inside,
//! and refused when missing or running themselves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ikkatsu::config::{AppConfig, ComponentRegistry, JobDefinition};
use ikkatsu::core::Result;
use ikkatsu::core::prelude::*;

const JOB: &str = r#"
id: nightly
flows:
  load:
    steps:
      - name: extract
        tasklet: { ref: record }
      - name: transform
        tasklet: { ref: record }
flow:
  start-element: first
  elements:
    first:
      flow: load
      next: parallel
    parallel:
      split:
        flows:
          - steps:
              - name: again
                flow: load
          - steps:
              - name: other
                tasklet: { ref: record }
      next: inline
    inline:
      flow:
        start-element: only
        elements:
          only:
            tasklet: { ref: record }
"#;

/// Records the name of each step it runs; fails `transform` steps while `fail` is set.
struct Recorder {
    steps: Mutex<Vec<String>>,
    fail: AtomicBool,
}

#[async_trait]
impl Tasklet for Recorder {
    async fn execute(
        &self,
        execution: &mut StepExecution,
        _ctx: &StepContext,
    ) -> Result<RepeatStatus> {
        self.steps.lock().unwrap().push(execution.step_name.clone());
        if execution.step_name.ends_with("transform") && self.fail.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Component, "transform is broken"));
        }
        Ok(RepeatStatus::Finished)
    }
}

fn registry(record: &Arc<Recorder>) -> ComponentRegistry {
    let mut registry = ikkatsu::registry(AppConfig::default());
    registry.register_tasklet_instance("record", record.clone());
    registry
}

fn record(fail: bool) -> Arc<Recorder> {
    Arc::new(Recorder {
        steps: Mutex::new(Vec::new()),
        fail: AtomicBool::new(fail),
    })
}

fn taken(record: &Recorder) -> Vec<String> {
    let mut steps = std::mem::take(&mut *record.steps.lock().unwrap());
    steps.sort();
    steps
}

#[tokio::test]
async fn a_named_flow_runs_in_several_elements_and_in_a_split() {
    let record = record(false);
    let definition = JobDefinition::from_str(JOB, "nightly.yaml").unwrap();
    definition
        .validate(&registry(&record), &JobParameters::new())
        .unwrap();
    let job = definition
        .build(&registry(&record), &JobParameters::new())
        .unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(
        taken(&record),
        [
            "again.extract",
            "again.transform",
            "first.extract",
            "first.transform",
            "inline.only",
            "other",
        ]
    );
}

#[tokio::test]
async fn a_restart_resumes_inside_the_flow() {
    let record = record(true);
    let definition = JobDefinition::from_str(JOB, "nightly.yaml").unwrap();
    let job = definition
        .build(&registry(&record), &JobParameters::new())
        .unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let failed = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(failed.status, BatchStatus::Failed);
    assert_eq!(taken(&record), ["first.extract", "first.transform"]);

    record.fail.store(false, Ordering::SeqCst);
    let restarted = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(restarted.status, BatchStatus::Completed);
    assert_eq!(restarted.instance_id, failed.instance_id);
    // `first.extract` completed before: it is not run again.
    assert_eq!(
        taken(&record),
        [
            "again.extract",
            "again.transform",
            "first.transform",
            "inline.only",
            "other",
        ]
    );
}

/// A flow element inside a named flow names its steps `OUTER.INNER.STEP`; an `end` inside
/// a flow ends that flow, and the job goes on after the element.
#[tokio::test]
async fn flows_nest_and_an_end_inside_ends_only_the_flow() {
    let yaml = r#"
id: nested
flows:
  inner:
    start-element: one
    elements:
      one:
        tasklet: { ref: record }
        transitions:
          - { on: COMPLETED, end: true }
      never:
        tasklet: { ref: record }
  outer:
    steps:
      - name: middle
        flow: inner
steps:
  - name: top
    flow: outer
  - name: last
    tasklet: { ref: record }
"#;
    let record = record(false);
    let definition = JobDefinition::from_str(yaml, "nested.yaml").unwrap();
    let job = definition
        .build(&registry(&record), &JobParameters::new())
        .unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(taken(&record), ["last", "top.middle.one"]);
}

#[test]
fn a_missing_or_self_running_flow_is_refused() {
    let missing = JOB.replacen("      flow: load\n", "      flow: lod\n", 1);
    let err = JobDefinition::from_str(&missing, "nightly.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nightly.yaml:14:13: flow `lod` does not exist (flows: load)"),
        "{err}"
    );

    let cycle = JOB.replacen(
        "      - name: transform\n        tasklet: { ref: record }\n",
        "      - name: transform\n        flow: load\n",
        1,
    );
    let err = JobDefinition::from_str(&cycle, "nightly.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nightly.yaml:4:3: flow `load` runs itself (load → load)"),
        "{err}"
    );
}
