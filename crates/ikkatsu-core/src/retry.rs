//! [`RetryPolicy`]: the one retry policy of ikkatsu, built on [`backon`]. Only temporary
//! errors (and, if listed, errors of extra kinds) are retried, a bounded number of times,
//! after exponentially growing delays with random jitter (by default up to a quarter of the
//! delay, so that many workers failing together do not retry together).
//!
//! It retries a chunk step's failed processing and writing, the overwrite flow's user
//! function, and (with the same numbers, through OpenDAL's `RetryLayer`, which is backon
//! too) each request of a storage.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use ikkatsu_core::{CancellationToken, Error, ErrorKind, retry::RetryPolicy};
//!
//! let attempts = AtomicU32::new(0);
//! let result: ikkatsu_core::Result<()> = RetryPolicy::new(2)
//!     .run(&CancellationToken::new(), || async {
//!         attempts.fetch_add(1, Ordering::SeqCst);
//!         Err(Error::new(ErrorKind::Io, "connection reset").set_temporary(true))
//!     })
//!     .await;
//! // The first attempt and two retries.
//! assert_eq!(attempts.load(Ordering::SeqCst), 3);
//! assert!(result.unwrap_err().to_string().contains("gave up after 3 attempts"));
//! # }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, Retryable};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};

/// The largest share of a delay added at random, unless set.
pub const DEFAULT_JITTER: f64 = 0.25;

/// How much each delay grows over the one before, unless set.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;

/// How failed processing or writing is retried: only temporary errors (and, if listed,
/// errors of extra kinds), with exponential backoff and jitter, bounded attempts.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retry).
    pub limit: u32,
    /// Kinds retried even when the error is not marked temporary.
    pub kinds: Vec<ErrorKind>,
    /// Delay before the first retry; multiplied by `multiplier` each time.
    pub initial_backoff: Duration,
    /// Longest delay between two attempts.
    pub max_backoff: Duration,
    /// How much each delay grows over the one before (at least 1; default 2).
    pub multiplier: f64,
    /// The largest share of a delay added at random (0 to 1; default 0.25).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            limit: 0,
            kinds: Vec::new(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            multiplier: DEFAULT_MULTIPLIER,
            jitter: DEFAULT_JITTER,
        }
    }
}

impl RetryPolicy {
    /// Retry temporary errors up to `limit` times.
    pub fn new(limit: u32) -> Self {
        RetryPolicy {
            limit,
            ..RetryPolicy::default()
        }
    }

    /// Whether `error` is worth another attempt.
    pub fn is_retryable(&self, error: &Error) -> bool {
        error.is_temporary() || self.kinds.contains(&error.kind())
    }

    /// The delay before retry number `attempt` (1-based): `initial_backoff` multiplied by
    /// `multiplier` for each retry before, capped at `max_backoff`, plus a random jitter of
    /// up to `jitter` of it.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1.0)
            .powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        let max = self.max_backoff.as_secs_f64();
        let base = if factor.is_finite() {
            (self.initial_backoff.as_secs_f64() * factor).min(max)
        } else {
            max
        };
        let base = Duration::try_from_secs_f64(base).unwrap_or(self.max_backoff);
        base + base.mul_f64(fastrand::f64() * self.jitter.clamp(0.0, 1.0))
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the attempts run
    /// out; waits between attempts unless `cancel` fires (then the last error is returned, or a
    /// [`ErrorKind::Cancelled`] error when it fires during the wait).
    /// An error after retries says how many attempts were made.
    pub async fn run<T, F, Fut>(&self, cancel: &CancellationToken, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let attempts = AtomicU32::new(0);
        let result = (|| {
            let again = attempts.fetch_add(1, Ordering::Relaxed) > 0;
            let attempt = (!(again && cancel.is_cancelled())).then(&mut op);
            async move {
                match attempt {
                    Some(attempt) => attempt.await,
                    // Stopped while waiting to retry.
                    None => Err(Error::new(
                        ErrorKind::Cancelled,
                        "stopped while waiting to retry after a temporary error",
                    )),
                }
            }
        })
        .retry(self)
        .sleep({
            let stop = cancel.clone();
            move |delay| {
                let stop = stop.clone();
                async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        })
        .when(|err| self.is_retryable(err))
        .adjust(|_, delay| delay.filter(|_| !cancel.is_cancelled()))
        .notify(|err, delay| {
            tracing::warn!(
                attempt = attempts.load(Ordering::Relaxed),
                limit = self.limit,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "retrying after a temporary error"
            );
        })
        .await;
        let attempts = attempts.load(Ordering::Relaxed);
        result.map_err(|err| {
            if attempts > 1 && err.kind() != ErrorKind::Cancelled {
                err.context(format!("gave up after {attempts} attempts"))
            } else {
                err
            }
        })
    }
}

/// The delays of one run of a [`RetryPolicy`]: `limit` of them, then none.
#[derive(Debug)]
pub struct Delays {
    policy: RetryPolicy,
    attempt: u32,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.attempt >= self.policy.limit {
            return None;
        }
        self.attempt += 1;
        Some(self.policy.backoff(self.attempt))
    }
}

impl BackoffBuilder for &RetryPolicy {
    type Backoff = Delays;

    fn build(self) -> Delays {
        Delays {
            policy: self.clone(),
            attempt: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_only_temporary_errors() {
        let policy = RetryPolicy::new(3);
        let cancel = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let out = policy
            .run(&cancel, || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Error::new(ErrorKind::Io, "flaky").set_temporary(true))
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let err = policy
            .run(&cancel, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::new(ErrorKind::Parse, "bad"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            limit: 10,
            kinds: vec![],
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert!(policy.backoff(1) >= Duration::from_millis(100));
        assert!(policy.backoff(1) < Duration::from_millis(130));
        assert!(policy.backoff(3) >= Duration::from_millis(400));
        assert!(policy.backoff(30) <= Duration::from_millis(1250));
        assert!(policy.backoff(u32::MAX) <= Duration::from_millis(1250));
    }

    #[test]
    fn multiplier_and_jitter_shape_the_delays() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(60),
            multiplier: 3.0,
            jitter: 0.0,
            ..RetryPolicy::new(5)
        };
        for (attempt, millis) in [(1, 10), (2, 30), (3, 90), (4, 270)] {
            let delay = policy.backoff(attempt).as_secs_f64() * 1000.0;
            assert!(
                (delay - f64::from(millis)).abs() < 0.001,
                "{attempt}: {delay}"
            );
        }
        let jittered = RetryPolicy {
            jitter: 1.0,
            ..policy
        };
        for _ in 0..50 {
            let delay = jittered.backoff(2);
            assert!(delay >= Duration::from_millis(30) && delay <= Duration::from_millis(60));
        }
    }
}
