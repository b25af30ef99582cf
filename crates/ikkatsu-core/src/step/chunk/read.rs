//! Reading a chunk: in the step's task, or ahead on another task while the step works on
//! the chunk before. Both read through [`read_into`], which retries temporary read errors
//! and pre-decides skips, so that the step sees the same items, errors and positions either
//! way.

use std::sync::Arc;

use tokio::sync::{OwnedMutexGuard, mpsc};
use tokio_util::sync::CancellationToken;

use super::fault::Faults;
use super::listeners::{after_read, before_read};
use crate::context::ExecutionContext;
use crate::error::{Error, ErrorKind, Result};
use crate::item::ItemReader;
use crate::listener::ItemReadListener;
use crate::step::Phase;

/// Where a chunk step's items come from: its reader, called in the step's task, or the
/// read-ahead task, which reads the next chunk while the current one is written.
pub(super) enum ChunkSource<'a, I> {
    Inline(&'a mut dyn ItemReader<I>),
    Ahead(mpsc::Receiver<AheadChunk<I>>),
}

/// The items of one chunk as read, before the step decides on its read errors.
pub(super) struct ReadChunk<I> {
    /// The items, in input order.
    pub items: Vec<I>,
    /// The read errors in the order they happened, each with the number of items of the
    /// chunk read before it. Reading stops after an error the skip policy cannot allow in
    /// any case (it is last then).
    pub errors: Vec<(usize, Error)>,
    /// Whether the reader reached the end of the input.
    pub eof: bool,
}

/// A chunk read by the read-ahead task.
pub(super) struct AheadChunk<I> {
    pub read: ReadChunk<I>,
    /// What the reader's `update` saved after this chunk (merged into the step's context
    /// when the chunk is committed).
    pub context: ExecutionContext,
    /// Reading or the reader's `update` failed in a way no skip covers (the step was
    /// stopped while waiting to retry, or the reader broke its contract): the step fails
    /// with this error.
    pub failed: Option<Error>,
}

/// Reads up to `chunk_size` items. A read error is retried when it is temporary and the
/// retry policy allows (the reader has not moved past the item); then it is recorded in
/// `errors`, and reading goes on after it while the skip policy could allow it (`skipped`:
/// the skips known before this chunk). `Err` only for what no skip covers.
/// `items` (emptied) is where the items go. With read `listeners`, items are read one at a
/// time, each read told to them.
pub(super) async fn read_into<I: Send + Sync>(
    reader: &mut dyn ItemReader<I>,
    chunk_size: usize,
    faults: &Faults,
    cancel: &CancellationToken,
    skipped: u64,
    mut items: Vec<I>,
    listeners: &[Arc<dyn ItemReadListener<I>>],
) -> Result<ReadChunk<I>> {
    items.clear();
    let mut chunk = ReadChunk {
        items,
        errors: Vec::new(),
        eof: false,
    };
    let mut attempt = 0u32;
    while chunk.items.len() < chunk_size {
        let before = chunk.items.len();
        let max = if listeners.is_empty() {
            chunk_size - before
        } else {
            before_read(listeners).await?;
            1
        };
        let result = reader.read_chunk(max, &mut chunk.items).await;
        if !listeners.is_empty() {
            match &result {
                Ok(_) => after_read(listeners, Ok(chunk.items.get(before))).await?,
                Err(err) => after_read(listeners, Err(err)).await?,
            }
        }
        match result {
            Ok(true) => {
                chunk.eof = true;
                break;
            }
            Ok(false) if chunk.items.len() == before => {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "step `{}`: the reader's read_chunk returned no items before the end \
                         of the input",
                        faults.step
                    ),
                ));
            }
            Ok(false) => attempt = 0,
            Err(err) => {
                if chunk.items.len() > before {
                    attempt = 0;
                }
                if faults.retries(Phase::Read, &err, attempt) {
                    attempt += 1;
                    faults
                        .before_retry(Phase::Read, attempt, &err, cancel)
                        .await?;
                    continue;
                }
                attempt = 0;
                // `skipped` counts only skips known here, never more than the step's real
                // count: an error refused here is refused by the step too.
                let allowed = faults
                    .skip
                    .should_skip(&err, skipped + chunk.errors.len() as u64);
                chunk.errors.push((chunk.items.len(), err));
                if !allowed {
                    break;
                }
            }
        }
    }
    Ok(chunk)
}

/// The read-ahead task: reads chunk after chunk, saving the reader's position after each,
/// until the input ends, a read error cannot be skipped, or the step stops listening.
/// Gives the reader back at the end, for the step to close it.
pub(super) async fn read_ahead<I: Send + Sync + 'static>(
    mut reader: OwnedMutexGuard<Box<dyn ItemReader<I>>>,
    chunks: mpsc::Sender<AheadChunk<I>>,
    chunk_size: usize,
    faults: Faults,
    cancel: CancellationToken,
    mut skipped: u64,
) -> OwnedMutexGuard<Box<dyn ItemReader<I>>> {
    loop {
        let mut chunk = AheadChunk {
            read: ReadChunk {
                items: Vec::new(),
                errors: Vec::new(),
                eof: false,
            },
            context: ExecutionContext::new(),
            failed: None,
        };
        let items = Vec::with_capacity(chunk_size);
        match read_into(
            reader.as_mut(),
            chunk_size,
            &faults,
            &cancel,
            skipped,
            items,
            &[],
        )
        .await
        {
            Ok(read) => chunk.read = read,
            Err(err) => chunk.failed = Some(err),
        }
        let refused = chunk.read.errors.last().is_some_and(|(_, err)| {
            !faults
                .skip
                .should_skip(err, skipped + chunk.read.errors.len() as u64 - 1)
        });
        skipped += chunk.read.errors.len() as u64;
        if chunk.failed.is_none()
            && !refused
            && let Err(err) = reader.update(&mut chunk.context).await
        {
            chunk.failed = Some(err);
        }
        let last = chunk.read.eof || refused || chunk.failed.is_some();
        if chunks.send(chunk).await.is_err() || last {
            return reader;
        }
    }
}

/// The input positions (1-based over the step's input, after `base` items consumed before
/// this chunk) of a chunk's items and of its read errors, which take a position each.
pub(super) fn positions(
    base: u64,
    items: usize,
    errors: &[(usize, Error)],
) -> (Vec<u64>, Vec<u64>) {
    let mut item_positions = Vec::with_capacity(items);
    let mut error_positions = Vec::with_capacity(errors.len());
    let mut next = base;
    let mut errors = errors.iter().map(|(at, _)| *at).peekable();
    for index in 0..=items {
        while errors.next_if(|at| *at <= index).is_some() {
            next += 1;
            error_positions.push(next);
        }
        if index < items {
            next += 1;
            item_positions.push(next);
        }
    }
    (item_positions, error_positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_take_their_place_among_the_items() {
        let err = |at| (at, Error::new(ErrorKind::Parse, "x"));
        let (items, errors) = positions(10, 3, &[err(0), err(2), err(2), err(3)]);
        // error, item, item, error, error, item, error
        assert_eq!(items, [12, 13, 16]);
        assert_eq!(errors, [11, 14, 15, 17]);
        let (items, errors) = positions(0, 2, &[]);
        assert_eq!((items, errors), (vec![1, 2], vec![]));
    }
}
