//! Compressed local files (`.gz`, `.zst`, or the `compression` property): round trips
//! through the CSV and JSON Lines readers and writers, one gzip member or Zstandard frame
//! per committed chunk, restarts that continue exactly, and clear errors for objects on a
//! storage that are truncated or not compressed as their name says.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ikkatsu_core::prelude::*;
use ikkatsu_core::{ErrorKind, ExecutionContext, Record};
use ikkatsu_items::compress::Compression;
use ikkatsu_items::csv::{CsvItemReader, CsvItemWriter, CsvReaderConfig, CsvWriterConfig};
use ikkatsu_items::jsonl::{
    JsonLinesItemReader, JsonLinesItemWriter, JsonLinesReaderConfig, JsonLinesWriterConfig,
};
use ikkatsu_items::object::{ObjectItemReader, ObjectReaderConfig};
use ikkatsu_storage::Storage;

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut text)
        .unwrap();
    text
}

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).unwrap()
}

/// The decompressed text of the file `path`, by its extension.
fn text_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let name = path.to_string_lossy();
    let text = if name.ends_with(".gz") {
        gunzip(&bytes)
    } else if name.ends_with(".zst") {
        unzstd(&bytes)
    } else {
        bytes
    };
    String::from_utf8(text).unwrap()
}

/// The number of gzip members of `bytes`.
fn gzip_members(bytes: &[u8]) -> usize {
    let mut rest = bytes;
    let mut members = 0;
    while !rest.is_empty() {
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut decoder, &mut std::io::sink()).unwrap();
        rest = decoder.into_inner();
        members += 1;
    }
    members
}

fn people(n: u64) -> Vec<Record> {
    (1..=n)
        .map(|i| {
            let value = serde_json::json!({"id": i.to_string(), "name": format!("名前 {i}, ｱ")});
            Record::from(value.as_object().cloned().unwrap())
        })
        .collect()
}

async fn run(job: &Job, operator: &JobOperator) -> BatchStatus {
    let params = JobParameters::new().with("run", ParameterValue::String("1".into()));
    match operator.start(job, params, CancellationToken::new()).await {
        Ok(execution) => execution.status,
        Err(err) => {
            assert!(err.message().contains("boom"), "{err}");
            BatchStatus::Failed
        }
    }
}

fn write_job(records: Vec<Record>, writer: impl ItemWriter<Record> + 'static) -> Job {
    let step = ChunkStep::<Record, Record>::builder("write")
        .reader(VecItemReader::new(records))
        .writer(writer)
        .chunk_size(3)
        .build()
        .unwrap();
    Job::linear("write", vec![Arc::new(step)]).unwrap()
}

async fn read_all(reader: &mut impl ItemReader<Record>) -> Vec<Record> {
    reader.open(&ExecutionContext::new()).await.unwrap();
    let mut items = Vec::new();
    while let Some(item) = reader.read().await.unwrap() {
        items.push(item);
    }
    reader.close().await.unwrap();
    items
}

#[tokio::test]
async fn writers_close_one_member_per_chunk_and_readers_read_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let records = people(10);
    for (name, compression) in [
        ("out.csv.gz", Compression::Auto),
        ("out.csv.zst", Compression::Auto),
        ("out.csv", Compression::Gzip),
        ("out-utf16.csv.gz", Compression::Auto),
        ("out.jsonl.gz", Compression::Auto),
        ("out.jsonl.zst", Compression::Auto),
        ("out.jsonl", Compression::Zstd),
    ] {
        let path = dir.path().join(name);
        let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
        let utf16 = name.contains("utf16");
        let (job, mut reader): (Job, Box<dyn ReadBack>) = if name.contains(".csv") {
            let mut config = CsvWriterConfig::new(&path);
            config.compression = compression;
            let mut read = CsvReaderConfig::new(&path);
            read.compression = compression;
            if utf16 {
                config.encoding = Some("UTF-16LE".into());
                read.encoding = Some("UTF-16LE".into());
            }
            (
                write_job(records.clone(), CsvItemWriter::new(config).unwrap()),
                Box::new(CsvItemReader::new(read).unwrap()),
            )
        } else {
            let mut config = JsonLinesWriterConfig::new(&path);
            config.compression = compression;
            let mut read = JsonLinesReaderConfig::new(&path);
            read.compression = compression;
            (
                write_job(records.clone(), JsonLinesItemWriter::new(config).unwrap()),
                Box::new(JsonLinesItemReader::new(read).unwrap()),
            )
        };
        assert_eq!(run(&job, &operator).await, BatchStatus::Completed, "{name}");
        let bytes = std::fs::read(&path).unwrap();
        let gzip = name.ends_with(".gz") || compression == Compression::Gzip;
        if gzip {
            // 10 records in chunks of 3: four members (the CSV header is in the first), and
            // a UTF-16 byte order mark in one of its own.
            assert_eq!(gzip_members(&bytes), if utf16 { 5 } else { 4 }, "{name}");
        } else {
            assert_eq!(
                &bytes[..4],
                &[0x28, 0xb5, 0x2f, 0xfd],
                "{name}: a zstd frame"
            );
        }
        assert_eq!(reader.read_back().await, records, "{name}");
        // The command-line tools read every member too.
        let tool = if gzip { "gzip" } else { "zstd" };
        let out = std::process::Command::new(tool)
            .arg("-dc")
            .arg(&path)
            .output()
            .unwrap_or_else(|err| panic!("{tool} (scripts/test-servers installs it): {err}"));
        assert!(out.status.success(), "{tool} -dc {name}");
        let decoded = if gzip { gunzip(&bytes) } else { unzstd(&bytes) };
        assert!(out.stdout == decoded, "{tool} -dc {name}");
        assert!(
            utf16 || String::from_utf8(decoded).unwrap().contains("名前 10, ｱ"),
            "{name}"
        );
    }
}

