//! `CsvRow` items and batched reading (`ItemReader::read_chunk`) of the CSV readers.

use std::sync::Arc;

use async_trait::async_trait;
use ikkatsu_core::prelude::*;
use ikkatsu_core::{ErrorKind, ExecutionContext, Record};
use ikkatsu_items::csv::{
    CsvItemReader, CsvReaderConfig, CsvRow, CsvRowItemReader, CsvRowItemWriter, CsvWriterConfig,
    TypedCsvItemReader,
};

fn headers(names: &[&str]) -> Arc<[String]> {
    names.iter().map(|n| n.to_string()).collect()
}

async fn read_all<T: Send + 'static>(reader: &mut impl ItemReader<T>) -> Vec<T> {
    let mut items = Vec::new();
    while let Some(item) = reader.read().await.unwrap() {
        items.push(item);
    }
    items
}

/// Reads everything with `read_chunk(max)`, checking that every call but the last returns
/// exactly `max` items.
async fn read_all_in_chunks<T: Send + 'static>(
    reader: &mut impl ItemReader<T>,
    max: usize,
) -> Vec<T> {
    let mut items = Vec::new();
    loop {
        let before = items.len();
        let eof = reader.read_chunk(max, &mut items).await.unwrap();
        if eof {
            assert!(items.len() - before <= max);
            return items;
        }
        assert_eq!(items.len() - before, max);
    }
}

/// Only implements `read`, so `read_chunk` is the trait's default.
struct ReadOnly<R>(R);

#[async_trait]
impl<R: ItemStream> ItemStream for ReadOnly<R> {
    async fn open(&mut self, context: &ExecutionContext) -> ikkatsu_core::Result<()> {
        self.0.open(context).await
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> ikkatsu_core::Result<()> {
        self.0.update(context).await
    }
}

#[async_trait]
impl<T: Send + 'static, R: ItemReader<T>> ItemReader<T> for ReadOnly<R> {
    async fn read(&mut self) -> ikkatsu_core::Result<Option<T>> {
        self.0.read().await
    }
}

const PEOPLE: &str = "id,name,city\n1,Aiko,osaka\n2,\"Ben, Jr.\",lyon\n3,Chloé,zürich\n4,Dan,\"new\nyork\"\n5,Eve,rome\n6,Fay,oslo\n7,Gus,bern\n";

fn people(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("people.csv");
    std::fs::write(&path, PEOPLE).unwrap();
    path
}

#[test]
fn csv_row_reads_and_replaces_fields_by_name_and_index() {
    let mut row = CsvRow::new(headers(&["id", "city", "note"]), ["7", "lyon", "x"]);
    assert_eq!(row.len(), 3);
    assert!(!row.is_empty());
    assert_eq!(row.index_of("city"), Some(1));
    assert_eq!(row.get("city"), Some("lyon"));
    assert_eq!(row.field(2), Some("x"));
    assert_eq!(row.get("country"), None);
    assert_eq!(row.field(3), None);

    assert!(row.set("city", "São Paulo"));
    assert!(row.set_field(0, ""));
    assert!(row.set("note", "a longer note"));
    assert_eq!(
        row.iter().collect::<Vec<_>>(),
        ["", "São Paulo", "a longer note"]
    );
    assert!(row.set("city", "b"));
    assert_eq!(row.iter().collect::<Vec<_>>(), ["", "b", "a longer note"]);
    assert!(!row.set("country", "FR"));
    assert!(!row.set_field(3, "FR"));

    if let Some(note) = row.get_mut("note") {
        note.make_ascii_uppercase();
    }
    assert_eq!(row.get("note"), Some("A LONGER NOTE"));
    row.field_mut(1).unwrap().make_ascii_uppercase();
    assert_eq!(row.get("city"), Some("B"));

    let record = row.to_record();
    assert_eq!(
        serde_json::Value::from(record),
        serde_json::json!({"id": "", "city": "B", "note": "A LONGER NOTE"})
    );
    // Fields without a column name.
    let row = CsvRow::new(headers(&["a"]), ["1", "2"]);
    assert_eq!(
        serde_json::Value::from(row.to_record()),
        serde_json::json!({"a": "1", "column2": "2"})
    );
    assert_eq!(CsvRow::new(headers(&[]), Vec::<String>::new()).len(), 0);
}

