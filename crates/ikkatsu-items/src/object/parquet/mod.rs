//! Parquet on a storage (feature `parquet`): read by random access (the footer first, then
//! the row groups, through ranged reads), written one complete file per part.

mod convert;
mod schema;

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use ikkatsu_core::{Error, ErrorKind, Record, Result};
use ikkatsu_storage::Storage;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use serde_json::Value;

pub use schema::{ParquetField, ParquetFieldType};

use super::default_prefix;
use super::format::{Object, PartEncoder, Position, RecordCursor, RecordDecoder};
use super::writer::PartOptions;
use super::{ObjectItemReader, ObjectItemWriter};
use schema::{Cell, ColumnBuilder, Fields};

fn default_batch_size() -> usize {
    1024
}

/// Properties of a Parquet reader (`parquet` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ParquetReaderConfig {
    /// The storage URL (or `@name` in job YAML). Without it, `path` is a local path.
    #[serde(default)]
    pub storage: Option<String>,
    /// The object, or a glob of objects read in sorted order (`in/**/*.parquet`).
    pub path: String,
    /// Globs of objects not to read.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only these top-level columns (default: all); the others are not even read.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Rows decoded at a time (default 1024).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

impl ParquetReaderConfig {
    /// A configuration reading `path` (an object or a glob) on `storage`.
    pub fn new(storage: impl Into<String>, path: impl Into<String>) -> Self {
        ParquetReaderConfig {
            storage: Some(storage.into()),
            path: path.into(),
            exclude: Vec::new(),
            columns: None,
            batch_size: default_batch_size(),
        }
    }
}

/// The compression of the pages of a Parquet part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ParquetCompression {
    /// No compression (`none`).
    #[serde(alias = "uncompressed")]
    None,
    /// Snappy (`snappy`, the default): fast, read by every Parquet tool.
    #[default]
    Snappy,
    /// Zstandard at its default level (`zstd`): smaller files.
    Zstd,
    /// Gzip (`gzip`).
    Gzip,
    /// LZ4 (`lz4`, Parquet's LZ4_RAW).
    Lz4,
}

impl ParquetCompression {
    fn codec(self) -> Compression {
        match self {
            ParquetCompression::None => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
            ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
            ParquetCompression::Lz4 => Compression::LZ4_RAW,
        }
    }
}

/// Properties of a Parquet writer (`parquet` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ParquetWriterConfig {
    /// The storage URL (or `@name` in job YAML). Without it, `path` is a local directory.
    #[serde(default)]
    pub storage: Option<String>,
    /// The directory the parts are written to (`part-00000.parquet`, ...).
    pub path: String,
    /// The start of every part's name (default `part-`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Close a part after this many records (default: no limit; a part still closes at the
    /// end of every chunk).
    #[serde(default)]
    pub part_records: Option<u64>,
    /// Close a part once about this many bytes of values are buffered (default 128 MiB).
    #[serde(default)]
    pub part_bytes: Option<u64>,
    /// The columns: field name → type (`string`, `int32`, `int64`, `float32`, `float64`,
    /// `boolean`, `date`, `timestamp`) or `{ type, nullable }`. Without it, the schema is
    /// inferred from the first chunk (and kept across restarts). Text values are parsed for
    /// typed columns (`"42"` for `int64`), empty text is null.
    #[serde(default)]
    pub schema: Option<indexmap::IndexMap<String, ParquetField>>,
    /// The page compression (default `snappy`).
    #[serde(default)]
    pub compression: ParquetCompression,
    /// The most rows in one row group (default: 1,048,576).
    #[serde(default)]
    pub row_group_size: Option<usize>,
    /// Drop record fields that are not in the schema instead of failing (default `false`).
    #[serde(default)]
    pub ignore_unknown_fields: bool,
}

impl ParquetWriterConfig {
    /// A configuration writing parts into `path` on `storage`, inferring the schema.
    pub fn new(storage: impl Into<String>, path: impl Into<String>) -> Self {
        ParquetWriterConfig {
            storage: Some(storage.into()),
            path: path.into(),
            prefix: default_prefix(),
            part_records: None,
            part_bytes: None,
            schema: None,
            compression: ParquetCompression::default(),
            row_group_size: None,
            ignore_unknown_fields: false,
        }
    }
}

