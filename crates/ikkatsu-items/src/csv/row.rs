//! [`CsvRow`]: one CSV row as a Rust item, with its decoder ([`CsvRowDecoder`]) and encoder
//! ([`CsvRowEncoder`]).

use std::sync::Arc;

use ikkatsu_core::{Record, Result};

use super::decode::CsvItemDecoder;
use super::encode::CsvItemEncoder;
use super::error::utf8_error;
use super::layout::{RecordLayout, extend_keys};

/// One CSV row as a Rust item: its fields as text in one buffer, and the column names,
/// shared by all rows of a file (an [`Arc`]). What [`CsvRowItemReader`](super::CsvRowItemReader) reads and
/// [`CsvRowItemWriter`](super::CsvRowItemWriter) writes.
///
/// A little cheaper than a [`Record`] (one allocation per row, two beyond 16 fields, instead
/// of two plus one per field read as a JSON value) and needs no type of its own like
/// [`TypedCsvItemReader`](super::TypedCsvItemReader).
/// Fields are read by column name or index, and replaced in place.
///
/// ```
/// # use std::sync::Arc;
/// use ikkatsu_items::csv::CsvRow;
/// let headers: Arc<[String]> = Arc::from(vec!["id".to_string(), "city".to_string()]);
/// let mut row = CsvRow::new(headers, ["7", "lyon"]);
/// assert_eq!(row.get("city"), Some("lyon"));
/// let city = row.get("city").map(str::to_uppercase).unwrap_or_default();
/// assert!(row.set("city", &city));
/// assert_eq!(row.iter().collect::<Vec<_>>(), ["7", "LYON"]);
/// assert!(!row.set("country", "FR")); // no such column
/// ```
#[derive(Debug, Clone)]
pub struct CsvRow {
    headers: Arc<[String]>,
    /// All fields, concatenated.
    data: String,
    /// The end of every field in `data`.
    ends: FieldEnds,
}

impl PartialEq for CsvRow {
    fn eq(&self, other: &Self) -> bool {
        self.headers == other.headers
            && self.data == other.data
            && self.ends.iter().eq(other.ends.iter())
    }
}

impl Eq for CsvRow {}

/// Field ends kept in the row itself (no allocation) up to this many fields.
const INLINE_ENDS: usize = 16;

/// The end offsets of a row's fields: inline for up to [`INLINE_ENDS`] fields of a row
/// under 4 GiB, else on the heap.
#[derive(Debug, Clone)]
enum FieldEnds {
    Inline { len: u8, ends: [u32; INLINE_ENDS] },
    Heap(Vec<usize>),
}

impl FieldEnds {
    fn new() -> Self {
        FieldEnds::Inline {
            len: 0,
            ends: [0; INLINE_ENDS],
        }
    }

    fn len(&self) -> usize {
        match self {
            FieldEnds::Inline { len, .. } => usize::from(*len),
            FieldEnds::Heap(ends) => ends.len(),
        }
    }

    fn get(&self, index: usize) -> Option<usize> {
        match self {
            FieldEnds::Inline { len, ends } => ends[..usize::from(*len)]
                .get(index)
                .map(|&end| end as usize),
            FieldEnds::Heap(ends) => ends.get(index).copied(),
        }
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        (0..self.len()).map(|index| self.get(index).unwrap_or_default())
    }

    fn push(&mut self, end: usize) {
        match self {
            FieldEnds::Inline { len, ends } => {
                let count = usize::from(*len);
                match u32::try_from(end) {
                    Ok(end) if count < INLINE_ENDS => {
                        ends[count] = end;
                        *len += 1;
                    }
                    _ => {
                        let mut heap: Vec<usize> =
                            ends[..count].iter().map(|&end| end as usize).collect();
                        heap.push(end);
                        *self = FieldEnds::Heap(heap);
                    }
                }
            }
            FieldEnds::Heap(ends) => ends.push(end),
        }
    }

