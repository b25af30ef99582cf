//! The dead-letter writer of a chunk step: every skipped item, with why and where it failed,
//! written to any [`ItemWriter`] of [`Record`]s and committed with the chunk it was skipped
//! in.

use std::sync::Arc;

use serde_json::Value;

use super::fault::{Skip, SkippedItem};
use crate::context::ExecutionContext;
use crate::error::Result;
use crate::item::{ItemWriter, Record};

/// Where the dead-letter writer's own position is saved in the step's execution context (a
/// mapping holding what the writer's `update` saved, apart from the step's writer, which may
/// be of the same type and use the same keys).
pub(super) const WRITER_KEY: &str = "dead-letter.writer";

/// Where the count of input items consumed by committed chunks is saved, so that the item
/// numbers of dead letters run on across restarts.
pub(super) const POSITION_KEY: &str = "dead-letter.position";

/// Turns an item into the `record` of its dead letter.
pub(super) type Describe<T> = Arc<dyn Fn(&T) -> Value + Send + Sync>;

/// A step's dead-letter writer and how its items are described.
pub(super) struct DeadLetterSink<I, O> {
    pub writer: Box<dyn ItemWriter<Record>>,
    pub input: Describe<I>,
    pub output: Describe<O>,
}

impl<I, O> DeadLetterSink<I, O> {
    /// Opens the writer with its part of the step's `context`.
    pub async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.writer.open(&own_context(context)).await
    }

    /// Writes the dead letters of `skips` (skipped in `step`) and makes them durable,
    /// saving the writer's position under [`WRITER_KEY`] in `context`.
    pub async fn commit(
        &mut self,
        step: &str,
        skips: &[Skip<I, O>],
        context: &mut ExecutionContext,
    ) -> Result<()> {
        let letters: Vec<Record> = skips.iter().map(|skip| self.letter(step, skip)).collect();
        self.writer.write(&letters).await?;
        let mut own = own_context(context);
        self.writer.update(&mut own).await?;
        let saved: serde_json::Map<String, Value> = own
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        context.put(WRITER_KEY, Value::Object(saved));
        Ok(())
    }

    /// The dead letter of one skip: `step`, `phase`, `item` (the input position), `kind`
    /// and `message` of the error, and `record`, the item (absent for a read skip).
    fn letter(&self, step: &str, skip: &Skip<I, O>) -> Record {
        let mut letter = Record::with_capacity(6);
        letter.insert("step".into(), Value::from(step));
        letter.insert("phase".into(), Value::from(skip.item.phase().as_str()));
        letter.insert("item".into(), Value::from(skip.position));
        letter.insert("kind".into(), Value::from(skip.error.kind().as_str()));
        letter.insert("message".into(), Value::from(skip.error.report()));
        match &skip.item {
            SkippedItem::Read => {}
            SkippedItem::Process(item) => {
                letter.insert("record".into(), (self.input)(item));
            }
            SkippedItem::Write(item) => {
                letter.insert("record".into(), (self.output)(item));
            }
        }
        letter
    }
}

/// The dead-letter writer's part of the step's `context`.
fn own_context(context: &ExecutionContext) -> ExecutionContext {
    let mut own = ExecutionContext::new();
    if let Some(Value::Object(saved)) = context.get_value(WRITER_KEY) {
        for (key, value) in saved {
            own.put(key.clone(), value);
        }
    }
    own
}

/// Describes a serializable item as JSON (or says why it cannot be).
pub(super) fn describe<T: serde::Serialize>(item: &T) -> Value {
    serde_json::to_value(item).unwrap_or_else(|err| {
        Value::String(format!("(the item is not representable as JSON: {err})"))
    })
}
