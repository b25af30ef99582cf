//! The chunk-oriented step: read up to `chunk_size` items, process them, write them, save
//! the reader/writer positions and commit the step execution, until the reader is exhausted.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tracing::Instrument;

use super::policy::{RetryPolicy, SkipPolicy};
use super::{Step, StepContext};
use crate::error::{Error, ErrorKind, Result};
use crate::execution::StepExecution;
use crate::item::{ItemProcessor, ItemReader, ItemWriter};
use crate::listener::ChunkListener;

/// A chunk-oriented step over items read as `I` and written as `O`.
pub struct ChunkStep<I, O> {
    name: String,
    chunk_size: usize,
    reader: Mutex<Box<dyn ItemReader<I>>>,
    processor: Arc<dyn ItemProcessor<I, O>>,
    writer: Mutex<Box<dyn ItemWriter<O>>>,
    listeners: Vec<Arc<dyn ChunkListener>>,
    skip: SkipPolicy,
    retry: RetryPolicy,
    allow_start_if_complete: bool,
    start_limit: u64,
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
            reader: Mutex::new(reader),
            processor,
            writer: Mutex::new(writer),
            listeners: self.listeners,
            skip: self.skip,
            retry: self.retry,
            allow_start_if_complete: self.allow_start_if_complete,
            start_limit: self.start_limit,
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
        reader: &mut dyn ItemReader<I>,
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
                let eof = self.read_chunk(execution, reader, &mut inputs).await?;
                if inputs.is_empty() {
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
                reader.update(&mut execution.execution_context).await?;
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
        while inputs.len() < self.chunk_size {
            let before = inputs.len();
            let result = reader.read_chunk(self.chunk_size - before, inputs).await;
            execution.counts.read_count += (inputs.len() - before) as u64;
            match result {
                Ok(true) => return Ok(true),
                Ok(false) if inputs.len() == before => {
                    return Err(Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "step `{}`: the reader's read_chunk returned no items before the \
                             end of the input",
                            self.name
                        ),
                    ));
                }
                Ok(false) => {}
                Err(err) if self.skip.should_skip(&err, execution.counts.skip_count()) => {
                    tracing::warn!(step = %self.name, error = %err, "item skipped on read");
                    execution.counts.read_skip_count += 1;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(false)
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
        let mut reader = self.reader.lock().await;
        let mut writer = self.writer.lock().await;
        reader.open(&execution.execution_context).await?;
        if let Err(err) = writer.open(&execution.execution_context).await {
            let _ = reader.close().await;
            return Err(err);
        }
        let result = self
            .run_chunks(execution, ctx, reader.as_mut(), writer.as_mut())
            .await;
        let closed_reader = reader.close().await;
        let closed_writer = writer.close().await;
        result?;
        closed_reader?;
        closed_writer
    }
}
