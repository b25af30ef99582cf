//! CSV text encodings and layout options on local files: Shift_JIS with half-width katakana
//! and 0x5C second bytes, EUC-JP, windows-1252 and UTF-16 round trips, byte order marks,
//! undecodable and unencodable characters with their place, `lines-to-skip`, `header:
//! false` with `columns`, and restarts in the middle of encoded files.

use encoding_rs::{EUC_JP, Encoding, SHIFT_JIS, WINDOWS_1252};
use ikkatsu_config::Properties;
use ikkatsu_core::{ErrorKind, ExecutionContext, ItemReader, ItemStream, ItemWriter, Record};
use ikkatsu_items::csv::{CsvItemReader, CsvItemWriter, CsvReaderConfig, CsvWriterConfig};
use serde_json::{Value, json};

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map.into(),
        other => panic!("not an object: {other}"),
    }
}

/// The bytes of `text` in `encoding`, every character representable.
fn encode(encoding: &'static Encoding, text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding.encode(text);
    assert!(!unmappable, "{text:?} is not all {}", encoding.name());
    bytes.into_owned()
}

fn utf16le(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

fn utf16be(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFE, 0xFF];
    bytes.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    bytes
}

/// Japanese text with half-width katakana and characters whose second Shift_JIS byte is
/// 0x5C (`\`): 表 (0x95 0x5C), ソ (0x83 0x5C), 能 (0x94 0x5C), in quoted and unquoted
/// fields, first and last in a field (next to the delimiter), and a quoted line break.
const JAPANESE: &str = "id,名前,メモ\r\n\
1,ｱｲｳ,表\r\n\
2,\"ソ,能\",\"表\"\"ソ\"\r\n\
3,能力表,\"ｶﾅ\r\n改行\"\r\n\
4,ソ,能\r\n";

fn japanese_records() -> Vec<Record> {
    vec![
        record(json!({"id": "1", "名前": "ｱｲｳ", "メモ": "表"})),
        record(json!({"id": "2", "名前": "ソ,能", "メモ": "表\"ソ"})),
        record(json!({"id": "3", "名前": "能力表", "メモ": "ｶﾅ\r\n改行"})),
        record(json!({"id": "4", "名前": "ソ", "メモ": "能"})),
    ]
}

/// The bytes of `tests/fixtures/sjis.csv`: [`JAPANESE`] in Shift_JIS.
fn sjis_fixture_bytes() -> Vec<u8> {
    encode(SHIFT_JIS, JAPANESE)
}

fn reader_config(path: &std::path::Path, encoding: Option<&str>) -> CsvReaderConfig {
    let mut config = CsvReaderConfig::new(path);
    config.encoding = encoding.map(str::to_string);
    config
}

fn writer_config(path: &std::path::Path, encoding: Option<&str>) -> CsvWriterConfig {
    let mut config = CsvWriterConfig::new(path);
    config.encoding = encoding.map(str::to_string);
    config
}

async fn read_all(config: CsvReaderConfig) -> ikkatsu_core::Result<Vec<Record>> {
    let mut reader = CsvItemReader::new(config)?;
    reader.open(&ExecutionContext::new()).await?;
    let mut items = Vec::new();
    while let Some(item) = reader.read().await? {
        items.push(item);
    }
    reader.close().await?;
    Ok(items)
}

/// Opens a reader with `context`, reads `max` records, saves the position, closes.
async fn read_some(
    config: CsvReaderConfig,
    context: &mut ExecutionContext,
    max: usize,
) -> Vec<Record> {
    let mut reader = CsvItemReader::new(config).unwrap();
    reader.open(context).await.unwrap();
    let mut items = Vec::new();
    reader.read_chunk(max, &mut items).await.unwrap();
    reader.update(context).await.unwrap();
    reader.close().await.unwrap();
    items
}

async fn write_all(config: CsvWriterConfig, records: &[Record]) -> ikkatsu_core::Result<()> {
    let mut writer = CsvItemWriter::new(config)?;
    writer.open(&ExecutionContext::new()).await?;
    writer.write(records).await?;
    writer.close().await
}

