//! The external calls of a storage: each public operation of [`Storage`] (a list or walk, a
//! read, a write, a delete, a stat) is told to the call listeners of the step that makes it
//! ([`ikkatsu_core::call`]): the backend's scheme, the operation, the object path (never the
//! URL, whose credentials stay out), the bytes moved (for a listing, the entries as rows),
//! how long it took and its error. A streamed read or listing is one call, reported when
//! the stream ends or is dropped. With nobody listening this costs one task-local lookup.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use ikkatsu_core::Result;
use ikkatsu_core::call::{CallKind, CallTimer, ExternalCall};

use super::Storage;
use crate::file_info::FileInfo;

impl Storage {
    /// The call `operation` on `path`, as listeners get it.
    fn call(&self, operation: &str, path: &str) -> ExternalCall {
        ExternalCall::new(
            CallKind::Storage,
            self.inner.capabilities.scheme,
            operation,
            path,
        )
    }

    /// Runs `work`, the operation `operation` on `path`, and reports it with the bytes
    /// `bytes` says it moved.
    pub(crate) async fn observed<T>(
        &self,
        operation: &'static str,
        path: &str,
        work: impl Future<Output = Result<T>>,
        bytes: impl FnOnce(&T) -> Option<u64>,
    ) -> Result<T> {
        let timer = CallTimer::start();
        let result = work.await;
        timer.finish(|| {
            let call = self.call(operation, path);
            match &result {
                Ok(value) => match bytes(value) {
                    Some(n) => call.bytes(n),
                    None => call,
                },
                Err(err) => call.failed(err),
            }
        });
        result
    }

    /// `stream`, a streamed read of `path` (or a listing of it), reported as one call
    /// when it ends or is dropped.
    pub(crate) fn observed_stream<I: Measured + Send + 'static>(
        &self,
        operation: &'static str,
        path: &str,
        stream: BoxStream<'static, I>,
    ) -> BoxStream<'static, I> {
        let timer = CallTimer::start();
        if !timer.is_observed() {
            return stream;
        }
        Box::pin(Observed {
            inner: stream,
            timer: Some(timer),
            call: Some(self.call(operation, path)),
            measured: 0,
            error: None,
            total: I::total,
        })
    }
}

/// What a streamed call counts: bytes of a read, entries of a listing.
pub(crate) trait Measured {
    /// How much one item adds; an error is noted in `error`.
    fn measure(&self, error: &mut Option<String>) -> u64;
    /// Sets the total on the call.
    fn total(call: ExternalCall, total: u64) -> ExternalCall;
}

impl Measured for Result<bytes::Bytes> {
    fn measure(&self, error: &mut Option<String>) -> u64 {
        match self {
            Ok(bytes) => bytes.len() as u64,
            Err(err) => {
                *error = Some(err.to_string());
                0
            }
        }
    }
    fn total(call: ExternalCall, total: u64) -> ExternalCall {
        call.bytes(total)
    }
}

impl Measured for Result<FileInfo> {
    fn measure(&self, error: &mut Option<String>) -> u64 {
        match self {
            Ok(_) => 1,
            Err(err) => {
                *error = Some(err.to_string());
                0
            }
        }
    }
    fn total(call: ExternalCall, total: u64) -> ExternalCall {
        call.rows(total)
    }
}

impl Measured for Vec<Result<FileInfo>> {
    fn measure(&self, error: &mut Option<String>) -> u64 {
        self.iter().map(|entry| entry.measure(error)).sum()
    }
    fn total(call: ExternalCall, total: u64) -> ExternalCall {
        call.rows(total)
    }
}

/// A stream reported as one call when it ends or is dropped.
struct Observed<I> {
    inner: BoxStream<'static, I>,
    timer: Option<CallTimer>,
    call: Option<ExternalCall>,
    measured: u64,
    error: Option<String>,
    total: fn(ExternalCall, u64) -> ExternalCall,
}

impl<I> Observed<I> {
    fn report(&mut self) {
        if let (Some(timer), Some(call)) = (self.timer.take(), self.call.take()) {
            let (total, measured, error) = (self.total, self.measured, self.error.take());
            timer.finish(|| {
                let call = total(call, measured);
                match error {
                    Some(err) => call.failed(err),
                    None => call,
                }
            });
        }
    }
}

impl<I: Measured> Stream for Observed<I> {
    type Item = I;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<I>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(item)) => {
                let this = &mut *self;
                this.measured += item.measure(&mut this.error);
            }
            Poll::Ready(None) => self.report(),
            Poll::Pending => {}
        }
        polled
    }
}

impl<I> Drop for Observed<I> {
    fn drop(&mut self) {
        // Dropped before its end: what was read so far.
        self.report();
    }
}
