//! The chunk-oriented step: read up to `chunk_size` items, process them, write them, save
//! the reader/writer positions and commit the step execution, until the reader is exhausted;
//! fault tolerant in the way of Spring Batch's `FaultTolerantChunkProcessor` (see
//! [`ChunkStep`]).

mod builder;
mod dead_letter;
mod fault;
mod listeners;
mod read;
mod scan;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};
use tracing::Instrument;

pub use builder::ChunkStepBuilder;
use dead_letter::{DeadLetterSink, POSITION_KEY};
use fault::{Faults, Skip, SkippedItem};
use listeners::ItemListeners;
use read::{ChunkSource, ReadChunk, positions, read_ahead, read_into};

use super::{Phase, Step, StepContext};
use crate::context::ExecutionContext;
use crate::error::{Error, ErrorKind, Result};
use crate::execution::StepExecution;
use crate::item::{ItemProcessor, ItemReader, ItemWriter};
use crate::listener::{ChunkListener, SkipListener};

/// A chunk-oriented step over items read as `I` and written as `O`.
///
/// # Fault tolerance
///
/// * **Read**: a temporary error is retried (the reader has not moved past the item); any
///   read error of a skippable kind is then skipped (`read_skip_count`). Reads are never
///   rolled back.
/// * **Process**: a failed item is retried on its own (temporary errors and the retry
///   policy's kinds; the results of the items before it are kept, as with Spring Batch's
///   `processorNonTransactional`), then skipped if its kind is skippable
///   (`process_skip_count`). An error of a **no-rollback** kind is not retried: the item is
///   skipped at once and the rest of the chunk goes on.
/// * **Write**: a failed chunk write is rolled back ([`ItemWriter::rollback`]) and retried;
///   when the retries are spent (or the error is not retryable) and its kind is skippable,
///   the chunk is **scanned**: each item is written alone and made durable on its own
///   (`update`), a failing item is rolled back (kept, for a no-rollback kind) and skipped
///   (`write_skip_count`), so that every good item is written exactly once. The chunk's
///   positions and counts are committed to the job repository once, after the scan: a
///   crash during a scan redoes the whole chunk on restart, from the committed positions.
///
/// Skips are limited per step execution by [`SkipPolicy::limit`](crate::step::SkipPolicy::limit) (read, process and write
/// together); the skip after the limit fails the step with `skip limit N exceeded in
/// <phase>: <error>`. Skipped items go to the skip listeners and the dead-letter writer
/// when their chunk commits: a chunk that fails reports none of its skips (a restart skips
/// them again).///
/// Built with [`ChunkStep::builder`]; in job files, see `docs/fault-tolerance.md`.
pub struct ChunkStep<I, O> {
    name: String,
    chunk_size: usize,
    reader: Arc<Mutex<Box<dyn ItemReader<I>>>>,
    processor: Arc<dyn ItemProcessor<I, O>>,
    writer: Mutex<Box<dyn ItemWriter<O>>>,
    listeners: Vec<Arc<dyn ChunkListener>>,
    skip_listeners: Vec<Arc<dyn SkipListener<I, O>>>,
    item_listeners: ItemListeners<I, O>,
    faults: Faults,
    dead_letter: Option<Mutex<DeadLetterSink<I, O>>>,
    allow_start_if_complete: bool,
    start_limit: u64,
    read_ahead: bool,
}

/// One chunk on its way through the step; the vectors are reused from chunk to chunk.
struct Chunk<I, O> {
    inputs: Vec<I>,
    /// The input position (1-based over the step's input) of each of `inputs`.
    input_positions: Vec<u64>,
    outputs: Vec<O>,
    /// The input position of each of `outputs`.
    output_positions: Vec<u64>,
    results: Vec<Option<O>>,
    /// The items skipped so far, when someone is told of them.
    skips: Vec<Skip<I, O>>,
    /// Input items the chunk consumed: read, or skipped on read.
    consumed: u64,
}

impl<I, O> Chunk<I, O> {
    fn clear(&mut self) {
        self.inputs.clear();
        self.input_positions.clear();
        self.outputs.clear();
        self.output_positions.clear();
        self.results.clear();
        self.skips.clear();
        self.consumed = 0;
    }
}

/// The writing side of a running step.
struct Output<'a, I, O> {
    writer: &'a mut dyn ItemWriter<O>,
    dead_letter: Option<&'a mut DeadLetterSink<I, O>>,
    /// What the writer's last `update` saved: where a failed write rolls back to.
    point: ExecutionContext,
}

impl<I, O> ChunkStep<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + Sync + 'static,
{
    /// Whether skipped items are kept to be reported (skip listeners, dead letters).
    fn records_skips(&self) -> bool {
        !self.skip_listeners.is_empty() || self.dead_letter.is_some()
    }

