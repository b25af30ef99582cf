//! The item ports of chunk-oriented steps: [`ItemReader`], [`ItemProcessor`], [`ItemWriter`]
//! and [`ItemStream`], plus [`Record`], the item type of YAML-defined jobs.

use async_trait::async_trait;

use crate::context::ExecutionContext;
use crate::error::Result;

/// The item type of jobs defined in YAML: an ordered map of field names to JSON values
/// (a CSV row, a JSON Lines object, ...).
pub type Record = serde_json::Map<String, serde_json::Value>;

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
#[async_trait]
pub trait ItemReader<T>: ItemStream {
    /// The next item, or `None` at the end of the input.
    async fn read(&mut self) -> Result<Option<T>>;
}

/// Transforms an item; `None` filters it out (counted in `filter_count`).
#[async_trait]
pub trait ItemProcessor<I, O>: Send + Sync {
    /// Processes one item.
    async fn process(&self, item: I) -> Result<Option<O>>;
}

/// Writes a chunk of items. Everything written is made durable in [`ItemStream::update`].
#[async_trait]
pub trait ItemWriter<T>: ItemStream {
    /// Writes the items of one chunk.
    async fn write(&mut self, items: &[T]) -> Result<()>;
}

/// A processor that passes items through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThroughItemProcessor;

#[async_trait]
impl<T: Send + 'static> ItemProcessor<T, T> for PassThroughItemProcessor {
    async fn process(&self, item: T) -> Result<Option<T>> {
        Ok(Some(item))
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
}

/// Collects written items into a shared vector (for tests).
#[derive(Debug, Clone, Default)]
pub struct VecItemWriter<T> {
    items: std::sync::Arc<std::sync::Mutex<Vec<T>>>,
}

impl<T: Clone> VecItemWriter<T> {
    /// A writer with an empty shared vector.
    pub fn new() -> Self {
        VecItemWriter {
            items: Default::default(),
        }
    }

    /// A copy of everything written so far.
    pub fn items(&self) -> Vec<T> {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl<T: Send> ItemStream for VecItemWriter<T> {}

#[async_trait]
impl<T: Clone + Send + Sync> ItemWriter<T> for VecItemWriter<T> {
    async fn write(&mut self, items: &[T]) -> Result<()> {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(items);
        Ok(())
    }
}
