//! Job files in the JSL shape of Surfin Batch (a Go batch framework), with components
//! registered from Rust under the names they give: validated, run end to end, and their
//! mistakes reported with the file, line and what to do.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ikkatsu::config::{AppConfig, ComponentRegistry, JobDefinition};
use ikkatsu::core::listener::{ItemProcessListener, ItemReadListener, ItemWriteListener};
use ikkatsu::core::prelude::*;
use ikkatsu::core::{Record, Result};
use serde_json::json;

const FORECAST: &str = include_str!("jsl/forecast_job.yaml");

/// What the Rust components of the job saw, in order.
#[derive(Default)]
struct Journal(Mutex<Vec<String>>);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn n(record: &Record) -> i64 {
    serde_json::to_value(record).unwrap()["n"].as_i64().unwrap()
}

#[async_trait]
impl ItemReadListener<Record> for Journal {
    async fn after_read(&self, item: &Record) -> Result<()> {
        self.push(format!("read {}", n(item)));
        Ok(())
    }
}

#[async_trait]
impl ItemProcessListener<Record, Record> for Journal {
    async fn after_process(&self, item: &Record, result: Option<&Record>) -> Result<()> {
        self.push(format!("processed {} -> {:?}", n(item), result.map(n)));
        Ok(())
    }
}

#[async_trait]
impl ItemWriteListener<Record> for Journal {
    async fn after_write(&self, items: &[Record]) -> Result<()> {
        let items: Vec<i64> = items.iter().map(n).collect();
        self.push(format!("wrote {items:?}"));
        Ok(())
    }
}

#[async_trait]
impl JobExecutionListener for Journal {
    async fn after_job(&self, execution: &JobExecution) -> Result<()> {
        self.push(format!("job ended {}", execution.status));
        Ok(())
    }
}

/// Puts its `flag` property into the step's context as `decision.condition`.
struct FlagTasklet {
    flag: String,
}

#[async_trait]
impl Tasklet for FlagTasklet {
    async fn execute(
        &self,
        execution: &mut StepExecution,
        _ctx: &StepContext,
    ) -> Result<RepeatStatus> {
        execution
            .execution_context
            .put("decision.condition", self.flag.clone());
        Ok(RepeatStatus::Finished)
    }
}

/// The built-ins and the job's own components, as a program of one's own registers them.
fn registry(journal: &Arc<Journal>, written: &VecItemWriter<Record>) -> ComponentRegistry {
    let mut registry = ikkatsu::registry(AppConfig::default());
    let writer = written.clone();
    registry
        .register_tasklet_ref("flagTasklet", |props, _| {
            let flag = props.get_str("flag").unwrap_or_default().to_string();
            Ok(Arc::new(FlagTasklet { flag }))
        })
        .register_reader_ref("numberReader", |props, _| {
            let count = props.get("count").and_then(|n| n.as_u64()).unwrap_or(0);
            let items: Vec<Record> = (1..=count)
                .map(|n| Record::from_iter([("n".to_string(), json!(n))]))
                .collect();
            Ok(Box::new(VecItemReader::new(items)))
        })
        .register_processor_instance(
            "doublingProcessor",
            Arc::new(FnItemProcessor::new(|record: Record| {
                let n = n(&record);
                Ok((n != 3).then(|| Record::from_iter([("n".to_string(), json!(n * 2))])))
            })),
        )
        .register_writer_ref("collectingWriter", move |_, _| Ok(Box::new(writer.clone())))
        .register_item_read_listener("journal", journal.clone())
        .register_item_process_listener("journal", journal.clone())
        .register_item_write_listener("journal", journal.clone())
        .register_job_listener("jobCompletionSignaler", journal.clone());
    registry
}

async fn run(yaml: &str, registry: &ComponentRegistry) -> (JobExecution, Vec<String>) {
    let definition = JobDefinition::from_str(yaml, "forecast_job.yaml").unwrap();
    definition
        .validate(registry, &JobParameters::new())
        .unwrap();
    let job = definition.build(registry, &JobParameters::new()).unwrap();
    let repository = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let params = operator
        .next_parameters(&job, &JobParameters::new())
        .await
        .unwrap();
    let execution = operator
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    let steps = repository
        .step_executions(execution.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_name)
        .collect();
    (execution, steps)
}

#[tokio::test]
async fn a_job_in_the_go_frameworks_shape_validates_and_runs() {
    let journal = Arc::new(Journal::default());
    let written = VecItemWriter::new();
    let registry = registry(&journal, &written);
    let (execution, steps) = run(FORECAST, &registry).await;
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );
    assert_eq!(execution.exit_status.exit_code, "COMPLETED");
    // The decision found the promoted flag `true` and chose `whenTrueStep`.
    assert_eq!(steps, ["prepareStep", "fetchStep", "whenTrueStep"]);
    assert!(execution.parameters.get("timestamp").is_some());
    let values: Vec<i64> = written.items().iter().map(n).collect();
    assert_eq!(values, [2, 4, 8, 10]);
    assert_eq!(
        journal.lines(),
        [
            "read 1",
            "read 2",
            "processed 1 -> Some(2)",
            "processed 2 -> Some(4)",
            "wrote [2, 4]",
            "read 3",
            "read 4",
            "processed 3 -> None",
            "processed 4 -> Some(8)",
            "wrote [8]",
            "read 5",
            "processed 5 -> Some(10)",
            "wrote [10]",
            "job ended COMPLETED",
        ]
    );

    let definition = JobDefinition::from_str(FORECAST, "forecast_job.yaml").unwrap();
    assert_eq!(definition.id.value, "forecastJob");
    assert_eq!(
        definition.display_name.as_deref(),
        Some("Weather Data Processing Job")
    );
}

