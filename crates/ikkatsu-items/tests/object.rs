//! Object readers and writers on `memory:` and `file://` storages (and the S3 test server),
//! for every format, plain and compressed: round
//! trips, multi-object globs read in order and restarted anywhere, writers restarted after
//! failures and kills without duplicates or losses, and errors that name the object and
//! the line, row or field.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::TryStreamExt;
use ikkatsu_core::prelude::*;
use ikkatsu_core::{ErrorKind, ExecutionContext, Record};
use ikkatsu_items::compress::Compression;
use ikkatsu_items::object::{
    CsvObjectReaderConfig, CsvObjectWriterConfig, ObjectItemReader, ObjectItemWriter,
    ObjectReaderConfig, ObjectWriterConfig,
};
use ikkatsu_storage::Storage;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
    Json,
    /// The text formats again, compressed (`compression: gzip|zstd` on the writers, found
    /// by the extension on the readers).
    CsvGzip,
    JsonLinesZstd,
    JsonGzip,
    #[cfg(feature = "parquet")]
    Parquet,
}

const FORMATS: &[Format] = &[
    Format::Csv,
    Format::JsonLines,
    Format::Json,
    Format::CsvGzip,
    Format::JsonLinesZstd,
    Format::JsonGzip,
    #[cfg(feature = "parquet")]
    Format::Parquet,
];

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::JsonLines => "jsonl",
            Format::Json => "json",
            Format::CsvGzip => "csv.gz",
            Format::JsonLinesZstd => "jsonl.zst",
            Format::JsonGzip => "json.gz",
            #[cfg(feature = "parquet")]
            Format::Parquet => "parquet",
        }
    }

    fn compression(self) -> Compression {
        match self {
            Format::CsvGzip | Format::JsonGzip => Compression::Gzip,
            Format::JsonLinesZstd => Compression::Zstd,
            _ => Compression::Auto,
        }
    }

    fn reader(self, storage: &str, path: &str) -> ObjectItemReader {
        match self {
            Format::Csv | Format::CsvGzip => {
                ObjectItemReader::csv(CsvObjectReaderConfig::new(storage, path))
            }
            Format::JsonLines | Format::JsonLinesZstd => {
                ObjectItemReader::json_lines(ObjectReaderConfig::new(storage, path))
            }
            Format::Json | Format::JsonGzip => {
                ObjectItemReader::json(ObjectReaderConfig::new(storage, path))
            }
            #[cfg(feature = "parquet")]
            Format::Parquet => {
                let mut config = ikkatsu_items::object::ParquetReaderConfig::new(storage, path);
                config.batch_size = 2;
                ObjectItemReader::parquet(config)
            }
        }
        .unwrap()
    }

    fn writer(self, storage: &str, dir: &str, part_records: Option<u64>) -> ObjectItemWriter {
        match self {
            Format::Csv | Format::CsvGzip => {
                let mut config = CsvObjectWriterConfig::new(storage, dir);
                config.part_records = part_records;
                config.compression = self.compression();
                ObjectItemWriter::csv(config)
            }
            Format::JsonLines | Format::Json | Format::JsonLinesZstd | Format::JsonGzip => {
                let mut config = ObjectWriterConfig::new(storage, dir);
                config.part_records = part_records;
                config.compression = self.compression();
                if matches!(self, Format::Json | Format::JsonGzip) {
                    ObjectItemWriter::json(config)
                } else {
                    ObjectItemWriter::json_lines(config)
                }
            }
            #[cfg(feature = "parquet")]
            Format::Parquet => {
                let mut config = ikkatsu_items::object::ParquetWriterConfig::new(storage, dir);
                config.part_records = part_records;
                // Small row groups: restarts skip whole groups, then rows within one.
                config.row_group_size = Some(2);
                ObjectItemWriter::parquet(config)
            }
        }
        .unwrap()
    }
}

/// A `memory:` storage unique to the test, and a `file://` one in a temporary directory.
fn storages(test: &str) -> Vec<(String, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("file://{}", dir.path().display());
    vec![(format!("memory:{test}"), None), (file, Some(dir))]
}

fn record(id: u64) -> Record {
    json!({ "id": id.to_string(), "name": format!("name {id}"), "city": format!("city, \"{id}\"") })
        .as_object()
        .cloned()
        .map(Record::from)
        .unwrap()
}

