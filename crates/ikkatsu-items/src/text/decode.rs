//! Decoding CSV input to UTF-8: a parsed row's fields ([`RowDecoder`], the raw path), or
//! the whole input as a stream ([`StreamDecoder`], [`DecodingReader`], the decoded path);
//! and where an undecodable byte is ([`Undecodable`]).

use std::borrow::Cow;
use std::io::{self, BufRead, Read};

use encoding_rs::{Decoder, DecoderResult};
use ikkatsu_core::{Error, ErrorKind};

use super::{TextEncoding, describe_bytes};

/// An undecodable byte sequence: where it is (1-based line, and column in characters of
/// that line) and its bytes when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undecodable {
    pub line: u64,
    pub column: u64,
    pub bytes: Vec<u8>,
    /// The encoding's name.
    pub encoding: &'static str,
}

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} cannot be decoded as {}",
            self.line,
            self.column,
            describe_bytes(&self.bytes),
            self.encoding
        )
    }
}

impl std::error::Error for Undecodable {}

impl Undecodable {
    /// The error of a reader: `name:line:column: ...` naming the field when known, kind
    /// Parse, with what to do.
    pub(crate) fn error(&self, name: &str, field: Option<String>) -> Error {
        let field = field.map(|field| format!(" ({field})")).unwrap_or_default();
        let hint = if self.encoding == "UTF-8" {
            "; set `encoding` to the file's encoding (`Shift_JIS`, `windows-1252`, ...)"
        } else {
            "; check that the file is in this encoding, or set `encoding` to the one it is in"
        };
        Error::new(ErrorKind::Parse, format!("{name}:{self}{field}{hint}"))
    }

    /// The undecodable sequence found in an `io::Error` of a [`DecodingReader`].
    pub(crate) fn in_io(err: &io::Error) -> Option<&Undecodable> {
        err.get_ref()?.downcast_ref::<Undecodable>()
    }
}

/// Finds the first undecodable sequence in `raw`, the raw bytes of a row that starts on
/// `line`. `None` when all of it decodes.
pub(crate) fn locate(encoding: TextEncoding, raw: &[u8], line: u64) -> Option<Undecodable> {
    let mut decoder = encoding.encoding().new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(raw.len())
            .unwrap_or(raw.len() * 3),
    );
    let (result, read) = decoder.decode_to_string_without_replacement(raw, &mut out, true);
    let DecoderResult::Malformed(bad, after) = result else {
        return None;
    };
    let end = read.saturating_sub(usize::from(after));
    let start = end.saturating_sub(usize::from(bad));
    // The text before the bad bytes is `out` (the decoder writes nothing past them).
    let newlines = out.bytes().filter(|&b| b == b'\n').count() as u64;
    let last_line = out.rsplit('\n').next().unwrap_or("");
    Some(Undecodable {
        line: line + newlines,
        column: last_line.chars().count() as u64 + 1,
        bytes: raw[start..end].to_vec(),
        encoding: encoding.name(),
    })
}

/// Decodes the fields of rows parsed in the raw bytes (the raw path).
pub(crate) struct RowDecoder {
    encoding: TextEncoding,
    /// The decoded row, reused.
    out: csv::ByteRecord,
}

/// What `row` becomes: its fields decoded by `fields`, then made an item by `decode`.
/// `Ok(Err(field))`: field `field` does not decode, in the file's encoding, or as UTF-8 when
/// `decode` refused a row of UTF-8 input (`raw`) that is not UTF-8 (only UTF-8 rows reach
/// the item decoder undecoded); `Err`: any other failure of `decode`.
pub(crate) fn decode_row<T>(
    fields: &mut RowDecoder,
    raw: Option<TextEncoding>,
    row: &csv::ByteRecord,
    decode: impl FnOnce(&csv::ByteRecord) -> ikkatsu_core::Result<T>,
) -> ikkatsu_core::Result<std::result::Result<T, usize>> {
    let decoded = match fields.decode(row) {
        Ok(decoded) => decoded,
        Err(field) => return Ok(Err(field)),
    };
    match decode(decoded) {
        Ok(item) => Ok(Ok(item)),
        Err(err) => match row.iter().position(|f| std::str::from_utf8(f).is_err()) {
            Some(field) if raw.is_some_and(TextEncoding::is_utf8) => Ok(Err(field)),
            _ => Err(err),
        },
    }
}

