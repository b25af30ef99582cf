//! Partitioned steps and late binding from YAML: range and file partitions run locally,
//! worker properties read `${partition.…}`, a step reads `${context.…}` promoted by an
//! earlier step, and a restart reruns only the failed partition.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use ikkatsu::config::{AppConfig, JobDefinition};
use ikkatsu::core::ParameterValue;
use ikkatsu::core::prelude::*;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn run(yaml: &str, repository: &Arc<dyn JobRepository>, dir: &Path) -> (Job, JobExecution) {
    let definition = JobDefinition::from_str(yaml, "partitioned.yaml").unwrap();
    let registry = ikkatsu::registry(AppConfig::default());
    let params =
        JobParameters::new().with("dir", ParameterValue::String(dir.display().to_string()));
    let job = definition.build(&registry, &params).unwrap();
    let execution = JobOperator::new(repository.clone())
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    (job, execution)
}

const RANGE: &str = r#"
id: squares
steps:
  - name: load
    partition:
      partitioner: { type: range, properties: { min: 1, max: 1000 } }
      grid-size: 4
      parallelism: 2
      step:
        chunk:
          reader: { type: sequence, properties: { from: "${partition.min}", to: "${partition.max}" } }
          processor: { type: script, properties: { script: "record.sq = record.n * record.n; record" } }
          writer: { type: jsonl, properties: { path: "${params.dir}/${partition.name}.jsonl" } }
          chunk-size: 100
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_partitions_cover_every_value_once() {
    let dir = tempfile::tempdir().unwrap();
    let repository: Arc<dyn JobRepository> = Arc::new(MemoryJobRepository::new());
    let (_, execution) = run(RANGE, &repository, dir.path()).await;
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );
    let mut seen = Vec::new();
    for i in 0..4 {
        let part = lines(&dir.path().join(format!("partition{i}.jsonl")));
        assert_eq!(part.len(), 250, "partition{i}");
        for row in part {
            let n = row["n"].as_i64().unwrap();
            assert_eq!(row["sq"].as_i64(), Some(n * n));
            seen.push(n);
        }
    }
    seen.sort();
    assert_eq!(seen, (1..=1000).collect::<Vec<_>>());
    let steps = repository.step_executions(execution.id).await.unwrap();
    let manager = steps.iter().find(|s| s.step_name == "load").unwrap();
    assert_eq!(
        (manager.counts.read_count, manager.counts.write_count),
        (1000, 1000)
    );
    assert_eq!(steps.len(), 5);
}

const FILES: &str = r#"
id: per-file
steps:
  - name: find
    tasklet: { type: noop }
  - name: copy
    partition:
      partitioner: { type: files, properties: { path: "${params.dir}/in/*.csv" } }
      heartbeat: 100ms
      stale-after: 1s
      step:
        chunk:
          reader: { type: csv, properties: { path: "${partition.file}" } }
          processor:
            type: script
            properties: { script: "record.source = \"${partition.file}\"; if record.id == \"boom\" { throw \"bad record\" } record" }
          writer: { type: jsonl, properties: { path: "${params.dir}/out/${partition.index}.jsonl" } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_partitions_and_a_restart_of_only_the_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    for (name, ids) in [
        ("a.csv", "1\n2\n"),
        ("b.csv", "3\nboom\n"),
        ("c.csv", "5\n"),
    ] {
        std::fs::write(dir.path().join("in").join(name), format!("id\n{ids}")).unwrap();
    }
    let repository: Arc<dyn JobRepository> = Arc::new(MemoryJobRepository::new());
    let (job, first) = run(FILES, &repository, dir.path()).await;
    assert_eq!(first.status, BatchStatus::Failed);
    let steps = repository.step_executions(first.id).await.unwrap();
    let copy = steps.iter().find(|s| s.step_name == "copy").unwrap();
    assert!(
        copy.exit_status
            .description
            .contains("1 of 3 partitions failed: `copy:partition1`"),
        "{}",
        copy.exit_status.description
    );
    assert!(
        copy.exit_status.description.contains("bad record"),
        "{}",
        copy.exit_status.description
    );
    let a = lines(&dir.path().join("out/0.jsonl"));
    let in_a = dir.path().join("in/a.csv").display().to_string();
    assert_eq!(a[0]["source"], serde_json::json!(in_a));

    // The bad record is fixed and the job restarted: only partition1 runs again.
    std::fs::write(dir.path().join("in/b.csv"), "id\n3\n4\n").unwrap();
    // A file added since is not picked up: the plan of the first run is kept.
    std::fs::write(dir.path().join("in/d.csv"), "id\n9\n").unwrap();
    let second = JobOperator::new(repository.clone())
        .restart(first.id, &job, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        second.status,
        BatchStatus::Completed,
        "{:?}",
        second.exit_status
    );
    let names: BTreeSet<String> = repository
        .step_executions(second.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_name)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["copy".to_string(), "copy:partition1".to_string()])
    );
    let ids: Vec<String> = (0..3)
        .flat_map(|i| lines(&dir.path().join(format!("out/{i}.jsonl"))))
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    assert!(!dir.path().join("out/3.jsonl").exists());
}

