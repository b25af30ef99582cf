//! CSV reader and writer behaviour on real files.

use ikkatsu_core::{ErrorKind, ExecutionContext, ItemReader, ItemStream, ItemWriter, Record};
use ikkatsu_items::csv::{
    CsvItemReader, CsvItemWriter, CsvReaderConfig, CsvWriterConfig, TypedCsvItemReader,
    TypedCsvItemWriter,
};
use serde_json::{Value, json};

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map.into(),
        other => panic!("not an object: {other}"),
    }
}

async fn read_all<T: Send + 'static>(reader: &mut impl ItemReader<T>) -> Vec<T> {
    let mut items = Vec::new();
    while let Some(item) = reader.read().await.unwrap() {
        items.push(item);
    }
    items
}

#[tokio::test]
async fn round_trip_with_quoting_delimiters_and_unicode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let records = vec![
        record(json!({"id": "1", "text": "plain", "note": "日本語 ✓"})),
        record(json!({"id": "2", "text": "semi;colon", "note": "say \"hi\""})),
        record(json!({"id": "3", "text": "multi\nline", "note": ""})),
    ];
    let mut config = CsvWriterConfig::new(&path);
    config.delimiter = ';';
    let mut writer = CsvItemWriter::new(config).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.write(&records).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "id;text;note\n1;plain;日本語 ✓\n2;\"semi;colon\";\"say \"\"hi\"\"\"\n3;\"multi\nline\";\n"
    );

    let mut config = CsvReaderConfig::new(&path);
    config.delimiter = ';';
    let mut reader = CsvItemReader::new(config).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let back = read_all(&mut reader).await;
    assert_eq!(back, records);
    let keys: Vec<&String> = back[0].keys().collect();
    assert_eq!(keys, ["id", "text", "note"]);
}

#[tokio::test]
async fn writer_renders_non_string_values_and_follows_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let mut config = CsvWriterConfig::new(&path);
    config.columns = Some(vec!["b".into(), "a".into(), "missing".into()]);
    let mut writer = CsvItemWriter::new(config).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer
        .write(&[
            record(json!({"a": 1.5, "b": true, "c": "dropped"})),
            record(json!({"a": null, "b": [1, 2]})),
        ])
        .await
        .unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "b,a,missing\ntrue,1.5,\n\"[1,2]\",,\n"
    );
}

#[tokio::test]
async fn reader_options_explicit_headers_tab_trim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.tsv");
    std::fs::write(&path, " x \t y\n a \tb\n").unwrap();
    let mut config = CsvReaderConfig::new(&path);
    config.delimiter = '\t';
    config.has_header = false;
    config.trim = true;
    config.headers = Some(vec!["first".into(), "second".into()]);
    let mut reader = CsvItemReader::new(config).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    assert_eq!(
        read_all(&mut reader).await,
        vec![
            record(json!({"first": "x", "second": "y"})),
            record(json!({"first": "a", "second": "b"}))
        ]
    );

    // No header row and no names: column1, column2, ...
    let mut config = CsvReaderConfig::new(&path);
    config.delimiter = '\t';
    config.has_header = false;
    let mut reader = CsvItemReader::new(config).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    assert_eq!(
        read_all(&mut reader).await[1],
        record(json!({"column1": " a ", "column2": "b"}))
    );
}

#[tokio::test]
async fn reader_restart_resumes_at_the_next_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(&path, "n,quoted\n1,\"a\nb\"\n2,x\n3,y\n4,z\n").unwrap();
    let mut reader = CsvItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let first = reader.read().await.unwrap().unwrap();
    assert_eq!(first["quoted"], "a\nb");
    reader.read().await.unwrap().unwrap();
    let mut context = ExecutionContext::new();
    reader.update(&mut context).await.unwrap();
    // Read past the saved point, then "crash".
    reader.read().await.unwrap().unwrap();
    drop(reader);

    let mut reader = CsvItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&context).await.unwrap();
    let rest: Vec<String> = read_all(&mut reader)
        .await
        .iter()
        .map(|r| r["n"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rest, ["3", "4"]);
    // Line numbers continue after a restart: row 4 starts on line 6 (the quoted field spans two lines).
    std::fs::write(&path, "n,quoted\n1,\"a\nb\"\n2,x\n3,y\n4\n").unwrap();
    let mut reader = CsvItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&context).await.unwrap();
    reader.read().await.unwrap().unwrap();
    let err = reader.read().await.unwrap_err();
    assert!(
        err.message().contains(&format!("{}:6", path.display())),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_field_count_is_a_parse_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "a,b\n1,2\n3\n4,5\n").unwrap();
    let mut reader = CsvItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    reader.read().await.unwrap().unwrap();
    let err = reader.read().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert_eq!(
        err.message(),
        format!(
            "{}:3: wrong number of fields: expected 2, found 1",
            path.display()
        )
    );
    // The bad row is consumed: a skip policy can go on with the next one.
    assert_eq!(
        reader.read().await.unwrap().unwrap(),
        record(json!({"a": "4", "b": "5"}))
    );
    assert!(reader.read().await.unwrap().is_none());
}