fn ids(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Writes `records` as one object at `path` with the format's writer.
async fn put(format: Format, url: &str, path: &str, records: &[Record]) {
    let storage = Storage::open(url).unwrap();
    let staging = format!("staging-{}", path.replace('/', "_"));
    let mut writer = format.writer(url, &staging, None);
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.write(records).await.unwrap();
    writer.close().await.unwrap();
    let part = format!("{staging}/part-00000.{}", format.extension());
    let bytes = storage.read(&part).await.unwrap();
    storage.write(path, bytes).await.unwrap();
    storage.delete(&part).await.unwrap();
}

/// Opens `reader` with `context`, reads up to `max` records, saves the position.
async fn read_some(
    reader: &mut ObjectItemReader,
    context: &mut ExecutionContext,
    max: usize,
) -> Vec<Record> {
    reader.open(context).await.unwrap();
    let mut items = Vec::new();
    reader.read_chunk(max, &mut items).await.unwrap();
    reader.update(context).await.unwrap();
    reader.close().await.unwrap();
    items
}

async fn part_names(url: &str, dir: &str) -> Vec<String> {
    let storage = Storage::open(url).unwrap();
    let mut names: Vec<String> = storage
        .list(dir, false)
        .unwrap()
        .map_ok(|file| file.path)
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

#[tokio::test]
async fn every_format_round_trips() {
    for &format in FORMATS {
        for (url, _dir) in storages(&format!("round-trip-{format:?}")) {
            check_round_trip(format, &url).await;
        }
    }
}

async fn check_round_trip(format: Format, url: &str) {
    {
        {
            let url = url.to_string();
            let records: Vec<Record> = (1..=25).map(record).collect();
            let mut writer = format.writer(&url, "out", Some(10));
            let mut context = ExecutionContext::new();
            writer.open(&context).await.unwrap();
            writer.write(&records[..12]).await.unwrap();
            writer.update(&mut context).await.unwrap();
            writer.write(&records[12..]).await.unwrap();
            writer.update(&mut context).await.unwrap();
            writer.close().await.unwrap();
            let ext = format.extension();
            // 12 records: a part of 10 and one of 2; 13 more: 10 and 3.
            assert_eq!(
                part_names(&url, "out").await,
                (0..4)
                    .map(|n| format!("out/part-{n:05}.{ext}"))
                    .collect::<Vec<_>>(),
                "{format:?} on {url}"
            );
            assert_eq!(context.get_u64("object.writer.parts"), Some(4));
            assert_eq!(context.get_u64("object.writer.records"), Some(25));

            let mut reader = format.reader(&url, &format!("out/*.{ext}"));
            let back = read_some(&mut reader, &mut ExecutionContext::new(), 100).await;
            assert_eq!(back, records, "{format:?} on {url}");
        }
    }
}

#[tokio::test]
async fn typed_values_round_trip_through_json_formats() {
    let records: Vec<Record> = [
        json!({"id": 1, "score": 1.5, "ok": true, "none": null, "tags": ["a", "b"], "nested": {"x": 1}}),
        json!({"id": -2, "score": 0.25, "ok": false, "none": null, "tags": [], "nested": {}}),
    ]
    .into_iter()
    .map(|v| v.as_object().cloned().map(Record::from).unwrap())
    .collect();
    for format in [Format::JsonLines, Format::Json] {
        let url = format!("memory:typed-{format:?}");
        let mut writer = format.writer(&url, "", None);
        writer.open(&ExecutionContext::new()).await.unwrap();
        writer.write(&records).await.unwrap();
        writer.close().await.unwrap();
        let path = format!("part-00000.{}", format.extension());
        let mut reader = format.reader(&url, &path);
        let back = read_some(&mut reader, &mut ExecutionContext::new(), 10).await;
        assert_eq!(back, records, "{format:?}");
    }
}

/// Three objects matching the glob (9 records), plus objects it must not read.
async fn three_objects(format: Format, url: &str) -> Vec<Record> {
    let ext = format.extension();
    let records: Vec<Record> = (1..=9).map(record).collect();
    // Written out of order: the reader sorts.
    put(format, url, &format!("in/c.{ext}"), &records[7..]).await;
    put(format, url, &format!("in/a/1.{ext}"), &records[..3]).await;
    put(format, url, &format!("in/b/2.{ext}"), &records[3..7]).await;
    let storage = Storage::open(url).unwrap();
    storage.write("in/notes.txt", "not an input").await.unwrap();
    storage
        .write(&format!("in/b/.hidden.{ext}"), "hidden")
        .await
        .unwrap();
    put(format, url, &format!("other/x.{ext}"), &records[..1]).await;
    records
}

#[tokio::test]
async fn glob_reader_reads_in_sorted_order_and_restarts_anywhere() {
    for &format in FORMATS {
        for (url, _dir) in storages(&format!("glob-{format:?}")) {
            check_glob_restarts(format, &url).await;
        }
    }
}

async fn check_glob_restarts(format: Format, url: &str) {
    {
        {
            let url = url.to_string();
            let records = three_objects(format, &url).await;
            let glob = format!("in/**/*.{}", format.extension());
            let mut reader = format.reader(&url, &glob);
            let all = read_some(&mut reader, &mut ExecutionContext::new(), 100).await;
            assert_eq!(
                ids(&all),
                (1..=9).collect::<Vec<_>>(),
                "{format:?} on {url}"
            );

            // Stop after `cut` records, restart with the saved context.
            for cut in 0..=9 {
                let mut context = ExecutionContext::new();
                let mut first = format.reader(&url, &glob);
                let mut got = read_some(&mut first, &mut context, cut).await;
                let mut second = format.reader(&url, &glob);
                got.extend(read_some(&mut second, &mut context, 100).await);
                assert_eq!(got, records, "{format:?} on {url}, cut after {cut}");
            }

            // In the middle of the second object: its path and position are saved.
            let mut context = ExecutionContext::new();
            let mut first = format.reader(&url, &glob);
            read_some(&mut first, &mut context, 5).await;
            assert_eq!(
                context.get_str("object.reader.file"),
                Some(format!("in/b/2.{}", format.extension()).as_str())
            );
            assert_eq!(context.get_u64("object.reader.record"), Some(2));
        }
    }
}

#[tokio::test]
async fn a_restart_whose_object_is_gone_is_refused() {
    let url = "memory:gone";
    let format = Format::JsonLines;
    three_objects(format, url).await;
    let mut context = ExecutionContext::new();
    let mut first = format.reader(url, "in/**/*.jsonl");
    read_some(&mut first, &mut context, 5).await;
    Storage::open(url)
        .unwrap()
        .delete("in/b/2.jsonl")
        .await
        .unwrap();
    let mut second = format.reader(url, "in/**/*.jsonl");
    let err = second.open(&context).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.message().contains("memory:gone/in/b/2.jsonl"), "{err}");
    assert!(
        err.message().contains("no longer among the inputs"),
        "{err}"
    );
}

/// A job copying `input` records to `url`/out through a processor that fails once on id 7.
fn copy_job(format: Format, url: &str, input: Vec<Record>, fail_once: Arc<AtomicBool>) -> Job {
    let step = ChunkStep::<Record, Record>::builder("copy")
        .reader(VecItemReader::new(input))
        .processor(FnItemProcessor::new(move |record: Record| {
            if record["id"] == "7" && fail_once.swap(false, Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Component, "boom on 7"));
            }
            Ok(Some(record))
        }))
        .writer(format.writer(url, "out", None))
        .chunk_size(3)
        .build()
        .unwrap();
    Job::linear("copy", vec![Arc::new(step)]).unwrap()
}