#[tokio::test]
async fn shift_jis_with_5c_second_bytes_and_katakana_decodes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    let bytes = sjis_fixture_bytes();
    // The bytes the test is about are there: 表, ソ and 能 end in 0x5C.
    assert!(bytes.windows(2).any(|w| w == [0x95, 0x5C]));
    assert!(bytes.windows(2).any(|w| w == [0x83, 0x5C]));
    assert!(bytes.windows(3).any(|w| w == [0x95, 0x5C, b',']));
    assert!(bytes.windows(3).any(|w| w == [0x94, 0x5C, b'"']));
    assert!(bytes.windows(3).any(|w| w == [0xB1, 0xB2, 0xB3]));
    std::fs::write(&path, &bytes).unwrap();

    let records = read_all(reader_config(&path, Some("Shift_JIS")))
        .await
        .unwrap();
    assert_eq!(records, japanese_records());
    let keys: Vec<&String> = records[0].keys().collect();
    assert_eq!(keys, ["id", "名前", "メモ"]);
    // WHATWG labels, any case.
    for label in ["shift_jis", "SJIS", "windows-31j", "x-sjis"] {
        let records = read_all(reader_config(&path, Some(label))).await.unwrap();
        assert_eq!(records, japanese_records(), "{label}");
    }
}

#[tokio::test]
async fn the_checked_in_shift_jis_fixture_is_the_generated_one() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sjis.csv");
    if std::env::var_os("IKKATSU_WRITE_FIXTURES").is_some() {
        std::fs::write(&fixture, sjis_fixture_bytes()).unwrap();
    }
    assert_eq!(std::fs::read(&fixture).unwrap(), sjis_fixture_bytes());
    let records = read_all(reader_config(&fixture, Some("Shift_JIS")))
        .await
        .unwrap();
    assert_eq!(records, japanese_records());
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_shift_jis_file_resumes_at_the_next_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    let mut bytes = encode(SHIFT_JIS, "出力日: 2024年5月1日 \"表\r\n");
    bytes.extend(sjis_fixture_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let config = || {
        let mut config = reader_config(&path, Some("Shift_JIS"));
        config.lines_to_skip = 1;
        config
    };

    let mut context = ExecutionContext::new();
    let first = read_some(config(), &mut context, 2).await;
    assert_eq!(first, japanese_records()[..2]);
    // The saved offset is a byte offset of the file: the end of row 2, which the CSV
    // parser ends at its `\r` (the `\n` is read with the next row).
    let row3 = encode(SHIFT_JIS, "\r\n3,能力表");
    let offset = bytes.windows(row3.len()).position(|w| w == row3).unwrap() as u64 + 1;
    assert_eq!(
        context.get::<u64>("csv.reader.offset").unwrap(),
        Some(offset)
    );
    // ... and on line 4, the one of that `\n` (a skipped line, the header, rows 1 and 2).
    assert_eq!(context.get::<u64>("csv.reader.line").unwrap(), Some(4));

    let rest = read_some(config(), &mut context, 10).await;
    assert_eq!(rest, japanese_records()[2..]);
    assert_eq!(
        context.get::<Vec<String>>("reader.columns").unwrap(),
        Some(vec![
            "id".to_string(),
            "名前".to_string(),
            "メモ".to_string()
        ])
    );
}

#[tokio::test]
async fn round_trips_in_euc_jp_windows_1252_and_utf_16() {
    let dir = tempfile::tempdir().unwrap();
    let japanese = japanese_records();
    let latin = vec![
        record(json!({"name": "Chloé", "note": "naïve, “quoted” €5"})),
        record(json!({"name": "Jürgen", "note": "Größe ±2°"})),
    ];
    let latin_text = "name,note\nChloé,\"naïve, “quoted” €5\"\nJürgen,Größe ±2°\n";
    let japanese_text = JAPANESE.replace("\r\n", "\n").replace("ｶﾅ\n", "ｶﾅ\r\n");
    let cases: Vec<(&str, &[Record], Vec<u8>)> = vec![
        ("EUC-JP", &japanese, encode(EUC_JP, &japanese_text)),
        ("windows-1252", &latin, encode(WINDOWS_1252, latin_text)),
        ("UTF-16LE", &japanese, utf16le(&japanese_text)),
        ("UTF-16BE", &latin, utf16be(latin_text)),
    ];
    for (label, records, bytes) in cases {
        let path = dir.path().join(format!("{label}.csv"));
        write_all(writer_config(&path, Some(label)), records)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{label}");
        let back = read_all(reader_config(&path, Some(label))).await.unwrap();
        assert_eq!(back, records, "{label}");
    }
    // UTF-16 is recognised by its byte order mark, whatever `encoding` says.
    let path = dir.path().join("UTF-16LE.csv");
    assert_eq!(
        read_all(reader_config(&path, None)).await.unwrap(),
        japanese
    );
    let path = dir.path().join("UTF-16BE.csv");
    let back = read_all(reader_config(&path, Some("windows-1252")))
        .await
        .unwrap();
    assert_eq!(back, latin);
}

