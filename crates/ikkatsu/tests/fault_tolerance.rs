//! Fault tolerance from job files, on real files: `skip`, `retry`, `dead-letter`, skip and
//! retry listeners named in YAML, a write scan over a CSV file, restarts that stay exact.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ikkatsu::config::{AppConfig, ComponentRegistry, ConfigErrors, JobDefinition};
use ikkatsu::core::prelude::*;
use ikkatsu::core::{ParameterValue, Record, Result};
use ikkatsu::items::jsonl::{JsonLinesItemWriter, JsonLinesWriterConfig};
use serde_json::{Value, json};

/// Every skip and retry reported, as text.
#[derive(Default)]
struct Journal(Mutex<Vec<String>>);

impl Journal {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl SkipListener<Record, Record> for Journal {
    async fn on_skip_in_process(&self, item: &Record, error: &Error) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(format!("process {}: {}", item["id"], error.kind()));
        Ok(())
    }

    async fn on_skip_in_write(&self, item: &Record, error: &Error) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(format!("write {}: {}", item["id"], error.kind()));
        Ok(())
    }
}

#[async_trait]
impl RetryListener for Journal {
    async fn on_retry(&self, event: &RetryEvent<'_>) -> Result<()> {
        self.0.lock().unwrap().push(format!(
            "retry {} {}/{}",
            event.phase, event.attempt, event.limit
        ));
        Ok(())
    }
}

fn write_input(dir: &Path, rows: u32) {
    let mut csv = String::from("id,name\n");
    for id in 1..=rows {
        csv.push_str(&format!("{id},name{id}\n"));
    }
    std::fs::write(dir.join("in.csv"), csv).unwrap();
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(path: &Path) -> Vec<u64> {
    lines(path)
        .iter()
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Reads `in.csv`, throws in the script on ids divisible by 3, writes `out.jsonl`; skipped
/// records go to `dead.jsonl`.
fn skipping_job(limit: u32) -> String {
    format!(
        r#"
id: skipping
flow:
  start-element: load
  elements:
    load:
      chunk:
        reader: {{ type: csv, properties: {{ path: "${{params.dir}}/in.csv" }} }}
        processor:
          type: script
          properties:
            script: |
              if record.id.parse_int() % 3 == 0 {{ throw "id " + record.id + " is refused"; }}
              record
        writer: {{ type: jsonl, properties: {{ path: "${{params.dir}}/out.jsonl" }} }}
        chunk-size: 2
        skip: {{ limit: {limit}, on: [component] }}
        dead-letter:
          writer: {{ type: jsonl, properties: {{ path: "${{params.dir}}/dead.jsonl" }} }}
      listeners: [ {{ ref: journal }} ]
"#
    )
}

fn registry(journal: &Arc<Journal>) -> ComponentRegistry {
    let mut registry = ikkatsu::registry(AppConfig::default());
    registry
        .register_skip_listener("journal", journal.clone())
        .register_retry_listener("journal", journal.clone());
    registry
}

fn params(dir: &Path) -> JobParameters {
    JobParameters::new().with("dir", ParameterValue::String(dir.display().to_string()))
}

async fn start(
    operator: &JobOperator,
    yaml: &str,
    registry: &ComponentRegistry,
    params: &JobParameters,
) -> (JobExecution, StepExecution) {
    let definition = JobDefinition::from_str(yaml, "job.yaml").unwrap();
    let job = definition.build(registry, params).unwrap();
    let execution = operator
        .start(&job, params.clone(), CancellationToken::new())
        .await
        .unwrap();
    let mut steps = operator
        .repository()
        .step_executions(execution.id)
        .await
        .unwrap();
    (execution, steps.remove(0))
}

#[tokio::test]
async fn skips_go_to_the_dead_letter_file_and_a_restart_after_the_limit_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), 10);
    let journal = Arc::new(Journal::default());
    let registry = registry(&journal);
    let params = params(dir.path());
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));

    // Limit 2: 3 and 6 are skipped, 9 fails the step.
    let (execution, step) = start(&operator, &skipping_job(2), &registry, &params).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    assert_eq!(step.status, BatchStatus::Failed);
    let description = &step.exit_status.description;
    assert!(
        description.starts_with("skip limit 2 exceeded in process: inline script")
            && description.contains("error on record #")
            && description.contains("id 9 is refused"),
        "{description}"
    );
    assert_eq!(step.counts.process_skip_count, 2);
    let dead = lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (letter, id) in dead.iter().zip([3, 6]) {
        assert_eq!(letter["step"], "load");
        assert_eq!(letter["phase"], "process");
        assert_eq!(letter["item"], id);
        assert_eq!(letter["kind"], "component");
        assert_eq!(
            letter["record"],
            json!({"id": id.to_string(), "name": format!("name{id}")})
        );
        let message = letter["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("id {id} is refused")),
            "{message}"
        );
    }
    assert_eq!(
        journal.lines(),
        ["process \"3\": component", "process \"6\": component"]
    );

    // The same instance restarted with a higher limit: on from the last commit (after 8).
    let (execution, step) = start(&operator, &skipping_job(5), &registry, &params).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(step.counts.process_skip_count, 1);
    assert_eq!(step.counts.write_count, 1);
    assert_eq!(ids(&dir.path().join("out.jsonl")), [1, 2, 4, 5, 7, 8, 10]);
    let dead: Vec<Value> = lines(&dir.path().join("dead.jsonl"))
        .iter()
        .map(|l| l["item"].clone())
        .collect();
    assert_eq!(dead, [json!(3), json!(6), json!(9)]);
}

