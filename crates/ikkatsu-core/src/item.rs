//! The item ports of chunk-oriented steps: [`ItemReader`], [`ItemProcessor`], [`ItemWriter`]
//! and [`ItemStream`], plus [`Record`], the item type of YAML-defined jobs.

use async_trait::async_trait;

use crate::context::ExecutionContext;
use crate::error::Result;

pub use crate::record::Record;

/// Appends up to `max` items made by `next` to `items`, the way
/// [`ItemReader::read_chunk`] must: `true` when `next` reported the end of the input
/// (`None`), `false` after `max` items; an error is returned after the items before it
/// were appended. Readers whose `read` is synchronous underneath implement `read_chunk`
/// with it, so a chunk costs one call instead of one future per item.
pub fn fill_chunk<T>(
    max: usize,
    items: &mut Vec<T>,
    mut next: impl FnMut() -> Result<Option<T>>,
) -> Result<bool> {
    items.reserve(max);
    for _ in 0..max {
        match next()? {
            Some(item) => items.push(item),
            None => return Ok(true),
        }
    }
    Ok(false)
}

/// A resource with a lifecycle tied to the step: opened with the saved context (to resume
/// where the last committed chunk left off), asked to save its position after every chunk,
/// closed at the end (also after a failure).
#[async_trait]
pub trait ItemStream: Send {
    /// Opens the resource; `context` holds what `update` saved in the last committed chunk
    /// of a previous execution (empty on a first run).
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        let _ = context;
        Ok(())
    }

    /// Makes everything written so far durable and saves the position to resume from.
    /// Called once per chunk, before the chunk is committed to the job repository.
    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        let _ = context;
        Ok(())
    }

    /// Releases the resource. Called on every path, also after a failure.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Produces items one at a time; `None` means the input is exhausted.
///
/// A chunk step asks for items a chunk at a time through [`ItemReader::read_chunk`], whose
/// default calls [`ItemReader::read`] once per item. Readers that can produce items in
/// batches more cheaply (one call instead of one future per item) override it.
#[async_trait]
pub trait ItemReader<T>: ItemStream {
    /// The next item, or `None` at the end of the input.
    async fn read(&mut self) -> Result<Option<T>>;

