//! Writing a chunk: rolled back and retried when it fails, then scanned item by item to
//! isolate the items that cannot be written when their errors are skippable.

use super::fault::{Skip, SkippedItem};
use super::{Chunk, ChunkStep, Output};
use crate::error::{Error, Result};
use crate::execution::StepExecution;
use crate::step::{Phase, StepContext};

impl<I, O> ChunkStep<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + Sync + 'static,
{
    /// Writes `chunk.outputs`. A failed write is rolled back and retried as the retry
    /// policy allows; when it still fails with a skippable error, the chunk is scanned.
    pub(super) async fn write(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
        chunk: &mut Chunk<I, O>,
        output: &mut Output<'_, I, O>,
    ) -> Result<()> {
        if chunk.outputs.is_empty() {
            return Ok(());
        }
        if !self.faults.rolls_back_writes() {
            self.write_items(output, &chunk.outputs).await??;
            self.written(execution, chunk);
            return Ok(());
        }
        let mut attempt = 0u32;
        let error = loop {
            let Err(err) = self.write_items(output, &chunk.outputs).await? else {
                self.written(execution, chunk);
                return Ok(());
            };
            let retry = self.faults.retries(Phase::Write, &err, attempt);
            if !retry && !self.faults.skip.is_skippable(&err) {
                // The step fails; a restart truncates what the failed write left.
                return Err(err);
            }
            self.roll_back(execution, output, &err).await?;
            if !retry {
                break err;
            }
            attempt += 1;
            self.faults
                .before_retry(Phase::Write, attempt, &err, &ctx.cancel)
                .await?;
        };
        self.scan(execution, chunk, output, error).await
    }

    /// Writes `items`, told to the write listeners; `Err` is a listener's error, `Ok` the
    /// writer's result.
    async fn write_items(&self, output: &mut Output<'_, I, O>, items: &[O]) -> Result<Result<()>> {
        self.item_listeners.before_write(items).await?;
        let result = output.writer.write(items).await;
        self.item_listeners.written(items, result).await
    }

    /// Counts the outputs of a chunk written whole.
    fn written(&self, execution: &mut StepExecution, chunk: &mut Chunk<I, O>) {
        execution.counts.write_count += chunk.outputs.len() as u64;
        chunk.outputs.clear();
        chunk.output_positions.clear();
    }

    /// Undoes the failed write that ended in `error`.
    async fn roll_back(
        &self,
        execution: &mut StepExecution,
        output: &mut Output<'_, I, O>,
        error: &Error,
    ) -> Result<()> {
        output.writer.rollback(&output.point).await.map_err(|err| {
            err.context(format!(
                "step `{}`: cannot roll back the writer after a failed write ({})",
                self.name,
                error.report()
            ))
        })?;
        execution.counts.rollback_count += 1;
        Ok(())
    }

    /// Writes the items of the chunk one at a time, each made durable on its own; an item
    /// that fails is rolled back (kept, for a no-rollback kind) and skipped, or fails the
    /// step when the skip policy refuses it.
    async fn scan(
        &self,
        execution: &mut StepExecution,
        chunk: &mut Chunk<I, O>,
        output: &mut Output<'_, I, O>,
        error: Error,
    ) -> Result<()> {
        tracing::warn!(
            step = %self.name,
            items = chunk.outputs.len(),
            error = %error.report(),
            "a chunk write failed with a skippable error: writing its items one at a time"
        );
        let keep = self.records_skips();
        let items = chunk
            .outputs
            .drain(..)
            .zip(chunk.output_positions.drain(..));
        for (item, position) in items {
            match self
                .write_items(output, std::slice::from_ref(&item))
                .await?
            {
                Ok(()) => {
                    output.writer.update(&mut output.point).await?;
                    execution.counts.write_count += 1;
                }
                Err(err) => {
                    if self.faults.is_no_rollback(&err) {
                        output.writer.update(&mut output.point).await?;
                    } else {
                        self.roll_back(execution, output, &err).await?;
                    }
                    let skipped = execution.counts.skip_count();
                    let err = self.faults.skip.check(err, Phase::Write, skipped)?;
                    tracing::warn!(step = %self.name, item = position, error = %err.report(), "item skipped in writing");
                    execution.counts.write_skip_count += 1;
                    if keep {
                        chunk.skips.push(Skip {
                            item: SkippedItem::Write(item),
                            position,
                            error: err,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