#[tokio::test]
async fn row_reader_reads_what_the_record_reader_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = people(&dir);
    let mut records = CsvItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    records.open(&ExecutionContext::new()).await.unwrap();
    let records: Vec<Record> = read_all(&mut records).await;
    let mut rows = CsvRowItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    rows.open(&ExecutionContext::new()).await.unwrap();
    let rows: Vec<CsvRow> = read_all(&mut rows).await;
    assert_eq!(rows.len(), 7);
    assert_eq!(
        rows.iter().map(CsvRow::to_record).collect::<Vec<_>>(),
        records
    );
    assert_eq!(rows[3].get("city"), Some("new\nyork"));
    // All rows share one set of column names.
    assert!(Arc::ptr_eq(rows[0].headers(), rows[6].headers()));

    // Without a header row: `column1`, `column2`, ...
    let mut config = CsvReaderConfig::new(&path);
    config.has_header = false;
    let mut rows = CsvRowItemReader::new(config).unwrap();
    rows.open(&ExecutionContext::new()).await.unwrap();
    let first = rows.read().await.unwrap().unwrap();
    assert_eq!(&first.headers()[..], ["column1", "column2", "column3"]);
    assert_eq!(first.get("column2"), Some("name"));
}

#[tokio::test]
async fn row_reader_errors_match_the_record_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    let mut bytes = b"a,b\n1,2\n3\n4,ok\n5,x".to_vec();
    bytes.extend_from_slice(&[0xff, b'y', b'\n']);
    // A character split across two fields: valid as a whole row, not per field.
    bytes.extend_from_slice(&[b'6', 0xc3, b',', 0xa9, b'\n', b'7', b',', b'8', b'\n']);
    std::fs::write(&path, bytes).unwrap();
    let mut messages = Vec::new();
    for rows in [false, true] {
        let config = CsvReaderConfig::new(&path);
        let mut outcomes = Vec::new();
        if rows {
            let mut reader = CsvRowItemReader::new(config).unwrap();
            reader.open(&ExecutionContext::new()).await.unwrap();
            for _ in 0..6 {
                outcomes.push(match reader.read().await {
                    Ok(row) => Ok(row.map(|r| r.to_record())),
                    Err(err) => Err((err.kind(), err.message().to_owned())),
                });
            }
        } else {
            let mut reader = CsvItemReader::new(config).unwrap();
            reader.open(&ExecutionContext::new()).await.unwrap();
            for _ in 0..6 {
                outcomes.push(
                    reader
                        .read()
                        .await
                        .map_err(|err| (err.kind(), err.message().to_owned())),
                );
            }
        }
        messages.push(outcomes);
    }
    assert_eq!(messages[0], messages[1]);
    let errors: Vec<_> = messages[1]
        .iter()
        .filter_map(|o| o.as_ref().err())
        .collect();
    assert_eq!(errors.len(), 3, "{:?}", messages[1]);
    assert_eq!(errors[0].0, ErrorKind::Parse);
    assert_eq!(
        errors[1].1,
        format!(
            "{}:5:4: byte 0xFF cannot be decoded as UTF-8 (field 2 (`b`)); set `encoding` to \
             the file's encoding (`Shift_JIS`, `windows-1252`, ...)",
            path.display()
        )
    );
    assert_eq!(
        errors[2].1,
        format!(
            "{}:6:2: byte 0xC3 cannot be decoded as UTF-8 (field 1 (`a`)); set `encoding` to \
             the file's encoding (`Shift_JIS`, `windows-1252`, ...)",
            path.display()
        )
    );
}

