//! Blocking file work off the async threads, and locks that survive a panicked holder.

use std::sync::Mutex;

use ikkatsu_core::{Error, ErrorKind, Result};

/// Runs blocking file work off the async threads.
pub(super) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        Error::new(
            ErrorKind::Unexpected,
            format!("a file-system thread of the overwrite flow: {err}"),
        )
    })?
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