impl RowDecoder {
    pub(crate) fn new(encoding: TextEncoding) -> Self {
        RowDecoder {
            encoding,
            out: csv::ByteRecord::new(),
        }
    }

    /// `row` in UTF-8: `row` itself in UTF-8 input (not checked here: the item decoders
    /// do), else its fields decoded (with its position). `Err(index)`: the first field
    /// that does not decode.
    pub(crate) fn decode<'a>(
        &'a mut self,
        row: &'a csv::ByteRecord,
    ) -> std::result::Result<&'a csv::ByteRecord, usize> {
        if self.encoding.is_utf8() {
            return Ok(row);
        }
        self.out.clear();
        for (index, field) in row.iter().enumerate() {
            if field.is_ascii() {
                self.out.push_field(field);
                continue;
            }
            match self
                .encoding
                .encoding()
                .decode_without_bom_handling_and_without_replacement(field)
            {
                Some(text) => self.out.push_field(text.as_bytes()),
                None => return Err(index),
            }
        }
        self.out.set_position(row.position().cloned());
        Ok(&self.out)
    }

    /// The fields of a row as strings (a header row); `Err(index)` as for
    /// [`decode`](Self::decode), also for a UTF-8 field that is not valid UTF-8.
    pub(crate) fn strings(
        &mut self,
        row: &csv::ByteRecord,
    ) -> std::result::Result<Vec<String>, usize> {
        let decoded = self.decode(row)?;
        decoded
            .iter()
            .enumerate()
            .map(|(index, field)| match String::from_utf8_lossy(field) {
                Cow::Borrowed(text) => Ok(text.to_owned()),
                Cow::Owned(_) => Err(index),
            })
            .collect()
    }
}

/// Decodes an input to UTF-8 as a stream (the decoded path), counting lines and columns
/// for the messages.
pub(crate) struct StreamDecoder {
    decoder: Decoder,
    encoding: TextEncoding,
    /// The line and column (in characters) the next decoded character is at.
    line: u64,
    column: u64,
    /// Whether the end of the input was decoded (the decoder takes no more input).
    finished: bool,
}

impl StreamDecoder {
    /// A decoder of input in `encoding` whose byte order mark (if any) is already skipped.
    pub(crate) fn new(encoding: TextEncoding) -> Self {
        StreamDecoder {
            decoder: encoding.encoding().new_decoder_without_bom_handling(),
            encoding,
            line: 1,
            column: 1,
            finished: false,
        }
    }

    /// Decodes `input` (`last`: the end of the input) and appends the text to `out`;
    /// returns the number of input bytes consumed (all of them unless an error).
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        last: bool,
    ) -> std::result::Result<usize, Undecodable> {
        if self.finished {
            return Ok(0);
        }
        let start = out.len();
        let room = self
            .decoder
            .max_utf8_buffer_length_without_replacement(input.len())
            .unwrap_or(input.len() * 3 + 16);
        out.resize(start + room, 0);
        let (result, read, written) =
            self.decoder
                .decode_to_utf8_without_replacement(input, &mut out[start..], last);
        out.truncate(start + written);
        self.count(&out[start..]);
        match result {
            DecoderResult::InputEmpty => {
                self.finished = last;
                Ok(read)
            }
            DecoderResult::OutputFull => Ok(read),
            DecoderResult::Malformed(bad, after) => {
                let end = read.saturating_sub(usize::from(after));
                let begin = end.saturating_sub(usize::from(bad));
                Err(Undecodable {
                    line: self.line,
                    column: self.column,
                    bytes: input[begin..end].to_vec(),
                    encoding: self.encoding.name(),
                })
            }
        }
    }

    fn count(&mut self, text: &[u8]) {
        for &byte in text {
            if byte == b'\n' {
                self.line += 1;
                self.column = 1;
            } else if byte & 0xC0 != 0x80 {
                self.column += 1;
            }
        }
    }
}

/// Bytes read from the inner reader at a time.
const RAW_BUFFER: usize = 64 * 1024;

/// A reader of UTF-8 text decoded from `R` (the decoded path of a local file). An
/// undecodable byte is an `InvalidData` error holding the [`Undecodable`].
pub(crate) struct DecodingReader<R> {
    inner: R,
    decoder: StreamDecoder,
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    text: Vec<u8>,
    text_pos: usize,
    eof: bool,
}

