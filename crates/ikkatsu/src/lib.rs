//! # ikkatsu
//!
//! ikkatsu (一括, "all at once") is a batch-processing framework: jobs made of steps
//! (chunk-oriented read → process → write, or tasklets), joined by transitions on exit codes,
//! recorded in a job repository so that every job can be restarted from its last committed
//! chunk after a failure, a stop or a `kill -9`. Jobs are written in Rust or in YAML.
//!
//! This crate is the facade: it re-exports
//! * [`core`] — the model and engine (`Job`, `ChunkStep`, `Tasklet`, `JobOperator`, ...);
//! * [`items`] — CSV, JSON Lines, JSON and Parquet readers/writers on local files and any
//!   storage, script and mapping processors, shell and log tasklets;
//! * [`config`] — YAML job definitions and the component registry; [`registry`] makes one
//!   holding every built-in component type;
//! * [`sql`] — SQL access written once (URL parsing, connecting), shared by the job
//!   repository and the SQL status store;
//! * [`repository`] — SQL job repositories (SQLite by default; PostgreSQL and MySQL behind the
//!   `postgres` and `mysql` features);
//! * [`storage`] — the storage port with a streaming walker: local files and memory, and
//!   behind features FTP/FTPS, SFTP, S3, WebDAV, Google Cloud Storage and Azure Blob Storage,
//!   and storage backends of the program's own ([`storage::StorageBackend`],
//!   [`storage::register_scheme`]);
//! * [`overwrite`] — the overwrite flow: status stores, backlog, worker pool, the
//!   `overwrite` step;
//! * [`broker`] — the partition brokers of remote partitioning: RabbitMQ and NATS
//!   JetStream behind the `rabbitmq` and `nats` features.
//!
//! # Feature flags
//! * `sqlite` (default): the embedded SQLite job repository.
//! * `postgres`: the PostgreSQL job repository.
//! * `mysql`: the MySQL/MariaDB job repository and status store (`postgres` likewise adds
//!   the PostgreSQL status store).
//! * `redis`: the Redis status store.
//! * `parquet` (default): the `parquet` reader and writer types.
//! * `ftp`, `sftp`, `s3`, `webdav`, `gcs`, `azblob`: the remote storage backends
//!   (`docs/storage.md`), for named storages, the file items and the `overwrite` step.
//! * `rabbitmq`, `nats`: the partition brokers for `amqp://`/`amqps://` and
//!   `nats://`/`tls://` URLs (`docs/partitioning.md`).
//!
//! # Built-in component types
//!
//! [`registry`] registers the types of each component crate through its `register`
//! function; a crate of your own adds its types the same way, without editing ikkatsu:
//!
//! | crate | registers | table |
//! |-------|-----------|-------|
//! | `ikkatsu-items` | readers and writers `csv`, `jsonl`, `json`, `parquet`; processors `script`, `mapping`; tasklets `shell`, `log`, `noop` | [`items::register`](ikkatsu_items::register) |
//! | `ikkatsu-overwrite` | tasklet `overwrite` | [`overwrite::register`](ikkatsu_overwrite::register) |
//! | `ikkatsu-broker` | brokers `amqp`, `amqps` (feature `rabbitmq`), `nats`, `tls` (feature `nats`) | [`broker::register`](ikkatsu_broker::register) |
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

pub use ikkatsu_broker as broker;
pub use ikkatsu_config as config;
pub use ikkatsu_core as core;
pub use ikkatsu_items as items;
pub use ikkatsu_net as net;
pub use ikkatsu_overwrite as overwrite;
pub use ikkatsu_repository_sql as repository;
pub use ikkatsu_sql as sql;
pub use ikkatsu_storage as storage;

use std::sync::Arc;

use ikkatsu_config::{AppConfig, ComponentRegistry};

/// A registry holding every built-in component type (see the table above), whose `@name`
/// storages and status stores are resolved through the application config `app`
/// (`AppConfig::default()` when there is none). Add your own types and refs to it.
///
/// ```
/// use ikkatsu::config::{AppConfig, ComponentKind};
///
/// let registry = ikkatsu::registry(AppConfig::default());
/// assert!(registry.has_type(ComponentKind::Reader, "csv"));
/// assert!(registry.has_type(ComponentKind::Tasklet, "overwrite"));
/// ```
pub fn registry(app: AppConfig) -> ComponentRegistry {
    let mut registry = ComponentRegistry::new();
    register_builtins(&mut registry, &Arc::new(app));
    registry
}

/// Adds every built-in component type to `registry`, resolving `@name` references through
/// `app`.
pub fn register_builtins(registry: &mut ComponentRegistry, app: &Arc<AppConfig>) {
    ikkatsu_items::register(registry, app);
    ikkatsu_overwrite::register(registry, app);
    ikkatsu_broker::register(registry);
}

/// The names most programs need.
pub mod prelude {
    pub use ikkatsu_config::{ComponentRegistry, JobDefinition};
    pub use ikkatsu_core::prelude::*;
}
