//! [`ObjectItemWriter`]: records written as numbered part objects, restart-safe without
//! appending.

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use ikkatsu_core::{Error, ExecutionContext, ItemStream, ItemWriter, Record, Result};
use ikkatsu_storage::Storage;

use super::format::PartEncoder;
use super::{Location, ObjectStorage, ObjectWriterConfig, object_name, storage_builders};
use crate::compress::{Codec, Compression, compress_part};
use crate::file::ContextKeys;

/// A part is closed once about this many bytes are encoded, unless configured otherwise.
const DEFAULT_PART_BYTES: u64 = 128 * 1024 * 1024;

/// How the parts of a writer are named: `<dir>/<prefix>NNNNN.<extension>`.
#[derive(Debug, Clone)]
struct PartNames {
    dir: String,
    prefix: String,
    extension: String,
}

impl PartNames {
    /// The path of part `number`.
    fn path(&self, number: u64) -> String {
        let name = format!("{}{number:05}.{}", self.prefix, self.extension);
        if self.dir.is_empty() {
            name
        } else {
            format!("{}/{name}", self.dir)
        }
    }

    /// The number of the part at `path`, when it is a name this writer gives.
    fn number(&self, path: &str) -> Option<u64> {
        let name = match path.strip_prefix(self.dir.as_str()) {
            Some(rest) if self.dir.is_empty() => rest,
            Some(rest) => rest.strip_prefix('/')?,
            None => return None,
        };
        let digits = name
            .strip_prefix(self.prefix.as_str())?
            .strip_suffix(self.extension.as_str())?
            .strip_suffix('.')?;
        if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// Writes [`Record`]s to a [`Storage`] as part objects `<path>/<prefix>NNNNN.<ext>`, one or
/// more per chunk. Made for one format by [`ObjectItemWriter::csv`],
/// [`ObjectItemWriter::json_lines`], [`ObjectItemWriter::json`] or
/// [`ObjectItemWriter::parquet`].
///
/// Every [`ItemWriter::write`] closes its parts and uploads them under their final names
/// (a part also closes after `part-records` records or about `part-bytes` bytes); a failed
/// `write` deletes the parts it uploaded. At every commit the number of parts, the records
/// in them and the encoder's state (CSV columns, Parquet schema) are saved under
/// `object.writer.parts`, `.records` and `.state`; `open` deletes the parts numbered from
/// the saved count on (a first run: all of them), so a restart leaves neither duplicates
/// nor gaps.
pub struct ObjectItemWriter {
    at: ObjectStorage,
    names: PartNames,
    /// How every part is compressed, if it is.
    codec: Option<Codec>,
    part_records: u64,
    part_bytes: u64,
    encoder: Box<dyn PartEncoder>,
    keys: ContextKeys,
    /// The number of the next part (parts `0..next_part` are written).
    next_part: u64,
    /// Records in the parts written.
    records: u64,
    opened: bool,
    /// Whether part 0 holds the output of no record (a CSV header), written at a commit
    /// before any record; the first record's part replaces it.
    empty_output: bool,
}

impl std::fmt::Debug for ObjectItemWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectItemWriter")
            .field("format", &self.encoder.format())
            .field("storage", &self.at.location.storage)
            .field("path", &self.at.location.path)
            .field("prefix", &self.names.prefix)
            .finish_non_exhaustive()
    }
}

/// Where and how big the parts are: the properties every object writer shares.
pub(crate) struct PartOptions<'a> {
    pub storage: Option<&'a str>,
    pub path: &'a str,
    pub prefix: &'a str,
    pub part_records: Option<u64>,
    pub part_bytes: Option<u64>,
    pub compression: Compression,
}

impl<'a> From<&'a ObjectWriterConfig> for PartOptions<'a> {
    fn from(config: &'a ObjectWriterConfig) -> Self {
        PartOptions {
            storage: config.storage.as_deref(),
            path: &config.path,
            prefix: &config.prefix,
            part_records: config.part_records,
            part_bytes: config.part_bytes,
            compression: config.compression,
        }
    }
}

impl ObjectItemWriter {
    pub(crate) fn new(options: PartOptions<'_>, encoder: Box<dyn PartEncoder>) -> Result<Self> {
        let format = encoder.format();
        let location = Location::new(options.storage, options.path, format)?;
        if options.prefix.is_empty()
            || options.prefix.contains('/')
            || options.prefix.starts_with('.')
        {
            return Err(Error::config(format!(
                "{format} writer on {}: `prefix` must be a non-empty file name start without \
                 `/` and not starting with `.`, got {:?}",
                location.storage, options.prefix
            )));
        }
        let positive = |value: Option<u64>, name: &str, default: u64| match value {
            Some(0) => Err(Error::config(format!(
                "{format} writer on {}: `{name}` must be at least 1",
                location.storage
            ))),
            Some(value) => Ok(value),
            None => Ok(default),
        };
        let part_records = positive(options.part_records, "part-records", u64::MAX)?;
        let part_bytes = positive(options.part_bytes, "part-bytes", DEFAULT_PART_BYTES)?;
        let codec = options.compression.codec_for_parts();
        let extension = match codec {
            Some(codec) => format!("{}.{}", encoder.extension(), codec.extension()),
            None => encoder.extension().to_string(),
        };
        Ok(ObjectItemWriter {
            names: PartNames {
                dir: location.path.clone(),
                prefix: options.prefix.to_string(),
                extension,
            },
            codec,
            at: ObjectStorage::new(location, format, "writer", "written"),
            part_records,
            part_bytes,
            encoder,
            keys: ContextKeys::new("object.writer"),
            next_part: 0,
            records: 0,
            opened: false,
            empty_output: false,
        })
    }

