//! The "ikkatsu" contender: the same job on ikkatsu, as a user of its Rust API writes it:
//! a chunk step of 1000 items with ikkatsu's CSV reader and writer and a processor that
//! uppercases `city`, launched by a `JobOperator` over a SQLite job repository (a new
//! database file per run, so every run is a first run that commits all its chunks).
//!
//! `--ikkatsu-items record` (default) uses `CsvItemReader`/`CsvItemWriter`, whose items are
//! `Record`s (what YAML-defined jobs run on); `--ikkatsu-items typed` uses the serde-typed
//! `TypedCsvItemReader`/`TypedCsvItemWriter` with the same struct as the peer;
//! `--ikkatsu-items row` uses `CsvRowItemReader`/`CsvRowItemWriter`, whose items are
//! `CsvRow`s (the fields of a row as text, by column name).
//!
//! Built only with the `ikkatsu` feature (default), which needs ../crates to compile; without
//! it (`scripts/bench --without-ikkatsu`) the contender fails with a message.

use std::path::Path;

use super::ItemsKind;

#[cfg(not(feature = "ikkatsu"))]
pub fn run(_input: &Path, _output: &Path, _items: ItemsKind) -> Result<(), String> {
    Err(
        "this ikkatsu-bench was built without the `ikkatsu` feature, so it has no ikkatsu \
         contender; build it with default features (`scripts/bench chunk-csv`), which needs \
         ../crates/ikkatsu-{core,items,repository-sql} to compile"
            .into(),
    )
}

#[cfg(feature = "ikkatsu")]
pub fn run(input: &Path, output: &Path, items: ItemsKind) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    runtime
        .block_on(imp::run(input, output, items))
        .map_err(|e| format!("ikkatsu job failed: {e}"))
}

#[cfg(feature = "ikkatsu")]
mod imp {
    use std::path::Path;
    use std::sync::Arc;

    use ikkatsu_core::prelude::*;
    use ikkatsu_core::{Record, Step};
    use ikkatsu_items::csv::{
        CsvItemReader, CsvItemWriter, CsvReaderConfig, CsvRow, CsvRowItemReader, CsvRowItemWriter,
        CsvWriterConfig, TypedCsvItemReader, TypedCsvItemWriter,
    };
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use super::super::{CHUNK_SIZE, ItemsKind};

    #[derive(Clone, Deserialize, Serialize)]
    struct Person {
        id: u64,
        first_name: String,
        last_name: String,
        email: String,
        city: String,
        amount: f64,
    }

    pub async fn run(input: &Path, output: &Path, items: ItemsKind) -> Result<(), Error> {
        let db = output.with_file_name("ikkatsu-jobs.db");
        let _ = std::fs::remove_file(&db);
        let url = format!("sqlite://{}", db.display());
        let repository = ikkatsu_repository_sql::connect(&url).await?;
        let operator = JobOperator::new(repository);

        let step: Arc<dyn Step> = match items {
            ItemsKind::Record => Arc::new(
                ChunkStep::<Record, Record>::builder("uppercase-city")
                    .reader(CsvItemReader::new(CsvReaderConfig::new(input))?)
                    .processor(FnItemProcessor::new(|mut record: Record| {
                        if let Some(Value::String(city)) = record.get_mut("city") {
                            *city = city.to_uppercase();
                        }
                        Ok(Some(record))
                    }))
                    .writer(CsvItemWriter::new(CsvWriterConfig::new(output))?)
                    .chunk_size(CHUNK_SIZE)
                    .build()?,
            ),
            ItemsKind::Typed => Arc::new(
                ChunkStep::<Person, Person>::builder("uppercase-city")
                    .reader(TypedCsvItemReader::<Person>::new(CsvReaderConfig::new(
                        input,
                    ))?)
                    .processor(FnItemProcessor::new(|mut person: Person| {
                        person.city = person.city.to_uppercase();
                        Ok(Some(person))
                    }))
                    .writer(TypedCsvItemWriter::<Person>::new(CsvWriterConfig::new(
                        output,
                    ))?)
                    .chunk_size(CHUNK_SIZE)
                    .build()?,
            ),
            ItemsKind::Row => Arc::new(
                ChunkStep::<CsvRow, CsvRow>::builder("uppercase-city")
                    .reader(CsvRowItemReader::new(CsvReaderConfig::new(input))?)
                    .processor(FnItemProcessor::new(|mut row: CsvRow| {
                        if let Some(city) = row.get("city").map(str::to_uppercase) {
                            row.set("city", &city);
                        }
                        Ok(Some(row))
                    }))
                    .writer(CsvRowItemWriter::new(CsvWriterConfig::new(output))?)
                    .chunk_size(CHUNK_SIZE)
                    .build()?,
            ),
        };
        let job = Job::linear("chunk-csv", vec![step])?;
        let execution = operator
            .start(&job, JobParameters::new(), CancellationToken::new())
            .await?;
        if execution.status != BatchStatus::Completed {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "job ended {:?}: {:?}",
                    execution.status, execution.exit_status
                ),
            ));
        }
        Ok(())
    }
}
