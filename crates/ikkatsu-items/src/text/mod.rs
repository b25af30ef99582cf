//! Text encodings of the CSV readers and writers, local and on a storage: one decoder and
//! encoder stack ([`decode`], [`encode`]) both use.
//!
//! An encoding is any label `encoding_rs` knows (the WHATWG labels: `Shift_JIS`, `EUC-JP`,
//! `windows-1252`, `UTF-16LE`, ...; case-insensitive), UTF-8 by default. A byte order mark
//! at the start of an input wins over the configured encoding (a UTF-8 BOM is stripped,
//! `FF FE` / `FE FF` read as UTF-16LE / UTF-16BE).
//!
//! Reading takes one of two paths ([`TextEncoding::parses_raw`]):
//!
//! * **raw**: UTF-8, and the encodings in which no byte of a multi-byte character can be
//!   taken for the delimiter, the quote or a line break (the single-byte encodings, EUC-JP,
//!   and the other ASCII-compatible ones as long as the delimiter and the quote are ASCII
//!   characters below `@` other than digits, such as `,` `;` `:` `"` `'` and tab). The CSV parser works on the file's bytes and each
//!   row's fields are decoded afterwards ([`decode::RowDecoder`]), so positions stay byte
//!   offsets of the file. UTF-8 rows are not copied at all.
//! * **decoded**: UTF-16, ISO-2022-JP, and Shift_JIS, GBK, Big5, ... with a delimiter or
//!   quote that can be the second byte of a character (`|`, for instance). The input is
//!   decoded to UTF-8 as a stream ([`decode::StreamDecoder`]) before it is parsed; a restart
//!   reads the input again from its start up to the saved record.

pub(crate) mod decode;
pub(crate) mod encode;

use encoding_rs::{EUC_JP, Encoding, REPLACEMENT, UTF_8, UTF_16BE, UTF_16LE};
use ikkatsu_core::{Error, Result};

/// The encoding of a CSV input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextEncoding(&'static Encoding);

impl Default for TextEncoding {
    fn default() -> Self {
        TextEncoding(UTF_8)
    }
}

impl TextEncoding {
    /// The encoding of the `encoding` property (`None`: UTF-8); `at` names the file or
    /// object in the message of an unknown label.
    pub(crate) fn from_label(label: Option<&str>, at: &str) -> Result<Self> {
        let Some(label) = label else {
            return Ok(TextEncoding(UTF_8));
        };
        match Encoding::for_label(label.trim().as_bytes()) {
            Some(encoding) if encoding != REPLACEMENT => Ok(TextEncoding(encoding)),
            _ => Err(Error::config(format!(
                "CSV `{at}`: unknown `encoding` `{label}`; use a WHATWG encoding label such as \
                 `UTF-8`, `Shift_JIS`, `EUC-JP`, `windows-1252`, `ISO-8859-15`, `UTF-16LE` or \
                 `UTF-16BE` (see https://encoding.spec.whatwg.org/#names-and-labels)"
            ))),
        }
    }

    /// The encoding of an input that starts with `head` (at least its first 3 bytes, when
    /// it has them): the encoding of its byte order mark if it has one, else `self`; and
    /// the length of that mark.
    pub(crate) fn sniff(self, head: &[u8]) -> (TextEncoding, usize) {
        match Encoding::for_bom(head) {
            Some((encoding, len)) => (TextEncoding(encoding), len),
            None => (self, 0),
        }
    }

    /// The `encoding_rs` encoding.
    pub(crate) fn encoding(self) -> &'static Encoding {
        self.0
    }

    /// The encoding's name (`Shift_JIS`, `UTF-8`, ...).
    pub(crate) fn name(self) -> &'static str {
        self.0.name()
    }

    /// Whether this is UTF-8 (the fast path: nothing to decode or encode).
    pub(crate) fn is_utf8(self) -> bool {
        self.0 == UTF_8
    }

    /// Whether this is UTF-16 (written by the writers' own encoder, with a byte order mark).
    pub(crate) fn is_utf16(self) -> bool {
        self.0 == UTF_16LE || self.0 == UTF_16BE
    }

    /// Whether CSV with this `delimiter` and `quote` can be parsed in the raw bytes and
    /// the fields decoded afterwards (see the module documentation): no byte of a
    /// multi-byte character equals the delimiter, the quote, `\r` or `\n`.
    pub(crate) fn parses_raw(self, delimiter: u8, quote: u8) -> bool {
        let encoding = self.0;
        // The trail bytes of Shift_JIS, GBK, Big5 and EUC-KR are 0x40 or more, those of
        // gb18030 0x40 or more or a digit (its four-byte characters), those of EUC-JP 0xA1
        // or more.
        let safe = |byte: u8| byte < 0x40 && !byte.is_ascii_digit();
        encoding == UTF_8
            || (encoding.is_ascii_compatible()
                && (encoding.is_single_byte()
                    || encoding == EUC_JP
                    || (safe(delimiter) && safe(quote))))
    }

    /// The byte order mark a writer starts a new output with: one for UTF-16, none else.
    pub(crate) fn bom(self) -> &'static [u8] {
        if self.0 == UTF_16LE {
            b"\xFF\xFE"
        } else if self.0 == UTF_16BE {
            b"\xFE\xFF"
        } else {
            b""
        }
    }
}