#[tokio::test]
async fn a_utf_8_byte_order_mark_is_stripped_and_restarts_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.csv");
    std::fs::write(&path, "\u{FEFF}id,name\n1,Aiko\n2,Ben\n3,Chloé\n").unwrap();
    let expected = vec![
        record(json!({"id": "1", "name": "Aiko"})),
        record(json!({"id": "2", "name": "Ben"})),
        record(json!({"id": "3", "name": "Chloé"})),
    ];
    let records = read_all(reader_config(&path, None)).await.unwrap();
    assert_eq!(records, expected);
    assert_eq!(records[0].keys().next().unwrap(), "id");
    // The mark wins over a configured encoding.
    let records = read_all(reader_config(&path, Some("Shift_JIS")))
        .await
        .unwrap();
    assert_eq!(records, expected);

    let mut context = ExecutionContext::new();
    assert_eq!(
        read_some(reader_config(&path, None), &mut context, 1).await,
        expected[..1]
    );
    assert_eq!(context.get::<u64>("csv.reader.offset").unwrap(), Some(18));
    let rest = read_some(reader_config(&path, None), &mut context, 5).await;
    assert_eq!(rest, expected[1..]);
}

#[tokio::test]
async fn an_undecodable_byte_names_file_line_column_and_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    let mut bytes = encode(SHIFT_JIS, "id,名前\n1,表\n2,\"ｱ\n");
    bytes.extend_from_slice(&[b'x', 0x82, b'"', b'\n']);
    std::fs::write(&path, &bytes).unwrap();
    let err = read_all(reader_config(&path, Some("Shift_JIS")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert_eq!(
        err.message(),
        format!(
            "{}:4:2: byte 0x82 cannot be decoded as Shift_JIS (field 2 (`名前`)); check that \
             the file is in this encoding, or set `encoding` to the one it is in",
            path.display()
        )
    );

    // UTF-8 (the default): the same place, and what to do.
    std::fs::write(&path, b"id,name\n1,ok\n2,caf\xE9 au lait\n").unwrap();
    let err = read_all(reader_config(&path, None)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert_eq!(
        err.message(),
        format!(
            "{}:3:6: byte 0xE9 cannot be decoded as UTF-8 (field 2 (`name`)); set `encoding` \
             to the file's encoding (`Shift_JIS`, `windows-1252`, ...)",
            path.display()
        )
    );
    // ... and in the header row.
    std::fs::write(&path, b"id,n\xFFme\n1,ok\n").unwrap();
    let err = read_all(reader_config(&path, None)).await.unwrap_err();
    assert!(err.message().starts_with(&format!(
        "{}:1:5: byte 0xFF cannot be decoded as UTF-8 (field 2)",
        path.display()
    )));

    // UTF-16, decoded before it is parsed: an unpaired surrogate.
    let mut bytes = utf16le("id,name\n1,ok\n2,x");
    bytes.extend_from_slice(&[0x00, 0xD8, b'y', 0, b'\n', 0]);
    std::fs::write(&path, &bytes).unwrap();
    let err = read_all(reader_config(&path, None)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(
        err.message()
            .starts_with(&format!("{}:3:4: ", path.display())),
        "{}",
        err.message()
    );
    assert!(err.message().contains("cannot be decoded as UTF-16LE"));
}

#[tokio::test]
async fn an_unknown_encoding_is_a_config_error() {
    let err = CsvItemReader::new(reader_config("in.csv".as_ref(), Some("shift-jiz"))).err();
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message()
            .starts_with("CSV `in.csv`: unknown `encoding` `shift-jiz`; use")
    );
    let err = CsvItemWriter::new(writer_config("out.csv".as_ref(), Some("ebcdic"))).err();
    assert_eq!(err.unwrap().kind(), ErrorKind::Config);
}

#[tokio::test]
async fn a_character_the_encoding_cannot_represent_is_an_error_naming_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let mut writer = CsvItemWriter::new(writer_config(&path, Some("Shift_JIS"))).unwrap();
    writer.open(&ExecutionContext::new()).await.unwrap();
    let mut context = ExecutionContext::new();
    writer
        .write(&[record(json!({"id": "1", "name": "表"}))])
        .await
        .unwrap();
    writer.update(&mut context).await.unwrap();
    let err = writer
        .write(&[
            record(json!({"id": "2", "name": "ソ"})),
            record(json!({"id": "3", "name": "snow ☃"})),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert_eq!(
        err.message(),
        format!(
            "cannot write row 3 to CSV `{}`: field 2 (`name`) holds `☃` (U+2603), which \
             Shift_JIS cannot represent; choose an `encoding` that can (UTF-8 represents every \
             character), or replace the character in a processor",
            path.display()
        )
    );
    writer.close().await.unwrap();
    // Nothing of the refused row reached the file, no `&#9731;`; nor did the row before it
    // in the failed write: the file holds the committed rows.
    let written = std::fs::read(&path).unwrap();
    assert_eq!(written, encode(SHIFT_JIS, "id,name\n1,表\n"));

    // The failed write written again, corrected, gives each row once.
    let mut writer = CsvItemWriter::new(writer_config(&path, Some("Shift_JIS"))).unwrap();
    writer.open(&context).await.unwrap();
    let rows = [
        record(json!({"id": "2", "name": "ソ"})),
        record(json!({"id": "3", "name": "snow"})),
    ];
    assert!(
        writer
            .write(&[rows[0].clone(), record(json!({"id": "3", "name": "☃"}))])
            .await
            .is_err()
    );
    writer.write(&rows).await.unwrap();
    writer.update(&mut context).await.unwrap();
    writer.close().await.unwrap();
    let written = std::fs::read(&path).unwrap();
    assert_eq!(written, encode(SHIFT_JIS, "id,name\n1,表\n2,ソ\n3,snow\n"));

    let err = write_all(
        writer_config(&path, Some("windows-1252")),
        &[record(json!({"名前": "x"}))],
    )
    .await
    .unwrap_err();
    assert!(err.message().starts_with(&format!(
        "cannot write the header row to CSV `{}`: field 1 holds `名`",
        path.display()
    )));
}

#[tokio::test]
async fn a_restarted_encoded_writer_truncates_to_the_saved_offset() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Record> = (1..=6)
        .map(|i| record(json!({"id": i.to_string(), "名前": format!("ｱｲｳ表{i}")})))
        .collect();
    let expected: String = std::iter::once("id,名前\n".to_string())
        .chain((1..=6).map(|i| format!("{i},ｱｲｳ表{i}\n")))
        .collect();
    for (label, bytes) in [
        ("Shift_JIS", encode(SHIFT_JIS, &expected)),
        ("UTF-16LE", utf16le(&expected)),
    ] {
        let path = dir.path().join(format!("out-{label}.csv"));
        let config = || writer_config(&path, Some(label));
        let mut context = ExecutionContext::new();
        let mut writer = CsvItemWriter::new(config()).unwrap();
        writer.open(&context).await.unwrap();
        writer.write(&rows[..3]).await.unwrap();
        writer.update(&mut context).await.unwrap();
        let committed = std::fs::metadata(&path).unwrap().len();
        assert_eq!(
            context.get::<u64>("csv.writer.offset").unwrap(),
            Some(committed)
        );
        // A chunk written and never committed (the run dies).
        writer.write(&rows[3..5]).await.unwrap();
        writer.close().await.unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > committed);

        let mut writer = CsvItemWriter::new(config()).unwrap();
        writer.open(&context).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), committed);
        writer.write(&rows[3..]).await.unwrap();
        writer.update(&mut context).await.unwrap();
        writer.close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{label}");
    }
}