#[tokio::test]
async fn read_chunk_overrides_read_what_read_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = people(&dir);
    let config = || CsvReaderConfig::new(&path);
    let new = ExecutionContext::new();
    for max in [1, 3, 7, 100] {
        let mut one = CsvItemReader::new(config()).unwrap();
        let mut batched = CsvItemReader::new(config()).unwrap();
        let mut default = ReadOnly(CsvItemReader::new(config()).unwrap());
        one.open(&new).await.unwrap();
        batched.open(&new).await.unwrap();
        default.open(&new).await.unwrap();
        let expected: Vec<Record> = read_all(&mut one).await;
        assert_eq!(read_all_in_chunks(&mut batched, max).await, expected);
        assert_eq!(read_all_in_chunks(&mut default, max).await, expected);

        let mut one = CsvRowItemReader::new(config()).unwrap();
        let mut batched = CsvRowItemReader::new(config()).unwrap();
        one.open(&new).await.unwrap();
        batched.open(&new).await.unwrap();
        let expected: Vec<CsvRow> = read_all(&mut one).await;
        assert_eq!(read_all_in_chunks(&mut batched, max).await, expected);

        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Person {
            id: u32,
            name: String,
            city: String,
        }
        let mut one = TypedCsvItemReader::<Person>::new(config()).unwrap();
        let mut batched = TypedCsvItemReader::<Person>::new(config()).unwrap();
        one.open(&new).await.unwrap();
        batched.open(&new).await.unwrap();
        let expected: Vec<Person> = read_all(&mut one).await;
        assert_eq!(expected.len(), 7);
        assert_eq!(read_all_in_chunks(&mut batched, max).await, expected);
    }
}

#[tokio::test]
async fn read_chunk_stops_at_max_and_restarts_after_the_last_item_returned() {
    let dir = tempfile::tempdir().unwrap();
    let path = people(&dir);
    let mut reader = CsvRowItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let mut rows = Vec::new();
    assert!(!reader.read_chunk(3, &mut rows).await.unwrap());
    assert!(!reader.read_chunk(1, &mut rows).await.unwrap());
    assert_eq!(rows.len(), 4);
    let mut context = ExecutionContext::new();
    reader.update(&mut context).await.unwrap();
    // Read on past the saved point, then "crash".
    assert!(!reader.read_chunk(2, &mut rows).await.unwrap());
    drop(reader);

    let mut reader = CsvRowItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&context).await.unwrap();
    let mut rest = Vec::new();
    assert!(reader.read_chunk(10, &mut rest).await.unwrap());
    let ids: Vec<_> = rest.iter().map(|r| r.get("id").unwrap()).collect();
    assert_eq!(ids, ["5", "6", "7"]);
    assert!(reader.read_chunk(10, &mut rest).await.unwrap());
    assert_eq!(rest.len(), 3);

    // An error in the middle of a batch: the rows before it are returned with the error,
    // and the next call continues after the bad row.
    std::fs::write(&path, "a,b\n1,2\n3\n4,5\n").unwrap();
    let mut reader = CsvItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let mut records = Vec::new();
    let err = reader.read_chunk(10, &mut records).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert_eq!(records.len(), 1);
    assert!(reader.read_chunk(10, &mut records).await.unwrap());
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["a"], "4");
}

#[tokio::test]
async fn row_writer_round_trip_columns_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let input = people(&dir);
    let output = dir.path().join("out.csv");
    let mut reader = CsvRowItemReader::new(CsvReaderConfig::new(&input)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let rows: Vec<CsvRow> = read_all(&mut reader).await;

    let mut writer = CsvRowItemWriter::new(CsvWriterConfig::new(&output)).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    let mut context = ExecutionContext::new();
    writer.write(&rows[..4]).await.unwrap();
    writer.update(&mut context).await.unwrap();
    writer.write(&rows[4..5]).await.unwrap();
    drop(writer); // crash after an uncommitted chunk

    let mut writer = CsvRowItemWriter::new(CsvWriterConfig::new(&output)).unwrap();
    writer.open(&context).await.unwrap();
    writer.write(&rows[4..]).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), PEOPLE);

    // Selected columns, by name; a missing one is empty.
    let mut config = CsvWriterConfig::new(&output);
    config.columns = Some(vec!["city".into(), "country".into(), "id".into()]);
    let mut writer = CsvRowItemWriter::new(config).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    let other = CsvRow::new(headers(&["id", "city"]), ["9", "Kyoto, JP"]);
    writer
        .write(&[rows[0].clone(), other, rows[1].clone()])
        .await
        .unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "city,country,id\nosaka,,1\n\"Kyoto, JP\",,9\nlyon,,2\n"
    );
}