    async fn run_chunks(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
        mut source: ChunkSource<'_, I>,
        output: &mut Output<'_, I, O>,
    ) -> Result<()> {
        let mut chunk = Chunk {
            inputs: Vec::with_capacity(self.chunk_size),
            input_positions: Vec::with_capacity(self.chunk_size),
            outputs: Vec::with_capacity(self.chunk_size),
            output_positions: Vec::with_capacity(self.chunk_size),
            results: Vec::new(),
            skips: Vec::new(),
            consumed: 0,
        };
        let mut position = match output.dead_letter {
            Some(_) => execution
                .execution_context
                .get_u64(POSITION_KEY)
                .unwrap_or(0),
            None => 0,
        };
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
                let (eof, reader_context) = self
                    .read(execution, ctx, &mut source, &mut chunk, position)
                    .await?;
                // An input without items still commits its first chunk (as Spring Batch
                // does): the streams save their state, e.g. a CSV writer writes its header.
                if chunk.consumed == 0 && !(eof && chunk_no == 1) {
                    return Ok(eof);
                }
                self.process(execution, ctx, &mut chunk).await?;
                self.write(execution, ctx, &mut chunk, output).await?;
                self.report_skips(execution, &mut chunk, output).await?;
                match (&mut source, &reader_context) {
                    (_, Some(context)) => execution.execution_context.merge(context),
                    (ChunkSource::Inline(reader), None) => {
                        reader.update(&mut execution.execution_context).await?
                    }
                    (ChunkSource::Ahead(_), None) => {}
                }
                output
                    .writer
                    .update(&mut execution.execution_context)
                    .await?;
                if output.dead_letter.is_some() {
                    let consumed = position + chunk.consumed;
                    execution.execution_context.put(POSITION_KEY, consumed);
                }
                execution.counts.commit_count += 1;
                ctx.repository.update_step_execution(execution).await?;
                Ok(eof)
            }
            .instrument(span)
            .await;
            match result {
                Ok(eof) => {
                    position += chunk.consumed;
                    chunk.consumed = 0;
                    if self.faults.rolls_back_writes() {
                        output.point = execution.execution_context.clone();
                    }
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
                    chunk.clear();
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

    /// Reads the next chunk into `chunk.inputs` (its first item at input position
    /// `position + 1`), deciding on each read error; returns whether the input is exhausted
    /// and, read ahead, what the reader saved after the chunk.
    async fn read(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
        source: &mut ChunkSource<'_, I>,
        chunk: &mut Chunk<I, O>,
        position: u64,
    ) -> Result<(bool, Option<ExecutionContext>)> {
        let (read, context, failed) = match source {
            ChunkSource::Inline(reader) => {
                let items = std::mem::take(&mut chunk.inputs);
                let skipped = execution.counts.skip_count();
                let read = read_into(
                    &mut **reader,
                    self.chunk_size,
                    &self.faults,
                    &ctx.cancel,
                    skipped,
                    items,
                    &self.item_listeners.read,
                )
                .await?;
                (read, None, None)
            }
            ChunkSource::Ahead(chunks) => {
                let ahead = chunks.recv().await.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("step `{}`: the read-ahead task ended early", self.name),
                    )
                })?;
                (ahead.read, Some(ahead.context), ahead.failed)
            }
        };
        let ReadChunk { items, errors, eof } = read;
        let (item_positions, error_positions) = positions(position, items.len(), &errors);
        chunk.consumed = (items.len() + errors.len()) as u64;
        for ((_, err), position) in errors.into_iter().zip(error_positions) {
            let skipped = execution.counts.skip_count();
            let err = self.faults.skip.check(err, Phase::Read, skipped)?;
            tracing::warn!(step = %self.name, item = position, error = %err.report(), "item skipped on read");
            execution.counts.read_skip_count += 1;
            if self.records_skips() {
                chunk.skips.push(Skip {
                    item: SkippedItem::Read,
                    position,
                    error: err,
                });
            }
        }
        if let Some(err) = failed {
            return Err(err);
        }
        execution.counts.read_count += items.len() as u64;
        chunk.inputs = items;
        chunk.input_positions = item_positions;
        Ok((eof, context))
    }

    /// Processes `chunk.inputs` into `chunk.outputs`: item by item when failed items are
    /// retried or reported, else through the processor's `process_chunk`.
    async fn process(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
        chunk: &mut Chunk<I, O>,
    ) -> Result<()> {
        if self.faults.retry.limit == 0
            && !self.records_skips()
            && self.item_listeners.process.is_empty()
        {
            return self.process_chunk(execution, chunk).await;
        }
        let keep = self.records_skips();
        for (item, position) in chunk.inputs.drain(..).zip(chunk.input_positions.drain(..)) {
            let mut attempt = 0u32;
            loop {
                self.item_listeners.before_process(&item).await?;
                let result = self.processor.process(item.clone()).await;
                match self.item_listeners.processed(&item, result).await? {
                    Ok(Some(out)) => {
                        chunk.outputs.push(out);
                        chunk.output_positions.push(position);
                    }
                    Ok(None) => execution.counts.filter_count += 1,
                    Err(err) if self.faults.retries(Phase::Process, &err, attempt) => {
                        attempt += 1;
                        self.faults
                            .before_retry(Phase::Process, attempt, &err, &ctx.cancel)
                            .await?;
                        continue;
                    }
                    Err(err) => {
                        let skipped = execution.counts.skip_count();
                        let err = self.faults.skip.check(err, Phase::Process, skipped)?;
                        tracing::warn!(step = %self.name, item = position, error = %err.report(), "item skipped in processing");
                        execution.counts.process_skip_count += 1;
                        if keep {
                            chunk.skips.push(Skip {
                                item: SkippedItem::Process(item),
                                position,
                                error: err,
                            });
                        }
                    }
                }
                break;
            }
        }
        Ok(())
    }

    /// Processes all of `chunk.inputs` (without retries) through the processor's
    /// `process_chunk`, item results and skips counted as item by item.
    async fn process_chunk(
        &self,
        execution: &mut StepExecution,
        chunk: &mut Chunk<I, O>,
    ) -> Result<()> {
        let mut items = chunk.inputs.drain(..);
        let mut positions = chunk.input_positions.drain(..);
        while items.len() > 0 {
            let before = items.len();
            let result = self
                .processor
                .process_chunk(&mut items, &mut chunk.results)
                .await;
            for out in chunk.results.drain(..) {
                let position = positions.next().unwrap_or_default();
                match out {
                    Some(out) => {
                        chunk.outputs.push(out);
                        chunk.output_positions.push(position);
                    }
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
                Err(err) => {
                    let position = positions.next().unwrap_or_default();
                    let skipped = execution.counts.skip_count();
                    let err = self.faults.skip.check(err, Phase::Process, skipped)?;
                    tracing::warn!(step = %self.name, item = position, error = %err.report(), "item skipped in processing");
                    execution.counts.process_skip_count += 1;
                }
            }
        }
        Ok(())
    }

    /// Tells the skip listeners of the chunk's skips and writes their dead letters, saving
    /// the dead-letter writer's position in the step's context.
    async fn report_skips(
        &self,
        execution: &mut StepExecution,
        chunk: &mut Chunk<I, O>,
        output: &mut Output<'_, I, O>,
    ) -> Result<()> {
        if chunk.skips.is_empty() {
            return Ok(());
        }
        for skip in &chunk.skips {
            for listener in &self.skip_listeners {
                match &skip.item {
                    SkippedItem::Read => listener.on_skip_in_read(&skip.error).await?,
                    SkippedItem::Process(item) => {
                        listener.on_skip_in_process(item, &skip.error).await?
                    }
                    SkippedItem::Write(item) => {
                        listener.on_skip_in_write(item, &skip.error).await?
                    }
                }
            }
        }
        if let Some(dead_letter) = output.dead_letter.as_deref_mut() {
            dead_letter
                .commit(&self.name, &chunk.skips, &mut execution.execution_context)
                .await
                .map_err(|err| {
                    err.context(format!(
                        "step `{}`: cannot write the dead letters of {} skipped item(s)",
                        self.name,
                        chunk.skips.len()
                    ))
                })?;
        }
        chunk.skips.clear();
        Ok(())
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
        let mut dead_letter = match &self.dead_letter {
            Some(sink) => Some(sink.lock().await),
            None => None,
        };
        reader.open(&execution.execution_context).await?;
        let mut point = execution.execution_context.clone();
        let opened = async {
            writer.open(&execution.execution_context).await?;
            if let Some(sink) = dead_letter.as_deref_mut() {
                sink.open(&execution.execution_context).await?;
            }
            if self.faults.rolls_back_writes() {
                // Where a failed write of the first chunk rolls back to (an appending
                // writer opened on a first run has no saved position yet).
                writer.update(&mut point).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(err) = opened {
            let _ = reader.close().await;
            let _ = writer.close().await;
            if let Some(sink) = dead_letter.as_deref_mut() {
                let _ = sink.writer.close().await;
            }
            return Err(err);
        }
        let mut output = Output {
            writer: writer.as_mut(),
            dead_letter: dead_letter.as_deref_mut(),
            point,
        };
        let ahead =
            self.read_ahead && reader.supports_read_ahead() && self.item_listeners.read.is_empty();
        let (result, mut reader) = if ahead {
            let (sender, receiver) = mpsc::channel(1);
            let task = tokio::spawn(crate::call::carry(
                read_ahead(
                    reader,
                    sender,
                    self.chunk_size,
                    self.faults.clone(),
                    ctx.cancel.clone(),
                    execution.counts.skip_count(),
                )
                .in_current_span(),
            ));
            let result = self
                .run_chunks(execution, ctx, ChunkSource::Ahead(receiver), &mut output)
                .await;
            match task.await {
                Ok(reader) => (result, reader),
                Err(join) => {
                    let _ = output.writer.close().await;
                    if let Some(sink) = output.dead_letter {
                        let _ = sink.writer.close().await;
                    }
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
                    &mut output,
                )
                .await;
            (result, reader)
        };
        let closed_reader = reader.close().await;
        let closed_writer = output.writer.close().await;
        let closed_dead_letter = match output.dead_letter {
            Some(sink) => sink.writer.close().await,
            None => Ok(()),
        };
        result?;
        closed_reader?;
        closed_writer?;
        closed_dead_letter
    }
}