/// What the round-trip test reads back with.
#[async_trait::async_trait]
trait ReadBack {
    async fn read_back(&mut self) -> Vec<Record>;
}

#[async_trait::async_trait]
impl<R: ItemReader<Record>> ReadBack for R {
    async fn read_back(&mut self) -> Vec<Record> {
        read_all(self).await
    }
}

fn copy_job(input: &Path, output: &Path, fail_once: Arc<AtomicBool>) -> Job {
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

/// A gzip input (several members, as `cat a.gz b.gz` makes) copied to a zstd output; the
/// job fails in its third chunk and is restarted: the reader resumes at its saved place in
/// the decompressed text, the writer truncates to its last committed frame.
#[tokio::test]
async fn a_failed_job_restarts_on_compressed_files_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv.gz");
    let output = dir.path().join("out.jsonl.zst");
    let mut first = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    first.write_all(b"id\n1\n2\n3\n4\n").unwrap();
    let mut bytes = first.finish().unwrap();
    let mut second = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    second.write_all(b"5\n6\n7\n8\n9\n10\n").unwrap();
    bytes.extend(second.finish().unwrap());
    std::fs::write(&input, bytes).unwrap();

    let fail_once = Arc::new(AtomicBool::new(true));
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let status = run(&copy_job(&input, &output, fail_once.clone()), &operator).await;
    assert_eq!(status, BatchStatus::Failed);
    // Chunks [1,2,3] and [4,5,6] were committed, each a complete frame.
    let committed: String = (1..=6).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
    assert_eq!(text_of(&output), committed);

    let status = run(&copy_job(&input, &output, fail_once), &operator).await;
    assert_eq!(status, BatchStatus::Completed);
    let all: String = (1..=10).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
    assert_eq!(text_of(&output), all);
}

/// A restart after a crash: whatever was written after the last commit (an unfinished
/// member) is cut off, and writing continues with a new member.
#[tokio::test]
async fn a_restarted_writer_truncates_to_the_last_committed_member() {
    for name in ["out.csv.gz", "out.csv.zst"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let records = people(6);
        let mut context = ExecutionContext::new();
        let mut writer = CsvItemWriter::new(CsvWriterConfig::new(&path)).unwrap();
        writer.open(&context).await.unwrap();
        writer.write(&records[..3]).await.unwrap();
        writer.update(&mut context).await.unwrap();
        writer.write(&records[3..5]).await.unwrap();
        // A crash: the chunk is not committed; garbage follows the committed member.
        drop(writer);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"\x1f\x8b half a member").unwrap();
        drop(file);

        let mut writer = CsvItemWriter::new(CsvWriterConfig::new(&path)).unwrap();
        writer.open(&context).await.unwrap();
        writer.write(&records[3..]).await.unwrap();
        writer.update(&mut context).await.unwrap();
        writer.close().await.unwrap();
        let mut expected = String::from("id,name\n");
        for record in &records {
            expected.push_str(&format!(
                "{},\"{}\"\n",
                record["id"].as_str().unwrap(),
                record["name"].as_str().unwrap()
            ));
        }
        assert_eq!(text_of(&path), expected, "{name}");
    }
}

