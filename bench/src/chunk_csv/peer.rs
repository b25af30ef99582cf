//! The "peer": spring-batch-rs 0.4, the same job written the way its documentation shows:
//! a typed item read by `CsvItemReaderBuilder`, an `ItemProcessor`, a `CsvItemWriterBuilder`,
//! a chunk-oriented step of 1000 items and a `JobBuilder`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use spring_batch_rs::BatchError;
use spring_batch_rs::core::item::{ItemProcessor, ItemProcessorResult};
use spring_batch_rs::core::job::{Job, JobBuilder};
use spring_batch_rs::core::step::StepBuilder;
use spring_batch_rs::item::csv::csv_reader::CsvItemReaderBuilder;
use spring_batch_rs::item::csv::csv_writer::CsvItemWriterBuilder;

use super::CHUNK_SIZE;

#[derive(Deserialize, Serialize)]
struct Person {
    id: u64,
    first_name: String,
    last_name: String,
    email: String,
    city: String,
    amount: f64,
}

struct UppercaseCity;

impl ItemProcessor<Person, Person> for UppercaseCity {
    fn process(&self, mut item: Person) -> ItemProcessorResult<Person> {
        item.city = item.city.to_uppercase();
        Ok(Some(item))
    }
}

pub fn run(input: &Path, output: &Path) -> Result<(), String> {
    // spring-batch-rs's `from_path` builders panic on I/O errors: check paths first so a
    // bad setup is an error message, not a panic.
    std::fs::metadata(input).map_err(|e| format!("cannot open {}: {e}", input.display()))?;

    let reader = CsvItemReaderBuilder::<Person>::new()
        .has_headers(true)
        .from_path(input);
    let processor = UppercaseCity;
    let writer = CsvItemWriterBuilder::<Person>::new()
        .has_headers(true)
        .from_path(output);

    let step = StepBuilder::new("uppercase-city")
        .chunk::<Person, Person>(CHUNK_SIZE as u16)
        .reader(&reader)
        .processor(&processor)
        .writer(&writer)
        .build();
    let job = JobBuilder::new()
        .name("chunk-csv".to_string())
        .start(&step)
        .build();
    job.run()
        .map(|_| ())
        .map_err(|e: BatchError| format!("spring-batch-rs job failed: {e}"))
}