    /// Appends up to `max` items to `items`, in input order; returns `true` when the end of
    /// the input was reached (a later call returns no more items), `false` after `max`
    /// items.
    ///
    /// Must behave exactly like calling [`read`](ItemReader::read) up to `max` times: on an
    /// error, the items read before it are already appended and the error is returned; the
    /// caller may skip the failed item and call again to continue with the next one. It
    /// never reads ahead (after `max` items the position is right after the last item
    /// appended, so [`ItemStream::update`] saves the same position as with `read`).
    async fn read_chunk(&mut self, max: usize, items: &mut Vec<T>) -> Result<bool>
    where
        T: Send,
    {
        for _ in 0..max {
            match self.read().await? {
                Some(item) => items.push(item),
                None => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Whether a chunk step may read the next chunk while the current one is processed,
    /// written and committed (on another task, so reading overlaps the rest of the chunk).
    ///
    /// Only for readers whose [`ItemStream::update`] does nothing but save the position into
    /// the context: with read-ahead, `update` runs right after the reader's chunk is read,
    /// and what it saved is committed later, with that chunk. A reader that acknowledges or
    /// deletes what it read in `update` (a message queue) must keep the default, `false`.
    fn supports_read_ahead(&self) -> bool {
        false
    }
}

/// Transforms an item; `None` filters it out (counted in `filter_count`).
///
/// A chunk step without retries hands the items of a chunk over through
/// [`ItemProcessor::process_chunk`], whose default calls [`ItemProcessor::process`] once
/// per item; processors that can work through many items in one call override it.
#[async_trait]
pub trait ItemProcessor<I, O>: Send + Sync {
    /// Processes one item.
    async fn process(&self, item: I) -> Result<Option<O>>;

    /// Processes the items of `items` in order, pushing each item's result to `results`,
    /// until `items` is exhausted. Must behave exactly like calling
    /// [`process`](ItemProcessor::process) for each item: when an item fails, stop there
    /// and return its error, with the results of the items before it pushed and the items
    /// after it left in `items` (the caller may skip the failed item and call again).
    async fn process_chunk(
        &self,
        items: &mut (dyn Iterator<Item = I> + Send),
        results: &mut Vec<Option<O>>,
    ) -> Result<()>
    where
        I: Send,
        O: Send,
    {
        for item in items {
            results.push(self.process(item).await?);
        }
        Ok(())
    }
}

/// Writes a chunk of items. Everything written is made durable in [`ItemStream::update`].
#[async_trait]
pub trait ItemWriter<T>: ItemStream {
    /// Writes the items of one chunk.
    async fn write(&mut self, items: &[T]) -> Result<()>;

    /// Undoes a failed [`write`](ItemWriter::write), so that its items can be written again
    /// (a retry) or one at a time (the scan of a chunk step that skips write errors). Called
    /// right after `write` returned an error, with no successful `write` since the last
    /// [`update`](ItemStream::update); `committed` holds what that `update` saved (before the
    /// first one: what the writer was opened with, updated once).
    ///
    /// The default closes the writer and opens it again with `committed`: exact for writers
    /// that resume at their saved position on open, as the restart-safe file writers do
    /// (they truncate to the saved size). A writer whose failed write undoes itself may
    /// return `Ok(())`; one whose writes cannot be undone (a message sent) should return an
    /// error, and the step then fails rather than write items twice.
    async fn rollback(&mut self, committed: &ExecutionContext) -> Result<()> {
        self.close().await?;
        self.open(committed).await
    }
}

/// A processor that passes items through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThroughItemProcessor;

#[async_trait]
impl<T: Send + 'static> ItemProcessor<T, T> for PassThroughItemProcessor {
    async fn process(&self, item: T) -> Result<Option<T>> {
        Ok(Some(item))
    }

    async fn process_chunk(
        &self,
        items: &mut (dyn Iterator<Item = T> + Send),
        results: &mut Vec<Option<T>>,
    ) -> Result<()> {
        results.extend(items.map(Some));
        Ok(())
    }
}

/// Reads items from a vector (for tests and small in-memory inputs); restartable.
#[derive(Debug, Clone)]
pub struct VecItemReader<T> {
    items: Vec<T>,
    next: usize,
    key: String,
}

impl<T> VecItemReader<T> {
    /// Reads `items` in order. The position is saved under `vec.reader.index`.
    pub fn new(items: Vec<T>) -> Self {
        VecItemReader {
            items,
            next: 0,
            key: "vec.reader.index".into(),
        }
    }
}

#[async_trait]
impl<T: Send> ItemStream for VecItemReader<T> {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.next = context.get_u64(&self.key).unwrap_or(0) as usize;
        Ok(())
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        context.put(self.key.clone(), self.next as u64);
        Ok(())
    }
}

#[async_trait]
impl<T: Clone + Send + Sync> ItemReader<T> for VecItemReader<T> {
    async fn read(&mut self) -> Result<Option<T>> {
        let item = self.items.get(self.next).cloned();
        if item.is_some() {
            self.next += 1;
        }
        Ok(item)
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

/// Collects written items into a shared vector (for tests). Items of a failed write are
/// dropped on [`ItemWriter::rollback`] (back to what the last [`ItemStream::update`] saw).
#[derive(Debug, Clone, Default)]
pub struct VecItemWriter<T> {
    items: std::sync::Arc<std::sync::Mutex<Written<T>>>,
}

/// The items of a [`VecItemWriter`] and how many of them the last `update` saw.
#[derive(Debug, Default)]
struct Written<T> {
    items: Vec<T>,
    committed: usize,
}

impl<T: Clone> VecItemWriter<T> {
    /// A writer with an empty shared vector.
    pub fn new() -> Self {
        VecItemWriter {
            items: std::sync::Arc::new(std::sync::Mutex::new(Written {
                items: Vec::new(),
                committed: 0,
            })),
        }
    }

    /// A copy of everything written so far.
    pub fn items(&self) -> Vec<T> {
        self.written().items.clone()
    }

    fn written(&self) -> std::sync::MutexGuard<'_, Written<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl<T: Clone + Send> ItemStream for VecItemWriter<T> {
    async fn update(&mut self, _context: &mut ExecutionContext) -> Result<()> {
        let mut written = self.written();
        written.committed = written.items.len();
        Ok(())
    }
}

#[async_trait]
impl<T: Clone + Send + Sync> ItemWriter<T> for VecItemWriter<T> {
    async fn write(&mut self, items: &[T]) -> Result<()> {
        self.written().items.extend_from_slice(items);
        Ok(())
    }

    async fn rollback(&mut self, _committed: &ExecutionContext) -> Result<()> {
        let mut written = self.written();
        let committed = written.committed;
        written.items.truncate(committed);
        Ok(())
    }
}

/// Where in a chunk an item failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Reading the item.
    Read,
    /// Processing the item.
    Process,
    /// Writing the item.
    Write,
}

impl Phase {
    /// `read`, `process` or `write`: the name in messages and dead letters.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Read => "read",
            Phase::Process => "process",
            Phase::Write => "write",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
