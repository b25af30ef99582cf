//! # ikkatsu
//!
//! ikkatsu (一括, "all at once") is a batch-processing framework: jobs made of steps
//! (chunk-oriented read → process → write, or tasklets), joined by transitions on exit codes,
//! recorded in a job repository so that every job can be restarted from its last committed
//! chunk after a failure, a stop or a `kill -9`. Jobs are written in Rust or in YAML.
//!
//! This crate is the facade: it re-exports
//! * [`core`] — the model and engine (`Job`, `ChunkStep`, `Tasklet`, `JobOperator`, ...);
//! * [`items`] — CSV and JSON Lines readers/writers, script and mapping processors, shell
//!   and log tasklets;
//! * [`config`] — YAML job definitions and the component registry;
//! * [`repository`] — SQL job repositories (SQLite by default; PostgreSQL and MySQL behind the
//!   `postgres` and `mysql` features);
//! * [`storage`] — the storage port (local files, memory) with a streaming walker;
//! * [`overwrite`] — the overwrite flow: status stores, backlog, worker pool, the
//!   `overwrite` step.
//!
//! # Feature flags
//! * `sqlite` (default): the embedded SQLite job repository.
//! * `postgres`: the PostgreSQL job repository.
//! * `mysql`: the MySQL/MariaDB job repository and status store (`postgres` likewise adds
//!   the PostgreSQL status store).
//! * `redis`: the Redis status store.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use ikkatsu::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ikkatsu::core::Error> {
//! let writer = VecItemWriter::new();
//! let step = ChunkStep::<String, String>::builder("shout")
//!     .reader(VecItemReader::new(vec!["a".to_string(), "b".to_string()]))
//!     .processor(FnItemProcessor::new(|s: String| Ok(Some(s.to_uppercase()))))
//!     .writer(writer.clone())
//!     .build()?;
//! let job = Job::linear("shout", vec![Arc::new(step)])?;
//! let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
//! let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
//! let operator = JobOperator::new(ikkatsu::repository::connect(&url).await?);
//! let execution = operator
//!     .start(&job, JobParameters::new(), CancellationToken::new())
//!     .await?;
//! assert_eq!(execution.status, BatchStatus::Completed);
//! assert_eq!(writer.items(), vec!["A", "B"]);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub use ikkatsu_config as config;
pub use ikkatsu_core as core;
pub use ikkatsu_items as items;
pub use ikkatsu_overwrite as overwrite;
pub use ikkatsu_repository_sql as repository;
pub use ikkatsu_storage as storage;

/// The names most programs need.
pub mod prelude {
    pub use ikkatsu_config::{ComponentRegistry, JobDefinition};
    pub use ikkatsu_core::prelude::*;
}
