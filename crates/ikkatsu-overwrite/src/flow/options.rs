//! [`OverwriteOptions`]: the settings of an [`OverwriteFlow`](super::OverwriteFlow).

use std::path::PathBuf;
use std::time::Duration;

use ikkatsu_core::step::RetryPolicy;
use ikkatsu_storage::{Storage, WalkOptions};

use crate::lease::{DEFAULT_LEASE_TTL, LeaseTerms};

/// The least default concurrency on a remote storage (see
/// [`OverwriteOptions::concurrency_for`]).
pub const REMOTE_CONCURRENCY: usize = 8;

/// Retries of a temporary error per operation of a file when none are set.
pub const DEFAULT_RETRIES: u32 = 3;

/// Settings of an [`OverwriteFlow`].
#[derive(Debug, Clone)]
pub struct OverwriteOptions {
    /// Which files of the source to consider.
    pub walk: WalkOptions,
    /// Files processed at once. `None` (the default): 2 × the number of cores, and at least
    /// [`REMOTE_CONCURRENCY`] when the source is a remote storage (see
    /// [`OverwriteOptions::concurrency_for`]).
    pub concurrency: Option<usize>,
    /// Retries of the user function's temporary failures (exit code 75, a timeout, an
    /// error marked temporary). The storage operations of a file (its stat, download and
    /// upload) are retried by the storage itself, with its `retries` option, which
    /// [`OverwriteConfig`](crate::OverwriteConfig) sets to the same count: each operation
    /// of a file gets `limit` retries, never retries of retries.
    pub retry: RetryPolicy,
    /// Files per status-store lookup, and the unit of the process phase's window: at most
    /// four batches of files are in flight, and the committer takes at most two at once.
    pub batch_size: usize,
    /// Where the backlog, the journal and the temporary files live.
    pub state_dir: PathBuf,
    /// The backlog file (default `<state_dir>/backlog.jsonl.gz`).
    pub backlog: Option<PathBuf>,
    /// How long the run lease lives after each heartbeat (see [`crate::lease`]).
    pub lease_ttl: Duration,
    /// Share the work with other runs of the flow instead of refusing them (see
    /// [`crate::cooperate`]; Redis, PostgreSQL and MySQL stores).
    pub cooperate: bool,
}

impl OverwriteOptions {
    /// Defaults with state kept in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        OverwriteOptions {
            walk: WalkOptions::new(),
            concurrency: None,
            retry: RetryPolicy {
                limit: DEFAULT_RETRIES,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(10),
                ..RetryPolicy::default()
            },
            batch_size: 1000,
            state_dir: state_dir.into(),
            backlog: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            cooperate: false,
        }
    }

    /// Files processed at once on `source`: the one set, or the default. A file on a remote
    /// storage spends most of its time waiting for the network (a request chain per file),
    /// so there the default is at least [`REMOTE_CONCURRENCY`]; on the local file system it
    /// is 2 × the number of cores.
    pub fn concurrency_for(&self, source: &Storage) -> usize {
        if let Some(n) = self.concurrency {
            return n.max(1);
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        if source.local_files().is_some() {
            cores * 2
        } else {
            (cores * 2).max(REMOTE_CONCURRENCY)
        }
    }

    /// The backlog file.
    pub fn backlog_path(&self) -> PathBuf {
        self.backlog
            .clone()
            .unwrap_or_else(|| self.state_dir.join("backlog.jsonl.gz"))
    }

    /// The file listing failed paths (JSON Lines `{"path":..,"error":..}`).
    pub fn failures_path(&self) -> PathBuf {
        self.state_dir.join("failures.jsonl")
    }

    pub(super) fn journal_dir(&self) -> PathBuf {
        self.state_dir.join("journal")
    }

    pub(super) fn work_dir(&self) -> PathBuf {
        self.state_dir.join("work")
    }

    /// What the run lease is taken with.
    pub(crate) fn lease_terms(&self) -> LeaseTerms {
        LeaseTerms {
            state_dir: self.state_dir.clone(),
            ttl: self.lease_ttl,
            cooperate: self.cooperate,
        }
    }
}
