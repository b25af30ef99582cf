//! [`ChunkStepBuilder`]: the parts and policies of a [`ChunkStep`].

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::ChunkStep;
use super::dead_letter::{DeadLetterSink, describe};
use super::fault::Faults;
use super::listeners::ItemListeners;
use crate::error::{Error, ErrorKind, Result};
use crate::item::{ItemProcessor, ItemReader, ItemWriter, Record};
use crate::listener::{
    ChunkListener, ItemProcessListener, ItemReadListener, ItemWriteListener, RetryListener,
    SkipListener,
};
use crate::step::{RetryPolicy, SkipPolicy};

/// Builds a [`ChunkStep`].
pub struct ChunkStepBuilder<I, O> {
    name: String,
    chunk_size: usize,
    reader: Option<Box<dyn ItemReader<I>>>,
    processor: Option<Arc<dyn ItemProcessor<I, O>>>,
    writer: Option<Box<dyn ItemWriter<O>>>,
    listeners: Vec<Arc<dyn ChunkListener>>,
    skip_listeners: Vec<Arc<dyn SkipListener<I, O>>>,
    retry_listeners: Vec<Arc<dyn RetryListener>>,
    item_listeners: ItemListeners<I, O>,
    skip: SkipPolicy,
    retry: RetryPolicy,
    no_rollback: Vec<ErrorKind>,
    dead_letter: Option<DeadLetterSink<I, O>>,
    allow_start_if_complete: bool,
    start_limit: u64,
    read_ahead: bool,
}

impl<I, O> ChunkStep<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + Sync + 'static,
{
    /// Starts building a chunk step named `name` (chunk size 100 unless set).
    pub fn builder(name: impl Into<String>) -> ChunkStepBuilder<I, O> {
        ChunkStepBuilder {
            name: name.into(),
            chunk_size: 100,
            reader: None,
            processor: None,
            writer: None,
            listeners: Vec::new(),
            skip_listeners: Vec::new(),
            retry_listeners: Vec::new(),
            item_listeners: ItemListeners::default(),
            skip: SkipPolicy::never(),
            retry: RetryPolicy::default(),
            no_rollback: Vec::new(),
            dead_letter: None,
            allow_start_if_complete: false,
            start_limit: u64::MAX,
            read_ahead: true,
        }
    }
}

impl<I, O> ChunkStepBuilder<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + Sync + 'static,
{
    /// Items per chunk (the commit interval). At least 1.
    pub fn chunk_size(mut self, size: usize) -> Self {
        self.chunk_size = size.max(1);
        self
    }

    /// The reader.
    pub fn reader(mut self, reader: impl ItemReader<I> + 'static) -> Self {
        self.reader = Some(Box::new(reader));
        self
    }

    /// The reader, boxed.
    pub fn boxed_reader(mut self, reader: Box<dyn ItemReader<I>>) -> Self {
        self.reader = Some(reader);
        self
    }

    /// The processor (optional when `I` and `O` are the same type).
    pub fn processor(mut self, processor: impl ItemProcessor<I, O> + 'static) -> Self {
        self.processor = Some(Arc::new(processor));
        self
    }

    /// The processor, shared.
    pub fn shared_processor(mut self, processor: Arc<dyn ItemProcessor<I, O>>) -> Self {
        self.processor = Some(processor);
        self
    }

    /// The writer.
    pub fn writer(mut self, writer: impl ItemWriter<O> + 'static) -> Self {
        self.writer = Some(Box::new(writer));
        self
    }

    /// The writer, boxed.
    pub fn boxed_writer(mut self, writer: Box<dyn ItemWriter<O>>) -> Self {
        self.writer = Some(writer);
        self
    }