#[tokio::test]
async fn chunk_step_over_rows_counts_and_writes_like_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut text = String::from("id,city\n");
    for i in 1..=25 {
        text.push_str(&format!("{i},city {i}\n"));
    }
    text.push_str("bad\n26,last\n");
    std::fs::write(&input, &text).unwrap();
    let output = dir.path().join("out.csv");
    let step = ChunkStep::<CsvRow, CsvRow>::builder("upper")
        .reader(CsvRowItemReader::new(CsvReaderConfig::new(&input)).unwrap())
        .processor(FnItemProcessor::new(|mut row: CsvRow| {
            if row.get("id") == Some("3") {
                return Ok(None);
            }
            if let Some(city) = row.get("city").map(str::to_uppercase) {
                row.set("city", &city);
            }
            Ok(Some(row))
        }))
        .writer(CsvRowItemWriter::new(CsvWriterConfig::new(&output)).unwrap())
        .skip_policy(SkipPolicy::new(1, vec![ErrorKind::Parse]))
        .chunk_size(10)
        .build()
        .unwrap();
    let job = Job::linear("rows", vec![Arc::new(step)]).unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    let steps = operator
        .repository()
        .step_executions(execution.id)
        .await
        .unwrap();
    let counts = steps[0].counts;
    assert_eq!(counts.read_count, 26);
    assert_eq!(counts.read_skip_count, 1);
    assert_eq!(counts.filter_count, 1);
    assert_eq!(counts.write_count, 25);
    assert_eq!(counts.commit_count, 3);
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.starts_with("id,city\n1,CITY 1\n2,CITY 2\n4,CITY 4\n"));
    assert!(written.ends_with("25,CITY 25\n26,LAST\n"));
}

#[tokio::test]
async fn json_lines_read_chunk_reads_what_read_reads_and_restarts() {
    use ikkatsu_items::jsonl::{JsonLinesItemReader, JsonLinesReaderConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(
        &path,
        "{\"n\":1}\n\n{\"n\":2}\n{\"n\":3}\nnot json\n{\"n\":5}\n",
    )
    .unwrap();
    let new = ExecutionContext::new();
    let mut one = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    one.open(&new).await.unwrap();
    let mut expected = Vec::new();
    for _ in 0..5 {
        expected.push(one.read().await.map_err(|e| e.message().to_owned()));
    }
    let mut batched = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    batched.open(&new).await.unwrap();
    let mut items = Vec::new();
    assert!(!batched.read_chunk(2, &mut items).await.unwrap());
    let mut context = ExecutionContext::new();
    batched.update(&mut context).await.unwrap();
    let err = batched.read_chunk(2, &mut items).await.unwrap_err();
    assert_eq!(expected[3], Err(err.message().to_owned()));
    assert!(batched.read_chunk(2, &mut items).await.unwrap());
    let expected: Vec<Record> = expected
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .collect();
    assert_eq!(items, expected);

    let mut restarted = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    restarted.open(&context).await.unwrap();
    let mut rest = Vec::new();
    assert!(!restarted.read_chunk(1, &mut rest).await.unwrap());
    assert_eq!(rest, [items[2].clone()]);
}

#[test]
fn csv_row_with_many_fields_matches_a_vector_of_strings() {
    for count in [0, 1, 15, 16, 17, 40] {
        let names: Vec<String> = (0..count).map(|i| format!("c{i}")).collect();
        let mut expected: Vec<String> = (0..count).map(|i| format!("v{i}")).collect();
        let mut row = CsvRow::new(names.clone().into(), &expected);
        let other = CsvRow::new(names.clone().into(), &expected);
        assert_eq!(row, other);
        for (step, value) in ["", "a much longer value", "é", "xyz"].iter().enumerate() {
            for index in (step..count).step_by(3) {
                assert!(row.set(&names[index], value));
                expected[index] = value.to_string();
            }
            assert_eq!(row.len(), count);
            assert_eq!(row.iter().collect::<Vec<_>>(), expected);
            for (index, value) in expected.iter().enumerate() {
                assert_eq!(row.field(index), Some(value.as_str()));
            }
        }
        assert_eq!(row, CsvRow::new(names.clone().into(), &expected));
        assert_eq!(row.field(count), None);
    }
}