#[tokio::test]
async fn a_failed_writer_restarts_without_duplicates_or_losses() {
    for &format in FORMATS {
        for (url, _dir) in storages(&format!("writer-restart-{format:?}")) {
            check_writer_restart(format, &url).await;
        }
    }
}

async fn check_writer_restart(format: Format, url: &str) {
    {
        {
            let url = url.to_string();
            let ext = format.extension();
            let input: Vec<Record> = (1..=10).map(record).collect();
            let fail_once = Arc::new(AtomicBool::new(true));
            let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
            let params = JobParameters::new().with("run", ParameterValue::String("1".into()));

            let first = operator
                .start(
                    &copy_job(format, &url, input.clone(), fail_once.clone()),
                    params.clone(),
                    CancellationToken::new(),
                )
                .await;
            match first {
                Ok(execution) => assert_eq!(execution.status, BatchStatus::Failed),
                Err(err) => assert!(err.message().contains("boom"), "{err}"),
            }
            // Chunks [1,2,3] and [4,5,6] were committed, one part each.
            assert_eq!(
                part_names(&url, "out").await,
                [
                    format!("out/part-00000.{ext}"),
                    format!("out/part-00001.{ext}")
                ]
            );
            // A killed run may leave parts it uploaded but never committed: plant one.
            put(format, &url, &format!("out/part-00004.{ext}"), &input[3..6]).await;
            put(format, &url, &format!("out/part-00002.{ext}"), &input[..2]).await;

            let second = operator
                .start(
                    &copy_job(format, &url, input.clone(), fail_once),
                    params,
                    CancellationToken::new(),
                )
                .await
                .unwrap();
            assert_eq!(second.status, BatchStatus::Completed, "{format:?} on {url}");
            assert_eq!(
                part_names(&url, "out").await,
                (0..4)
                    .map(|n| format!("out/part-{n:05}.{ext}"))
                    .collect::<Vec<_>>(),
                "{format:?} on {url}"
            );
            let mut reader = format.reader(&url, &format!("out/*.{ext}"));
            let output = read_some(&mut reader, &mut ExecutionContext::new(), 100).await;
            assert_eq!(output, input, "{format:?} on {url}");
        }
    }
}

#[tokio::test]
async fn a_killed_writer_leaves_nothing_uncommitted_after_restart() {
    for &format in FORMATS {
        for (url, _dir) in storages(&format!("killed-{format:?}")) {
            check_killed_writer(format, &url).await;
        }
    }
}