    /// Adds a chunk listener.
    pub fn listener(mut self, listener: Arc<dyn ChunkListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Adds a skip listener, told of every skipped item when its chunk commits.
    pub fn skip_listener(mut self, listener: Arc<dyn SkipListener<I, O>>) -> Self {
        self.skip_listeners.push(listener);
        self
    }

    /// Adds a retry listener, told of every retry before its wait.
    pub fn retry_listener(mut self, listener: Arc<dyn RetryListener>) -> Self {
        self.retry_listeners.push(listener);
        self
    }

    /// Adds an item read listener, told of every read. A step with read listeners reads
    /// item by item, in its own task (no read-ahead).
    pub fn item_read_listener(mut self, listener: Arc<dyn ItemReadListener<I>>) -> Self {
        self.item_listeners.read.push(listener);
        self
    }

    /// Adds an item process listener, told of the processing of every item. A step with
    /// process listeners processes item by item.
    pub fn item_process_listener(mut self, listener: Arc<dyn ItemProcessListener<I, O>>) -> Self {
        self.item_listeners.process.push(listener);
        self
    }

    /// Adds an item write listener, told of every write.
    pub fn item_write_listener(mut self, listener: Arc<dyn ItemWriteListener<O>>) -> Self {
        self.item_listeners.write.push(listener);
        self
    }

    /// Which read, process and write errors may be skipped, and how many.
    pub fn skip_policy(mut self, policy: SkipPolicy) -> Self {
        self.skip = policy;
        self
    }

    /// How read, process and write errors are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Error kinds that do not roll back: a processing error of such a kind skips the item
    /// at once (no retry), and in the scan of a failed chunk write, what the writer did for
    /// an item failing with such a kind is kept (committed) rather than undone. See the
    /// [`ChunkStep`] documentation.
    pub fn no_rollback(mut self, kinds: Vec<ErrorKind>) -> Self {
        self.no_rollback = kinds;
        self
    }

    /// A dead-letter writer, given each skipped item as a [`Record`] made by the two
    /// functions (item as read, item as processed), with the reason and position; see
    /// [`ChunkStepBuilder::dead_letter`] for items that serialize.
    pub fn dead_letter_with(
        mut self,
        writer: Box<dyn ItemWriter<Record>>,
        input: impl Fn(&I) -> Value + Send + Sync + 'static,
        output: impl Fn(&O) -> Value + Send + Sync + 'static,
    ) -> Self {
        self.dead_letter = Some(DeadLetterSink {
            writer,
            input: Arc::new(input),
            output: Arc::new(output),
        });
        self
    }

    /// Rerun the step on restart even if it completed before.
    pub fn allow_start_if_complete(mut self, allow: bool) -> Self {
        self.allow_start_if_complete = allow;
        self
    }

    /// How many times the step may start within one job instance.
    pub fn start_limit(mut self, limit: u64) -> Self {
        self.start_limit = limit;
        self
    }

    /// Whether the next chunk is read on another task while the current one is processed,
    /// written and committed, when the reader allows it
    /// ([`ItemReader::supports_read_ahead`]). On by default; the results and the saved
    /// positions are the same either way.
    pub fn read_ahead(mut self, enabled: bool) -> Self {
        self.read_ahead = enabled;
        self
    }

    /// Builds the step; fails when the reader, writer, or (for `I` ≠ `O`) processor is missing.
    pub fn build(self) -> Result<ChunkStep<I, O>> {
        let missing =
            |what: &str| Error::config(format!("chunk step `{}` has no {what}", self.name));
        let reader = self.reader.ok_or_else(|| missing("reader"))?;
        let writer = self.writer.ok_or_else(|| missing("writer"))?;
        let processor = match self.processor {
            Some(p) => p,
            None => identity::<I, O>().ok_or_else(|| missing("processor"))?,
        };
        Ok(ChunkStep {
            faults: Faults {
                step: self.name.clone(),
                skip: self.skip,
                retry: self.retry,
                no_rollback: self.no_rollback,
                retry_listeners: self.retry_listeners,
            },
            name: self.name,
            chunk_size: self.chunk_size,
            reader: Arc::new(Mutex::new(reader)),
            processor,
            writer: Mutex::new(writer),
            listeners: self.listeners,
            skip_listeners: self.skip_listeners,
            item_listeners: self.item_listeners,
            dead_letter: self.dead_letter.map(Mutex::new),
            allow_start_if_complete: self.allow_start_if_complete,
            start_limit: self.start_limit,
            read_ahead: self.read_ahead,
        })
    }
}

impl<I, O> ChunkStepBuilder<I, O>
where
    I: Clone + Send + Sync + Serialize + 'static,
    O: Send + Sync + Serialize + 'static,
{
    /// A dead-letter writer (any writer of [`Record`]s, e.g. a JSON Lines file): each
    /// skipped item is written there as a record with `step`, `phase` (`read`, `process` or
    /// `write`), `item` (its position in the step's input, from 1, counting skipped reads),
    /// `kind` and `message` of the error, and `record`, the item as JSON (absent for a read
    /// skip, whose message names the position in the input). The dead letters of a chunk
    /// are written and made durable when the chunk commits, and their writer's position is
    /// saved with it, so a restart neither loses nor repeats one.
    pub fn dead_letter(self, writer: Box<dyn ItemWriter<Record>>) -> Self {
        self.dead_letter_with(writer, describe::<I>, describe::<O>)
    }
}

/// A pass-through processor when `I` and `O` are the same type.
fn identity<I: Send + 'static, O: Send + 'static>() -> Option<Arc<dyn ItemProcessor<I, O>>> {
    struct Identity;
    #[async_trait]
    impl<I: Send + 'static, O: Send + 'static> ItemProcessor<I, O> for Identity {
        async fn process(&self, item: I) -> Result<Option<O>> {
            let boxed: Box<dyn std::any::Any + Send> = Box::new(item);
            match boxed.downcast::<O>() {
                Ok(out) => Ok(Some(*out)),
                Err(_) => Err(Error::new(
                    ErrorKind::Unexpected,
                    "pass-through processor used between different item types",
                )),
            }
        }
    }
    if std::any::TypeId::of::<I>() == std::any::TypeId::of::<O>() {
        Some(Arc::new(Identity))
    } else {
        None
    }
}