/// A JSON Lines writer that, on its first `failures` writes of a chunk holding `id`, writes
/// the items before it and then fails with a temporary error; rolled back by the default
/// `rollback` (close, then open at the committed position).
struct FlakyWriter {
    inner: JsonLinesItemWriter,
    id: &'static str,
    failures: Arc<AtomicU32>,
}

#[async_trait]
impl ItemStream for FlakyWriter {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.inner.open(context).await
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        self.inner.update(context).await
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await
    }
}

#[async_trait]
impl ItemWriter<Record> for FlakyWriter {
    async fn write(&mut self, items: &[Record]) -> Result<()> {
        if let Some(at) = items.iter().position(|r| r["id"] == self.id)
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            self.inner.write(&items[..at]).await?;
            return Err(Error::new(ErrorKind::Io, "connection reset").set_temporary(true));
        }
        self.inner.write(items).await
    }
}

#[tokio::test]
async fn a_flaky_writer_is_retried_and_an_appended_file_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), 6);
    let out = dir.path().join("out.jsonl");
    std::fs::write(&out, "{\"id\":\"0\",\"name\":\"from before\"}\n").unwrap();
    let journal = Arc::new(Journal::default());
    let mut registry = registry(&journal);
    let failures = Arc::new(AtomicU32::new(2));
    {
        let failures = failures.clone();
        registry.register_writer_ref("flaky", move |props, _| {
            let path = props
                .get("path")
                .and_then(|p| p.as_str())
                .unwrap_or_default();
            let mut config = JsonLinesWriterConfig::new(path);
            config.append = true;
            Ok(Box::new(FlakyWriter {
                inner: JsonLinesItemWriter::new(config)?,
                id: "2",
                failures: failures.clone(),
            }))
        });
    }
    let yaml = r#"
id: flaky
flow:
  start-element: load
  elements:
    load:
      chunk:
        reader: { type: csv, properties: { path: "${params.dir}/in.csv" } }
        writer: { ref: flaky, properties: { path: "${params.dir}/out.jsonl" } }
        chunk-size: 3
        retry:
          limit: 3
          backoff: { initial: 1ms, max: 5ms, multiplier: 1.5, jitter: 0.1 }
      listeners: [ { ref: journal } ]
"#;
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let (execution, step) = start(&operator, yaml, &registry, &params(dir.path())).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    // The first chunk (1-3) failed twice after writing 1: rolled back to the old line.
    assert_eq!(ids(&out), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(step.counts.write_count, 6);
    assert_eq!(step.counts.rollback_count, 2);
    assert_eq!(journal.lines(), ["retry write 1/3", "retry write 2/3"]);
}

#[tokio::test]
async fn a_write_scan_over_a_csv_file_writes_the_nine_good_rows_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,name\n");
    for id in 1..=10 {
        let name = if id == 4 {
            "日本".to_string()
        } else {
            format!("name{id}")
        };
        csv.push_str(&format!("{id},{name}\n"));
    }
    std::fs::write(dir.path().join("in.csv"), csv).unwrap();
    let journal = Arc::new(Journal::default());
    let registry = registry(&journal);
    let yaml = r#"
