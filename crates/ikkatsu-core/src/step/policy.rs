//! Retry and skip policies, decided per [`ErrorKind`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};

/// Which failed items may be skipped, and how many in one step execution.
#[derive(Debug, Clone, Default)]
pub struct SkipPolicy {
    /// Most skips allowed; the step fails on the next one.
    pub limit: u64,
    /// Error kinds that may be skipped. Empty means none.
    pub kinds: Vec<ErrorKind>,
}

impl SkipPolicy {
    /// Never skip.
    pub fn never() -> Self {
        SkipPolicy::default()
    }

    /// Skip up to `limit` errors of the given kinds.
    pub fn new(limit: u64, kinds: Vec<ErrorKind>) -> Self {
        SkipPolicy { limit, kinds }
    }

    /// Whether `error` may be skipped when `skipped` items were skipped already.
    pub fn should_skip(&self, error: &Error, skipped: u64) -> bool {
        skipped < self.limit && self.kinds.contains(&error.kind())
    }
}

/// How failed processing or writing is retried: only temporary errors (and, if listed,
/// errors of extra kinds), with exponential backoff and jitter, bounded attempts.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retry).
    pub limit: u32,
    /// Kinds retried even when the error is not marked temporary.
    pub kinds: Vec<ErrorKind>,
    /// Delay before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Longest delay between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            limit: 0,
            kinds: Vec::new(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
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

    /// The delay before retry number `attempt` (1-based): exponential, with up to 25% jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_backoff);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = base.mul_f64(f64::from(nanos % 250) / 1000.0);
        base + jitter
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the attempts run out;
    /// waits between attempts unless `cancel` fires.
    pub async fn run<T, F, Fut>(&self, cancel: &CancellationToken, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err) if attempt < self.limit && self.is_retryable(&err) => {
                    attempt += 1;
                    let delay = self.backoff(attempt);
                    tracing::warn!(attempt, limit = self.limit, delay_ms = delay.as_millis() as u64, error = %err, "retrying after a temporary error");
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(err),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(err) if attempt > 0 => {
                    return Err(err.context(format!("gave up after {} attempts", attempt + 1)));
                }
                Err(err) => return Err(err),
            }
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
        };
        assert!(policy.backoff(1) >= Duration::from_millis(100));
        assert!(policy.backoff(1) < Duration::from_millis(130));
        assert!(policy.backoff(3) >= Duration::from_millis(400));
        assert!(policy.backoff(30) <= Duration::from_millis(1250));
    }

    #[test]
    fn skip_respects_limit_and_kinds() {
        let policy = SkipPolicy::new(2, vec![ErrorKind::Parse]);
        let parse = Error::new(ErrorKind::Parse, "x");
        assert!(policy.should_skip(&parse, 1));
        assert!(!policy.should_skip(&parse, 2));
        assert!(!policy.should_skip(&Error::new(ErrorKind::Io, "x"), 0));
    }
}
