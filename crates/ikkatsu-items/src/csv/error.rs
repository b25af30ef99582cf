//! The messages of CSV readers and writers, local or on a storage: every one names the file
//! (or object), the line and the field.

use ikkatsu_core::{Error, ErrorKind, Result};

use crate::text::decode::Undecodable;

/// `c` as the one ASCII byte a CSV `property` (`delimiter`, `quote`) must be; `at` names the
/// file or object.
pub(crate) fn ascii_byte(c: char, property: &str, at: &str) -> Result<u8> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(Error::config(format!(
            "CSV `{at}`: `{property}` must be a single ASCII character, got `{c}`"
        )))
    }
}

/// `field 3 (`name`)`: a field by its 0-based index, with its column name when known.
pub(crate) fn field_name(index: u64, names: Option<&[String]>) -> String {
    let name = names
        .and_then(|names| names.get(index as usize))
        .map(|name| format!(" (`{name}`)"))
        .unwrap_or_default();
    format!("field {}{name}", index + 1)
}

/// `name:line`, or the name alone without a position.
pub(crate) fn at_line(name: &str, pos: Option<&csv::Position>) -> String {
    match pos {
        Some(pos) => format!("{name}:{}", pos.line()),
        None => name.to_string(),
    }
}

/// The error of a row whose number of fields is not `expected`; `explicit` when that
/// number comes from the `columns` property.
pub(crate) fn field_count_error(at: &str, expected: usize, found: usize, explicit: bool) -> Error {
    let why = if explicit {
        " (the `columns` property)"
    } else {
        ""
    };
    Error::new(
        ErrorKind::Parse,
        format!("{at}: wrong number of fields: expected {expected}{why}, found {found}"),
    )
}

/// The message of a field that is not valid UTF-8 (`valid_up_to` counts from the field's
/// start).
fn utf8_message(
    name: &str,
    pos: Option<&csv::Position>,
    names: Option<&[String]>,
    field: usize,
    valid_up_to: usize,
) -> String {
    format!(
        "{}: {} is not valid UTF-8 (valid up to byte {valid_up_to})",
        at_line(name, pos),
        field_name(field as u64, names),
    )
}

/// The error for a row with a field that is not valid UTF-8, naming the first such field
/// like the csv crate does for a `StringRecord`.
pub(crate) fn utf8_error(name: &str, row: &csv::ByteRecord, names: Option<&[String]>) -> Error {
    let (field, valid_up_to) = row
        .iter()
        .enumerate()
        .find_map(|(index, bytes)| {
            std::str::from_utf8(bytes)
                .err()
                .map(|err| (index, err.valid_up_to()))
        })
        .unwrap_or((0, 0));
    Error::new(
        ErrorKind::Parse,
        utf8_message(name, row.position(), names, field, valid_up_to),
    )
}

/// Converts a `csv::Error` of a reader into a core error naming the file and line.
pub(crate) fn csv_error(name: &str, err: csv::Error, names: Option<&[String]>) -> Error {
    let field_name = |index: u64| field_name(index, names);
    let line = |pos: Option<&csv::Position>| at_line(name, pos);
    let message = match err.kind() {
        csv::ErrorKind::Io(io) => {
            if let Some(undecodable) = Undecodable::in_io(io) {
                return undecodable.error(name, None);
            }
            let kind = io.kind();
            let message = format!("cannot read CSV input `{name}`: {io}");
            let kind = match kind {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Io,
            };
            return Error::new(kind, message).with_source(err);
        }
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => {
            let at = line(pos.as_ref());
            let error = field_count_error(&at, *expected_len as usize, *len as usize, false);
            return error.with_source(err);
        }
        csv::ErrorKind::Utf8 { pos, err: utf8 } => {
            utf8_message(name, pos.as_ref(), names, utf8.field(), utf8.valid_up_to())
        }
        csv::ErrorKind::Deserialize { pos, err: de } => match de.field() {
            Some(index) => format!(
                "{}: {}: {}",
                line(pos.as_ref()),
                field_name(index),
                de.kind()
            ),
            None => format!("{}: {}", line(pos.as_ref()), de.kind()),
        },
        _ => format!("{name}: {err}"),
    };
    Error::new(ErrorKind::Parse, message).with_source(err)
}