#[tokio::test]
async fn utf_16_and_unsafe_delimiters_are_decoded_first_and_restart_by_record() {
    let dir = tempfile::tempdir().unwrap();
    // ポ is 0x83 0x7C in Shift_JIS: its second byte is `|`.
    let text = "id|名前\n1|ポ\n2|ソポ\n3|ﾎﾟ\n4|表\n";
    let expected = vec![
        record(json!({"id": "1", "名前": "ポ"})),
        record(json!({"id": "2", "名前": "ソポ"})),
        record(json!({"id": "3", "名前": "ﾎﾟ"})),
        record(json!({"id": "4", "名前": "表"})),
    ];
    let sjis = dir.path().join("pipe.csv");
    std::fs::write(&sjis, encode(SHIFT_JIS, text)).unwrap();
    let utf16 = dir.path().join("utf16.csv");
    std::fs::write(&utf16, utf16le(&format!("preamble \"\n{text}"))).unwrap();
    for (path, label, skip) in [(&sjis, "Shift_JIS", 0), (&utf16, "UTF-16LE", 1)] {
        let config = || {
            let mut config = reader_config(path, Some(label));
            config.delimiter = '|';
            config.lines_to_skip = skip;
            config
        };
        assert_eq!(read_all(config()).await.unwrap(), expected, "{label}");
        let mut context = ExecutionContext::new();
        assert_eq!(read_some(config(), &mut context, 3).await, expected[..3]);
        // No byte offset of decoded text is saved: the restart reads up to the record.
        assert_eq!(context.get::<u64>("csv.reader.offset").unwrap(), None);
        assert_eq!(context.get::<u64>("csv.reader.record").unwrap(), Some(4));
        assert_eq!(read_some(config(), &mut context, 3).await, expected[3..]);
    }
}

