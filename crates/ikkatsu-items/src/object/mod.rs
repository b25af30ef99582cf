//! Records in files on any [`Storage`] (local directories, memory, and the remote backends
//! of `ikkatsu-storage`: SFTP, S3, ...): CSV, JSON Lines, JSON arrays and (feature
//! `parquet`) Parquet.
//!
//! * [`ObjectItemReader`] reads one object, or every object matching a glob
//!   (`in/**/*.parquet`) one after the other in sorted path order, like Spring Batch's
//!   `MultiResourceItemReader`. Text formats are streamed (memory does not grow with the
//!   object); Parquet is read by random access, the footer first, then a row group at a time.
//! * [`ObjectItemWriter`] writes *part files* (`out/part-00000.parquet`, `part-00001`, ...):
//!   object stores cannot append, so every `write` of a chunk finishes its parts (a part
//!   also closes after `part-records` records or about `part-bytes` bytes) and uploads them.
//!
//! # Formats
//!
//! The reader and writer know no format: they drive a format's ports (a `RecordDecoder`
//! that opens a cursor over one object, a `PartEncoder` that encodes parts, both in
//! `object/format.rs`). A format is one module that implements them and adds its
//! constructor (`ObjectItemReader::csv`, ...); CSV and JSON Lines reuse the decoders and
//! encoders of the local components ([`csv`](crate::csv), [`jsonl`](crate::jsonl)).
//!
//! # Restart
//!
//! The reader saves, at every chunk commit, the object it is in and its position there
//! (`object.reader.file`, `.record`, `.offset`, `.line`); a restart lists the objects again,
//! finds that one, and continues right after the last committed record (text formats by a
//! ranged read from the saved byte offset, Parquet by skipping whole row groups first).
//! Objects sorted before it are done.
//!
//! The writer saves the number of committed parts (`object.writer.parts`), the records in
//! them and what it inferred (CSV columns, the Parquet schema). Parts are only uploaded
//! under their final name, numbered from the committed count, so whatever a failed or
//! killed run uploaded after its last commit has a number at or above that count: `open`
//! deletes such parts before writing, and the chunk is written again. The output never
//! holds a record twice and never misses one. A `write` that fails deletes the parts it
//! uploaded, so a retried chunk write does not duplicate either. A first run (no saved
//! state) deletes every part with the writer's name pattern in the directory: the output
//! replaces the previous one.
//!
//! # Example
//!
//! ```
//! use ikkatsu_core::prelude::*;
//! use ikkatsu_core::Record;
//! use ikkatsu_items::object::{
//!     CsvObjectReaderConfig, ObjectItemReader, ObjectItemWriter, ObjectWriterConfig,
//! };
//! use ikkatsu_storage::Storage;
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ikkatsu_core::Result<()> {
//! let storage = Storage::open("memory:docs-example")?;
//! storage.write("in/2024-01.csv", "id,name\n1,Aiko\n2,Ben\n").await?;
//! storage.write("in/2024-02.csv", "id,name\n3,Chloé\n").await?;
//!
//! let reader = ObjectItemReader::csv(CsvObjectReaderConfig::new("memory:docs-example", "in/*.csv"))?;
//! let writer =
//!     ObjectItemWriter::json_lines(ObjectWriterConfig::new("memory:docs-example", "out"))?;
//! let step = ChunkStep::<Record, Record>::builder("copy")
//!     .reader(reader)
//!     .writer(writer)
//!     .chunk_size(2)
//!     .build()?;
//! let job = Job::linear("copy", vec![Arc::new(step)])?;
//! let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
//! let execution = operator
//!     .start(&job, JobParameters::new(), CancellationToken::new())
//!     .await?;
//! assert_eq!(execution.status, BatchStatus::Completed);
//! // One part per chunk.
//! assert_eq!(
//!     storage.read("out/part-00000.jsonl").await?.as_ref(),
//!     b"{\"id\":\"1\",\"name\":\"Aiko\"}\n{\"id\":\"2\",\"name\":\"Ben\"}\n"
//! );
//! assert_eq!(
//!     storage.read("out/part-00001.jsonl").await?.as_ref(),
//!     "{\"id\":\"3\",\"name\":\"Chloé\"}\n".as_bytes()
//! );
//! # Ok(())
//! # }
//! ```

mod csv;
mod format;
mod json;
mod jsonl;
mod location;
#[cfg(feature = "parquet")]
mod parquet;
mod partitioner;
mod reader;
mod source;
mod writer;

use serde::Deserialize;

use crate::compress::Compression;

use location::{Location, ObjectStorage, is_glob, literal_prefix, object_name, storage_builders};

pub use self::csv::{CsvObjectReaderConfig, CsvObjectWriterConfig};
#[cfg(feature = "parquet")]
pub use self::parquet::{
    ParquetCompression, ParquetField, ParquetFieldType, ParquetReaderConfig, ParquetWriterConfig,
};
pub use partitioner::{FilesPartitioner, FilesPartitionerConfig};
pub use reader::ObjectItemReader;
pub use writer::ObjectItemWriter;

/// Properties of a JSON Lines or JSON array reader on a storage (`jsonl` with `storage`,
/// `json` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ObjectReaderConfig {
    /// The storage URL (`s3://bucket`, `sftp://host/dir`, `file:///data`, `memory:name`,
    /// ...; `@name` in job YAML is resolved through the application config). Without it,
    /// `path` is a local path.
    #[serde(default)]
    pub storage: Option<String>,
    /// The object to read, relative to the storage root, or a glob (`in/**/*.jsonl`,
    /// `*` and `?` do not cross `/`, `**` any number of directories) whose matches are read
    /// one after the other in sorted path order.
    pub path: String,
    /// Globs of objects not to read, even though `path` matches them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// How the objects are compressed (default `auto`: by each object's extension, `.gz`
    /// gzip, `.zst` Zstandard; or `none`, `gzip`, `zstd` for all).
    #[serde(default)]
    pub compression: Compression,
}