/// Maps a parquet error about `name`, keeping the kind of a storage error inside it.
fn parquet_error(name: &str, what: &str, err: ParquetError) -> Error {
    if let ParquetError::External(source) = &err
        && let Some(inner) = source.downcast_ref::<Error>()
    {
        return Error::new(inner.kind(), format!("{name}: {what}: {}", inner.message()))
            .set_temporary(inner.is_temporary());
    }
    Error::new(ErrorKind::Parse, format!("{name}: {what}: {err}")).with_source(err)
}

/// A Parquet object read through ranged reads of a storage.
struct StorageParquetFile {
    storage: Storage,
    path: String,
    size: u64,
}

impl AsyncFileReader for StorageParquetFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.storage
                .read_range(&self.path, range)
                .await
                .map_err(|err| ParquetError::External(Box::new(err)))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let storage = &self.storage;
            let path = self.path.as_str();
            futures::stream::iter(ranges)
                .map(|range| async move {
                    storage
                        .read_range(path, range)
                        .await
                        .map_err(|err| ParquetError::External(Box::new(err)))
                })
                .buffered(8)
                .try_collect()
                .await
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// The Parquet format of a reader.
pub(crate) struct ParquetDecoder {
    columns: Option<Vec<String>>,
    batch_size: usize,
}

impl ParquetDecoder {
    pub(crate) fn new(config: &ParquetReaderConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::config(format!(
                "Parquet reader `{}`: `batch-size` must be at least 1",
                config.path
            )));
        }
        Ok(ParquetDecoder {
            columns: config.columns.clone(),
            batch_size: config.batch_size,
        })
    }
}

