//! A CSV → JSON Lines job that fails mid-way and is restarted: no loss, no duplicates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ikkatsu_core::prelude::*;
use ikkatsu_core::{ErrorKind, Record};
use ikkatsu_items::csv::{CsvItemReader, CsvReaderConfig};
use ikkatsu_items::jsonl::{JsonLinesItemWriter, JsonLinesWriterConfig};

fn job(input: &std::path::Path, output: &std::path::Path, fail_once: Arc<AtomicBool>) -> Job {
    let step = ChunkStep::<Record, Record>::builder("copy")
        .reader(CsvItemReader::new(CsvReaderConfig::new(input)).unwrap())
        .processor(FnItemProcessor::new(move |record: Record| {
            if record["id"] == "7" && fail_once.swap(false, Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Component, "boom on 7"));
            }
            Ok(Some(record))
        }))
        .writer(JsonLinesItemWriter::new(JsonLinesWriterConfig::new(output)).unwrap())
        .chunk_size(3)
        .build()
        .unwrap();
    Job::linear("copy", vec![Arc::new(step)]).unwrap()
}

#[tokio::test]
async fn failed_job_restarts_from_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.jsonl");
    let mut csv = String::from("id\n");
    for i in 1..=10 {
        csv.push_str(&format!("{i}\n"));
    }
    std::fs::write(&input, csv).unwrap();
    let fail_once = Arc::new(AtomicBool::new(true));
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let params = JobParameters::new().with("run", ParameterValue::String("1".into()));

    let first = operator
        .start(
            &job(&input, &output, fail_once.clone()),
            params.clone(),
            CancellationToken::new(),
        )
        .await;
    match first {
        Ok(execution) => assert_eq!(execution.status, BatchStatus::Failed),
        Err(err) => assert!(err.message().contains("boom"), "{err}"),
    }
    // Chunks [1,2,3] and [4,5,6] were committed.
    let committed: String = (1..=6).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), committed);

    let second = operator
        .start(
            &job(&input, &output, fail_once),
            params,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);
    let all: String = (1..=10).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), all);
}
