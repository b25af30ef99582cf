//! The job definition model (JSL / JSR-352 shape): what a job file says, with the position
//! of every value. [`JobDefinition::from_str`] parses it (module `parse`) and
//! [`JobDefinition::build`] makes a [`Job`](ikkatsu_core::Job) of it (module `build`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ikkatsu_core::{ErrorKind, TransitionTarget};

pub use crate::element::ElementKind;
use crate::error::Position;
use crate::node::Node;

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub position: Position,
}

impl<T> Located<T> {
    pub(crate) fn new(value: T, position: Position) -> Self {
        Located { value, position }
    }
}

/// A parsed job definition. Build it into a [`Job`](ikkatsu_core::Job) with
/// [`JobDefinition::build`].
#[derive(Debug, Clone)]
pub struct JobDefinition {
    /// The job's name (`id`, or its alias `name`).
    pub id: Located<String>,
    /// Free text.
    pub description: Option<String>,
    /// Whether failed or stopped executions may be restarted (default true).
    pub restartable: bool,
    /// The parameters incrementer: `run-id`, or a name registered with
    /// [`ComponentRegistry::register_incrementer`](crate::ComponentRegistry::register_incrementer).
    pub incrementer: Option<Located<String>>,
    /// Default parameters.
    pub params: Vec<ParamDefinition>,
    /// Job listeners, by `ref`.
    pub listeners: Vec<Located<String>>,
    /// The flow of elements.
    pub flow: FlowDefinition,
    pub(crate) origin: Arc<str>,
    pub(crate) path: Option<PathBuf>,
}

/// A default job parameter: `name: value` or `name: {value, type, identifying}`.
#[derive(Debug, Clone)]
pub struct ParamDefinition {
    /// The parameter's name.
    pub name: Located<String>,
    /// The value as written (a string; `${ENV}` and `${file:...}` are resolved at build).
    pub value: Node,
    /// The type (`string`, `integer`, `float`, `bool`, `date`, `datetime`; default string).
    pub type_name: Option<Located<String>>,
    /// Whether the parameter identifies the job instance (default true).
    pub identifying: bool,
}

/// The flow: a start element and named elements, in document order.
#[derive(Debug, Clone)]
pub struct FlowDefinition {
    /// The first element.
    pub start: Located<String>,
    /// The elements.
    pub elements: Vec<ElementDefinition>,
}

/// An element of the flow with the keys common to all elements.
#[derive(Debug, Clone)]
pub struct ElementDefinition {
    /// The element's name (the step's name).
    pub name: Located<String>,
    /// What the element is.
    pub kind: ElementKind,
    /// Transitions, tried in order.
    pub transitions: Vec<TransitionDefinition>,
    /// Where to go when no transition matches and the step did not fail.
    pub next: Option<Located<String>>,
    /// Step (and chunk) listeners, by `ref`.
    pub listeners: Vec<Located<String>>,
    /// Keys copied from the step's execution context to the job's when the step completes.
    pub promote_keys: Vec<String>,
    /// Whether a completed step runs again on restart.
    pub allow_start_if_complete: bool,
    /// How many times the step may start within one job instance.
    pub start_limit: Option<u64>,
}

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
    /// Which read/process errors may be skipped.
    pub skip: Option<SkipDefinition>,
    /// How process/write errors are retried.
    pub retry: Option<RetryDefinition>,
    /// `read-ahead`: read the next chunk while the current one is written (default: true,
    /// for readers that allow it).
    pub read_ahead: Option<bool>,
}

/// `item-skip: {limit, kinds}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SkipDefinition {
    /// Most items skipped per step execution.
    pub limit: u64,
    /// Error kinds that may be skipped.
    pub kinds: Vec<ErrorKind>,
}

/// `item-retry: {limit, kinds, backoff, max-backoff}`.
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

/// `{on: PATTERN, to: X | end: true | fail: true | stop: true, restart: X, exit-code: X}`.
#[derive(Debug, Clone)]
pub struct TransitionDefinition {
    /// The exit-code pattern.
    pub on: Located<String>,
    /// Where it leads.
    pub target: TransitionTarget,
    /// Where the element names in the target (`to`, `restart`) are written.
    pub target_position: Position,
}

impl JobDefinition {
    /// The name the definition was parsed under (its path, as given).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The absolute path of the job file, when read with [`JobDefinition::from_path`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The element named `name`.
    pub fn element(&self, name: &str) -> Option<&ElementDefinition> {
        self.flow.elements.iter().find(|e| e.name.value == name)
    }
}