    /// Moves the ends of the fields from `index` on by `new_len - old_len` bytes.
    fn resize_field(&mut self, index: usize, old_len: usize, new_len: usize) {
        let shift = |end: usize| end + new_len - old_len;
        if let FieldEnds::Inline { len, ends } = self {
            let count = usize::from(*len);
            let last = ends[..count].last().map_or(0, |&end| end as usize);
            if index < count && u32::try_from(shift(last)).is_ok() {
                for end in &mut ends[index..count] {
                    // Fits: the last end is the largest.
                    *end = shift(*end as usize) as u32;
                }
                return;
            }
            *self = FieldEnds::Heap(ends[..count].iter().map(|&end| end as usize).collect());
        }
        if let FieldEnds::Heap(ends) = self {
            for end in ends.iter_mut().skip(index) {
                *end = shift(*end);
            }
        }
    }
}

impl CsvRow {
    /// A row of `fields` with the column names `headers`, in the same order. A row may
    /// have more fields than names (the extra ones are only reachable by index) or fewer.
    pub fn new<I, S>(headers: Arc<[String]>, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut data = String::new();
        let mut ends = FieldEnds::new();
        for field in fields {
            data.push_str(field.as_ref());
            ends.push(data.len());
        }
        CsvRow {
            headers,
            data,
            ends,
        }
    }

    /// The column names.
    pub fn headers(&self) -> &Arc<[String]> {
        &self.headers
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the row has no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.len() == 0
    }

    /// The index of the column `name` (the first one, if names repeat).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|header| header == name)
    }

    fn range(&self, index: usize) -> Option<std::ops::Range<usize>> {
        let end = self.ends.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.ends.get(index - 1)?,
        };
        Some(start..end)
    }

    /// The field at `index`.
    pub fn field(&self, index: usize) -> Option<&str> {
        self.range(index).map(|range| &self.data[range])
    }

    /// The field in column `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(self.index_of(name)?)
    }

    /// The field at `index`, to change in place without changing its length (for example
    /// with [`str::make_ascii_uppercase`]).
    pub fn field_mut(&mut self, index: usize) -> Option<&mut str> {
        let range = self.range(index)?;
        Some(&mut self.data[range])
    }

    /// The field in column `name`, to change in place (see [`CsvRow::field_mut`]).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut str> {
        let index = self.index_of(name)?;
        self.field_mut(index)
    }

    /// Replaces the field at `index` with `value`; `false` (and no change) when the row
    /// has no such field.
    pub fn set_field(&mut self, index: usize, value: &str) -> bool {
        let Some(range) = self.range(index) else {
            return false;
        };
        let old_len = range.len();
        self.data.replace_range(range, value);
        if value.len() != old_len {
            self.ends.resize_field(index, old_len, value.len());
        }
        true
    }

    /// Replaces the field in column `name` with `value`; `false` (and no change) when
    /// there is no such column or the row has no field for it.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        match self.index_of(name) {
            Some(index) => self.set_field(index, value),
            None => false,
        }
    }

    /// The fields, in column order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |end| {
            let field = &self.data[start..end];
            start = end;
            field
        })
    }

    /// The row as a [`Record`] (what [`CsvItemReader`](super::CsvItemReader) would have read): string values
    /// keyed by column name, fields without a name keyed `column1`, `column2`, ...
    ///
    /// Rows sharing their headers (all rows of a file) share the record's [`Fields`](ikkatsu_core::record::Fields) too
    /// (the layout of the last headers seen is cached per thread).
    pub fn to_record(&self) -> Record {
        thread_local! {
            static LAST: std::cell::RefCell<Option<(std::sync::Weak<[String]>, RecordLayout)>> =
                const { std::cell::RefCell::new(None) };
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            let cached = matches!(
                &*last,
                Some((headers, _)) if std::ptr::eq(headers.as_ptr(), Arc::as_ptr(&self.headers))
            );
            if !cached {
                *last = Some((Arc::downgrade(&self.headers), RecordLayout::default()));
            }
            match last.as_mut() {
                Some((_, layout)) => {
                    layout.ensure(Some(&self.headers), self.len());
                    let mut start = 0;
                    let ranges = self.ends.iter().map(|end| {
                        let range = start..end;
                        start = end;
                        range
                    });
                    // The ends are character boundaries of `data` (checked when the row was
                    // made); the fallback copies the fields one by one.
                    layout
                        .record_from_text(self.data.clone(), ranges)
                        .unwrap_or_else(|| {
                            layout.record(self.len(), self.iter().map(str::to_owned))
                        })
                }
                None => Record::new(),
            }
        })
    }
}