impl<R: Read> DecodingReader<R> {
    pub(crate) fn new(inner: R, encoding: TextEncoding) -> Self {
        DecodingReader {
            inner,
            decoder: StreamDecoder::new(encoding),
            raw: vec![0; RAW_BUFFER],
            raw_start: 0,
            raw_end: 0,
            text: Vec::with_capacity(RAW_BUFFER * 2),
            text_pos: 0,
            eof: false,
        }
    }

    /// Decodes more text into the empty text buffer; leaves it empty only at the end.
    fn refill(&mut self) -> io::Result<()> {
        self.text.clear();
        self.text_pos = 0;
        while self.text.is_empty() {
            if self.raw_start == self.raw_end && !self.eof {
                self.raw_start = 0;
                self.raw_end = loop {
                    match self.inner.read(&mut self.raw) {
                        Ok(n) => break n,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                };
                self.eof = self.raw_end == 0;
            }
            if self.eof && self.raw_start == self.raw_end {
                // Flush what the decoder holds (an incomplete character is an error).
                self.decoder
                    .decode(&[], &mut self.text, true)
                    .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
                return Ok(());
            }
            let input = &self.raw[self.raw_start..self.raw_end];
            let read = self
                .decoder
                .decode(input, &mut self.text, false)
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
            self.raw_start += read;
        }
        Ok(())
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for DecodingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.text_pos >= self.text.len() {
            self.refill()?;
        }
        Ok(&self.text[self.text_pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.text_pos = (self.text_pos + amt).min(self.text.len());
    }
}

/// Skips `lines` lines (each up to and including a `\n`) of `reader`; returns the number
/// of bytes skipped and of lines skipped (fewer at the end of the input).
pub(crate) fn skip_lines<R: BufRead>(reader: &mut R, lines: u64) -> io::Result<(u64, u64)> {
    let mut bytes = 0;
    for skipped in 0..lines {
        let mut line_done = false;
        while !line_done {
            let available = reader.fill_buf()?;
            if available.is_empty() {
                return Ok((bytes, skipped));
            }
            let n = match available.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    line_done = true;
                    at + 1
                }
                None => available.len(),
            };
            reader.consume(n);
            bytes += n as u64;
        }
    }
    Ok((bytes, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(label: &str) -> TextEncoding {
        TextEncoding::from_label(Some(label), "x").unwrap()
    }

    #[test]
    fn locate_gives_line_column_and_bytes() {
        let (raw, _, _) = encoding_rs::SHIFT_JIS.encode("表,\"ｱ\nソ\"");
        let mut raw = raw.into_owned();
        raw.push(0x82); // a lead byte without a trail byte
        raw.extend_from_slice(b",x\n");
        let found = locate(enc("shift_jis"), &raw, 7).unwrap();
        assert_eq!(found.line, 8);
        assert_eq!(found.column, 3);
        assert_eq!(found.bytes, vec![0x82]);
        assert_eq!(
            found.to_string(),
            "8:3: byte 0x82 cannot be decoded as Shift_JIS"
        );
        assert_eq!(locate(enc("shift_jis"), b"a,b\n", 1), None);
    }

    #[test]
    fn the_decoding_reader_decodes_across_buffers_and_reports_where() {
        let text = "名前,ｶﾅ\n".repeat(20_000);
        let (raw, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
        let mut decoded = String::new();
        DecodingReader::new(&raw[..], enc("shift_jis"))
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, text);

        let mut utf16: Vec<u8> = "a,b\nc,"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        utf16.extend_from_slice(&[0x00, 0xD8]); // an unpaired high surrogate
        utf16.extend_from_slice(&[b'x', 0]);
        let err = DecodingReader::new(&utf16[..], enc("utf-16le"))
            .read_to_string(&mut decoded)
            .unwrap_err();
        let found = Undecodable::in_io(&err).unwrap();
        assert_eq!((found.line, found.column), (2, 3));
    }

    #[test]
    fn skip_lines_stops_at_the_end() {
        let mut input = &b"one\r\ntwo\nthree"[..];
        assert_eq!(skip_lines(&mut input, 2).unwrap(), (9, 2));
        assert_eq!(input, b"three");
        assert_eq!(skip_lines(&mut input, 5).unwrap(), (5, 0));
    }
}