#[async_trait]
impl RecordDecoder for ParquetDecoder {
    fn format(&self) -> &'static str {
        "Parquet"
    }

    async fn open(&self, object: Object<'_>, resume: Position) -> Result<Box<dyn RecordCursor>> {
        let name = object.name;
        let file = StorageParquetFile {
            storage: object.storage.clone(),
            path: object.file.path.clone(),
            size: object.file.size,
        };
        let mut builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(|err| parquet_error(&name, "not a readable Parquet file", err))?;
        let arrow_schema = builder.schema().clone();
        let mut roots: Vec<usize> = (0..arrow_schema.fields().len()).collect();
        if let Some(columns) = &self.columns {
            roots = columns
                .iter()
                .map(|column| {
                    arrow_schema.index_of(column).map_err(|_| {
                        let known: Vec<&str> = arrow_schema
                            .fields()
                            .iter()
                            .map(|field| field.name().as_str())
                            .collect();
                        Error::config(format!(
                            "{name}: no column `{column}` (the `columns` property); its columns \
                             are: {}",
                            known.join(", ")
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
            builder = builder.with_projection(mask);
        }
        for &index in &roots {
            let field = arrow_schema.field(index);
            if !convert::supported(field.data_type()) {
                return Err(Error::new(
                    ErrorKind::Parse,
                    format!(
                        "{name}: column `{}` has the type {}, which cannot be read into a \
                         record; leave it out with the `columns` property",
                        field.name(),
                        field.data_type()
                    ),
                ));
            }
        }
        // Resume: skip the row groups read entirely, then rows within the next one.
        let metadata = builder.metadata().clone();
        let total = u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
        if resume.record > total {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "cannot resume `{name}` at row {}: the object has only {total} rows; it was \
                     replaced since the last run (restore it, or start a new job instance)",
                    resume.record
                ),
            ));
        }
        if resume.record > 0 {
            let mut before = 0u64;
            let mut groups = Vec::new();
            let mut skip = 0u64;
            for (index, group) in metadata.row_groups().iter().enumerate() {
                let rows = u64::try_from(group.num_rows()).unwrap_or(0);
                if groups.is_empty() && before + rows <= resume.record {
                    before += rows;
                    continue;
                }
                if groups.is_empty() {
                    skip = resume.record - before;
                }
                groups.push(index);
            }
            builder = builder.with_row_groups(groups);
            if skip > 0 {
                builder = builder.with_offset(usize::try_from(skip).unwrap_or(usize::MAX));
            }
        }
        let stream = builder
            .with_batch_size(self.batch_size)
            .build()
            .map_err(|err| parquet_error(&name, "cannot read", err))?;
        Ok(Box::new(ParquetCursor {
            stream,
            name,
            pending: VecDeque::new(),
            record: resume.record,
            failed: None,
            fields: None,
        }))
    }
}

struct ParquetCursor {
    stream: ParquetRecordBatchStream<StorageParquetFile>,
    name: String,
    pending: VecDeque<std::result::Result<Record, String>>,
    /// Rows consumed.
    record: u64,
    /// The error that stopped decoding: repeated on every later call.
    failed: Option<Error>,
    /// The fields shared by the records of this object.
    fields: Option<std::sync::Arc<ikkatsu_core::record::Fields>>,
}

#[async_trait]
impl RecordCursor for ParquetCursor {
    async fn next(&mut self) -> Result<Option<Record>> {
        if let Some(err) = &self.failed {
            return Err(Error::new(err.kind(), err.message()).set_temporary(err.is_temporary()));
        }
        if self.pending.is_empty() {
            match self.stream.next().await {
                None => return Ok(None),
                Some(Ok(batch)) => self
                    .pending
                    .extend(convert::batch_to_records(&batch, &mut self.fields)),
                Some(Err(err)) => {
                    let what = format!("cannot decode the rows after row {}", self.record);
                    let err = parquet_error(&self.name, &what, err);
                    self.failed = Some(Error::new(err.kind(), err.message()));
                    return Err(err);
                }
            }
        }
        let Some(row) = self.pending.pop_front() else {
            return Ok(None);
        };
        self.record += 1;
        row.map(Some).map_err(|err| {
            Error::new(
                ErrorKind::Parse,
                format!("{}: row {}: {err}", self.name, self.record),
            )
        })
    }

    fn position(&self) -> Position {
        Position {
            record: self.record,
            offset: 0,
            line: 0,
        }
    }
}

/// The Parquet format of a writer.
pub(crate) struct ParquetEncoder {
    fields: Option<Fields>,
    configured: bool,
    ignore_unknown: bool,
    properties: WriterProperties,
    columns: Vec<ColumnBuilder>,
    records: u64,
    bytes: u64,
}

impl ParquetEncoder {
    pub(crate) fn new(config: &ParquetWriterConfig) -> Result<Self> {
        if let Some(schema) = &config.schema
            && schema.is_empty()
        {
            return Err(Error::config(format!(
                "Parquet writer `{}`: `schema` has no fields; give some, or leave it out to \
                 infer it",
                config.path
            )));
        }
        if config.row_group_size == Some(0) {
            return Err(Error::config(format!(
                "Parquet writer `{}`: `row-group-size` must be at least 1",
                config.path
            )));
        }
        let mut properties = WriterProperties::builder()
            .set_compression(config.compression.codec())
            .set_created_by(format!("ikkatsu {}", env!("CARGO_PKG_VERSION")));
        if let Some(rows) = config.row_group_size {
            properties = properties.set_max_row_group_row_count(Some(rows));
        }
        let mut encoder = ParquetEncoder {
            fields: None,
            configured: config.schema.is_some(),
            ignore_unknown: config.ignore_unknown_fields,
            properties: properties.build(),
            columns: Vec::new(),
            records: 0,
            bytes: 0,
        };
        if let Some(schema) = &config.schema {
            encoder.set_fields(schema.clone());
        }
        Ok(encoder)
    }

    fn set_fields(&mut self, fields: Fields) {
        self.columns = fields
            .values()
            .map(|field| ColumnBuilder::new(field.field_type))
            .collect();
        self.fields = Some(fields);
        self.records = 0;
        self.bytes = 0;
    }

    fn schema_hint(&self) -> &'static str {
        if self.configured {
            "the `schema` property"
        } else {
            "the schema inferred from the first chunk; give a `schema` when records differ"
        }
    }
}

#[async_trait]
impl PartEncoder for ParquetEncoder {
    fn format(&self) -> &'static str {
        "Parquet"
    }

    fn extension(&self) -> &str {
        "parquet"
    }

    fn state(&self) -> Option<Value> {
        match (&self.fields, self.configured) {
            (Some(fields), false) => serde_json::to_value(fields).ok(),
            _ => None,
        }
    }

    fn restore(&mut self, state: Option<&Value>) -> Result<()> {
        if self.configured {
            return Ok(());
        }
        let Some(state) = state else {
            self.fields = None;
            self.columns.clear();
            return Ok(());
        };
        let fields: Fields = serde_json::from_value(state.clone()).map_err(|err| {
            Error::new(
                ErrorKind::Repository,
                format!("the saved Parquet schema cannot be read: {err}"),
            )
        })?;
        self.set_fields(fields);
        Ok(())
    }

    fn prepare(&mut self, records: &[Record]) -> Result<()> {
        if self.fields.is_none() && !records.is_empty() {
            let fields = schema::infer(records);
            tracing::debug!(
                fields = %serde_json::to_string(&fields).unwrap_or_default(),
                "Parquet schema inferred from the first chunk"
            );
            self.set_fields(fields);
        }
        Ok(())
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        let Some(fields) = &self.fields else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "Parquet writer: no schema (append before prepare)",
            ));
        };
        if !self.ignore_unknown
            && let Some(unknown) = record.keys().find(|key| !fields.contains_key(*key))
        {
            let known: Vec<&str> = fields.keys().map(String::as_str).collect();
            return Err(Error::new(
                ErrorKind::Parse,
                format!(
                    "field `{unknown}` is not in the schema ({}: {}); add it, or set \
                     `ignore-unknown-fields: true`",
                    self.schema_hint(),
                    known.join(", ")
                ),
            ));
        }
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(fields.len());
        for (name, field) in fields {
            let cell = schema::convert(record.get(name), field).map_err(|err| {
                Error::new(
                    ErrorKind::Parse,
                    format!("field `{name}` ({}): {err}", field.field_type),
                )
            })?;
            cells.push(cell);
        }
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            self.bytes += cell.size();
            column.append(cell);
        }
        self.records += 1;
        Ok(())
    }

    fn records(&self) -> u64 {
        self.records
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    async fn finish(&mut self) -> Result<Bytes> {
        let Some(fields) = &self.fields else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "Parquet writer: finish without a schema",
            ));
        };
        let schema = Arc::new(schema::arrow_schema(fields));
        let arrays = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        self.records = 0;
        self.bytes = 0;
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|err| {
            Error::new(
                ErrorKind::Unexpected,
                format!("cannot assemble the Parquet columns: {err}"),
            )
        })?;
        let properties = self.properties.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties))?;
            writer.write(&batch)?;
            writer.into_inner()
        })
        .await
        .map_err(|err| {
            Error::new(
                ErrorKind::Unexpected,
                format!("the Parquet encoder task failed: {err}"),
            )
        })?
        .map_err(|err| {
            Error::new(ErrorKind::Io, format!("cannot encode Parquet: {err}")).with_source(err)
        })?;
        Ok(Bytes::from(encoded))
    }

    fn discard(&mut self) {
        for column in &mut self.columns {
            column.finish();
        }
        self.records = 0;
        self.bytes = 0;
    }
}

impl ObjectItemReader {
    /// A Parquet reader: one record per row, read a row group at a time.
    pub fn parquet(config: ParquetReaderConfig) -> Result<Self> {
        let decoder = ParquetDecoder::new(&config)?;
        ObjectItemReader::new(
            config.storage.as_deref(),
            &config.path,
            config.exclude,
            crate::compress::Compression::None,
            Box::new(decoder),
        )
    }
}

impl ObjectItemWriter {
    /// A Parquet writer, with the schema of the configuration or one inferred from the
    /// first chunk.
    pub fn parquet(config: ParquetWriterConfig) -> Result<Self> {
        let encoder = ParquetEncoder::new(&config)?;
        ObjectItemWriter::new(
            PartOptions {
                storage: config.storage.as_deref(),
                path: &config.path,
                prefix: &config.prefix,
                part_records: config.part_records,
                part_bytes: config.part_bytes,
                compression: crate::compress::Compression::None,
            },
            Box::new(encoder),
        )
    }
}
