use std::io::{Read, Seek, SeekFrom, Write};

use futures::StreamExt;

use super::*;

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

fn zstd(text: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(text, 1).unwrap()
}

fn compressed(codec: Codec, text: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Gzip => gzip(text),
        Codec::Zstd => zstd(text),
    }
}

#[test]
fn the_codec_follows_the_extension_or_the_property() {
    assert_eq!(
        Compression::Auto.codec_for("in/a.csv.gz"),
        Some(Codec::Gzip)
    );
    assert_eq!(
        Compression::Auto.codec_for("A.JSONL.GZIP"),
        Some(Codec::Gzip)
    );
    assert_eq!(Compression::Auto.codec_for("a.zst"), Some(Codec::Zstd));
    assert_eq!(Compression::Auto.codec_for("a.csv.zstd"), Some(Codec::Zstd));
    assert_eq!(Compression::Auto.codec_for("a.csv"), None);
    assert_eq!(Compression::Auto.codec_for("gz"), None);
    assert_eq!(Compression::None.codec_for("a.gz"), None);
    assert_eq!(Compression::Gzip.codec_for("a.csv"), Some(Codec::Gzip));
    assert_eq!(Compression::Zstd.codec_for("a.gz"), Some(Codec::Zstd));
    assert_eq!(Compression::Auto.codec_for_parts(), None);
    assert_eq!(Compression::Gzip.codec_for_parts(), Some(Codec::Gzip));
}

#[test]
fn the_property_takes_names_and_aliases() {
    for (text, expected) in [
        ("auto", Compression::Auto),
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("gz", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("zst", Compression::Zstd),
    ] {
        let parsed: Compression = serde_json::from_value(serde_json::json!(text)).unwrap();
        assert_eq!(parsed, expected, "{text}");
    }
    let err = serde_json::from_value::<Compression>(serde_json::json!("brotli")).unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `brotli`"),
        "{err}"
    );
}

/// A file of several members (frames) is read whole, and seeks forward and backward
/// land on the right decompressed byte.
#[test]
fn an_input_file_reads_every_member_and_seeks_in_the_decompressed_text() {
    for codec in [Codec::Gzip, Codec::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let mut bytes = compressed(codec, b"first member\n");
        bytes.extend(compressed(codec, b"second member\n"));
        std::fs::write(&path, &bytes).unwrap();

        let file = std::fs::File::open(&path).unwrap();
        let mut input = InputFile::new(file, &path, Some(codec)).unwrap();
        assert!(input.plain().is_none());
        let mut text = String::new();
        input.read_to_string(&mut text).unwrap();
        assert_eq!(text, "first member\nsecond member\n", "{codec:?}");

        assert_eq!(input.seek(SeekFrom::Start(6)).unwrap(), 6);
        let mut word = [0; 6];
        input.read_exact(&mut word).unwrap();
        assert_eq!(&word, b"member");
        assert_eq!(input.seek(SeekFrom::Start(13)).unwrap(), 13);
        input.read_exact(&mut word).unwrap();
        assert_eq!(&word, b"second");
        assert_eq!(input.stream_position().unwrap(), 19);

        input.resume_at(20).unwrap();
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "member\n");

        let err = input.resume_at(100).unwrap_err().to_string();
        assert!(
            err.contains("cannot resume") && err.contains("has only 27 bytes"),
            "{err}"
        );
    }
}

#[test]
fn a_plain_input_file_is_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(&path, "a,b\n").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let mut input = InputFile::new(file, &path, None).unwrap();
    assert!(input.plain().is_some());
    let err = input.resume_at(9).unwrap_err().to_string();
    assert!(err.contains("has only 4 bytes"), "{err}");
}

#[test]
fn a_file_that_is_not_compressed_as_said_is_an_error_not_garbage() {
    for codec in [Codec::Gzip, Codec::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.gz");
        std::fs::write(&path, "id,name\n1,a\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut input = InputFile::new(file, &path, Some(codec)).unwrap();
        let err = input.read_to_end(&mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("cannot decompress"), "{codec:?}: {err}");
    }
}

/// Every flush closes a member: the file is a complete compressed file after each, and
/// its size then is where a restart may cut it.
#[test]
fn an_output_file_closes_one_member_per_flush() {
    for codec in [Codec::Gzip, Codec::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut output = OutputFile::new(std::fs::File::create(&path).unwrap(), Some(codec));
        output.write_all(b"chunk 1\n").unwrap();
        output.flush().unwrap();
        let first = std::fs::metadata(&path).unwrap().len();
        assert!(first > 0);
        // A flush without writes adds no empty member.
        output.flush().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), first);
        output.write_all(b"chunk 2\n").unwrap();
        output.flush().unwrap();
        // A member left open (a crash before the commit) is cut off by a restart.
        output.write_all(b"uncommitted\n").unwrap();
        drop(output);

        let bytes = std::fs::read(&path).unwrap();
        let mut input =
            InputFile::new(std::fs::File::open(&path).unwrap(), &path, Some(codec)).unwrap();
        let mut text = String::new();
        input.read_to_string(&mut text).unwrap();
        assert!(
            text.starts_with("chunk 1\nchunk 2\n"),
            "{codec:?}: {text:?}"
        );

        std::fs::write(&path, &bytes[..first as usize]).unwrap();
        let mut input =
            InputFile::new(std::fs::File::open(&path).unwrap(), &path, Some(codec)).unwrap();
        let mut text = String::new();
        input.read_to_string(&mut text).unwrap();
        assert_eq!(text, "chunk 1\n", "{codec:?}");
    }
}

#[tokio::test]
async fn a_stream_is_decompressed_in_any_chunking_and_a_truncated_one_is_an_error() {
    let text: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("{i},row {i}\n").into_bytes())
        .collect();
    for codec in [Codec::Gzip, Codec::Zstd] {
        let mut bytes = compressed(codec, &text[..50_000]);
        bytes.extend(compressed(codec, &text[50_000..]));
        for chunk in [1, 7, 4096, 1 << 20] {
            let chunks: Vec<ikkatsu_core::Result<bytes::Bytes>> = bytes
                .chunks(chunk)
                .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                .collect();
            let mut stream =
                decompress_stream(futures::stream::iter(chunks).boxed(), codec, "obj".into());
            let mut out = Vec::new();
            while let Some(next) = stream.next().await {
                out.extend_from_slice(&next.unwrap());
            }
            assert!(out == text, "{codec:?} in chunks of {chunk}");
        }
        let truncated = bytes::Bytes::copy_from_slice(&bytes[..bytes.len() - 5]);
        let mut stream = decompress_stream(
            futures::stream::iter([Ok(truncated)]).boxed(),
            codec,
            "s3://b/in.csv.gz".into(),
        );
        let mut error = None;
        while let Some(next) = stream.next().await {
            if let Err(err) = next {
                error = Some(err.to_string());
            }
        }
        let error = error.expect("a truncated stream fails");
        assert!(
            error.contains("cannot decompress `s3://b/in.csv.gz`") && error.contains("complete"),
            "{codec:?}: {error}"
        );
    }
}
