//! The backlog reader: the input is a backlog's text (gzip-compressed by the target, or,
//! when the first byte says so, the file's bytes as they are). `BacklogReader` gives entries
//! or an error naming the file and line, never a panic. When it reads a backlog through,
//! skipping the first entries gives the rest, the trailer's count is the number of entries,
//! and the entries written again by `BacklogWriter` read back the same.
#![no_main]

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use ikkatsu_overwrite::backlog::{BacklogReader, BacklogWriter};
use ikkatsu_storage::FileInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let dir = ikkatsu_fuzz::scratch_dir("backlog");
    let path = dir.join("backlog.jsonl.gz");
    let bytes = if mode % 8 == 7 {
        body.to_vec()
    } else {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(body).expect("compressing in memory");
        encoder.finish().expect("compressing in memory")
    };
    std::fs::write(&path, &bytes).expect("writing the backlog");

    let Some(all) = read_all(&path, 0) else {
        return;
    };
    let skip = u64::from(mode / 8) % 4;
    let rest = read_all(&path, skip);
    let expected = all.get(skip as usize..).unwrap_or_default();
    assert_eq!(rest.as_deref(), Some(expected), "skipping {skip}");
    assert_eq!(BacklogReader::count(&path).ok(), Some(all.len() as u64));

    let source = BacklogReader::open(&path)
        .map(|reader| reader.header().source.clone())
        .expect("the backlog opened before");
    let copy = dir.join("copy.jsonl.gz");
    let mut writer = BacklogWriter::create(&copy, source.as_deref()).expect("creating a backlog");
    for file in &all {
        writer.write(file).expect("writing a backlog");
    }
    assert_eq!(writer.finish().ok(), Some(all.len() as u64));
    let reader = BacklogReader::open(&copy).expect("reading the backlog written");
    assert_eq!(reader.header().source, source);
    let again: Vec<FileInfo> = reader
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("reading the backlog written");
    assert_eq!(again, all);
});

/// The entries after skipping `skip`, or `None` on an error (which must name the file).
fn read_all(path: &std::path::Path, skip: u64) -> Option<Vec<FileInfo>> {
    let result = BacklogReader::open(path).and_then(|mut reader| {
        let skipped = reader.skip(skip)?;
        assert_eq!(reader.position(), skipped);
        reader.into_iter().collect::<Result<Vec<_>, _>>()
    });
    match result {
        Ok(files) => Some(files),
        Err(err) => {
            let message = err.to_string();
            let shown = path.display().to_string();
            assert!(message.contains(&shown), "{message}");
            None
        }
    }
}