/// Rows as [`CsvRow`]s, with the column names of the header row (or the `columns` property,
/// or `column1`, `column2`, ...) shared by all rows of a file.
#[derive(Default)]
pub struct CsvRowDecoder {
    /// The column names given to rows (names, then `columnN` for unnamed columns).
    headers: Option<Arc<[String]>>,
}

impl CsvRowDecoder {
    /// The shared column names for a row of `len` fields.
    fn headers(&mut self, names: Option<&[String]>, len: usize) -> Arc<[String]> {
        match &self.headers {
            Some(headers) if headers.len() >= len => headers.clone(),
            _ => {
                let mut keys = Vec::new();
                extend_keys(&mut keys, names, len);
                let headers: Arc<[String]> = keys.into();
                self.headers = Some(headers.clone());
                headers
            }
        }
    }
}

impl CsvItemDecoder for CsvRowDecoder {
    type Item = CsvRow;

    fn start(&mut self, _names: Option<&[String]>) {
        self.headers = None;
    }

    fn decode(
        &mut self,
        row: &csv::ByteRecord,
        name: &str,
        names: Option<&[String]>,
    ) -> Result<CsvRow> {
        let mut ends = FieldEnds::new();
        let mut end = 0;
        for field in row {
            end += field.len();
            ends.push(end);
        }
        // Every field must be valid UTF-8 on its own: the whole row, and no character
        // across a field boundary.
        let data = match std::str::from_utf8(row.as_slice()) {
            Ok(data) if ends.iter().all(|end| data.is_char_boundary(end)) => data.to_owned(),
            _ => return Err(utf8_error(name, row, names)),
        };
        let headers = self.headers(names, ends.len());
        Ok(CsvRow {
            headers,
            data,
            ends,
        })
    }
}

/// The column names of some rows, and where each configured column is among them.
type Selection = (Arc<[String]>, Vec<Option<usize>>);

/// [`CsvRow`]s as CSV rows: with configured columns, those columns looked up by name in
/// every row (missing ones empty); without, every field of the row as it is.
#[derive(Default)]
pub struct CsvRowEncoder {
    /// For configured columns: the column names these indexes were computed for, and the
    /// index of each configured column in such rows.
    selection: Option<Selection>,
}

impl CsvItemEncoder for CsvRowEncoder {
    type Item = CsvRow;

    fn start(&mut self) {
        self.selection = None;
    }

    fn columns_of(item: &CsvRow) -> Vec<String> {
        item.headers().iter().take(item.len()).cloned().collect()
    }

    fn encode(
        &mut self,
        item: &CsvRow,
        columns: &[String],
        configured: bool,
        row: &mut csv::ByteRecord,
    ) -> Result<()> {
        row.clear();
        if !configured {
            for field in item.iter() {
                row.push_field(field.as_bytes());
            }
            return Ok(());
        }
        let indexes = match &self.selection {
            Some((headers, indexes)) if Arc::ptr_eq(headers, item.headers()) => indexes,
            _ => {
                let indexes = columns.iter().map(|c| item.index_of(c)).collect();
                &self.selection.insert((item.headers().clone(), indexes)).1
            }
        };
        for index in indexes {
            let field = index.and_then(|i| item.field(i)).unwrap_or("");
            row.push_field(field.as_bytes());
        }
        Ok(())
    }
}
