//! A CSV input with a header and no rows gives an output with that header (local files and
//! part files on a `file://` storage), and a restart never writes the header twice.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ikkatsu_core::prelude::*;
use ikkatsu_core::{ErrorKind, ExecutionContext, Record};
use ikkatsu_items::csv::{
    CsvItemReader, CsvItemWriter, CsvReaderConfig, CsvRow, CsvRowItemReader, CsvRowItemWriter,
    CsvWriterConfig, READER_COLUMNS_KEY,
};
use ikkatsu_items::object::{CsvObjectReaderConfig, CsvObjectWriterConfig, ObjectItemWriter};

async fn run(job: Job) -> JobExecution {
    JobOperator::new(Arc::new(MemoryJobRepository::new()))
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap()
}

fn record_step(
    reader: impl ItemReader<Record> + 'static,
    writer: impl ItemWriter<Record> + 'static,
) -> Job {
    let step = ChunkStep::<Record, Record>::builder("copy")
        .reader(reader)
        .writer(writer)
        .chunk_size(2)
        .build()
        .unwrap();
    Job::linear("copy", vec![Arc::new(step)]).unwrap()
}

#[tokio::test]
async fn header_only_input_gives_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,name,city\n").unwrap();

    // Record reader → record writer.
    let output = dir.path().join("out.csv");
    let execution = run(record_step(
        CsvItemReader::new(CsvReaderConfig::new(&input)).unwrap(),
        CsvItemWriter::new(CsvWriterConfig::new(&output)).unwrap(),
    ))
    .await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,name,city\n");

    // Row reader → row writer.
    let rows = dir.path().join("rows.csv");
    let step = ChunkStep::<CsvRow, CsvRow>::builder("copy")
        .reader(CsvRowItemReader::new(CsvReaderConfig::new(&input)).unwrap())
        .writer(CsvRowItemWriter::new(CsvWriterConfig::new(&rows)).unwrap())
        .chunk_size(2)
        .build()
        .unwrap();
    let execution = run(Job::linear("rows", vec![Arc::new(step)]).unwrap()).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(std::fs::read_to_string(&rows).unwrap(), "id,name,city\n");

    // Without a header, nothing but the header is written: an empty file.
    let plain = dir.path().join("plain.csv");
    let mut config = CsvWriterConfig::new(&plain);
    config.header = false;
    run(record_step(
        CsvItemReader::new(CsvReaderConfig::new(&input)).unwrap(),
        CsvItemWriter::new(config).unwrap(),
    ))
    .await;
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "");
}

#[tokio::test]
async fn all_records_filtered_gives_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,age\n1,12\n2,15\n3,9\n").unwrap();
    let output = dir.path().join("out.csv");
    let step = ChunkStep::<Record, Record>::builder("adults")
        .reader(CsvItemReader::new(CsvReaderConfig::new(&input)).unwrap())
        .processor(FnItemProcessor::new(|_record: Record| Ok(None)))
        .writer(CsvItemWriter::new(CsvWriterConfig::new(&output)).unwrap())
        .chunk_size(2)
        .build()
        .unwrap();
    let execution = run(Job::linear("adults", vec![Arc::new(step)]).unwrap()).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,age\n");
}

/// The writer's side of a step: committed with the reader's columns but no record, killed,
/// then restarted with the saved context; `append` keeps an existing file's content.
#[tokio::test]
async fn restart_after_a_header_only_commit_writes_one_header() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.csv");
    let mut context = ExecutionContext::new();
    context.put(READER_COLUMNS_KEY, ["id", "name"]);
    let mut writer = CsvItemWriter::new(CsvWriterConfig::new(&output)).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.update(&mut context).await.unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,name\n");
    drop(writer); // killed: no close

    let mut writer = CsvItemWriter::new(CsvWriterConfig::new(&output)).unwrap();
    writer.open(&context).await.unwrap();
    let record: Record = serde_json::json!({"id": "1", "name": "a"})
        .as_object()
        .unwrap()
        .clone()
        .into();
    writer.write(&[record]).await.unwrap();
    writer.update(&mut context).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,name\n1,a\n");

    // Appending to a file that has content: no header, also not from the reader's columns.
    let mut config = CsvWriterConfig::new(&output);
    config.append = true;
    let mut writer = CsvItemWriter::new(config).unwrap();
    let mut fresh = ExecutionContext::new();
    fresh.put(READER_COLUMNS_KEY, ["id", "name"]);
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.update(&mut fresh).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,name\n1,a\n");
}

fn parts(dir: &Path) -> Vec<(String, String)> {
    let mut parts: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| {
                    let entry = entry.unwrap();
                    (
                        entry.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(entry.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    parts
}

fn object_job(storage: &str, fail_once: Option<Arc<AtomicBool>>) -> Job {
    let step = ChunkStep::<Record, Record>::builder("copy")
        .reader(ObjectItemReader::csv(CsvObjectReaderConfig::new(storage, "in/*.csv")).unwrap())
        .processor(FnItemProcessor::new(move |record: Record| {
            if record["id"] == "3"
                && fail_once
                    .as_ref()
                    .is_some_and(|flag| flag.swap(false, Ordering::SeqCst))
            {
                return Err(Error::new(ErrorKind::Component, "boom on 3"));
            }
            Ok(Some(record))
        }))
        .writer(ObjectItemWriter::csv(CsvObjectWriterConfig::new(storage, "out")).unwrap())
        .chunk_size(2)
        .build()
        .unwrap();
    Job::linear("copy", vec![Arc::new(step)]).unwrap()
}

use ikkatsu_items::object::ObjectItemReader;

#[tokio::test]
async fn part_files_of_a_header_only_input_hold_the_header() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/a.csv"), "id,name\n").unwrap();
    let storage = format!("file://{}", dir.path().display());

    let execution = run(object_job(&storage, None)).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(
        parts(&dir.path().join("out")),
        [("part-00000.csv".to_string(), "id,name\n".to_string())]
    );

    // With records, the first part replaces the header-only one; a failed run restarted
    // leaves each part once, each with one header.
    std::fs::write(dir.path().join("in/b.csv"), "id,name\n1,a\n2,b\n3,c\n").unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let fail_once = Arc::new(AtomicBool::new(true));
    let first = operator
        .start(
            &object_job(&storage, Some(fail_once.clone())),
            JobParameters::new(),
            CancellationToken::new(),
        )
        .await;
    assert!(
        first.map_or(true, |e| e.status == BatchStatus::Failed),
        "the first run fails on record 3"
    );
    let second = operator
        .start(
            &object_job(&storage, Some(fail_once)),
            JobParameters::new(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);
    assert_eq!(
        parts(&dir.path().join("out")),
        [
            (
                "part-00000.csv".to_string(),
                "id,name\n1,a\n2,b\n".to_string()
            ),
            ("part-00001.csv".to_string(), "id,name\n3,c\n".to_string()),
        ]
    );
}
