//! JSON Lines reader and writer behaviour on real files.

use ikkatsu_core::{ErrorKind, ExecutionContext, ItemReader, ItemStream, ItemWriter, Record};
use ikkatsu_items::jsonl::{
    JsonLinesItemReader, JsonLinesItemWriter, JsonLinesReaderConfig, JsonLinesWriterConfig,
    TypedJsonLinesItemReader,
};
use serde_json::{Value, json};

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map.into(),
        other => panic!("not an object: {other}"),
    }
}

async fn read_all(reader: &mut JsonLinesItemReader) -> Vec<Record> {
    let mut items = Vec::new();
    while let Some(item) = reader.read().await.unwrap() {
        items.push(item);
    }
    items
}

#[tokio::test]
async fn round_trip_keeps_key_order_and_unicode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let records = vec![
        record(json!({"z": 1, "a": "日本語", "nested": {"k": [1, 2]}})),
        record(json!({"text": "line\nbreak \"quoted\""})),
    ];
    let mut writer = JsonLinesItemWriter::new(JsonLinesWriterConfig::new(&path)).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.write(&records).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"z\":1,\"a\":\"日本語\",\"nested\":{\"k\":[1,2]}}\n{\"text\":\"line\\nbreak \\\"quoted\\\"\"}\n"
    );
    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let back = read_all(&mut reader).await;
    assert_eq!(back, records);
    assert_eq!(back[0].keys().collect::<Vec<_>>(), ["z", "a", "nested"]);
}

#[tokio::test]
async fn reader_restart_resumes_at_the_next_line_and_keeps_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, "{\"n\":1}\n\n{\"n\":2}\r\n{\"n\":3}\n{\"n\":4}").unwrap();
    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    reader.read().await.unwrap().unwrap();
    reader.read().await.unwrap().unwrap();
    let mut context = ExecutionContext::new();
    reader.update(&mut context).await.unwrap();
    reader.read().await.unwrap().unwrap();
    drop(reader);

    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    reader.open(&context).await.unwrap();
    assert_eq!(
        read_all(&mut reader).await,
        vec![record(json!({"n": 3})), record(json!({"n": 4}))]
    );

    std::fs::write(&path, "{\"n\":1}\n\n{\"n\":2}\r\n{\"n\":3}\n{\"n\":\n").unwrap();
    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    reader.open(&context).await.unwrap();
    reader.read().await.unwrap().unwrap();
    let err = reader.read().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(
        err.message()
            .starts_with(&format!("{}:5: malformed JSON", path.display())),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_and_non_object_lines_are_parse_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"ok\":true}\n{\"broken\": \n[1,2]\n{\"ok\":false}\n",
    )
    .unwrap();
    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    reader.read().await.unwrap().unwrap();
    let err = reader.read().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(
        err.message()
            .starts_with(&format!("{}:2: malformed JSON", path.display())),
        "{err}"
    );
    let err = reader.read().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert_eq!(
        err.message(),
        format!(
            "{}:3: expected a JSON object, found an array",
            path.display()
        )
    );
    assert_eq!(
        reader.read().await.unwrap().unwrap(),
        record(json!({"ok": false}))
    );
    assert!(reader.read().await.unwrap().is_none());

    let missing = dir.path().join("missing.jsonl");
    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&missing)).unwrap();
    let err = reader.open(&ExecutionContext::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains(&missing.display().to_string()));
}

#[tokio::test]
async fn writer_restart_truncates_to_the_last_commit_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let chunk = |from: i64| vec![record(json!({"n": from})), record(json!({"n": from + 1}))];
    let mut writer = JsonLinesItemWriter::new(JsonLinesWriterConfig::new(&path)).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    let mut context = ExecutionContext::new();
    writer.write(&chunk(1)).await.unwrap();
    writer.update(&mut context).await.unwrap();
    writer.write(&chunk(3)).await.unwrap();
    writer.update(&mut context).await.unwrap();
    let saved = context.clone();
    writer.write(&chunk(5)).await.unwrap();
    drop(writer); // crash: the BufWriter's drop still writes chunk 3 to the file

    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("{\"n\":5}")
    );
    let mut writer = JsonLinesItemWriter::new(JsonLinesWriterConfig::new(&path)).unwrap();
    writer.open(&saved).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n"
    );
    writer.write(&chunk(5)).await.unwrap();
    writer.close().await.unwrap();
    let expected: String = (1..=6).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[tokio::test]
async fn typed_reader_decodes_structs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.jsonl");
    std::fs::write(&path, "{\"x\":1,\"y\":2}\n{\"x\":\"one\",\"y\":2}\n").unwrap();
    let mut reader =
        TypedJsonLinesItemReader::<Point>::new(JsonLinesReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    assert_eq!(reader.read().await.unwrap().unwrap(), Point { x: 1, y: 2 });
    let err = reader.read().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(
        err.message()
            .starts_with(&format!("{}:2: cannot decode", path.display())),
        "{err}"
    );
}

#[tokio::test]
async fn records_of_one_file_share_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(
        &path,
        "{\"a\":1,\"b\":2}\n{\"a\":3,\"b\":4}\n{\"b\":5,\"a\":6}\n{\"a\":7,\"b\":8}\n",
    )
    .unwrap();
    let mut reader = JsonLinesItemReader::new(JsonLinesReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let records = read_all(&mut reader).await;
    assert_eq!(records.len(), 4);
    assert!(std::sync::Arc::ptr_eq(
        records[0].fields(),
        records[1].fields()
    ));
    // Another key order is kept, and the records after it share its fields.
    let keys: Vec<&String> = records[2].keys().collect();
    assert_eq!(keys, ["b", "a"]);
    assert_eq!(records[2], record(json!({"a": 6, "b": 5})));
    let keys: Vec<&String> = records[3].keys().collect();
    assert_eq!(keys, ["a", "b"]);
}
