//! The chunk-oriented step: read up to `chunk_size` items, process them, write them, save
//! the reader/writer positions and commit the step execution, until the reader is exhausted.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc};
use tracing::Instrument;

use super::policy::{RetryPolicy, SkipPolicy};
use super::{Step, StepContext};
use crate::context::ExecutionContext;
use crate::error::{Error, ErrorKind, Result};
use crate::execution::StepExecution;
use crate::item::{ItemProcessor, ItemReader, ItemWriter};
use crate::listener::ChunkListener;

/// A chunk-oriented step over items read as `I` and written as `O`.
pub struct ChunkStep<I, O> {
    name: String,
    chunk_size: usize,
    reader: Arc<Mutex<Box<dyn ItemReader<I>>>>,
    processor: Arc<dyn ItemProcessor<I, O>>,
    writer: Mutex<Box<dyn ItemWriter<O>>>,
    listeners: Vec<Arc<dyn ChunkListener>>,
    skip: SkipPolicy,
    retry: RetryPolicy,
    allow_start_if_complete: bool,
    start_limit: u64,
    read_ahead: bool,
}

/// Builds a [`ChunkStep`].
pub struct ChunkStepBuilder<I, O> {
    name: String,
    chunk_size: usize,
    reader: Option<Box<dyn ItemReader<I>>>,
    processor: Option<Arc<dyn ItemProcessor<I, O>>>,
    writer: Option<Box<dyn ItemWriter<O>>>,
    listeners: Vec<Arc<dyn ChunkListener>>,
    skip: SkipPolicy,
    retry: RetryPolicy,
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
            skip: SkipPolicy::never(),
            retry: RetryPolicy::default(),
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

    /// Which read/process errors may be skipped.
    pub fn skip_policy(mut self, policy: SkipPolicy) -> Self {
        self.skip = policy;
        self
    }

    /// How process/write errors are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
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
            name: self.name,
            chunk_size: self.chunk_size,
            reader: Arc::new(Mutex::new(reader)),
            processor,
            writer: Mutex::new(writer),
            listeners: self.listeners,
            skip: self.skip,
            retry: self.retry,
            allow_start_if_complete: self.allow_start_if_complete,
            start_limit: self.start_limit,
            read_ahead: self.read_ahead,
        })
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

impl<I, O> ChunkStep<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + Sync + 'static,
{
    /// Processes one item with retries (without retries, items go through `process_chunk`).
    async fn process_item(&self, item: I, ctx: &StepContext) -> Result<Option<O>> {
        self.retry
            .run(&ctx.cancel, || self.processor.process(item.clone()))
            .await
    }