#[tokio::test]
async fn missing_input_and_unwritable_output_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let mut reader = CsvItemReader::new(CsvReaderConfig::new(&missing)).unwrap();
    let err = reader.open(&ExecutionContext::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(err.message().contains("`path` property"), "{err}");

    // Missing parent directories are created.
    let in_missing_dir = dir.path().join("new-dir").join("sub").join("out.csv");
    let mut writer = CsvItemWriter::new(CsvWriterConfig::new(&in_missing_dir)).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    writer.close().await.unwrap();
    assert!(in_missing_dir.exists());

    // A directory that cannot be created (its parent is a file) is named in the error.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let under_file = blocker.join("out.csv");
    let mut writer = CsvItemWriter::new(CsvWriterConfig::new(&under_file)).unwrap();
    let err = writer.open(&ExecutionContext::new()).await.unwrap_err();
    assert!(
        err.message().contains(&blocker.display().to_string()),
        "{err}"
    );

    // A directory is not a writable file.
    let mut writer = CsvItemWriter::new(CsvWriterConfig::new(dir.path())).unwrap();
    let err = writer.open(&ExecutionContext::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(
        err.message().contains(&dir.path().display().to_string()),
        "{err}"
    );

    let mut config = CsvReaderConfig::new(&missing);
    config.delimiter = '→';
    assert_eq!(
        CsvItemReader::new(config).err().unwrap().kind(),
        ErrorKind::Config
    );
}

fn chunk(from: usize) -> Vec<Record> {
    (from..from + 2)
        .map(|i| record(json!({"id": i.to_string(), "name": format!("name, {i}")})))
        .collect()
}

#[tokio::test]
async fn writer_restart_truncates_to_the_last_commit_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let mut writer = CsvItemWriter::new(CsvWriterConfig::new(&path)).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    let mut context = ExecutionContext::new();
    writer.write(&chunk(1)).await.unwrap();
    writer.update(&mut context).await.unwrap();
    writer.write(&chunk(3)).await.unwrap();
    writer.update(&mut context).await.unwrap();
    let saved = context.clone();
    writer.write(&chunk(5)).await.unwrap();
    drop(writer); // crash: no update, no close (the csv buffer may still reach the file)

    let two_chunks = "id,name\n1,\"name, 1\"\n2,\"name, 2\"\n3,\"name, 3\"\n4,\"name, 4\"\n";
    let mut writer = CsvItemWriter::new(CsvWriterConfig::new(&path)).unwrap();
    writer.open(&saved).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), two_chunks);
    writer.write(&chunk(5)).await.unwrap();
    let mut context = saved.clone();
    writer.update(&mut context).await.unwrap();
    writer.write(&chunk(7)).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{two_chunks}5,\"name, 5\"\n6,\"name, 6\"\n7,\"name, 7\"\n8,\"name, 8\"\n")
    );
}

#[tokio::test]
async fn writer_append_writes_no_second_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    for start in [1, 3] {
        let mut config = CsvWriterConfig::new(&path);
        config.append = true;
        config.sync = true;
        let mut writer = CsvItemWriter::new(config).unwrap();
        writer.open(&ExecutionContext::new()).await.unwrap();
        writer.write(&chunk(start)).await.unwrap();
        writer.close().await.unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "id,name\n1,\"name, 1\"\n2,\"name, 2\"\n3,\"name, 3\"\n4,\"name, 4\"\n"
    );
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct City {
    name: String,
    population: u64,
}