#[tokio::test]
async fn a_resume_past_the_decompressed_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(b"{\"id\":1}\n").unwrap();
    std::fs::write(&path, encoder.finish().unwrap()).unwrap();
    let mut context = ExecutionContext::new();
    context.put("jsonl.reader.offset", 500u64);
    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    let err = reader.open(&context).await.unwrap_err().to_string();
    assert!(
        err.contains("in.jsonl.gz") && err.contains("byte 500") && err.contains("has only 9 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn objects_that_are_truncated_or_not_compressed_are_errors_naming_them() {
    let storage = Storage::open("memory:compressed-errors").unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(b"{\"id\":1}\n{\"id\":2}\n").unwrap();
    let bytes = encoder.finish().unwrap();
    storage
        .write("in/cut.jsonl.gz", bytes[..bytes.len() - 4].to_vec())
        .await
        .unwrap();
    storage
        .write("in/plain.jsonl.gz", b"{\"id\":1}\n".to_vec())
        .await
        .unwrap();
    for (path, found) in [
        ("in/cut.jsonl.gz", "is complete"),
        ("in/plain.jsonl.gz", "compressed as its name"),
    ] {
        let config = ObjectReaderConfig::new("memory:compressed-errors", path);
        let mut reader = ObjectItemReader::json_lines(config).unwrap();
        reader.open(&ExecutionContext::new()).await.unwrap();
        let mut result = Ok(None);
        for _ in 0..3 {
            result = reader.read().await;
            if result.is_err() {
                break;
            }
        }
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains(path) && err.contains("cannot decompress") && err.contains(found),
            "{path}: {err}"
        );
    }
    // `compression: none` reads the plain one as it is.
    let mut config = ObjectReaderConfig::new("memory:compressed-errors", "in/plain.jsonl.gz");
    config.compression = Compression::None;
    let mut reader = ObjectItemReader::json_lines(config).unwrap();
    assert_eq!(read_all(&mut reader).await.len(), 1);
}

#[tokio::test]
async fn append_adds_members_to_an_existing_compressed_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl.gz");
    for run_records in [people(2), people(3)] {
        let mut config = JsonLinesWriterConfig::new(&path);
        config.append = true;
        let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
        let job = write_job(run_records, JsonLinesItemWriter::new(config).unwrap());
        assert_eq!(run(&job, &operator).await, BatchStatus::Completed);
    }
    // One chunk (member) per run.
    assert_eq!(gzip_members(&std::fs::read(&path).unwrap()), 2);
    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    let mut expected = people(2);
    expected.extend(people(3));
    assert_eq!(read_all(&mut reader).await, expected);
}

/// A failed write drops the chunk in progress from a compressed file too (its open member
/// goes), so the file holds the committed rows and a retried chunk is written once.
#[tokio::test]
async fn a_failed_write_leaves_the_committed_members_only() {
    for name in ["out.csv.gz", "out.csv.zst"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let mut config = CsvWriterConfig::new(&path);
        config.encoding = Some("Shift_JIS".into());
        let mut writer = CsvItemWriter::new(config).unwrap();
        let mut context = ExecutionContext::new();
        writer.open(&context).await.unwrap();
        let records = people(3);
        writer.write(&records[..1]).await.unwrap();
        writer.update(&mut context).await.unwrap();
        let mut bad = records[1..].to_vec();
        bad[1].set("name", serde_json::json!("☃"));
        let err = writer.write(&bad).await.unwrap_err().to_string();
        assert!(err.contains("Shift_JIS cannot represent"), "{err}");
        let committed = std::fs::read(&path).unwrap();
        writer.write(&records[1..]).await.unwrap();
        writer.update(&mut context).await.unwrap();
        writer.close().await.unwrap();
        let decode = |bytes: &[u8]| {
            let raw = if name.ends_with(".gz") {
                gunzip(bytes)
            } else {
                unzstd(bytes)
            };
            encoding_rs::SHIFT_JIS.decode(&raw).0.into_owned()
        };
        assert_eq!(decode(&committed), "id,name\n1,\"名前 1, ｱ\"\n", "{name}");
        let all = decode(&std::fs::read(&path).unwrap());
        assert_eq!(
            all, "id,name\n1,\"名前 1, ｱ\"\n2,\"名前 2, ｱ\"\n3,\"名前 3, ｱ\"\n",
            "{name}"
        );
    }
}