    async fn run_chunks(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
        mut source: ChunkSource<'_, I>,
        writer: &mut dyn ItemWriter<O>,
    ) -> Result<()> {
        let mut inputs: Vec<I> = Vec::with_capacity(self.chunk_size);
        let mut outputs: Vec<O> = Vec::with_capacity(self.chunk_size);
        let mut results: Vec<Option<O>> = Vec::new();
        let mut chunk_no = 0u64;
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("step `{}` stopped on request", self.name),
                ));
            }
            chunk_no += 1;
            let committed = execution.counts;
            let committed_context = execution.execution_context.clone();
            for listener in &self.listeners {
                listener.before_chunk(execution).await?;
            }
            let span = tracing::debug_span!("chunk", chunk = chunk_no);
            let result = async {
                let (eof, reader_context) = match &mut source {
                    ChunkSource::Inline(reader) => {
                        let eof = self
                            .read_chunk(execution, &mut **reader, &mut inputs)
                            .await?;
                        (eof, None)
                    }
                    ChunkSource::Ahead(chunks) => {
                        let chunk = chunks.recv().await.ok_or_else(|| {
                            Error::new(
                                ErrorKind::Unexpected,
                                format!("step `{}`: the read-ahead task ended early", self.name),
                            )
                        })?;
                        for err in chunk.errors {
                            self.skip_read_error(execution, err)?;
                        }
                        if let Some(err) = chunk.failed {
                            return Err(err);
                        }
                        execution.counts.read_count += chunk.items.len() as u64;
                        inputs = chunk.items;
                        (chunk.eof, Some(chunk.context))
                    }
                };
                // An input without items still commits its first chunk (as Spring Batch
                // does): the streams save their state, e.g. a CSV writer writes its header.
                if inputs.is_empty() && !(eof && chunk_no == 1) {
                    return Ok(eof);
                }
                if self.retry.limit == 0 {
                    self.process_chunk(execution, &mut inputs, &mut results, &mut outputs)
                        .await?;
                } else {
                    for item in inputs.drain(..) {
                        match self.process_item(item, ctx).await {
                            Ok(Some(out)) => outputs.push(out),
                            Ok(None) => execution.counts.filter_count += 1,
                            Err(err) => self.skip_processing_error(execution, err)?,
                        }
                    }
                }
                if !outputs.is_empty() {
                    if self.retry.limit == 0 {
                        writer.write(&outputs).await?;
                    } else {
                        let mut attempt = 0u32;
                        loop {
                            match writer.write(&outputs).await {
                                Ok(()) => break,
                                Err(err)
                                    if attempt < self.retry.limit
                                        && self.retry.is_retryable(&err) =>
                                {
                                    attempt += 1;
                                    tracing::warn!(attempt, error = %err, "retrying chunk write");
                                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                                }
                                Err(err) => return Err(err),
                            }
                        }
                    }
                    execution.counts.write_count += outputs.len() as u64;
                    outputs.clear();
                }
                match (&mut source, &reader_context) {
                    (_, Some(context)) => execution.execution_context.merge(context),
                    (ChunkSource::Inline(reader), None) => {
                        reader.update(&mut execution.execution_context).await?
                    }
                    (ChunkSource::Ahead(_), None) => {}
                }
                writer.update(&mut execution.execution_context).await?;
                execution.counts.commit_count += 1;
                ctx.repository.update_step_execution(execution).await?;
                Ok(eof)
            }
            .instrument(span)
            .await;
            match result {
                Ok(eof) => {
                    for listener in &self.listeners {
                        listener.after_chunk(execution).await?;
                    }
                    if eof {
                        return Ok(());
                    }
                }
                Err(err) => {
                    // Roll back the counters of the failed chunk; the saved context is still
                    // the one of the last committed chunk.
                    inputs.clear();
                    outputs.clear();
                    let rollbacks = execution.counts.rollback_count + 1;
                    execution.counts = committed;
                    execution.execution_context = committed_context;
                    execution.counts.rollback_count = rollbacks;
                    for listener in &self.listeners {
                        listener.after_chunk_error(execution, &err).await?;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Counts a read error as a skip when the skip policy allows, else returns it.
    fn skip_read_error(&self, execution: &mut StepExecution, err: Error) -> Result<()> {
        if self.skip.should_skip(&err, execution.counts.skip_count()) {
            tracing::warn!(step = %self.name, error = %err, "item skipped on read");
            execution.counts.read_skip_count += 1;
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Counts a processing error as a skip when the skip policy allows, else returns it.
    fn skip_processing_error(&self, execution: &mut StepExecution, err: Error) -> Result<()> {
        if self.skip.should_skip(&err, execution.counts.skip_count()) {
            tracing::warn!(step = %self.name, error = %err, "item skipped in processing");
            execution.counts.process_skip_count += 1;
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Processes all of `inputs` (without retries) through the processor's
    /// `process_chunk`, item results and skips counted as item by item.
    async fn process_chunk(
        &self,
        execution: &mut StepExecution,
        inputs: &mut Vec<I>,
        results: &mut Vec<Option<O>>,
        outputs: &mut Vec<O>,
    ) -> Result<()> {
        let mut items = inputs.drain(..);
        while items.len() > 0 {
            let before = items.len();
            let result = self.processor.process_chunk(&mut items, results).await;
            for out in results.drain(..) {
                match out {
                    Some(out) => outputs.push(out),
                    None => execution.counts.filter_count += 1,
                }
            }
            match result {
                Ok(()) if items.len() == before => {
                    return Err(Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "step `{}`: the processor's process_chunk took no items",
                            self.name
                        ),
                    ));
                }
                Ok(()) => {}
                Err(err) => self.skip_processing_error(execution, err)?,
            }
        }
        Ok(())
    }

    /// Fills `inputs` with up to a chunk of items; returns whether the input is exhausted.
    async fn read_chunk(
        &self,
        execution: &mut StepExecution,
        reader: &mut dyn ItemReader<I>,
        inputs: &mut Vec<I>,
    ) -> Result<bool> {
        let before = inputs.len();
        let result = fill_chunk(reader, self.chunk_size, &self.name, inputs, |err| {
            self.skip_read_error(execution, err)
        })
        .await;
        execution.counts.read_count += (inputs.len() - before) as u64;
        result
    }
}

/// Where a chunk step's items come from: its reader, called in the step's task, or the
/// read-ahead task, which reads the next chunk while the current one is written.
enum ChunkSource<'a, I> {
    Inline(&'a mut dyn ItemReader<I>),
    Ahead(mpsc::Receiver<AheadChunk<I>>),
}

/// A chunk read by the read-ahead task.
struct AheadChunk<I> {
    items: Vec<I>,
    /// Read errors in the order they happened; the step decides whether each is skipped,
    /// exactly as it would have when reading itself. The task stops after an error the skip
    /// policy cannot allow in any case (it is last here).
    errors: Vec<Error>,
    /// Whether the reader reached the end of the input.
    eof: bool,
    /// What the reader's `update` saved after this chunk (merged into the step's context
    /// when the chunk is committed).
    context: ExecutionContext,
    /// The reader's `update` failed: the step fails with this error.
    failed: Option<Error>,
}

/// Calls the reader until `inputs` holds `chunk_size` items or the input ends (returns
/// `true` then); every read error goes to `on_error`, which either lets the reading go on
/// (the item is skipped) or returns the error to end it.
async fn fill_chunk<I: Send>(
    reader: &mut dyn ItemReader<I>,
    chunk_size: usize,
    step: &str,
    inputs: &mut Vec<I>,
    mut on_error: impl FnMut(Error) -> Result<()>,
) -> Result<bool> {
    while inputs.len() < chunk_size {
        let before = inputs.len();
        match reader.read_chunk(chunk_size - before, inputs).await {
            Ok(true) => return Ok(true),
            Ok(false) if inputs.len() == before => {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "step `{step}`: the reader's read_chunk returned no items before the end \
                         of the input"
                    ),
                ));
            }
            Ok(false) => {}
            Err(err) => on_error(err)?,
        }
    }
    Ok(false)
}

/// The read-ahead task: reads chunk after chunk, saving the reader's position after each,
/// until the input ends, a read error cannot be skipped, or the step stops listening.
/// Gives the reader back at the end, for the step to close it.
async fn read_ahead<I: Send + 'static>(
    mut reader: OwnedMutexGuard<Box<dyn ItemReader<I>>>,
    chunks: mpsc::Sender<AheadChunk<I>>,
    chunk_size: usize,
    step: String,
    skip: SkipPolicy,
    mut skipped: u64,
) -> OwnedMutexGuard<Box<dyn ItemReader<I>>> {
    loop {
        let mut items = Vec::with_capacity(chunk_size);
        let mut errors = Vec::new();
        // `skipped` counts only skips known here (the step's earlier skips and the read
        // errors seen so far), never more than the step's real count: an error refused here
        // is refused by the step too.
        let result = fill_chunk(reader.as_mut(), chunk_size, &step, &mut items, |err| {
            if skip.should_skip(&err, skipped) {
                skipped += 1;
                errors.push(err);
                Ok(())
            } else {
                Err(err)
            }
        })
        .await;
        let mut chunk = AheadChunk {
            items,
            errors,
            eof: false,
            context: ExecutionContext::new(),
            failed: None,
        };
        let last = match result {
            Ok(eof) => {
                chunk.eof = eof;
                if let Err(err) = reader.update(&mut chunk.context).await {
                    chunk.failed = Some(err);
                }
                eof || chunk.failed.is_some()
            }
            Err(err) => {
                chunk.errors.push(err);
                true
            }
        };
        if chunks.send(chunk).await.is_err() || last {
            return reader;
        }
    }
}