async fn check_killed_writer(format: Format, url: &str) {
    {
        let url = url.to_string();
        let ext = format.extension();
        let records: Vec<Record> = (1..=9).map(record).collect();
        let mut context = ExecutionContext::new();
        let mut writer = format.writer(&url, "out", Some(2));
        writer.open(&context).await.unwrap();
        writer.write(&records[..3]).await.unwrap();
        writer.update(&mut context).await.unwrap();
        // The next chunk is uploaded (parts 2 and 3) but the process dies before the commit.
        writer.write(&records[3..6]).await.unwrap();
        drop(writer);
        assert_eq!(part_names(&url, "out").await.len(), 4);

        let mut writer = format.writer(&url, "out", Some(2));
        writer.open(&context).await.unwrap();
        assert_eq!(
            part_names(&url, "out").await,
            [
                format!("out/part-00000.{ext}"),
                format!("out/part-00001.{ext}")
            ],
            "{format:?}: the uncommitted parts are deleted on open"
        );
        writer.write(&records[3..]).await.unwrap();
        writer.update(&mut context).await.unwrap();
        writer.close().await.unwrap();
        let mut reader = format.reader(&url, &format!("out/*.{ext}"));
        let output = read_some(&mut reader, &mut ExecutionContext::new(), 100).await;
        assert_eq!(output, records, "{format:?}");
    }
}

#[tokio::test]
async fn a_first_run_replaces_earlier_parts_and_keeps_other_objects() {
    let url = "memory:replace";
    let storage = Storage::open(url).unwrap();
    storage.write("out/part-00007.jsonl", "{}\n").await.unwrap();
    storage.write("out/part-00000.csv", "x\n").await.unwrap();
    storage.write("out/part-7.jsonl", "{}\n").await.unwrap();
    storage.write("out/README", "keep").await.unwrap();
    let mut writer = Format::JsonLines.writer(url, "out", None);
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.write(&[record(1)]).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        part_names(url, "out").await,
        [
            "out/README",
            "out/part-00000.csv",
            "out/part-00000.jsonl",
            "out/part-7.jsonl"
        ]
    );
}

/// A processor counting the records it sees, to check what a reader hands over.
struct Counting(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl ItemProcessor<Record, Record> for Counting {
    async fn process(&self, item: Record) -> ikkatsu_core::Result<Option<Record>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(item))
    }
}

#[tokio::test]
async fn bad_lines_name_the_object_and_line_and_can_be_skipped() {
    let url = "memory:bad-lines";
    let storage = Storage::open(url).unwrap();
    storage
        .write(
            "in/a.jsonl",
            "{\"id\":\"1\"}\n\n{\"id\": oops}\n{\"id\":\"4\"}\n",
        )
        .await
        .unwrap();
    let mut reader = Format::JsonLines.reader(url, "in/a.jsonl");
    reader.open(&ExecutionContext::new()).await.unwrap();
    assert_eq!(reader.read().await.unwrap().unwrap()["id"], "1");
    let err = reader.read().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(
        err.message()
            .contains("memory:bad-lines/in/a.jsonl:3: malformed JSON"),
        "{err}"
    );
    assert_eq!(reader.read().await.unwrap().unwrap()["id"], "4");
    assert!(reader.read().await.unwrap().is_none());

    // In a job with a skip policy, the bad line is skipped and counted.
    let seen = Arc::new(AtomicUsize::new(0));
    let step = ChunkStep::<Record, Record>::builder("copy")
        .reader(Format::JsonLines.reader(url, "in/*.jsonl"))
        .processor(Counting(seen.clone()))
        .writer(Format::JsonLines.writer(url, "out", None))
        .skip_policy(SkipPolicy::new(1, vec![ErrorKind::Parse]))
        .build()
        .unwrap();
    let job = Job::linear("skip", vec![Arc::new(step)]).unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    storage
        .write("in/b.csv", "id,name\n1,a\n2,b,extra\n3,c\n")
        .await
        .unwrap();
    let mut reader = Format::Csv.reader(url, "in/b.csv");
    reader.open(&ExecutionContext::new()).await.unwrap();
    reader.read().await.unwrap().unwrap();
    let err = reader.read().await.unwrap_err();
    assert!(
        err.message()
            .contains("memory:bad-lines/in/b.csv:3: wrong number of fields: expected 2, found 3"),
        "{err}"
    );
    assert_eq!(reader.read().await.unwrap().unwrap()["name"], "c");
}

