//! The file reader and writer types on named storages: a YAML job reading CSV objects and
//! writing Parquet parts, failed and restarted; property errors with their lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ikkatsu::config::{AppConfig, ComponentRegistry, JobDefinition};
use ikkatsu::core::prelude::*;
use ikkatsu::core::{ErrorKind, ExecutionContext, Record};
use ikkatsu::items::object::ObjectItemReader;
use ikkatsu::storage::Storage;
use serde_json::json;

#[cfg(feature = "parquet")]
const JOB: &str = r#"
id: csv-to-parquet
params:
  day: "2024-05-01"
steps:
  - name: load
    chunk:
      reader:
        type: csv
        properties:
          storage: "@in"
          path: "exports/${params.day}/**/*.csv"
      processor: { ref: fail-once }
      writer:
        type: parquet
        properties:
          storage: "@out"
          path: "orders/day=${params.day}"
          compression: zstd
          schema:
            id: { type: int64, nullable: false }
            customer: string
            amount: float64
      chunk-size: 2
"#;

#[cfg(feature = "parquet")]
fn registry(fail_once: Arc<AtomicBool>) -> ComponentRegistry {
    let app = AppConfig::from_str(
        "storages:\n  in: \"memory:yaml-in\"\n  out: \"memory:yaml-out\"\n",
        "ikkatsu-config.yaml",
    )
    .unwrap();
    let mut registry = ikkatsu::registry(app);
    registry.register_processor_instance(
        "fail-once",
        Arc::new(FnItemProcessor::new(move |record: Record| {
            if record["id"] == "4" && fail_once.swap(false, Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Component, "boom on 4"));
            }
            Ok(Some(record))
        })),
    );
    registry
}

#[cfg(feature = "parquet")]
#[tokio::test]
async fn a_yaml_job_reads_csv_objects_writes_parquet_parts_and_restarts() {
    let input = Storage::open("memory:yaml-in").unwrap();
    input
        .write(
            "exports/2024-05-01/b/2.csv",
            "id,customer,amount\n4,Dai,4.5\n5,Emi,\n",
        )
        .await
        .unwrap();
    input
        .write(
            "exports/2024-05-01/a.csv",
            "id,customer,amount\n1,Aiko,1.25\n2,Ben,2\n3,Chloé,3.5\n",
        )
        .await
        .unwrap();
    input
        .write("exports/2024-04-30/old.csv", "id,customer,amount\n9,x,9\n")
        .await
        .unwrap();

    let fail_once = Arc::new(AtomicBool::new(true));
    let definition = JobDefinition::from_str(JOB, "job.yaml").unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let params = JobParameters::new();

    let job = definition
        .build(&registry(fail_once.clone()), &params)
        .unwrap();
    let first = operator
        .start(&job, params.clone(), CancellationToken::new())
        .await;
    match first {
        Ok(execution) => assert_eq!(execution.status, BatchStatus::Failed),
        Err(err) => assert!(err.message().contains("boom"), "{err}"),
    }
    let output = Storage::open("memory:yaml-out").unwrap();
    assert!(
        output
            .exists("orders/day=2024-05-01/part-00000.parquet")
            .await
            .unwrap()
    );
    assert!(
        !output
            .exists("orders/day=2024-05-01/part-00001.parquet")
            .await
            .unwrap()
    );

    let job = definition.build(&registry(fail_once), &params).unwrap();
    let second = operator
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);

    let mut reader = ObjectItemReader::parquet(ikkatsu::items::object::ParquetReaderConfig::new(
        "memory:yaml-out",
        "orders/day=2024-05-01/*.parquet",
    ))
    .unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let mut rows = Vec::new();
    reader.read_chunk(100, &mut rows).await.unwrap();
    let rows: Vec<serde_json::Value> = rows.into_iter().map(serde_json::Value::from).collect();
    assert_eq!(
        rows,
        [
            json!({"id": 1, "customer": "Aiko", "amount": 1.25}),
            json!({"id": 2, "customer": "Ben", "amount": 2.0}),
            json!({"id": 3, "customer": "Chloé", "amount": 3.5}),
            json!({"id": 4, "customer": "Dai", "amount": 4.5}),
            json!({"id": 5, "customer": "Emi", "amount": null}),
        ]
    );
}

fn validate(yaml: &str) -> String {
    let app = AppConfig::from_str("storages:\n  in: \"memory:\"\n", "app.yaml").unwrap();
    let definition = JobDefinition::from_str(yaml, "job.yaml").unwrap();
    definition
        .validate(&ikkatsu::registry(app), &JobParameters::new())
        .map(|()| "valid".to_string())
        .unwrap_or_else(|err| err.to_string())
}

#[test]
fn property_mistakes_are_reported_with_their_lines() {
    let job = |reader: &str, writer: &str| {
        format!(
            "id: x\nsteps:\n  - name: s\n    chunk:\n      reader: {reader}\n      writer: {writer}\n"
        )
    };
    let ok = validate(&job(
        "{type: json, properties: {storage: \"@in\", path: \"a/*.json\"}}",
        "{type: jsonl, properties: {storage: \"@in\", path: out, part-records: 10}}",
    ));
    assert_eq!(ok, "valid");
    let local = validate(&job(
        "{type: csv, properties: {path: in.csv}}",
        "{type: csv, properties: {path: out.csv, append: true}}",
    ));
    assert_eq!(local, "valid", "without `storage`: the local file types");

    let err = validate(&job(
        "{type: parquet, properties: {storage: \"@in\", path: \"*.parquet\"}}",
        "{type: parquet, properties: {storage: \"@in\", path: out, schema: {x: decimal}}}",
    ));
    assert!(err.contains("job.yaml:6:"), "{err}");
    assert!(err.contains("unknown Parquet type `decimal`"), "{err}");

    let err = validate(&job(
        "{type: csv, properties: {storage: \"@in\", path: a.csv, append: true}}",
        "{type: json, properties: {storage: \"@in\", path: out}}",
    ));
    assert!(err.contains("job.yaml:5:"), "{err}");
    assert!(err.contains("unknown field `append`"), "{err}");

    let err = validate(&job(
        "{type: csv, properties: {storage: \"@nope\", path: a.csv}}",
        "{type: json, properties: {storage: \"@in\", path: out, prefix: \"a/b\"}}",
    ));
    assert!(
        err.contains("`@nope` is not in the application config"),
        "{err}"
    );
    assert!(err.contains("known: in"), "{err}");
    assert!(
        err.contains("`prefix` must be a non-empty file name start"),
        "{err}"
    );
}