/// `byte 0x82` or `bytes 0x82 0x20`.
pub(crate) fn describe_bytes(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("0x{b:02X}")).collect();
    match hex.len() {
        0 => "a byte sequence".to_string(),
        1 => format!("byte {}", hex[0]),
        _ => format!("bytes {}", hex.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_whatwg_labels_case_insensitive() {
        let name = |label| TextEncoding::from_label(Some(label), "x.csv").map(|e| e.name());
        assert_eq!(name("shift_jis").unwrap(), "Shift_JIS");
        assert_eq!(name("SJIS").unwrap(), "Shift_JIS");
        assert_eq!(name("euc-jp").unwrap(), "EUC-JP");
        assert_eq!(name("Windows-1252").unwrap(), "windows-1252");
        assert_eq!(name("latin1").unwrap(), "windows-1252");
        assert_eq!(name("utf-16le").unwrap(), "UTF-16LE");
        assert_eq!(name(" UTF-8 ").unwrap(), "UTF-8");
        assert_eq!(TextEncoding::from_label(None, "x").unwrap().name(), "UTF-8");
        let err = TextEncoding::from_label(Some("klingon"), "in/x.csv").unwrap_err();
        assert_eq!(err.kind(), ikkatsu_core::ErrorKind::Config);
        assert!(
            err.message()
                .contains("CSV `in/x.csv`: unknown `encoding` `klingon`")
        );
        // The "replacement" encoding of the WHATWG labels is no encoding to read a file in.
        assert!(TextEncoding::from_label(Some("iso-2022-kr"), "x").is_err());
    }

    #[test]
    fn raw_parsing_only_where_no_trail_byte_is_a_csv_byte() {
        let enc = |label| TextEncoding::from_label(Some(label), "x").unwrap();
        assert!(enc("utf-8").parses_raw(b'|', b'"'));
        assert!(enc("windows-1252").parses_raw(b'|', b'"'));
        assert!(enc("euc-jp").parses_raw(b'|', b'"'));
        assert!(enc("shift_jis").parses_raw(b',', b'"'));
        assert!(enc("shift_jis").parses_raw(b'\t', b'\''));
        assert!(enc("shift_jis").parses_raw(b';', b'"'));
        assert!(enc("gb18030").parses_raw(b':', b'"'));
        // gb18030's four-byte characters have digits as second and fourth bytes.
        assert!(!enc("gb18030").parses_raw(b'0', b'"'));
        // A trail byte of Shift_JIS, GBK, Big5 and EUC-KR can be `@` or a letter.
        assert!(!enc("big5").parses_raw(b'@', b'"'));
        assert!(!enc("euc-kr").parses_raw(b',', b'A'));
        // ポ is 0x83 0x7C in Shift_JIS.
        assert!(!enc("shift_jis").parses_raw(b'|', b'"'));
        assert!(!enc("utf-16le").parses_raw(b',', b'"'));
        assert!(!enc("iso-2022-jp").parses_raw(b',', b'"'));
    }

    #[test]
    fn a_byte_order_mark_wins() {
        let sjis = TextEncoding::from_label(Some("shift_jis"), "x").unwrap();
        assert_eq!(sjis.sniff(b"\xEF\xBB\xBFa,b").0.name(), "UTF-8");
        assert_eq!(sjis.sniff(b"\xEF\xBB\xBFa,b").1, 3);
        assert_eq!(sjis.sniff(b"\xFF\xFEa\0").0.name(), "UTF-16LE");
        assert_eq!(sjis.sniff(b"\xFE\xFF\0a").0.name(), "UTF-16BE");
        assert_eq!(sjis.sniff(b"a,b"), (sjis, 0));
        assert_eq!(describe_bytes(&[0x82]), "byte 0x82");
        assert_eq!(describe_bytes(&[0x82, 0x20]), "bytes 0x82 0x20");
    }
}