#[tokio::test]
async fn bad_json_arrays_name_the_element_and_line() {
    let url = "memory:bad-json";
    let storage = Storage::open(url).unwrap();
    storage
        .write("a.json", "[\n  {\"id\": 1},\n  5,\n  {\"id\": 3}\n]\n")
        .await
        .unwrap();
    let mut reader = Format::Json.reader(url, "a.json");
    reader.open(&ExecutionContext::new()).await.unwrap();
    assert_eq!(reader.read().await.unwrap().unwrap()["id"], 1);
    let err = reader.read().await.unwrap_err();
    assert!(
        err.message().contains(
            "memory:bad-json/a.json:3: element 2 of the array: expected a JSON object, found a number"
        ),
        "{err}"
    );
    assert_eq!(reader.read().await.unwrap().unwrap()["id"], 3);
    assert!(reader.read().await.unwrap().is_none());

    storage
        .write("b.json", "[{\"id\": 1}\n {\"id\": 2}]")
        .await
        .unwrap();
    let mut reader = Format::Json.reader(url, "b.json");
    reader.open(&ExecutionContext::new()).await.unwrap();
    reader.read().await.unwrap().unwrap();
    for _ in 0..2 {
        let err = reader.read().await.unwrap_err();
        assert!(
            err.message()
                .contains("b.json:2: expected `,` or `]` after element 1 of the array, found `{`"),
            "{err}"
        );
    }
    storage.write("c.json", "{\"id\": 1}").await.unwrap();
    let mut reader = Format::Json.reader(url, "c.json");
    reader.open(&ExecutionContext::new()).await.unwrap();
    let err = reader.read().await.unwrap_err();
    assert!(
        err.message().contains("expected a JSON array of objects"),
        "{err}"
    );
    storage
        .write(
            "d.json",
            "[{\"text\": \"a ] , [ \\\" }\"}, \"x\", [1, {\"y\": 2}]]",
        )
        .await
        .unwrap();
    let mut reader = Format::Json.reader(url, "d.json");
    reader.open(&ExecutionContext::new()).await.unwrap();
    assert_eq!(
        reader.read().await.unwrap().unwrap()["text"],
        "a ] , [ \" }"
    );
    assert!(
        reader
            .read()
            .await
            .unwrap_err()
            .message()
            .contains("found a string")
    );
    assert!(
        reader
            .read()
            .await
            .unwrap_err()
            .message()
            .contains("found an array")
    );
    assert!(reader.read().await.unwrap().is_none());
}

#[tokio::test]
async fn a_missing_object_is_not_found_and_an_empty_glob_reads_nothing() {
    let url = "memory:missing";
    let mut reader = Format::Csv.reader(url, "in/nope.csv");
    let err = reader.open(&ExecutionContext::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().contains("memory:missing/in/nope.csv"),
        "{err}"
    );
    let mut reader = Format::Csv.reader(url, "in/*.csv");
    assert!(
        read_some(&mut reader, &mut ExecutionContext::new(), 10)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn local_paths_without_a_storage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/a.csv"), "id\n1\n2\n").unwrap();
    let mut config = CsvObjectReaderConfig::new("", "");
    config.storage = None;
    config.path = format!("{}/in/*.csv", dir.path().display());
    let mut reader = ObjectItemReader::csv(config).unwrap();
    let records = read_some(&mut reader, &mut ExecutionContext::new(), 10).await;
    assert_eq!(records.len(), 2);

    let mut config = ObjectWriterConfig::new("", "");
    config.storage = None;
    config.path = format!("{}/out", dir.path().display());
    let mut writer = ObjectItemWriter::json_lines(config).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.write(&records).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/part-00000.jsonl")).unwrap(),
        "{\"id\":\"1\"}\n{\"id\":\"2\"}\n"
    );
}

#[tokio::test]
async fn csv_options_and_resume_after_the_header() {
    let url = "memory:csv-options";
    let storage = Storage::open(url).unwrap();
    storage
        .write(
            "a.tsv",
            "\u{feff} id \t name\n1\t\" Aiko \"\n2\tBen\n3\tChloé\n",
        )
        .await
        .unwrap();
    let config = || {
        let mut config = CsvObjectReaderConfig::new(url, "a.tsv");
        config.delimiter = '\t';
        config.trim = true;
        config
    };
    let mut context = ExecutionContext::new();
    let mut reader = ObjectItemReader::csv(config()).unwrap();
    let first = read_some(&mut reader, &mut context, 1).await;
    assert_eq!(
        first[0],
        Record::from(
            json!({"id": "1", "name": "Aiko"})
                .as_object()
                .cloned()
                .unwrap()
        )
    );
    let mut reader = ObjectItemReader::csv(config()).unwrap();
    let rest = read_some(&mut reader, &mut context, 10).await;
    assert_eq!(
        rest,
        [
            json!({"id": "2", "name": "Ben"})
                .as_object()
                .cloned()
                .map(Record::from)
                .unwrap(),
            json!({"id": "3", "name": "Chloé"})
                .as_object()
                .cloned()
                .map(Record::from)
                .unwrap()
        ]
    );

    let mut writer_config = CsvObjectWriterConfig::new(url, "out");
    writer_config.columns = Some(vec!["name".into(), "missing".into()]);
    writer_config.delimiter = ';';
    let mut writer = ObjectItemWriter::csv(writer_config).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.write(&rest).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        storage.read("out/part-00000.csv").await.unwrap().as_ref(),
        "name;missing\nBen;\nChloé;\n".as_bytes()
    );
}

