//! The parts of steps: chunks, the components they are made of, and their skip and retry
//! policies.

use std::time::Duration;

use ikkatsu_core::ErrorKind;

use super::located::Located;
use crate::error::Position;
use crate::node::Node;

/// A chunk-oriented step: reader, optional processor, writer, and policies.
#[derive(Debug, Clone)]
pub struct ChunkDefinition {
    /// The reader.
    pub reader: ComponentDefinition,
    /// The processor (pass-through when absent).
    pub processor: Option<ComponentDefinition>,
    /// The writer.
    pub writer: ComponentDefinition,
    /// Items per chunk (`chunk-size` or `commit-interval`; default 100).
    pub chunk_size: Option<Located<u64>>,
    /// Which read, process and write errors may be skipped (`skip`, alias `item-skip`).
    pub skip: Option<SkipDefinition>,
    /// How read, process and write errors are retried (`retry`, alias `item-retry`).
    pub retry: Option<RetryDefinition>,
    /// `no-rollback`: error kinds whose process or write errors do not roll back the chunk.
    pub no_rollback: Vec<ErrorKind>,
    /// `dead-letter: {writer}`: where skipped items are written.
    pub dead_letter: Option<ComponentDefinition>,
    /// `read-ahead`: read the next chunk while the current one is written (default: true,
    /// for readers that allow it).
    pub read_ahead: Option<bool>,
}

/// `skip: {limit, on}` (alias `item-skip`, with `kinds` for `on`).
#[derive(Debug, Clone, PartialEq)]
pub struct SkipDefinition {
    /// Most items skipped per step execution.
    pub limit: u64,
    /// Error kinds that may be skipped.
    pub kinds: Vec<ErrorKind>,
}

/// `retry: {limit, on, backoff: {initial, max, multiplier, jitter}}` (alias `item-retry`,
/// with `kinds` for `on`, `backoff` as a duration and `max-backoff`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryDefinition {
    /// Retries after the first attempt.
    pub limit: u32,
    /// Kinds retried even when the error is not marked temporary.
    pub kinds: Vec<ErrorKind>,
    /// Delay before the first retry.
    pub backoff: Option<Duration>,
    /// Longest delay between attempts.
    pub max_backoff: Option<Duration>,
    /// How much each delay grows over the one before.
    pub multiplier: Option<f64>,
    /// The largest share of a delay added at random (0 to 1).
    pub jitter: Option<f64>,
}

/// A component named by built-in `type` or by `ref`, with its `properties`.
#[derive(Debug, Clone)]
pub struct ComponentDefinition {
    /// How the component is named.
    pub selector: ComponentSelector,
    /// The properties (a mapping; empty when absent), not yet interpolated.
    pub properties: Node,
    /// Where the component is defined.
    pub position: Position,
}

/// How a component is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSelector {
    /// A type registered with `register_reader` etc. (the built-ins: `csv`, `jsonl`, ...).
    Type(Located<String>),
    /// A named instance or factory registered from Rust with `register_reader_ref` etc.
    Ref(Located<String>),
}

impl ComponentSelector {
    /// The type or ref name.
    pub fn name(&self) -> &Located<String> {
        match self {
            ComponentSelector::Type(n) | ComponentSelector::Ref(n) => n,
        }
    }
}
