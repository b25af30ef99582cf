//! The one place where the OpenDAL layer stack is built.

use std::time::Duration;

use opendal::Operator;
use opendal::layers::{ConcurrentLimitLayer, LoggingLayer, RetryLayer, TimeoutLayer};

/// Tuning of the layers every storage gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// Deadline of control operations (stat, delete, ...). Default 60 s.
    pub timeout: Duration,
    /// Deadline of each IO call (one read, one write, one list page). Default 30 s.
    pub io_timeout: Duration,
    /// How many times a temporary failure is retried inside the storage. Default 3.
    pub retries: usize,
    /// At most this many operations (open readers, writers and listers count) at once.
    /// Default 64.
    pub concurrency: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            timeout: Duration::from_secs(60),
            io_timeout: Duration::from_secs(30),
            retries: 3,
            concurrency: 64,
        }
    }
}

/// Wraps a backend's operator in the layer stack, innermost first: Timeout (so each retry
/// attempt has its own deadline, as OpenDAL documents), Retry (temporary errors only, with
/// jitter), ConcurrentLimit, Logging.
pub(crate) fn layered(op: Operator, options: &StorageOptions) -> Operator {
    op.layer(
        TimeoutLayer::new()
            .with_timeout(options.timeout)
            .with_io_timeout(options.io_timeout),
    )
    .layer(
        RetryLayer::new()
            .with_max_times(options.retries)
            .with_jitter(),
    )
    .layer(ConcurrentLimitLayer::new(options.concurrency.max(1)))
    .layer(LoggingLayer::default())
}