#[tokio::test]
async fn shift_jis_with_semicolons_is_parsed_in_its_bytes_and_restarts_at_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("semi.csv");
    let first = "id;名前\n1;\"表;ソ\"\n";
    std::fs::write(&path, encode(SHIFT_JIS, &format!("{first}2;能\n"))).unwrap();
    let config = || {
        let mut config = reader_config(&path, Some("Shift_JIS"));
        config.delimiter = ';';
        config
    };
    let expected = [
        record(json!({"id": "1", "名前": "表;ソ"})),
        record(json!({"id": "2", "名前": "能"})),
    ];
    let mut context = ExecutionContext::new();
    assert_eq!(read_some(config(), &mut context, 1).await, expected[..1]);
    // `;` is no trail byte of Shift_JIS: a byte offset of the file is saved.
    let offset = encode(SHIFT_JIS, first).len() as u64;
    assert_eq!(
        context.get::<u64>("csv.reader.offset").unwrap(),
        Some(offset)
    );
    assert_eq!(read_some(config(), &mut context, 5).await, expected[1..]);
}

#[tokio::test]
async fn lines_to_skip_header_false_and_columns_from_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.csv");
    // The skipped lines are not CSV: an unbalanced quote there changes nothing.
    std::fs::write(
        &path,
        "Report \"May\n\nexported by: ops\n1;a b\n2;\"c;d\"\n",
    )
    .unwrap();
    let yaml = format!(
        "path: {}\nlines-to-skip: 3\nheader: false\ncolumns: [id, text]\ndelimiter: \";\"\n",
        path.display()
    );
    let config: CsvReaderConfig = Properties::from_yaml(&yaml).unwrap().deserialize().unwrap();
    assert!(!config.has_header);
    assert_eq!(config.lines_to_skip, 3);
    let expected = vec![
        record(json!({"id": "1", "text": "a b"})),
        record(json!({"id": "2", "text": "c;d"})),
    ];
    assert_eq!(read_all(config.clone()).await.unwrap(), expected);
    let mut context = ExecutionContext::new();
    assert_eq!(
        read_some(config.clone(), &mut context, 1).await,
        expected[..1]
    );
    assert_eq!(context.get::<u64>("csv.reader.line").unwrap(), Some(5));
    assert_eq!(read_some(config, &mut context, 5).await, expected[1..]);

    // `headers` and `has-header` stay accepted; with a header row, `columns` replace it.
    std::fs::write(&path, "# export\nx,y\n1,2\n").unwrap();
    let yaml = format!(
        "path: {}\nlines-to-skip: 1\nhas-header: true\nheaders: [a, b]\n",
        path.display()
    );
    let config: CsvReaderConfig = Properties::from_yaml(&yaml).unwrap().deserialize().unwrap();
    let records = read_all(config).await.unwrap();
    assert_eq!(records, vec![record(json!({"a": "1", "b": "2"}))]);

    // More lines to skip than the file has: no rows.
    let mut config = reader_config(&path, None);
    config.lines_to_skip = 10;
    assert_eq!(read_all(config).await.unwrap(), vec![]);
}

#[tokio::test]
async fn writer_yaml_takes_encoding_delimiter_quote_header_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let yaml = format!(
        "path: {}\nencoding: shift_jis\ndelimiter: \"\\t\"\nquote: \"'\"\nheader: false\n\
         columns: [名前, id]\n",
        path.display()
    );
    let config: CsvWriterConfig = Properties::from_yaml(&yaml).unwrap().deserialize().unwrap();
    write_all(
        config,
        &[
            record(json!({"id": "1", "名前": "表\tソ"})),
            record(json!({"id": "2", "名前": "能'ｱ"})),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        encode(SHIFT_JIS, "'表\tソ'\t1\n'能''ｱ'\t2\n")
    );
}

