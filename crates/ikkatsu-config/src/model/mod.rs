//! The job definition model (JSL / JSR-352 shape): what a job file says, with the position
//! of every value. [`JobDefinition::from_str`] parses it (module `parse`) and
//! [`JobDefinition::build`] makes a [`Job`](ikkatsu_core::Job) of it (module `build`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ikkatsu_core::TransitionTarget;

pub(crate) mod element;
mod located;
mod partition;
mod step;

use crate::error::Position;
use crate::node::Node;

pub use element::ElementKind;
pub use located::Located;
pub use partition::{PartitionDefinition, RemoteDefinition};
pub use step::{
    ChunkDefinition, ComponentDefinition, ComponentSelector, RetryDefinition, SkipDefinition,
};

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
    /// [`ComponentRegistry::register_incrementer`](crate::registry::ComponentRegistry::register_incrementer).
    pub incrementer: Option<Located<String>>,
    /// Default parameters.
    pub params: Vec<ParamDefinition>,
    /// Job listeners: `{ref}` (registered from Rust) or `{type, properties}`.
    pub listeners: Vec<ComponentDefinition>,
    /// The flow of elements.
    pub flow: FlowDefinition,
    pub(crate) origin: Arc<str>,
    pub(crate) path: Option<PathBuf>,
}

/// A job parameter's declaration: `name: value` (a default) or `name: {value, type,
/// identifying, required, description}`.
#[derive(Debug, Clone)]
pub struct ParamDefinition {
    /// The parameter's name.
    pub name: Located<String>,
    /// The default value as written (a string; `${ENV}` and `${file:...}` are resolved at
    /// build); `None` for a parameter without a default.
    pub value: Option<Node>,
    /// Whether the parameter must be given at launch (it then has no default).
    pub required: bool,
    /// What the parameter is, for people.
    pub description: Option<String>,
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

/// `split: {flows: [...]}`: flows run in parallel.
#[derive(Debug, Clone)]
pub struct SplitDefinition {
    /// The flows, each in the shape of a job's `steps` or `flow`.
    pub flows: Vec<FlowDefinition>,
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
    /// Step (and chunk) listeners: `{ref}` or `{type, properties}`.
    pub listeners: Vec<ComponentDefinition>,
    /// Keys copied from the step's execution context to the job's when the step completes.
    pub promote_keys: Vec<String>,
    /// Whether a completed step runs again on restart.
    pub allow_start_if_complete: bool,
    /// How many times the step may start within one job instance.
    pub start_limit: Option<u64>,
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