const CONTEXT: &str = r#"
id: late
steps:
  - name: decide
    tasklet:
      type: shell
      properties: { command: "true" }
    execution-context-promotion: [ ]
  - name: write
    chunk:
      reader: { type: sequence, properties: { from: 1, to: "${context.count:-3}" } }
      writer: { type: jsonl, properties: { path: "${params.dir}/late.jsonl" } }
"#;

#[tokio::test]
async fn a_context_reference_is_read_when_the_step_starts() {
    let dir = tempfile::tempdir().unwrap();
    let repository: Arc<dyn JobRepository> = Arc::new(MemoryJobRepository::new());
    let (_, execution) = run(CONTEXT, &repository, dir.path()).await;
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );
    assert_eq!(lines(&dir.path().join("late.jsonl")).len(), 3);
}

#[test]
fn bad_partition_definitions_are_refused_with_positions() {
    let registry = ikkatsu::registry(AppConfig::default());
    let cases = [
        (
            "id: j\nsteps:\n  - name: p\n    partition:\n      partitioner: { type: nope }\n      step: { tasklet: { type: noop } }\n",
            "j.yaml:5:28: unknown partitioner type `nope` in step `p` (registered partitioner types: files, list, range)",
        ),
        (
            "id: j\nsteps:\n  - name: p\n    partition:\n      partitioner: { type: range, properties: { min: 1, max: 2 } }\n      step: { split: { flows: [] } }\n",
            "j.yaml:6:15: unknown key `split` in the worker step of step `p` (expected one of: chunk, tasklet)",
        ),
        (
            "id: j\nsteps:\n  - name: p\n    partition:\n      partitioner: { type: range, properties: { min: 1, max: 2 } }\n      step: { tasklet: { type: noop } }\n      remote: { broker: \"kafka://x\" }\n",
            "no broker for `kafka://` URLs",
        ),
        (
            "id: j\nsteps:\n  - name: p\n    partition:\n      partitioner: { type: range, properties: { min: 1, max: 2 } }\n      step: { tasklet: { type: noop } }\n      heartbeat: 1s\n      stale-after: 2s\n",
            "j.yaml:8:7: the partition of step `p`: `stale-after` must be more than twice `heartbeat`",
        ),
        (
            "id: j\nsteps:\n  - name: p\n    chunk:\n      reader: { type: sequence, properties: { from: 1, to: 9 } }\n      writer: { type: jsonl, properties: { path: x.jsonl } }\n      threads: 4\n",
            "j.yaml:7:7: `threads` in the chunk of step `p`: a multi-threaded chunk step is not offered",
        ),
        (
            "id: j\nsteps:\n  - name: p\n    partition:\n      partitioner: { type: range, properties: { min: 5, max: 2 } }\n      step: { tasklet: { type: noop } }\n",
            "`max` (2) is below `min` (5)",
        ),
    ];
    for (yaml, expected) in cases {
        let definition = JobDefinition::from_str(yaml, "j.yaml");
        let message = match definition {
            Err(errors) => errors.to_string(),
            Ok(definition) => match definition.build(&registry, &JobParameters::new()) {
                Err(errors) => errors.to_string(),
                Ok(_) => panic!("accepted: {yaml}"),
            },
        };
        assert!(
            message.contains(expected),
            "{message}\n--- expected: {expected}"
        );
    }
}
