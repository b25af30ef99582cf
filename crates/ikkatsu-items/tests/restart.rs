//! A CSV → JSON Lines job that fails mid-way and is restarted: no loss, no duplicates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ikkatsu_core::prelude::*;
use ikkatsu_core::{ErrorKind, Record};
use ikkatsu_items::csv::{CsvItemReader, CsvReaderConfig};
use ikkatsu_items::jsonl::{JsonLinesItemWriter, JsonLinesWriterConfig};
use ikkatsu_items::object::{CsvObjectReaderConfig, ObjectItemReader};

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

/// Found by the `csv_restart` fuzz target (`scripts/fuzz`): a saved line and record number
/// that no file can have before the saved offset (`u64::MAX`, from an edited or corrupt
/// execution context) made the CSV parser overflow counting on from them. They are refused.
#[tokio::test]
async fn an_impossible_saved_position_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut csv = vec![0xff; 62];
    csv.extend_from_slice(b"\0\0\x03");
    csv.extend_from_slice(&[0; 21]);
    csv.extend_from_slice(b"7\0\0\0\0\0\xe0\xa5 \t b \n c\t d\n");
    std::fs::write(&input, &csv).unwrap();
    let mut config = CsvReaderConfig::new(&input);
    config.has_header = false;
    config.trim = true;
    config.delimiter = '\t';
    config.quote = '\u{7f}';
    let mut context = ExecutionContext::new();
    context.put("csv.reader.offset", 91u64);
    context.put("csv.reader.line", u64::MAX);
    context.put("csv.reader.record", u64::MAX);

    let mut reader = CsvItemReader::new(config.clone()).unwrap();
    let err = reader.open(&context).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.message().contains("in.csv"), "{}", err.message());
    assert!(
        err.message().contains("line 18446744073709551615"),
        "{}",
        err.message()
    );

    // The most lines and records there can be before byte 91 are accepted, and counted on
    // from: the row there is not UTF-8, on line 92.
    context.put("csv.reader.line", 92u64);
    context.put("csv.reader.record", 92u64);
    let mut reader = CsvItemReader::new(config).unwrap();
    reader.open(&context).await.unwrap();
    let err = reader.read().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(err.message().contains("in.csv:92:"), "{}", err.message());
}

/// Found by the `csv_restart` fuzz target: a saved line number 0 (line numbers start at 1)
/// made the csv crate's `Position::set_line` panic, in release builds too. The reader resumes
/// at the saved offset and numbers lines from 1.
#[tokio::test]
async fn a_saved_line_zero_resumes_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,name\n1,a\n2,b\n").unwrap();
    let mut context = ExecutionContext::new();
    context.put("csv.reader.offset", 12u64);
    context.put("csv.reader.line", 0u64);
    context.put("csv.reader.record", 0u64);
    let mut reader = CsvItemReader::new(CsvReaderConfig::new(&input)).unwrap();
    reader.open(&context).await.unwrap();
    let record = reader.read().await.unwrap().expect("the row at byte 12");
    assert_eq!(record["id"], "2");
    assert_eq!(record["name"], "b");
    assert!(reader.read().await.unwrap().is_none());
    reader.update(&mut context).await.unwrap();
    assert_eq!(context.get_u64("csv.reader.line"), Some(2));
}

/// Found by the `csv_restart` fuzz target: a row that begins with the bytes of a UTF-8 byte
/// order mark (files joined with `cat`) lost them when a restart resumed at it, because
/// the CSV parser drops a mark at the start of what it parses first. Read through or
/// restarted there, the row is the same; for the local and the storage reader, with `\n`
/// and `\r\n` line ends.
#[tokio::test]
async fn a_restart_at_a_row_starting_with_a_byte_order_mark_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, csv) in [
        ("lf.csv", "id,name\n1,a\n\u{feff}2,b\n3,c\n"),
        ("crlf.csv", "id,name\r\n1,a\r\n\u{feff}2,b\r\n3,c\r\n"),
    ] {
        let expected = ["1", "\u{feff}2", "3"];
        let input = dir.path().join(name);
        std::fs::write(&input, csv).unwrap();
        let local = || CsvItemReader::new(CsvReaderConfig::new(&input)).unwrap();
        let mut context = ExecutionContext::new();
        assert_eq!(read_ids(local(), &mut context, 1).await, expected[..1]);
        assert_eq!(
            read_ids(local(), &mut context, 9).await,
            expected[1..],
            "{name}"
        );

        let url = format!("memory:bom-restart-{name}");
        ikkatsu_storage::Storage::open(&url)
            .unwrap()
            .write(name, csv.to_string())
            .await
            .unwrap();
        let object =
            || ObjectItemReader::csv(CsvObjectReaderConfig::new(url.clone(), name)).unwrap();
        let mut context = ExecutionContext::new();
        assert_eq!(read_ids(object(), &mut context, 1).await, expected[..1]);
        assert_eq!(
            read_ids(object(), &mut context, 9).await,
            expected[1..],
            "{name}"
        );
    }
}

/// Opens `reader` at `context`, reads up to `max` records, saves the position in `context`
/// and returns the records' `id`s.
async fn read_ids<R: ItemReader<Record>>(
    mut reader: R,
    context: &mut ExecutionContext,
    max: usize,
) -> Vec<String> {
    reader.open(context).await.unwrap();
    let mut ids = Vec::new();
    while ids.len() < max {
        match reader.read().await.unwrap() {
            Some(record) => ids.push(record["id"].as_str().unwrap().to_string()),
            None => break,
        }
    }
    reader.update(context).await.unwrap();
    reader.close().await.unwrap();
    ids
}
