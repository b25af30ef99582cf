//! The backlog: round trips, resume, and the errors for damaged files.

use std::io::Write;
use std::path::Path;

use chrono::{TimeZone, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use ikkatsu_overwrite::backlog::{
    BACKLOG_FORMAT, BACKLOG_VERSION, BacklogReader, BacklogWriter, temp_path, write_backlog,
};
use ikkatsu_storage::FileInfo;

fn sample(i: u64) -> FileInfo {
    let mut f = FileInfo::new(format!("dir {}/ファイル-{i}.txt", i % 7), i * 3);
    if i.is_multiple_of(2) {
        f.modified = Utc.timestamp_opt(1_700_000_000 + i as i64, 0).single();
    }
    if i.is_multiple_of(3) {
        f.etag = Some(format!("\"etag-{i}\""));
        f.version = Some(format!("v{i}"));
        f.content_type = Some("text/plain".into());
    }
    f
}

fn write_sample(path: &Path, n: u64) -> Vec<FileInfo> {
    let files: Vec<FileInfo> = (0..n).map(sample).collect();
    let mut writer = BacklogWriter::create(path, Some("file:///data")).unwrap();
    for f in &files {
        writer.write(f).unwrap();
    }
    assert_eq!(writer.count(), n);
    assert_eq!(writer.finish().unwrap(), n);
    files
}

/// Writes `lines` (each without its newline) gzip-compressed to `path`.
fn write_raw(path: &Path, lines: &[String]) {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    for line in lines {
        encoder.write_all(line.as_bytes()).unwrap();
        encoder.write_all(b"\n").unwrap();
    }
    std::fs::write(path, encoder.finish().unwrap()).unwrap();
}

fn header(version: u32) -> String {
    format!(
        r#"{{"format":"{BACKLOG_FORMAT}","version":{version},"created":"2026-01-01T00:00:00Z","source":null}}"#
    )
}

fn entry(i: u64) -> String {
    serde_json::to_string(&sample(i)).unwrap()
}

fn open_error(path: &Path) -> String {
    match BacklogReader::open(path) {
        Ok(reader) => match reader.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(files) => panic!(
                "{} read without error: {} files",
                path.display(),
                files.len()
            ),
            Err(err) => err.to_string(),
        },
        Err(err) => err.to_string(),
    }
}

#[test]
fn round_trip_count_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backlog.jsonl.gz");
    let files = write_sample(&path, 10_000);
    assert!(path.exists());
    assert!(!temp_path(&path).exists());

    assert_eq!(BacklogReader::count(&path).unwrap(), 10_000);
    let reader = BacklogReader::open(&path).unwrap();
    assert_eq!(reader.header().format, BACKLOG_FORMAT);
    assert_eq!(reader.header().version, BACKLOG_VERSION);
    assert_eq!(reader.header().source.as_deref(), Some("file:///data"));
    let read: Vec<FileInfo> = reader.into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(read, files);

    let mut reader = BacklogReader::open(&path).unwrap();
    assert_eq!(reader.skip(9_990).unwrap(), 9_990);
    assert_eq!(reader.position(), 9_990);
    assert_eq!(reader.next_entry().unwrap(), Some(files[9_990].clone()));
    assert_eq!(reader.position(), 9_991);
    let rest: Vec<FileInfo> = reader.into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(rest, files[9_991..].to_vec());

    let mut reader = BacklogReader::open(&path).unwrap();
    assert_eq!(reader.skip(20_000).unwrap(), 10_000);
    assert_eq!(reader.next_entry().unwrap(), None);
}

#[test]
fn empty_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.gz");
    assert_eq!(
        BacklogWriter::create(&path, None)
            .unwrap()
            .finish()
            .unwrap(),
        0
    );
    assert_eq!(BacklogReader::count(&path).unwrap(), 0);
    let mut reader = BacklogReader::open(&path).unwrap();
    assert_eq!(reader.header().source, None);
    assert_eq!(reader.next_entry().unwrap(), None);
}