mod storage {
    use super::*;
    use ikkatsu_items::object::{
        CsvObjectReaderConfig, CsvObjectWriterConfig, ObjectItemReader, ObjectItemWriter,
    };
    use ikkatsu_storage::Storage;

    fn reader(url: &str, path: &str, encoding: Option<&str>, skip: u64) -> ObjectItemReader {
        let mut config = CsvObjectReaderConfig::new(url, path);
        config.encoding = encoding.map(str::to_string);
        config.lines_to_skip = skip;
        ObjectItemReader::csv(config).unwrap()
    }

    async fn read_some(
        reader: &mut ObjectItemReader,
        context: &mut ExecutionContext,
        max: usize,
    ) -> ikkatsu_core::Result<Vec<Record>> {
        reader.open(context).await?;
        let mut items = Vec::new();
        reader.read_chunk(max, &mut items).await?;
        reader.update(context).await?;
        reader.close().await?;
        Ok(items)
    }

    #[tokio::test]
    async fn storage_csv_reads_and_writes_encodings_and_restarts() {
        let url = "memory:csv-encodings";
        let storage = Storage::open(url).unwrap();
        let text = JAPANESE.replace("\r\n", "\n").replace("ｶﾅ\n", "ｶﾅ\r\n");

        // Written: one complete Shift_JIS (or UTF-16, with its mark) file per part.
        for (label, bytes) in [
            ("Shift_JIS", encode(SHIFT_JIS, &text)),
            ("UTF-16LE", utf16le(&text)),
        ] {
            let mut config = CsvObjectWriterConfig::new(url, label);
            config.encoding = Some(label.to_string());
            let mut writer = ObjectItemWriter::csv(config).unwrap();
            let mut context = ExecutionContext::new();
            writer.open(&context).await.unwrap();
            writer.write(&japanese_records()).await.unwrap();
            writer.update(&mut context).await.unwrap();
            writer.close().await.unwrap();
            let part = storage
                .read(&format!("{label}/part-00000.csv"))
                .await
                .unwrap();
            assert_eq!(part.to_vec(), bytes, "{label}");
        }

        // Read, with a line to skip, and restarted in the middle.
        let mut bytes = encode(SHIFT_JIS, "出力日: 2024年5月1日 \"表\n");
        bytes.extend(sjis_fixture_bytes());
        storage.write("in/sjis.csv", bytes).await.unwrap();
        let cases = [
            ("in/sjis.csv", Some("shift_jis"), 1),
            // Found by its byte order mark; decoded first, restarted by record.
            ("UTF-16LE/part-00000.csv", None, 0),
        ];
        for (path, encoding, skip) in cases {
            let mut context = ExecutionContext::new();
            let first = read_some(&mut reader(url, path, encoding, skip), &mut context, 2)
                .await
                .unwrap();
            assert_eq!(first, japanese_records()[..2], "{path}");
            let rest = read_some(&mut reader(url, path, encoding, skip), &mut context, 10)
                .await
                .unwrap();
            assert_eq!(rest, japanese_records()[2..], "{path}");
        }

        // An undecodable byte: the object, line, column and byte.
        let mut bytes = encode(SHIFT_JIS, "id,名前\n1,表\n2,ｱ");
        bytes.extend_from_slice(&[0x82, b'\n']);
        storage.write("bad/sjis.csv", bytes).await.unwrap();
        let mut context = ExecutionContext::new();
        let err = read_some(
            &mut reader(url, "bad/sjis.csv", Some("Shift_JIS"), 0),
            &mut context,
            5,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
        assert!(
            err.message().contains(
                "bad/sjis.csv:3:4: byte 0x82 cannot be decoded as Shift_JIS (field 2 (`名前`))"
            ),
            "{}",
            err.message()
        );

        // A character Shift_JIS cannot represent.
        let mut config = CsvObjectWriterConfig::new(url, "refused");
        config.encoding = Some("Shift_JIS".to_string());
        let mut writer = ObjectItemWriter::csv(config).unwrap();
        writer.open(&ExecutionContext::new()).await.unwrap();
        let err = writer
            .write(&[record(json!({"id": "1", "名前": "☃"}))])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
        assert!(
            err.message()
                .contains("field 2 (`名前`) holds `☃` (U+2603), which Shift_JIS cannot represent"),
            "{}",
            err.message()
        );
    }
}