#[tokio::test]
async fn csv_writer_keeps_its_columns_across_a_restart() {
    let url = "memory:csv-columns";
    let mut context = ExecutionContext::new();
    let mut writer = Format::Csv.writer(url, "out", None);
    writer.open(&context).await.unwrap();
    writer
        .write(&[json!({"b": "1", "a": "2"})
            .as_object()
            .cloned()
            .map(Record::from)
            .unwrap()])
        .await
        .unwrap();
    writer.update(&mut context).await.unwrap();
    drop(writer);
    let mut writer = Format::Csv.writer(url, "out", None);
    writer.open(&context).await.unwrap();
    writer
        .write(&[json!({"a": "4", "b": "3"})
            .as_object()
            .cloned()
            .map(Record::from)
            .unwrap()])
        .await
        .unwrap();
    writer.close().await.unwrap();
    let storage = Storage::open(url).unwrap();
    assert_eq!(
        storage.read("out/part-00001.csv").await.unwrap().as_ref(),
        b"b,a\n3,4\n"
    );
}

#[cfg(feature = "parquet")]
mod parquet_files {
    use super::*;
    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use ::parquet::basic::Compression;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_schema::{DataType, TimeUnit};
    use ikkatsu_items::object::{
        ParquetCompression, ParquetField, ParquetFieldType, ParquetReaderConfig,
        ParquetWriterConfig,
    };

    fn typed_config(url: &str) -> ParquetWriterConfig {
        let mut config = ParquetWriterConfig::new(url, "out");
        let mut schema = indexmap::IndexMap::new();
        schema.insert(
            "id".to_string(),
            ParquetField {
                field_type: ParquetFieldType::Int64,
                nullable: false,
            },
        );
        for (name, field_type) in [
            ("name", ParquetFieldType::String),
            ("score", ParquetFieldType::Float64),
            ("ok", ParquetFieldType::Boolean),
            ("day", ParquetFieldType::Date),
            ("at", ParquetFieldType::Timestamp),
        ] {
            schema.insert(name.to_string(), ParquetField::new(field_type));
        }
        config.schema = Some(schema);
        config
    }

    fn rows() -> Vec<Record> {
        [
            // CSV-style text values are parsed for the typed columns.
            json!({"id": "1", "name": "Aiko", "score": "1.5", "ok": "true", "day": "2024-01-02", "at": "2024-01-02T03:04:05Z"}),
            json!({"id": 2, "name": "Ben", "score": 2, "ok": false, "day": "", "at": "2024-01-02T04:04:05+01:00"}),
            json!({"id": 3, "name": null, "score": null}),
        ]
        .into_iter()
        .map(|v| v.as_object().cloned().map(Record::from).unwrap())
        .collect()
    }

    #[tokio::test]
    async fn written_parquet_is_read_by_the_parquet_crate_with_the_schema() {
        let url = "memory:parquet-schema";
        let mut config = typed_config(url);
        config.compression = ParquetCompression::Zstd;
        let mut writer = ObjectItemWriter::parquet(config).unwrap();
        writer.open(&ExecutionContext::new()).await.unwrap();
        writer.write(&rows()).await.unwrap();
        writer.close().await.unwrap();

        let storage = Storage::open(url).unwrap();
        let bytes = storage.read("out/part-00000.parquet").await.unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let metadata = builder.metadata().clone();
        assert_eq!(metadata.file_metadata().num_rows(), 3);
        assert!(matches!(
            metadata.row_group(0).column(0).compression(),
            Compression::ZSTD(_)
        ));
        let schema = builder.schema().clone();
        let described: Vec<(String, DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(
            described,
            [
                ("id".to_string(), DataType::Int64, false),
                ("name".to_string(), DataType::Utf8, true),
                ("score".to_string(), DataType::Float64, true),
                ("ok".to_string(), DataType::Boolean, true),
                ("day".to_string(), DataType::Date32, true),
                (
                    "at".to_string(),
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    true
                ),
            ]
        );
        let batches: Vec<_> = builder
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let batch = &batches[0];
        let id = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(id.values().to_vec(), [1, 2, 3]);
        assert_eq!(batch.column(1).as_string::<i32>().value(1), "Ben");
        assert!(batch.column(1).is_null(2));
        assert_eq!(batch.column(2).as_primitive::<Float64Type>().value(1), 2.0);
        assert_eq!(batch.column(4).as_primitive::<Date32Type>().value(0), 19724);
        assert!(batch.column(4).is_null(1), "empty text is null");
        let at = batch.column(5).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.value(0), 1_704_164_645_000_000);
        assert_eq!(at.value(1), 1_704_164_645_000_000);

        // And through the object reader: dates and timestamps as text.
        let mut reader =
            ObjectItemReader::parquet(ParquetReaderConfig::new(url, "out/*.parquet")).unwrap();
        let back = read_some(&mut reader, &mut ExecutionContext::new(), 10).await;
        assert_eq!(
            Value::from(back[0].clone()),
            json!({"id": 1, "name": "Aiko", "score": 1.5, "ok": true, "day": "2024-01-02", "at": "2024-01-02T03:04:05Z"})
        );
        assert_eq!(
            Value::from(back[2].clone()),
            json!({"id": 3, "name": null, "score": null, "ok": null, "day": null, "at": null})
        );

        let mut config = ParquetReaderConfig::new(url, "out/part-00000.parquet");
        config.columns = Some(vec!["name".into(), "id".into()]);
        let mut reader = ObjectItemReader::parquet(config).unwrap();
        let back = read_some(&mut reader, &mut ExecutionContext::new(), 1).await;
        assert_eq!(
            Value::from(back[0].clone()),
            json!({"id": 1, "name": "Aiko"})
        );
        let mut config = ParquetReaderConfig::new(url, "out/part-00000.parquet");
        config.columns = Some(vec!["nope".into()]);
        let mut reader = ObjectItemReader::parquet(config).unwrap();
        reader.open(&ExecutionContext::new()).await.unwrap();
        let err = reader.read().await.unwrap_err();
        assert!(err.message().contains("no column `nope`"), "{err}");
        assert!(err.message().contains("id, name, score"), "{err}");
    }