id: scan
flow:
  start-element: load
  elements:
    load:
      chunk:
        reader: { type: csv, properties: { path: "${params.dir}/in.csv" } }
        writer:
          type: csv
          properties: { path: "${params.dir}/out.csv", encoding: windows-1252 }
        chunk-size: 10
        item-skip: { limit: 1, kinds: [parse] }
        dead-letter:
          writer: { type: jsonl, properties: { path: "${params.dir}/dead.jsonl" } }
      listeners: [ { ref: journal } ]
"#;
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let (execution, step) = start(&operator, yaml, &registry, &params(dir.path())).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    let mut expected = String::from("id,name\n");
    for id in (1..=10).filter(|id| *id != 4) {
        expected.push_str(&format!("{id},name{id}\n"));
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.csv")).unwrap(),
        expected
    );
    assert_eq!(step.counts.write_count, 9);
    assert_eq!(step.counts.write_skip_count, 1);
    assert_eq!(journal.lines(), ["write \"4\": parse"]);
    let dead = lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["phase"], "write");
    assert_eq!(dead[0]["item"], 4);
    assert_eq!(dead[0]["record"], json!({"id": "4", "name": "日本"}));
    assert!(
        dead[0]["message"]
            .as_str()
            .unwrap()
            .contains("windows-1252"),
        "{}",
        dead[0]["message"]
    );
}

#[tokio::test]
async fn a_step_failing_in_a_scan_restarts_from_the_last_commit_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,name\n");
    for id in 1..=9 {
        let name = if id == 5 || id == 6 {
            format!("名{id}")
        } else {
            format!("name{id}")
        };
        csv.push_str(&format!("{id},{name}\n"));
    }
    std::fs::write(dir.path().join("in.csv"), csv).unwrap();
    let job = |limit: u32| {
        format!(
            r#"
id: scan-restart
flow:
  start-element: load
  elements:
    load:
      chunk:
        reader: {{ type: csv, properties: {{ path: "${{params.dir}}/in.csv" }} }}
        writer:
          type: csv
          properties: {{ path: "${{params.dir}}/out.csv", encoding: windows-1252 }}
        chunk-size: 3
        skip: {{ limit: {limit}, on: [parse] }}
        dead-letter:
          writer: {{ type: jsonl, properties: {{ path: "${{params.dir}}/dead.jsonl" }} }}
"#
        )
    };
    let registry = ikkatsu::registry(AppConfig::default());
    let params = params(dir.path());
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let out = dir.path().join("out.csv");

    // 1-3 committed; the scan of 4-6 makes 4 durable, skips 5 and fails on 6.
    let (execution, step) = start(&operator, &job(1), &registry, &params).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    assert!(
        step.exit_status
            .description
            .starts_with("skip limit 1 exceeded in write: cannot write row 5 to CSV"),
        "{}",
        step.exit_status.description
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "id,name\n1,name1\n2,name2\n3,name3\n4,name4\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap(),
        ""
    );

    // The restart truncates to the commit after 3 and scans 4-6 again.
    let (execution, step) = start(&operator, &job(5), &registry, &params).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(step.counts.write_skip_count, 2);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "id,name\n1,name1\n2,name2\n3,name3\n4,name4\n7,name7\n8,name8\n9,name9\n"
    );
    let dead: Vec<Value> = lines(&dir.path().join("dead.jsonl"))
        .iter()
        .map(|l| l["item"].clone())
        .collect();
    assert_eq!(dead, [json!(5), json!(6)]);
}

#[tokio::test]
async fn a_bad_line_skipped_on_read_is_a_dead_letter_without_a_record() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.csv"), "id,name\n1,a\n2,b,extra\n3,c\n").unwrap();
    let yaml = r#"
id: read-skips
flow:
  start-element: load
  elements:
    load:
      chunk:
        reader: { type: csv, properties: { path: "${params.dir}/in.csv" } }
        writer: { type: jsonl, properties: { path: "${params.dir}/out.jsonl" } }
        skip: { limit: 1, on: [parse] }
        dead-letter:
          writer: { type: jsonl, properties: { path: "${params.dir}/dead.jsonl" } }
