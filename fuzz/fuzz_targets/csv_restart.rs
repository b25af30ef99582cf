//! The CSV reader's restart: the input is 32 bytes of settings, then the CSV file. The
//! settings pick the dialect (header row, explicit columns, lines to skip, trim, encoding,
//! delimiter, quote) and a saved position (`csv.reader.offset`, `.line`, `.record` in the
//! step's execution context, as a restart finds it, or as a changed file leaves it). Opening
//! a `CsvItemReader` at that position and reading everything gives records or an error,
//! never a panic. And the restart promise: when the file reads through from the start,
//! reading some rows, saving the position and opening a new reader there gives exactly the
//! remaining rows.
#![no_main]

use futures::executor::block_on;
use ikkatsu_core::{ExecutionContext, ItemReader, ItemStream, Record};
use ikkatsu_items::csv::{CsvItemReader, CsvReaderConfig};
use libfuzzer_sys::fuzz_target;

const SETTINGS: usize = 32;

const ENCODINGS: [Option<&str>; 8] = [
    None,
    Some("UTF-8"),
    Some("Shift_JIS"),
    Some("UTF-16LE"),
    Some("UTF-16BE"),
    Some("windows-1252"),
    Some("EUC-JP"),
    Some("GB18030"),
];

const DELIMITERS: [char; 8] = [',', ';', '\t', '|', ' ', '"', '\'', 'a'];

struct Settings {
    config: CsvReaderConfig,
    /// The saved position, as the context holds it.
    context: ExecutionContext,
    /// Rows read before saving the position, for the restart check.
    split: usize,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

/// Reads the settings bytes: 0 flags (1 no header row, 2 trim, 4 explicit columns, 8 and 16
/// lines to skip), 1 encoding, 2 delimiter, 3 quote, 4 saved keys (1 offset, 2 line,
/// 4 record, 8 offset taken modulo the file's length + 1), 5 rows before the restart,
/// 6 number of explicit columns, 8..32 offset, line, record.
fn settings(head: &[u8], path: &std::path::Path, len: u64) -> Settings {
    let flags = head[0];
    let mut config = CsvReaderConfig::new(path);
    config.has_header = flags & 1 == 0;
    config.trim = flags & 2 != 0;
    if flags & 4 != 0 {
        let count = usize::from(head[6] % 5);
        config.headers = Some((1..=count).map(|i| format!("c{i}")).collect());
    }
    config.lines_to_skip = u64::from((flags >> 3) & 3);
    config.encoding = ENCODINGS[usize::from(head[1]) % ENCODINGS.len()].map(str::to_string);
    config.delimiter = match head[2] {
        0..=127 => DELIMITERS[usize::from(head[2]) % DELIMITERS.len()],
        other => char::from(other - 128),
    };
    config.quote = match head[3] {
        0..=127 => '"',
        other => char::from(other - 128),
    };
    let keys = head[4];
    let mut context = ExecutionContext::new();
    let mut offset = u64_at(head, 8);
    if keys & 8 != 0 {
        offset %= len + 1;
    }
    if keys & 1 != 0 {
        context.put("csv.reader.offset", offset);
    }
    if keys & 2 != 0 {
        context.put("csv.reader.line", u64_at(head, 16));
    }
    if keys & 4 != 0 {
        context.put("csv.reader.record", u64_at(head, 24));
    }
    Settings {
        config,
        context,
        split: usize::from(head[5]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, csv)) = data.split_first_chunk::<SETTINGS>() else {
        return;
    };
    let dir = ikkatsu_fuzz::scratch_dir("csv");
    let path = dir.join("input.csv");
    std::fs::write(&path, csv).expect("writing the CSV file");
    let settings = settings(head, &path, csv.len() as u64);

    // From the saved position: records or an error naming the file.
    if let Err(err) = read_from(&settings.config, &settings.context, usize::MAX) {
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    // From the start, then again in two runs.
    let start = ExecutionContext::new();
    let Ok((all, _)) = read_from(&settings.config, &start, usize::MAX) else {
        return;
    };
    let split = settings.split.min(all.len());
    let (first, saved) = match read_from(&settings.config, &start, split) {
        Ok(read) => read,
        Err(err) => panic!("the first {split} rows do not read again: {err}"),
    };
    assert_eq!(first.as_slice(), &all[..split]);
    match read_from(&settings.config, &saved, usize::MAX) {
        Ok((rest, _)) => assert_eq!(rest.as_slice(), &all[split..], "restarted at {saved:?}"),
        Err(err) => panic!("the restart at {saved:?} fails: {err}"),
    }
});

/// Opens a reader on `context`, reads up to `max` records and saves its position, as a
/// chunk step does.
fn read_from(
    config: &CsvReaderConfig,
    context: &ExecutionContext,
    max: usize,
) -> ikkatsu_core::Result<(Vec<Record>, ExecutionContext)> {
    block_on(async {
        let mut reader = CsvItemReader::new(config.clone())?;
        reader.open(context).await?;
        let mut records = Vec::new();
        while records.len() < max {
            match reader.read().await? {
                Some(record) => records.push(record),
                None => break,
            }
        }
        let mut saved = context.clone();
        reader.update(&mut saved).await?;
        reader.close().await?;
        Ok((records, saved))
    })
}
