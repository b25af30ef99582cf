//! A chunk element's [`ChunkStepBuilder`]: its components, size and read-ahead, and its
//! fault tolerance (skip, retry, no-rollback, dead-letter writer), and its skip, retry and
//! item listeners.

use ikkatsu_core::step::{ChunkStepBuilder, RetryPolicy, SkipPolicy};
use ikkatsu_core::{ChunkStep, Record};

use super::StepBuilder;
use super::listeners::ItemListeners;
use crate::error::ConfigErrors;
use crate::model::{ChunkDefinition, RetryDefinition};
use crate::registry::ComponentKind;

impl StepBuilder<'_> {
    pub(super) fn chunk(
        &self,
        chunk: &ChunkDefinition,
        listeners: ItemListeners,
        errors: &mut ConfigErrors,
    ) -> Option<ChunkStepBuilder<Record, Record>> {
        let reader = self.make(
            &chunk.reader,
            ComponentKind::Reader,
            errors,
            |r, by_ref, n| r.reader(by_ref, n),
        );
        let processor = chunk.processor.as_ref().map(|p| {
            self.make(p, ComponentKind::Processor, errors, |r, by_ref, n| {
                r.processor(by_ref, n)
            })
        });
        let writer = self.make(
            &chunk.writer,
            ComponentKind::Writer,
            errors,
            |r, by_ref, n| r.writer(by_ref, n),
        );
        let dead_letter = chunk.dead_letter.as_ref().map(|w| {
            self.make(w, ComponentKind::Writer, errors, |r, by_ref, n| {
                r.writer(by_ref, n)
            })
        });
        let (reader, writer) = (reader?, writer?);
        let mut builder = ChunkStep::<Record, Record>::builder(self.step)
            .boxed_reader(reader)
            .boxed_writer(writer);
        match processor {
            Some(Some(p)) => builder = builder.shared_processor(p),
            Some(None) => return None,
            None => {}
        }
        match dead_letter {
            Some(Some(w)) => builder = builder.dead_letter(w),
            Some(None) => return None,
            None => {}
        }
        if let Some(size) = &chunk.chunk_size {
            match usize::try_from(size.value) {
                Ok(n) => builder = builder.chunk_size(n),
                Err(_) => {
                    self.err(errors, size.position, "`chunk-size` is too large");
                    return None;
                }
            }
        }
        if let Some(read_ahead) = chunk.read_ahead {
            builder = builder.read_ahead(read_ahead);
        }
        if let Some(skip) = &chunk.skip {
            builder = builder.skip_policy(SkipPolicy::new(skip.limit, skip.kinds.clone()));
        }
        if let Some(retry) = &chunk.retry {
            builder = builder.retry_policy(retry_policy(retry));
        }
        builder = builder.no_rollback(chunk.no_rollback.clone());
        for listener in listeners.skip {
            builder = builder.skip_listener(listener);
        }
        for listener in listeners.retry {
            builder = builder.retry_listener(listener);
        }
        for listener in listeners.read {
            builder = builder.item_read_listener(listener);
        }
        for listener in listeners.process {
            builder = builder.item_process_listener(listener);
        }
        for listener in listeners.write {
            builder = builder.item_write_listener(listener);
        }
        Some(builder)
    }
}

/// The retry policy of `retry`: its numbers, the defaults for the others.
fn retry_policy(retry: &RetryDefinition) -> RetryPolicy {
    let mut policy = RetryPolicy::new(retry.limit);
    policy.kinds = retry.kinds.clone();
    if let Some(b) = retry.backoff {
        policy.initial_backoff = b;
    }
    if let Some(b) = retry.max_backoff {
        policy.max_backoff = b;
    }
    if let Some(m) = retry.multiplier {
        policy.multiplier = m;
    }
    if let Some(j) = retry.jitter {
        policy.jitter = j;
    }
    policy
}