"#;
    let registry = ikkatsu::registry(AppConfig::default());
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let (execution, step) = start(&operator, yaml, &registry, &params(dir.path())).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(step.counts.read_skip_count, 1);
    assert_eq!(ids(&dir.path().join("out.jsonl")), [1, 3]);
    let dead = lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["phase"], "read");
    assert_eq!(dead[0]["item"], 2);
    assert_eq!(dead[0]["kind"], "parse");
    assert!(dead[0].get("record").is_none());
    let message = dead[0]["message"].as_str().unwrap();
    assert!(message.contains("in.csv:3"), "{message}");
}

fn errors(yaml: &str) -> ConfigErrors {
    JobDefinition::from_str(yaml, "job.yaml").unwrap_err()
}

fn assert_has(errors: &ConfigErrors, needle: &str) {
    assert!(
        errors.iter().any(|e| e.to_string().contains(needle)),
        "no error contains {needle:?}:\n{errors}"
    );
}

const CHUNK: &str = r#"id: bad
flow:
  start-element: load
  elements:
    load:
      chunk:
        reader: { type: csv, properties: { path: in.csv } }
        writer: { type: csv, properties: { path: out.csv } }
"#;

#[test]
fn bad_fault_tolerance_keys_are_errors_naming_the_key() {
    let e = errors(&format!(
        "{CHUNK}        skip: {{ limit: 1, on: [parse, oops] }}\n        no-rollback: [nope]\n"
    ));
    assert_has(
        &e,
        "job.yaml:9:39: unknown error kind `oops` in `on` of `skip` of element `load` (expected one of: config, parse, io, not-found,",
    );
    assert_has(
        &e,
        "job.yaml:10:23: unknown error kind `nope` in `no-rollback` of the chunk of element `load`",
    );

    let e = errors(&format!(
        "{CHUNK}        skip: {{ limit: 1, on: [parse] }}\n        item-skip: {{ limit: 1, kinds: [parse] }}\n        retry: {{ limit: 1, on: [io], kinds: [io] }}\n"
    ));
    assert_has(
        &e,
        "job.yaml:10:9: `item-skip` is an alias of `skip` in the chunk of element `load`: give only one",
    );
    assert_has(
        &e,
        "`kinds` is an alias of `on` in `retry` of element `load`: give only one",
    );

    let e = errors(&format!(
        "{CHUNK}        retry:\n          limit: 2\n          max-backoff: 1s\n          backoff: {{ initial: 10, max: 2s, multiplier: 0.5, jitter: 2, cap: 1 }}\n        dead-letter: {{ path: dead.jsonl }}\n"
    ));
    assert_has(&e, "`initial` in `backoff` of `retry` of element `load`");
    assert_has(
        &e,
        "`max-backoff` is an alias of `max` in `backoff` of `retry`",
    );
    assert_has(
        &e,
        "`multiplier` in `backoff` of `retry` of element `load` must be at least 1",
    );
    assert_has(
        &e,
        "`jitter` in `backoff` of `retry` of element `load` must be between 0 and 1",
    );
    assert_has(
        &e,
        "unknown key `cap` in `backoff` of `retry` of element `load`",
    );
    assert_has(
        &e,
        "unknown key `path` in `dead-letter` of element `load` (expected one of: writer)",
    );
    assert_has(
        &e,
        "missing key `writer` in `dead-letter` of element `load`",
    );
}

#[test]
fn a_dead_letter_writer_of_an_unknown_type_and_a_skip_listener_on_a_tasklet_are_refused() {
    let yaml = format!(
        "{CHUNK}        dead-letter: {{ writer: {{ type: jsonnl }} }}\n      next: after\n    after:\n      tasklet: {{ type: noop }}\n      listeners: [ {{ ref: journal }} ]\n"
    );
    let definition = JobDefinition::from_str(&yaml, "job.yaml").unwrap();
    let registry = registry(&Arc::new(Journal::default()));
    let e = definition
        .build(&registry, &JobParameters::new())
        .err()
        .unwrap();
    assert_has(
        &e,
        "job.yaml:9:40: unknown writer type `jsonnl` in step `load`",
    );
    assert_has(
        &e,
        "job.yaml:13:27: listener `journal` in step `after` is a skip, retry or item listener: those listen to chunk steps, and this step is a tasklet",
    );
}