#[test]
fn unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.gz");
    let mut writer = BacklogWriter::create(&path, None).unwrap();
    writer.write(&sample(1)).unwrap();
    assert!(temp_path(&path).exists());
    drop(writer);
    assert!(!temp_path(&path).exists());
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn finishing_replaces_an_older_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.gz");
    write_sample(&path, 5);
    write_sample(&path, 2);
    assert_eq!(BacklogReader::count(&path).unwrap(), 2);
}

#[test]
fn truncated_gzip_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gz");
    write_sample(&path, 5_000);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = open_error(&path);
    assert!(err.contains("cut.gz"), "{err}");
    assert!(err.contains("line "), "{err}");
    assert!(err.contains("truncated"), "{err}");

    // Only the gzip footer missing: every line is there, the checksum is not.
    write_sample(&path, 3);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    let err = open_error(&path);
    assert!(err.contains("cut.gz"), "{err}");
    assert!(
        err.contains("truncated") || err.contains("corrupt"),
        "{err}"
    );
}

#[test]
fn missing_trailer_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.gz");
    write_raw(&path, &[header(1), entry(0), entry(1)]);
    let err = open_error(&path);
    assert!(err.contains("open.gz"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("without its trailer"), "{err}");
    let err = BacklogReader::count(&path).unwrap_err().to_string();
    assert!(err.contains("without its trailer"), "{err}");
}

#[test]
fn corrupt_line_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gz");
    write_raw(
        &path,
        &[
            header(1),
            entry(0),
            r#"{"path":"x","size":"ten"}"#.to_string(),
            entry(2),
            r#"{"end":true,"count":3}"#.to_string(),
        ],
    );
    let err = open_error(&path);
    assert!(err.contains("bad.gz: line 3: invalid entry"), "{err}");
}

#[test]
fn wrong_count_version_and_format_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gz");
    write_raw(
        &path,
        &[header(1), entry(0), r#"{"end":true,"count":2}"#.to_string()],
    );
    let err = open_error(&path);
    assert!(err.contains("line 3"), "{err}");
    assert!(
        err.contains("counts 2 entries but the backlog has 1"),
        "{err}"
    );

    write_raw(&path, &[header(2), r#"{"end":true,"count":0}"#.to_string()]);
    let err = open_error(&path);
    assert!(err.contains("x.gz: line 1"), "{err}");
    assert!(err.contains("version 2 is not supported"), "{err}");

    write_raw(&path, &[r#"{"format":"other","version":1}"#.to_string()]);
    assert!(open_error(&path).contains("not an ikkatsu backlog"));

    write_raw(
        &path,
        &[header(1), r#"{"end":true,"count":0}"#.to_string(), entry(0)],
    );
    let err = open_error(&path);
    assert!(err.contains("line 3: data after the trailer"), "{err}");

    std::fs::write(&path, b"plain text, not gzip\n").unwrap();
    let err = open_error(&path);
    assert!(err.contains("x.gz: line 1"), "{err}");
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let err = BacklogReader::open("/nonexistent/ikkatsu/backlog.gz").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/ikkatsu/backlog.gz"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_write_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.gz");
    let files: Vec<FileInfo> = (0..3_000).map(sample).collect();
    let count = write_backlog(
        &path,
        Some("mem://"),
        futures::stream::iter(files.clone().into_iter().map(Ok)),
    )
    .await
    .unwrap();
    assert_eq!(count, 3_000);
    let mut reader = BacklogReader::open(&path).unwrap();
    reader.skip(1_000).unwrap();
    let read: Vec<FileInfo> = reader.into_stream().map(|r| r.unwrap()).collect().await;
    assert_eq!(read, files[1_000..].to_vec());

    // A failing input stream leaves no backlog behind.
    let failing = futures::stream::iter(vec![
        Ok(sample(0)),
        Err(ikkatsu_core::Error::config("walk failed")),
    ]);
    let err = write_backlog(&path.with_extension("2"), None, failing)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "walk failed");
    assert!(!path.with_extension("2").exists());
    assert!(!temp_path(&path.with_extension("2")).exists());

    // A damaged backlog ends the stream with the error.
    write_raw(&path, &[header(1), entry(0)]);
    let items: Vec<_> = BacklogReader::open(&path)
        .unwrap()
        .into_stream()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(
        items[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("without its trailer")
    );
}