    #[tokio::test]
    async fn a_value_that_does_not_fit_names_the_field_record_and_part() {
        let url = "memory:parquet-bad-value";
        let mut config = typed_config(url);
        config.part_records = Some(1);
        let mut writer = ObjectItemWriter::parquet(config).unwrap();
        writer.open(&ExecutionContext::new()).await.unwrap();
        let mut records = rows();
        records[2].insert("score".into(), json!("a lot"));
        let err = writer.write(&records).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
        assert!(
            err.message().contains(
                "cannot write record 3 of the chunk (record 3 of the output) to \
                 memory:parquet-bad-value/out/part-00002.parquet: field `score` (float64): \
                 expected float64, found the string \"a lot\""
            ),
            "{err}"
        );
        // The parts this write had uploaded are gone, and numbering starts over.
        assert!(part_names(url, "out").await.is_empty());
        writer.write(&records[..2]).await.unwrap();
        assert_eq!(
            part_names(url, "out").await,
            ["out/part-00000.parquet", "out/part-00001.parquet"]
        );

        let err = writer
            .write(&[json!({"id": 9, "extra": 1})
                .as_object()
                .cloned()
                .map(Record::from)
                .unwrap()])
            .await
            .unwrap_err();
        assert!(
            err.message()
                .contains("field `extra` is not in the schema (the `schema` property: id, name"),
            "{err}"
        );
        let err = writer
            .write(&[json!({"name": "x"})
                .as_object()
                .cloned()
                .map(Record::from)
                .unwrap()])
            .await
            .unwrap_err();
        assert!(
            err.message()
                .contains("field `id` (int64): the field is missing but not nullable"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_inferred_schema_is_kept_across_a_restart() {
        let url = "memory:parquet-inferred";
        let mut context = ExecutionContext::new();
        let config = || ParquetWriterConfig::new(url, "out");
        let mut writer = ObjectItemWriter::parquet(config()).unwrap();
        writer.open(&context).await.unwrap();
        writer
            .write(&[json!({"id": 1, "x": 0.5})
                .as_object()
                .cloned()
                .map(Record::from)
                .unwrap()])
            .await
            .unwrap();
        writer.update(&mut context).await.unwrap();
        drop(writer);
        let mut writer = ObjectItemWriter::parquet(config()).unwrap();
        writer.open(&context).await.unwrap();
        // Inferred from this chunk alone, `x` would be int64.
        writer
            .write(&[json!({"id": 2, "x": 3})
                .as_object()
                .cloned()
                .map(Record::from)
                .unwrap()])
            .await
            .unwrap();
        let err = writer
            .write(&[json!({"id": 3, "y": 3})
                .as_object()
                .cloned()
                .map(Record::from)
                .unwrap()])
            .await
            .unwrap_err();
        assert!(
            err.message()
                .contains("the schema inferred from the first chunk"),
            "{err}"
        );
        writer.close().await.unwrap();
        let storage = Storage::open(url).unwrap();
        let bytes = storage.read("out/part-00001.parquet").await.unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(
            builder.schema().field_with_name("x").unwrap().data_type(),
            &DataType::Float64
        );
    }

    #[tokio::test]
    async fn corrupt_parquet_names_the_object_and_a_skip_moves_on() {
        let url = "memory:parquet-corrupt";
        let storage = Storage::open(url).unwrap();
        storage
            .write("in/a.parquet", "this is not a parquet file at all")
            .await
            .unwrap();
        storage.write("in/b.parquet", "PAR1").await.unwrap();
        put(Format::Parquet, url, "in/c.parquet", &[record(1)]).await;
        // A valid file whose data pages are damaged: the footer reads, the rows do not.
        let good = storage.read("in/c.parquet").await.unwrap().to_vec();
        let mut damaged = good.clone();
        for byte in damaged.iter_mut().skip(4).take(40) {
            *byte = 0xFF;
        }
        storage.write("in/d.parquet", damaged).await.unwrap();

        let mut reader = Format::Parquet.reader(url, "in/*.parquet");
        reader.open(&ExecutionContext::new()).await.unwrap();
        for name in ["a", "b"] {
            let err = reader.read().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Parse);
            assert!(
                err.message().contains(&format!(
                    "memory:parquet-corrupt/in/{name}.parquet: not a readable Parquet file"
                )),
                "{err}"
            );
        }
        assert_eq!(reader.read().await.unwrap().unwrap(), record(1));
        let err = reader.read().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
        assert!(
            err.message()
                .contains("memory:parquet-corrupt/in/d.parquet"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn parquet_written_elsewhere_is_read_and_resumed_by_row_group() {
        use ::parquet::arrow::ArrowWriter;
        use ::parquet::file::properties::WriterProperties;
        use arrow_array::{ArrayRef, Int32Array, RecordBatch, StringArray};

        let ids: Vec<i32> = (0..100).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int32Array::from(ids.clone())) as ArrayRef),
            ("name", Arc::new(StringArray::from(names)) as ArrayRef),
        ])
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(30))
            .build();
        let mut writer =
            ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        let bytes = writer.into_inner().unwrap();
        let url = "memory:parquet-elsewhere";
        let storage = Storage::open(url).unwrap();
        storage.write("in/data.parquet", bytes).await.unwrap();

        for cut in [0, 1, 29, 30, 31, 65, 99, 100] {
            let mut context = ExecutionContext::new();
            let mut reader = Format::Parquet.reader(url, "in/data.parquet");
            let mut got = read_some(&mut reader, &mut context, cut).await;
            assert_eq!(context.get_u64("object.reader.record"), Some(cut as u64));
            let mut reader = Format::Parquet.reader(url, "in/data.parquet");
            got.extend(read_some(&mut reader, &mut context, 1000).await);
            let got: Vec<i64> = got.iter().map(|r| r["id"].as_i64().unwrap()).collect();
            assert_eq!(got, (0..100).collect::<Vec<i64>>(), "cut after {cut}");
        }
    }
}