impl ObjectReaderConfig {
    /// A configuration reading `path` (an object or a glob) on `storage`.
    pub fn new(storage: impl Into<String>, path: impl Into<String>) -> Self {
        ObjectReaderConfig {
            storage: Some(storage.into()),
            path: path.into(),
            exclude: Vec::new(),
            compression: Compression::Auto,
        }
    }
}

fn default_prefix() -> String {
    "part-".to_string()
}

/// Properties of a JSON Lines or JSON array writer on a storage (`jsonl` with `storage`,
/// `json` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ObjectWriterConfig {
    /// The storage URL (or `@name` in job YAML). Without it, `path` is a local directory.
    #[serde(default)]
    pub storage: Option<String>,
    /// The directory (prefix) the parts are written to, relative to the storage root;
    /// `""` for the root.
    pub path: String,
    /// The start of every part's name (default `part-`): parts are named
    /// `<prefix><5-digit number>.<extension>`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Close a part after this many records (default: no limit; a part still closes at the
    /// end of every chunk).
    #[serde(default)]
    pub part_records: Option<u64>,
    /// Close a part once about this many bytes are encoded (default 128 MiB).
    #[serde(default)]
    pub part_bytes: Option<u64>,
    /// `gzip` or `zstd` compresses every part and adds `.gz` or `.zst` to its name
    /// (`part-00000.jsonl.gz`); `auto` (the default) and `none` write plain parts.
    #[serde(default)]
    pub compression: Compression,
}

impl ObjectWriterConfig {
    /// A configuration writing parts into `path` on `storage`.
    pub fn new(storage: impl Into<String>, path: impl Into<String>) -> Self {
        ObjectWriterConfig {
            storage: Some(storage.into()),
            path: path.into(),
            prefix: default_prefix(),
            part_records: None,
            part_bytes: None,
            compression: Compression::Auto,
        }
    }
}