#[tokio::test]
async fn typed_round_trip_restart_and_field_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cities.csv");
    let cities = [
        City {
            name: "Tōkyō".into(),
            population: 14_000_000,
        },
        City {
            name: "Ōsaka, Japan".into(),
            population: 2_700_000,
        },
        City {
            name: "Kyoto".into(),
            population: 1_460_000,
        },
    ];
    let mut writer = TypedCsvItemWriter::<City>::new(CsvWriterConfig::new(&path)).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    let mut context = ExecutionContext::new();
    writer.write(&cities[..1]).await.unwrap();
    writer.update(&mut context).await.unwrap();
    writer.write(&cities[1..2]).await.unwrap();
    drop(writer);
    let mut writer = TypedCsvItemWriter::<City>::new(CsvWriterConfig::new(&path)).unwrap();
    writer.open(&context).await.unwrap();
    writer.write(&cities[1..]).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "name,population\nTōkyō,14000000\n\"Ōsaka, Japan\",2700000\nKyoto,1460000\n"
    );

    let mut reader = TypedCsvItemReader::<City>::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    assert_eq!(reader.read().await.unwrap().unwrap(), cities[0]);
    let mut context = ExecutionContext::new();
    reader.update(&mut context).await.unwrap();
    let mut reader = TypedCsvItemReader::<City>::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&context).await.unwrap();
    assert_eq!(read_all(&mut reader).await, cities[1..]);

    std::fs::write(&path, "name,population\nNara,many\n").unwrap();
    let mut reader = TypedCsvItemReader::<City>::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let err = reader.read().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(
        err.message()
            .starts_with(&format!("{}:2: field 2 (`population`): ", path.display())),
        "{err}"
    );
}

#[test]
fn configs_deserialize_from_kebab_case_and_reject_unknown_properties() {
    let config: CsvReaderConfig = serde_json::from_value(json!({
        "path": "in.csv", "delimiter": "\t", "has-header": false, "headers": ["a"], "trim": true
    }))
    .unwrap();
    assert_eq!(config.delimiter, '\t');
    assert!(!config.has_header);
    assert_eq!(config.quote, '"');
    let config: CsvWriterConfig =
        serde_json::from_value(json!({"path": "out.csv", "columns": ["a", "b"], "append": true}))
            .unwrap();
    assert!(config.header);
    assert!(config.append);
    assert!(
        serde_json::from_value::<CsvReaderConfig>(json!({"path": "x", "hasHeader": true})).is_err()
    );
}

#[tokio::test]
async fn records_of_one_file_share_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(&path, "id,city,id\n1,lyon,x\n2,,y\n3,nice,z\n").unwrap();
    let mut reader = CsvItemReader::new(CsvReaderConfig::new(&path)).unwrap();
    reader.open(&ExecutionContext::new()).await.unwrap();
    let mut records = read_all(&mut reader).await;
    assert_eq!(records.len(), 3);
    let fields = std::sync::Arc::clone(records[0].fields());
    assert_eq!(fields.names(), ["id", "city"]);
    assert!(
        records
            .iter()
            .all(|r| std::sync::Arc::ptr_eq(r.fields(), &fields))
    );
    // A repeated column name keeps its first position and the last value, as before.
    assert_eq!(records[1], record(json!({"id": "y", "city": ""})));

    // Adding the same key to every record makes one new `Fields`, not one per record.
    for record in &mut records {
        record.insert("country".to_string(), json!("FR"));
    }
    let extended = std::sync::Arc::clone(records[0].fields());
    assert!(!std::sync::Arc::ptr_eq(&extended, &fields));
    assert!(
        records
            .iter()
            .all(|r| std::sync::Arc::ptr_eq(r.fields(), &extended))
    );

    // The writer follows its columns whatever the records' layout.
    let out = dir.path().join("out.csv");
    let mut config = CsvWriterConfig::new(&out);
    config.columns = Some(vec!["country".into(), "id".into(), "none".into()]);
    let mut writer = CsvItemWriter::new(config).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    let mut other = record(json!({"id": "9", "country": "JP"}));
    other.remove("country");
    writer.write(&records).await.unwrap();
    writer.write(&[other]).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "country,id,none\nFR,x,\nFR,y,\nFR,z,\n,9,\n"
    );
}
