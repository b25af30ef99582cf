//! The one place where the OpenDAL layer stack is built.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ikkatsu_core::retry::RetryPolicy;
use opendal::Operator;
use opendal::layers::{
    ConcurrentLimitLayer, LoggingLayer, MetricsLayer, RetryEvent, RetryInterceptor, RetryLayer,
    TimeoutLayer,
};

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

impl StorageOptions {
    /// How a request is retried: [`StorageOptions::retries`] times, after delays doubling
    /// from 1 s up to 60 s, with jitter: the numbers of ikkatsu's one
    /// [`RetryPolicy`](ikkatsu_core::retry::RetryPolicy), given to OpenDAL's `RetryLayer`
    /// (which, like the policy, is built on backon). A caller that retries a storage
    /// operation itself multiplies the attempts: the overwrite flow does not, it sets
    /// `retries` instead.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            limit: u32::try_from(self.retries).unwrap_or(u32::MAX),
            kinds: Vec::new(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ..RetryPolicy::default()
        }
    }
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
/// exponential backoff and jitter; each retry is logged and counted), ConcurrentLimit,
/// Metrics (operation counts, bytes and latencies through the `metrics` facade, labelled by
/// backend, bucket, root and operation; no credentials), Logging. Returns the operator and
/// the count of retries.
pub(crate) fn layered(
    op: Operator,
    options: &StorageOptions,
    shown: &str,
) -> (Operator, Arc<AtomicU64>) {
    let retry = options.retry_policy();
    let retries = Arc::new(AtomicU64::new(0));
    let notify = RetryLog {
        storage: shown.to_string(),
        backend: op.info().scheme(),
        retries: retries.clone(),
    };
    let op = op
        .layer(
            TimeoutLayer::new()
                .with_timeout(options.timeout)
                .with_io_timeout(options.io_timeout),
        )
        .layer(
            RetryLayer::new()
                .with_max_times(retry.limit as usize)
                .with_min_delay(retry.initial_backoff)
                .with_max_delay(retry.max_backoff)
                .with_factor(2.0)
                .with_jitter()
                .with_notify(notify),
        )
        .layer(ConcurrentLimitLayer::new(options.concurrency.max(1)))
        .layer(MetricsLayer::default())
        .layer(LoggingLayer::default());
    (op, retries)
}

/// Logs each retry (with the storage's masked URL, never the request's) and counts it.
struct RetryLog {
    storage: String,
    backend: &'static str,
    retries: Arc<AtomicU64>,
}

impl RetryInterceptor for RetryLog {
    fn intercept(&self, event: RetryEvent<'_>) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            storage = %self.storage,
            backend = self.backend,
            operation = %event.op,
            attempt = event.attempt,
            retry_after_ms = event.retry_after.as_millis() as u64,
            error_kind = %event.err.kind(),
            error = event.err.message(),
            "retrying a temporary storage error"
        );
    }
}