/// With another flag the decision goes the other way, where a `transition-rules` entry ends
/// the job with its own exit code.
#[tokio::test]
async fn the_conditional_decision_takes_its_default_status_and_rules_route_it() {
    let journal = Arc::new(Journal::default());
    let written = VecItemWriter::new();
    let registry = registry(&journal, &written);
    let yaml = FORECAST.replacen(r#"flag: "true""#, r#"flag: "no""#, 1);
    let (execution, steps) = run(&yaml, &registry).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(execution.exit_status.exit_code, "WENT_FALSE");
    assert_eq!(steps, ["prepareStep", "fetchStep", "whenFalseStep"]);
}

/// A split names the steps it runs, elements of the same flow, which run only there.
#[tokio::test]
async fn a_split_given_by_the_names_of_its_steps_runs_them() {
    let yaml = r#"
id: splitJob
name: Split Job
incrementer:
  ref: timestampIncrementer
flow:
  start-element: both
  elements:
    both:
      id: both
      steps: [left, right]
      transitions:
        - on: COMPLETED
          to: after
    left:
      id: left
      tasklet: { ref: flagTasklet, properties: { flag: l } }
    right:
      id: right
      tasklet: { ref: flagTasklet, properties: { flag: r } }
    after:
      id: after
      tasklet: { ref: flagTasklet, properties: { flag: a } }
"#;
    let journal = Arc::new(Journal::default());
    let registry = registry(&journal, &VecItemWriter::new());
    let (execution, mut steps) = run(yaml, &registry).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    steps.sort();
    assert_eq!(steps, ["after", "left", "right"]);

    let err = JobDefinition::from_str(
        &yaml.replace("[left, right]", "[left, rihgt]"),
        "split.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("split.yaml:11:21: step `rihgt` of split `both` does not exist (elements: after, both, left, right)"),
        "{err}"
    );
}

/// An element's `listeners` take a name in every role it is registered for.
#[tokio::test]
async fn listeners_take_item_listeners_in_every_role_of_their_name() {
    let journal = Arc::new(Journal::default());
    let written = VecItemWriter::new();
    let registry = registry(&journal, &written);
    let yaml = FORECAST
        .replacen(
            "        - ref: loggingItemReadListener\n        - ref: journal\n",
            "        - ref: loggingItemReadListener\n",
            1,
        )
        .replacen(
            "      listeners:\n        - ref: loggingStepListener\n      item-read-listeners:",
            "      listeners:\n        - ref: loggingStepListener\n        - ref: journal\n      item-read-listeners:",
            1,
        );
    assert_ne!(yaml, FORECAST);
    let (execution, _) = run(&yaml, &registry).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    let lines = journal.lines();
    let count = |line: &str| lines.iter().filter(|l| *l == line).count();
    // Read only through `listeners`; written through both `listeners` and its own list.
    assert_eq!(count("read 1"), 1);
    assert_eq!(count("wrote [2, 4]"), 2);
}

/// Each mistake is reported at its line, with what to do.
#[test]
fn mistakes_in_the_surfin_shape_are_reported_where_they_are() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    prepareStep:\n      id: prepareStep\n",
            "    prepareStep:\n      id: prepare\n",
            "forecast_job.yaml:16:11: `id: prepare` in element `prepareStep` differs from its key `prepareStep`",
        ),
        (
            "      chunk:\n        item-count: 2\n",
            "      chunk:\n        item-count: 0\n",
            "forecast_job.yaml:43:21: `item-count` in the chunk of element `fetchStep` must be an integer of at least 1, found `0`",
        ),
        (
            "      writer:\n        ref: collectingWriter\n",
            "",
            "forecast_job.yaml:33:7: missing key `writer` in element `fetchStep`",
        ),
        (
            "      ref: conditionalDecision\n",
            "      ref: conditionalDecision\n      tasklet: {ref: flagTasklet}\n",
            "element `checkConditionDecision` has both `tasklet` and `ref`",
        ),
        (
            "    - from: whenTrueStep\n",
            "    - from: whenTrue\n",
            "`from` of transition rule #1 of `flow`: element `whenTrue` does not exist",
        ),
        (
            "        - ref: loggingSkipListener\n",
            "        - type: log\n",
            "`skip-listeners` of element `fetchStep` takes `{ref: NAME}`",
        ),
        (
            "incrementer:\n  ref: \"timestampIncrementer\"\n",
            "incrementer:\n  reff: \"timestampIncrementer\"\n",
            "unknown key `reff` in the incrementer of the job (expected one of: ref)",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(FORECAST.contains(from), "{from}");
        let yaml = FORECAST.replacen(from, to, 1);
        let err = JobDefinition::from_str(&yaml, "forecast_job.yaml")
            .err()
            .unwrap_or_else(|| panic!("accepted: {to}"))
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    }
}

/// A name given in a role list must be registered in that role; the message lists those
/// that are.
#[test]
fn an_unknown_role_listener_names_the_registered_ones() {
    let journal = Arc::new(Journal::default());
    let registry = registry(&journal, &VecItemWriter::new());
    let yaml = FORECAST.replacen(
        "        - ref: loggingItemReadListener\n",
        "        - ref: loggingItemWriteListener\n",
        1,
    );
    let definition = JobDefinition::from_str(&yaml, "forecast_job.yaml").unwrap();
    let err = definition
        .validate(&registry, &JobParameters::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "unknown item read listener `loggingItemWriteListener` in step `fetchStep` \
             (registered item read listeners: journal, loggingItemReadListener)"
        ),
        "{err}"
    );
}
