//! # ikkatsu-overwrite
//!
//! ikkatsu's overwrite flow: transform every file of a tree (any
//! [`Storage`](ikkatsu_storage::Storage): the local file system, SFTP, S3, ...) in place or into a target,
//! exactly once per file version, safely across crashes, stops and concurrent runs.
//!
//! * [`OverwriteConfig`]: the settings, one shape for the `overwrite` step's YAML
//!   properties and the `ikkatsu overwrite` flags (with the `cli` feature); defaults and
//!   validation live there. [`OverwriteRun`] runs it (scan, process, outcome) for both the
//!   command and the [`OverwriteTasklet`].
//! * [`OverwriteFlow`] ([`flow`]): the scan (walk → what still needs work → [`backlog`]),
//!   then the process phase (per file: download or read in place → [`ProcessFn`] →
//!   conditional upload or replacement → record), with a worker pool, a [`journal`] of
//!   uploads in progress, and group commits.
//! * The [status store](status_store): which files are done or failed ([`StatusStore`],
//!   opened from a URL by [`open_status_store`]: `memory:`, a redb file, `redis://`,
//!   `postgres://`, `mysql://`). Any implementation of the trait drives the flow.
//! * One run at a time per flow ([`lease`]), or several sharing the work ([`cooperate`]).
//!
//! Retries: the user function's temporary failures are retried by the flow, storage
//! requests by the storage; both get the `retries` count, never retries of retries
//! (`docs/overwrite.md`, section Retries).
//!
//! The status store on its own:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ikkatsu_core::Result<()> {
//! use ikkatsu_overwrite::{StatusStoreOptions, open_status_store};
//! use ikkatsu_storage::FileInfo;
//!
//! let store = open_status_store("memory:", StatusStoreOptions::new("my-flow")).await?;
//! let walk = vec![FileInfo::new("a.txt", 1), FileInfo::new("b.txt", 2)];
//! assert_eq!(store.needs_processing(walk.clone()).await?.len(), 2);
//!
//! // a.txt was transformed and uploaded (now 3 bytes); b.txt failed.
//! store.report_done(&walk[0], &FileInfo::new("a.txt", 3)).await?;
//! assert_eq!(store.report_error(&walk[1], "exit code 1").await?, 1);
//!
//! // The next walk sees a.txt as uploaded: only b.txt is retried (below max_errors).
//! let next = vec![FileInfo::new("a.txt", 3), FileInfo::new("b.txt", 2)];
//! let todo = store.needs_processing(next).await?;
//! assert_eq!(todo, vec![FileInfo::new("b.txt", 2)]);
//! # Ok(())
//! # }
//! ```
//!
//! ## Cargo features
//!
//! | feature | default | adds |
//! |---------|---------|------|
//! | `embedded` | yes | [`EmbeddedStatusStore`](status_store) (redb file) |
//! | `redis` | no | `RedisStatusStore` (redis 1, tokio, connection manager; one server or a Redis Cluster) |
//! | `postgres` | no | `SqlStatusStore` on PostgreSQL (sqlx) |
//! | `mysql` | no | `SqlStatusStore` on MySQL / MariaDB (sqlx) |
//!
//! | `cli` | no | the `clap::Args` derive on [`OverwriteConfig`] (the `ikkatsu overwrite` flags) |
//!
//! The memory store and the backlog are always built. The backlog format is documented in
//! `docs/backlog.md`; the flow in `docs/overwrite.md`.
#![deny(missing_docs)]

pub mod backlog;
pub mod config;
pub mod cooperate;
pub mod flow;
pub mod journal;
pub mod lease;
mod links;
pub mod process_fn;
pub mod register;
pub mod run;
pub mod status_store;
pub mod step;

pub use backlog::{
    BacklogEntries, BacklogHeader, BacklogReader, BacklogWriter, write_backlog,
    write_backlog_batches,
};
pub use config::{DEFAULT_RETRIES, OverwriteConfig};
pub use flow::{
    DryRunSummary, Failure, OverwriteFlow, OverwriteOptions, ProcessSummary, Progress,
    ProgressCallback, REMOTE_CONCURRENCY, ScanSummary,
};
pub use lease::DEFAULT_LEASE_TTL;
pub use process_fn::{CommandProcess, EXIT_TEMPORARY, ProcessFn, process_fn};
pub use register::register;
pub use run::{AfterScan, OverwriteRun, RunOutcome, RunReport, RunStart};
pub use status_store::ALREADY_RUNNING;
#[cfg(feature = "embedded")]
pub use status_store::EmbeddedStatusStore;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub use status_store::SqlStatusStore;
pub use status_store::{
    Claimed, FileState, FileStatus, Lease, LeaseAttempt, MemoryStatusStore, StatusCounts,
    StatusStore, StatusStoreOptions, StatusStoreUrl, changed_since, mask_url, open_status_store,
    open_status_store_read_only,
};
#[cfg(feature = "redis")]
pub use status_store::{
    REDIS_CLUSTER_BUCKETS, RedisConnection, RedisKeyLayout, RedisStatusStore, redis_cluster_bucket,
    redis_key_slot,
};
pub use step::{COMPLETED_WITH_FAILURES, DEFAULT_STATUS_STORE, OverwriteTasklet};