#[async_trait]
impl<I, O> Step for ChunkStep<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn allow_start_if_complete(&self) -> bool {
        self.allow_start_if_complete
    }

    fn start_limit(&self) -> u64 {
        self.start_limit
    }

    async fn execute(&self, execution: &mut StepExecution, ctx: &StepContext) -> Result<()> {
        let mut reader = Arc::clone(&self.reader).lock_owned().await;
        let mut writer = self.writer.lock().await;
        reader.open(&execution.execution_context).await?;
        if let Err(err) = writer.open(&execution.execution_context).await {
            let _ = reader.close().await;
            return Err(err);
        }
        let (result, mut reader) = if self.read_ahead && reader.supports_read_ahead() {
            let (sender, receiver) = mpsc::channel(1);
            let task = tokio::spawn(
                read_ahead(
                    reader,
                    sender,
                    self.chunk_size,
                    self.name.clone(),
                    self.skip.clone(),
                    execution.counts.skip_count(),
                )
                .in_current_span(),
            );
            let result = self
                .run_chunks(
                    execution,
                    ctx,
                    ChunkSource::Ahead(receiver),
                    writer.as_mut(),
                )
                .await;
            match task.await {
                Ok(reader) => (result, reader),
                Err(join) => {
                    let _ = writer.close().await;
                    return Err(Error::new(
                        ErrorKind::Unexpected,
                        format!("step `{}`: the reader failed: {join}", self.name),
                    ));
                }
            }
        } else {
            let result = self
                .run_chunks(
                    execution,
                    ctx,
                    ChunkSource::Inline(reader.as_mut()),
                    writer.as_mut(),
                )
                .await;
            (result, reader)
        };
        let closed_reader = reader.close().await;
        let closed_writer = writer.close().await;
        result?;
        closed_reader?;
        closed_writer
    }
}
