//! The job definition model (JSL / JSR-352 shape): what a job file says, with the position
//! of every value. [`JobDefinition::from_str`] parses it (module `parse`) and
//! [`JobDefinition::build`] makes a [`Job`](ikkatsu_core::Job) of it (module `build`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ikkatsu_core::TransitionTarget;

pub(crate) mod element;
mod located;
mod step;

use crate::error::Position;
use crate::node::Node;

pub use element::ElementKind;
pub use located::Located;
pub use step::{
    ChunkDefinition, ComponentDefinition, ComponentSelector, RetryDefinition, SkipDefinition,
};

/// A parsed job definition. Build it into a [`Job`](ikkatsu_core::Job) with
/// [`JobDefinition::build`].
#[derive(Debug, Clone)]
pub struct JobDefinition {
    /// The job's name: `id`, or `name` when there is no `id`.
    pub id: Located<String>,
    /// A name for people, distinct from the job's name: `name` next to `id`.
    pub display_name: Option<String>,
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
    /// Named flows (`flows`), run by `flow: NAME` elements.
    pub flows: Vec<NamedFlow>,
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

/// A named flow of the job's `flows`.
#[derive(Debug, Clone)]
pub struct NamedFlow {
    /// Its name.
    pub name: Located<String>,
    /// Its elements.
    pub flow: FlowDefinition,
}

/// What a `flow` element runs: a named flow of the job (`flow: NAME`), or a flow written in
/// place (`flow: {start-element, elements}` or `flow: {steps: [...]}`). Its steps are named
/// `ELEMENT.STEP`.
#[derive(Debug, Clone)]
pub enum FlowElementDefinition {
    /// `flow: NAME`.
    Named(Located<String>),
    /// A flow in place.
    Inline(Box<FlowDefinition>),
}

/// What a listener of an element listens to: the key of the list that names it
/// (`item-read-listeners`, ...), or any role it is registered for (`listeners`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenerRole {
    /// `listeners`: every role the name is registered for.
    Any,
    /// `chunk-listeners`.
    Chunk,
    /// `item-read-listeners`.
    ItemRead,
    /// `item-process-listeners`.
    ItemProcess,
    /// `item-write-listeners`.
    ItemWrite,
    /// `skip-listeners`.
    Skip,
    /// `retry-item-listeners`.
    Retry,
}

impl ListenerRole {
    /// The element key of each role but `Any`, with the role.
    pub const KEYS: &'static [(&'static str, ListenerRole)] = &[
        ("chunk-listeners", ListenerRole::Chunk),
        ("item-read-listeners", ListenerRole::ItemRead),
        ("item-process-listeners", ListenerRole::ItemProcess),
        ("item-write-listeners", ListenerRole::ItemWrite),
        ("skip-listeners", ListenerRole::Skip),
        ("retry-item-listeners", ListenerRole::Retry),
    ];

    /// `chunk listener`, `item read listener`, ...: for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ListenerRole::Any => "step listener",
            ListenerRole::Chunk => "chunk listener",
            ListenerRole::ItemRead => "item read listener",
            ListenerRole::ItemProcess => "item process listener",
            ListenerRole::ItemWrite => "item write listener",
            ListenerRole::Skip => "skip listener",
            ListenerRole::Retry => "retry listener",
        }
    }
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
    /// Free text.
    pub description: Option<String>,
    /// Step (and chunk) listeners: `{ref}` or `{type, properties}`.
    pub listeners: Vec<ComponentDefinition>,
    /// Listeners of one role (`item-read-listeners`, `skip-listeners`, ...): `{ref}`.
    pub role_listeners: Vec<(ListenerRole, ComponentDefinition)>,
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

    /// The named flow `name` (of `flows`).
    pub fn named_flow(&self, name: &str) -> Option<&FlowDefinition> {
        self.flows
            .iter()
            .find(|f| f.name.value == name)
            .map(|f| &f.flow)
    }
}

/// A partitioned step: the partitioner splits the work, the worker step runs once per
/// partition, locally or on remote workers.
#[derive(Debug, Clone)]
pub struct PartitionDefinition {
    /// Makes the partitions (`type: range | list | files`, or `ref`).
    pub partitioner: ComponentDefinition,
    /// The worker step: a `chunk` or a `tasklet`, built for each partition with its
    /// context (`${partition.KEY}`).
    pub worker: Box<ElementKind>,
    /// Where the worker step is written.
    pub worker_position: Position,
    /// How many partitions to ask the partitioner for (default 4).
    pub grid_size: Option<u64>,
    /// How many partitions run at once in this process (default: the grid size); not used
    /// with `remote`.
    pub parallelism: Option<u64>,
    /// Send the partitions to `ikkatsu worker` processes instead of running them here.
    pub remote: Option<RemoteDefinition>,
    /// How often a running partition marks itself alive (default 2s).
    pub heartbeat: Option<Duration>,
    /// A running partition whose heartbeat is older than this has lost its worker (default
    /// 20s).
    pub stale_after: Option<Duration>,
}

/// `remote: {broker, queue, timeout, poll-interval}`.
#[derive(Debug, Clone)]
pub struct RemoteDefinition {
    /// The broker URL (`amqp://…`, `nats://…`), not yet interpolated.
    pub broker: Node,
    /// The queue or subject (default `ikkatsu.partitions`).
    pub queue: Option<String>,
    /// The longest the manager waits for the partitions (default: no limit).
    pub timeout: Option<Duration>,
    /// How often the manager reads the partitions' state (default 200ms).
    pub poll_interval: Option<Duration>,
}