    storage_builders!("object.writer");

    /// Deletes the parts numbered `from` and up: what a run that did not commit them left.
    async fn delete_parts_from(storage: &Storage, names: &PartNames, from: u64) -> Result<u64> {
        let parts: Vec<(u64, String)> = storage
            .list(&names.dir, false)?
            .try_filter_map(|file| {
                let part = names
                    .number(&file.path)
                    .filter(|number| *number >= from)
                    .map(|number| (number, file.path));
                std::future::ready(Ok(part))
            })
            .try_collect()
            .await?;
        for (number, path) in &parts {
            tracing::info!(
                object = %object_name(storage, path),
                part = number,
                "deleting a part not committed by the last run"
            );
            storage.delete(path).await?;
        }
        Ok(parts.len() as u64)
    }

    /// Writes one part object, compressed if so configured; its size.
    async fn put(
        codec: Option<Codec>,
        storage: &Storage,
        path: &str,
        bytes: Bytes,
    ) -> Result<usize> {
        let bytes = match codec {
            Some(codec) => compress_part(codec, bytes, object_name(storage, path)).await?,
            None => bytes,
        };
        let size = bytes.len();
        storage.write(path, bytes).await?;
        Ok(size)
    }

    /// Encodes the current part and uploads it.
    async fn upload_part(&mut self) -> Result<()> {
        let records = self.encoder.records();
        let path = self.names.path(self.next_part);
        let bytes = self.encoder.finish().await.map_err(|err| {
            let name = self
                .at
                .get()
                .map(|storage| object_name(storage, &path))
                .unwrap_or_else(|_| path.clone());
            err.context(format!("cannot encode {name}"))
        })?;
        let storage = self.at.get()?.clone();
        let size = ObjectItemWriter::put(self.codec, &storage, &path, bytes).await?;
        tracing::debug!(
            object = %object_name(&storage, &path),
            records,
            bytes = size,
            "part written"
        );
        self.next_part += 1;
        self.records += records;
        Ok(())
    }

    async fn write_parts(&mut self, items: &[Record]) -> Result<()> {
        self.encoder.prepare(items)?;
        for (index, record) in items.iter().enumerate() {
            if let Err(err) = self.encoder.append(record) {
                let storage = self.at.get()?;
                let part = object_name(storage, &self.names.path(self.next_part));
                let output_record = self.records + self.encoder.records() + 1;
                return Err(err.context(format!(
                    "cannot write record {} of the chunk (record {output_record} of the output) to {part}",
                    index + 1
                )));
            }
            if self.encoder.records() >= self.part_records
                || self.encoder.bytes() >= self.part_bytes
            {
                self.upload_part().await?;
            }
        }
        if self.encoder.records() > 0 {
            self.upload_part().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ItemStream for ObjectItemWriter {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        let storage = self.at.open()?;
        self.encoder.discard();
        self.next_part = self.keys.get_u64(context, "parts")?.unwrap_or(0);
        self.records = self.keys.get_u64(context, "records")?.unwrap_or(0);
        let state = context
            .get_value(&self.keys.key("state"))
            .filter(|state| !state.is_null());
        self.encoder.restore(state)?;
        let deleted =
            ObjectItemWriter::delete_parts_from(&storage, &self.names, self.next_part).await?;
        if deleted > 0 {
            tracing::info!(
                storage = storage.url(),
                path = %self.at.location.path,
                deleted,
                committed = self.next_part,
                "deleted parts left by an earlier run"
            );
        }
        self.empty_output = false;
        self.opened = true;
        Ok(())
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        if self.opened && self.next_part == 0 && !self.empty_output {
            // Nothing written yet: part 0 holds what an output of no record holds. It is
            // not counted as committed: a restart deletes it, the first record replaces it.
            let columns = crate::csv::reader_columns(context)?;
            if let Some(bytes) = self.encoder.empty_output(columns.as_deref())? {
                let path = self.names.path(0);
                let storage = self.at.get()?.clone();
                ObjectItemWriter::put(self.codec, &storage, &path, bytes).await?;
                tracing::debug!(
                    object = %object_name(&storage, &path),
                    "part written without records (the header only)"
                );
                self.empty_output = true;
            }
        }
        if self.opened {
            context.put(self.keys.key("parts"), self.next_part);
            context.put(self.keys.key("records"), self.records);
            if let Some(state) = self.encoder.state() {
                context.put(self.keys.key("state"), state);
            }
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.encoder.discard();
        self.opened = false;
        self.at.close();
        Ok(())
    }
}

#[async_trait]
impl ItemWriter<Record> for ObjectItemWriter {
    async fn write(&mut self, items: &[Record]) -> Result<()> {
        self.at.get()?;
        let first_part = self.next_part;
        let records = self.records;
        if let Err(err) = self.write_parts(items).await {
            // Undo this write: a retry, or the restart, writes these parts again.
            self.encoder.discard();
            if let Ok(storage) = self.at.get().cloned() {
                for number in first_part..self.next_part {
                    let path = self.names.path(number);
                    if let Err(delete) = storage.delete(&path).await {
                        tracing::warn!(
                            object = %object_name(&storage, &path),
                            error = %delete,
                            "cannot delete a part of a failed write; a restart deletes it"
                        );
                    }
                }
            }
            if first_part == 0 {
                // Part 0 may be gone; the next commit without records writes it again.
                self.empty_output = false;
            }
            self.next_part = first_part;
            self.records = records;
            return Err(err);
        }
        Ok(())
    }

    /// A failed `write` has undone itself (its parts are deleted): nothing is left to undo.
    async fn rollback(&mut self, _committed: &ExecutionContext) -> Result<()> {
        Ok(())
    }
}