/// The same checks on the S3 test server of `scripts/test-servers` (moto). A missing
/// `IKKATSU_TEST_S3_*` variable fails the test, saying what to run.
mod s3 {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn var(name: &str) -> String {
        match std::env::var(name) {
            Ok(value) if !value.is_empty() => value,
            _ => panic!(
                "{name} is not set: this test needs the S3 test server. Run \
                 `scripts/test-servers start` and `eval \"$(scripts/test-servers env)\"`, then \
                 the tests again"
            ),
        }
    }

    /// Percent-encodes a query value.
    fn encode(value: &str) -> String {
        value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// Creates `bucket` with an unsigned `PUT` (moto does not check signatures).
    async fn create_bucket(endpoint: &str, bucket: &str) {
        let authority = endpoint
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("IKKATSU_TEST_S3_ENDPOINT {endpoint} is not http://"))
            .trim_end_matches('/');
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .unwrap_or_else(|e| panic!("S3 test server at {endpoint}: {e}"));
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "create bucket {bucket}: {response}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn object_items_on_s3() {
        let endpoint = var("IKKATSU_TEST_S3_ENDPOINT");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let bucket = format!("ikk-items-{}-{nanos}", std::process::id());
        create_bucket(&endpoint, &bucket).await;
        let url = |prefix: &str| {
            format!(
                "s3://{bucket}/{prefix}?endpoint={}&region={}&access-key-id={}&secret-access-key={}",
                encode(&endpoint),
                encode(&var("IKKATSU_TEST_S3_REGION")),
                encode(&var("IKKATSU_TEST_S3_ACCESS_KEY")),
                encode(&var("IKKATSU_TEST_S3_SECRET_KEY")),
            )
        };
        for &format in FORMATS {
            check_round_trip(format, &url(&format!("round-trip-{format:?}"))).await;
            check_glob_restarts(format, &url(&format!("glob-{format:?}"))).await;
            check_writer_restart(format, &url(&format!("writer-{format:?}"))).await;
            check_killed_writer(format, &url(&format!("killed-{format:?}"))).await;
        }
    }
}
