//! Encoding CSV output from UTF-8: rows are checked before they are written
//! ([`unencodable`]), so that a character the encoding cannot represent is an error naming
//! the row and column (never `&#NNNN;` written silently), and the UTF-8 text the CSV writer
//! produces is encoded as a stream ([`EncodingWriter`], [`encode_text`]).

use std::io::{self, Write};

use encoding_rs::{EncoderResult, UTF_16BE, UTF_16LE};

use super::TextEncoding;

/// The first field of `row` (UTF-8) holding a character `encoding` cannot represent, and
/// that character.
pub(crate) fn unencodable(encoding: TextEncoding, row: &csv::ByteRecord) -> Option<(usize, char)> {
    if encoding.is_utf8() || encoding.is_utf16() {
        return None;
    }
    let mut scratch = Vec::new();
    row.iter().enumerate().find_map(|(index, field)| {
        if field.is_ascii() {
            return None;
        }
        let text = std::str::from_utf8(field).ok()?;
        scratch.clear();
        encode_text(encoding, text, &mut scratch)
            .err()
            .map(|c| (index, c))
    })
}

/// Appends `text` encoded in `encoding` to `out`; `Err` with the first character it cannot
/// represent. The encoder ends in its initial state (ISO-2022-JP: ASCII).
pub(crate) fn encode_text(
    encoding: TextEncoding,
    text: &str,
    out: &mut Vec<u8>,
) -> std::result::Result<(), char> {
    let encoding = encoding.encoding();
    if encoding == UTF_16LE || encoding == UTF_16BE {
        let le = encoding == UTF_16LE;
        out.reserve(text.len() * 2);
        for unit in text.encode_utf16() {
            out.extend_from_slice(&if le {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        return Ok(());
    }
    let mut encoder = encoding.new_encoder();
    let mut rest = text;
    loop {
        let room = encoder
            .max_buffer_length_from_utf8_without_replacement(rest.len())
            .unwrap_or(rest.len() * 4 + 16);
        out.reserve(room);
        let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(rest, out, true);
        rest = &rest[read..];
        match result {
            EncoderResult::InputEmpty => return Ok(()),
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(c) => return Err(c),
        }
    }
}

/// A writer encoding the UTF-8 text written to it into `W`. Rows are checked with
/// [`unencodable`] before they are written; a character that still cannot be encoded
/// (the typed writer's rows are not checked) is an `InvalidData` error naming it.
pub(crate) struct EncodingWriter<W> {
    inner: W,
    encoding: TextEncoding,
    /// The end of the last write when it split a character.
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl<W: Write> EncodingWriter<W> {
    pub(crate) fn new(inner: W, encoding: TextEncoding) -> Self {
        EncodingWriter {
            inner,
            encoding,
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    pub(crate) fn get_ref(&self) -> &W {
        &self.inner
    }

    fn encode(&mut self, text: &str) -> io::Result<()> {
        self.out.clear();
        encode_text(self.encoding, text, &mut self.out).map_err(|c| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the character `{c}` (U+{:04X}) cannot be represented in {}",
                    c as u32,
                    self.encoding.name()
                ),
            )
        })?;
        self.inner.write_all(&self.out)
    }
}

impl<W: Write> Write for EncodingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let joined;
        let bytes = if self.pending.is_empty() {
            buf
        } else {
            self.pending.extend_from_slice(buf);
            joined = std::mem::take(&mut self.pending);
            &joined[..]
        };
        let (text, tail) = match std::str::from_utf8(bytes) {
            Ok(text) => (text, &[][..]),
            // An incomplete character at the end: kept for the next write.
            Err(err) if err.error_len().is_none() => {
                let (valid, tail) = bytes.split_at(err.valid_up_to());
                // `valid` is valid UTF-8 up to there.
                (std::str::from_utf8(valid).unwrap_or_default(), tail)
            }
            Err(err) => return Err(io::Error::new(io::ErrorKind::InvalidData, err)),
        };
        let tail = tail.to_vec();
        self.encode(text)?;
        self.pending = tail;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(label: &str) -> TextEncoding {
        TextEncoding::from_label(Some(label), "x").unwrap()
    }

    #[test]
    fn unencodable_names_the_field_and_character() {
        let row = csv::ByteRecord::from(vec!["ok", "表ソ能", "a ☃"]);
        assert_eq!(unencodable(enc("shift_jis"), &row), Some((2, '☃')));
        assert_eq!(unencodable(enc("windows-1252"), &row), Some((1, '表')));
        assert_eq!(unencodable(enc("utf-16be"), &row), None);
    }

    #[test]
    fn the_writer_encodes_characters_split_across_writes() {
        let text = "表,ｱ\r\n".as_bytes();
        let mut writer = EncodingWriter::new(Vec::new(), enc("shift_jis"));
        for byte in text {
            writer.write_all(std::slice::from_ref(byte)).unwrap();
        }
        let (expected, _, _) = encoding_rs::SHIFT_JIS.encode("表,ｱ\r\n");
        assert_eq!(writer.get_ref(), &expected.into_owned());

        let mut writer = EncodingWriter::new(Vec::new(), enc("utf-16le"));
        writer.write_all("a☃".as_bytes()).unwrap();
        assert_eq!(writer.get_ref(), &vec![b'a', 0, 0x03, 0x26]);

        let mut writer = EncodingWriter::new(Vec::new(), enc("shift_jis"));
        let err = writer.write_all("☃".as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`☃` (U+2603) cannot be represented in Shift_JIS")
        );
    }
}
