//! # ikkatsu-items
//!
//! The built-in components of ikkatsu jobs, one module per family:
//!
//! * [`csv`]: [`CsvItemReader`](csv::CsvItemReader) / [`CsvItemWriter`](csv::CsvItemWriter)
//!   for [`Record`](ikkatsu_core::Record)s, and row and typed variants: one generic
//!   [`CsvReader`](csv::CsvReader) / [`CsvWriter`](csv::CsvWriter) over what a row becomes
//!   ([`CsvItemDecoder`](csv::CsvItemDecoder), [`CsvItemEncoder`](csv::CsvItemEncoder));
//! * [`jsonl`]: JSON Lines readers and writers;
//! * [`object`]: [`ObjectItemReader`](object::ObjectItemReader) /
//!   [`ObjectItemWriter`](object::ObjectItemWriter) for CSV, JSON Lines, JSON arrays and
//!   (feature `parquet`) Parquet on any storage (S3, SFTP, ...; one object or a glob of
//!   them in, restart-safe part files out). CSV and JSON Lines decode and encode records
//!   there exactly as the local components do (one decoder and encoder per format); each
//!   format is one module of [`object`] implementing its ports;
//! * [`script`]: [`ScriptItemProcessor`](script::ScriptItemProcessor), an embedded
//!   [Rhai](https://rhai.rs) script that transforms or filters records;
//! * [`mapping`]: [`FieldMappingItemProcessor`](mapping::FieldMappingItemProcessor), which
//!   renames, selects, defaults and normalises fields;
//! * [`shell`]: [`ShellTasklet`](shell::ShellTasklet), which runs an external command;
//! * [`log`]: [`LogTasklet`](log::LogTasklet), which logs a message.
//!
//! Each component has a configuration struct (its `properties` in job YAML, kebab-case,
//! unknown properties rejected) and a synchronous `new(config) -> Result<Self>`; files are
//! opened in [`ItemStream::open`](ikkatsu_core::ItemStream::open).
//!
//! File readers and writers are restartable: readers save their position after every
//! chunk; writers flush at every chunk and save the size of the output, which a restart
//! truncates back to, so output after a restart has neither loss nor duplicates. A write
//! or commit that fails drops what the chunk in progress had written, so a retry writes it
//! once and a failed run leaves the committed output only.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use ikkatsu_core::prelude::*;
//! use ikkatsu_core::Record;
//! use ikkatsu_items::csv::{CsvItemReader, CsvReaderConfig};
//! use ikkatsu_items::jsonl::{JsonLinesItemWriter, JsonLinesWriterConfig};
//! use ikkatsu_items::script::{ScriptItemProcessor, ScriptProcessorConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let input = dir.path().join("people.csv");
//! let output = dir.path().join("adults.jsonl");
//! std::fs::write(&input, "name,age\nAiko,34\nBen,12\nChloé,58\n")?;
//!
//! let step = ChunkStep::<Record, Record>::builder("adults")
//!     .reader(CsvItemReader::new(CsvReaderConfig::new(&input))?)
//!     .processor(ScriptItemProcessor::new(ScriptProcessorConfig::inline(
//!         "if record.age.parse_int() < 18 { return; } record.name = record.name.to_upper(); record",
//!     ))?)
//!     .writer(JsonLinesItemWriter::new(JsonLinesWriterConfig::new(&output))?)
//!     .chunk_size(2)
//!     .build()?;
//! let job = Job::linear("people", vec![Arc::new(step)])?;
//! let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
//! let execution = operator
//!     .start(&job, JobParameters::new(), CancellationToken::new())
//!     .await?;
//! assert_eq!(execution.status, BatchStatus::Completed);
//! assert_eq!(
//!     std::fs::read_to_string(&output)?,
//!     "{\"name\":\"AIKO\",\"age\":\"34\"}\n{\"name\":\"CHLOÉ\",\"age\":\"58\"}\n"
//! );
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod compress;
pub mod condition;
pub mod csv;
pub mod decider;
pub use ikkatsu_core::duration;
mod file;
pub mod incrementer;
pub mod jsonl;
pub mod log;
pub mod mapping;
pub mod notify;
pub mod object;
pub mod register;
pub mod script;
pub mod sequence;
pub mod shell;
mod text;

pub use duration::HumanDuration;
pub use register::register;
