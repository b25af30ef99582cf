//! [`ComponentRegistry`]: what the names in a job file (`type: csv`, `ref: my-reader`,
//! listener refs, incrementers) stand for.
//!
//! A factory receives the component's [`Properties`] (interpolated) and a [`BuildContext`],
//! and returns the component. Factories are called by both
//! [`JobDefinition::validate`](crate::model::JobDefinition::validate) and
//! [`JobDefinition::build`](crate::model::JobDefinition::build), so they must not open files or
//! connections: components do that in [`ItemStream::open`](ikkatsu_core::ItemStream::open)
//! or when a tasklet executes. Relative paths in properties are resolved by the components
//! against the current working directory of the process.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use ikkatsu_core::job::{JobExecutionDecider, JobParametersIncrementer};
use ikkatsu_core::listener::{
    ChunkListener, ItemProcessListener, ItemReadListener, ItemWriteListener, JobExecutionListener,
    RetryListener, SkipListener, StepExecutionListener,
};
use ikkatsu_core::partition::{PartitionBroker, Partitioner};
use ikkatsu_core::{ItemProcessor, ItemReader, ItemWriter, JobParameters, Record, Tasklet};

use crate::model::ListenerRole;
use crate::properties::Properties;

/// What a factory knows about where its component is used.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BuildContext<'a> {
    /// The job's name.
    pub job_name: &'a str,
    /// The step the component belongs to.
    pub step_name: &'a str,
    /// The job parameters: those given at launch, then the job's defaults.
    pub parameters: &'a JobParameters,
    /// The job file (its path as given), for messages.
    pub origin: &'a str,
    /// True when called by `validate`: build the component but do no expensive checks.
    pub validating: bool,
}

impl BuildContext<'_> {
    /// The parameters as `name → text` (what scripts see as `params`).
    pub fn parameter_texts(&self) -> BTreeMap<String, String> {
        self.parameters
            .iter()
            .map(|(name, p)| (name.clone(), p.value.to_text()))
            .collect()
    }
}

/// Makes a component of type `T` from its properties.
pub type Factory<T> =
    Arc<dyn Fn(&Properties, &BuildContext<'_>) -> ikkatsu_core::Result<T> + Send + Sync>;
/// Makes an item reader.
pub type ReaderFactory = Factory<Box<dyn ItemReader<Record>>>;
/// Makes an item processor.
pub type ProcessorFactory = Factory<Arc<dyn ItemProcessor<Record, Record>>>;
/// Makes an item writer.
pub type WriterFactory = Factory<Box<dyn ItemWriter<Record>>>;
/// Makes a tasklet.
pub type TaskletFactory = Factory<Arc<dyn Tasklet>>;
/// Makes a decider.
pub type DeciderFactory = Factory<Arc<dyn JobExecutionDecider>>;
/// Makes a listener of a type (`listeners: [{type: log}]`).
pub type ListenerFactory = Factory<Listeners>;
/// Makes a partitioner (`partition: {partitioner: {type: range}}`).
pub type PartitionerFactory = Factory<Arc<dyn Partitioner>>;

/// Where a partitioned step's remote workers are reached: the broker URL (it may hold a
/// password: never log it, use [`ikkatsu_core::secret`]) and the queue or subject.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerSettings {
    /// `amqp://user:password@host:5672/vhost`, `nats://host:4222`, ...
    pub url: String,
    /// The queue (RabbitMQ) or subject (NATS) partition requests travel on.
    pub queue: String,
}

impl BrokerSettings {
    /// Settings for `url` and `queue`.
    pub fn new(url: impl Into<String>, queue: impl Into<String>) -> Self {
        BrokerSettings {
            url: url.into(),
            queue: queue.into(),
        }
    }
}

/// Makes a broker client from its settings. It must not connect: it connects when it first
/// sends or receives (factories also run for `validate`).
pub type BrokerFactory =
    Arc<dyn Fn(&BrokerSettings) -> ikkatsu_core::Result<Arc<dyn PartitionBroker>> + Send + Sync>;

/// What a listener type's factory makes: the listener of each level it listens at. At the
/// job level (`listeners` of the job) the job listener is used, in an element the step
/// listener; a type without the one a level needs is refused there.
#[derive(Clone, Default)]
pub struct Listeners {
    /// Called before and after the job.
    pub job: Option<Arc<dyn JobExecutionListener>>,
    /// Called before and after a step.
    pub step: Option<Arc<dyn StepExecutionListener>>,
}

/// The kinds of components a job file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// An item reader.
    Reader,
    /// An item processor.
    Processor,
    /// An item writer.
    Writer,
    /// A tasklet.
    Tasklet,
    /// A decider (of a `decision` element).
    Decider,
    /// A listener (`listeners: [{type: ...}]`).
    Listener,
    /// A partitioner (of a `partition` element).
    Partitioner,
}

impl ComponentKind {
    /// `reader`, `processor`, `writer`, `tasklet` or `decider`.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Reader => "reader",
            ComponentKind::Processor => "processor",
            ComponentKind::Writer => "writer",
            ComponentKind::Tasklet => "tasklet",
            ComponentKind::Decider => "decider",
            ComponentKind::Listener => "listener",
            ComponentKind::Partitioner => "partitioner",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Factories by name for one kind of component: built-in types and refs.
struct Factories<T> {
    types: BTreeMap<String, Factory<T>>,
    refs: BTreeMap<String, Factory<T>>,
}

impl<T> Default for Factories<T> {
    fn default() -> Self {
        Factories {
            types: BTreeMap::new(),
            refs: BTreeMap::new(),
        }
    }
}

impl<T> Clone for Factories<T> {
    fn clone(&self) -> Self {
        Factories {
            types: self.types.clone(),
            refs: self.refs.clone(),
        }
    }
}

/// The components, listeners and incrementers a job file may name.
///
/// ```
/// use std::sync::Arc;
/// use ikkatsu_config::ComponentRegistry;
/// use ikkatsu_core::prelude::*;
/// use ikkatsu_core::Record;
///
/// let mut registry = ComponentRegistry::new();
/// registry.register_reader("numbers", |props, _ctx| {
///     let count = props.get("count").and_then(|n| n.as_u64()).unwrap_or(3);
///     let items: Vec<Record> = (1..=count)
///         .map(|n| Record::from_iter([("n".to_string(), serde_json::json!(n))]))
///         .collect();
///     Ok(Box::new(VecItemReader::new(items)))
/// });
/// assert!(registry.has_type(ikkatsu_config::ComponentKind::Reader, "numbers"));
/// ```
#[derive(Clone, Default)]
pub struct ComponentRegistry {
    readers: Factories<Box<dyn ItemReader<Record>>>,
    processors: Factories<Arc<dyn ItemProcessor<Record, Record>>>,
    writers: Factories<Box<dyn ItemWriter<Record>>>,
    tasklets: Factories<Arc<dyn Tasklet>>,
    deciders: Factories<Arc<dyn JobExecutionDecider>>,
    listeners: Factories<Listeners>,
    partitioners: Factories<Arc<dyn Partitioner>>,
    brokers: BTreeMap<String, BrokerFactory>,
    job_listeners: BTreeMap<String, Arc<dyn JobExecutionListener>>,
    step_listeners: BTreeMap<String, Arc<dyn StepExecutionListener>>,
    chunk_listeners: BTreeMap<String, Arc<dyn ChunkListener>>,
    skip_listeners: BTreeMap<String, Arc<dyn SkipListener<Record, Record>>>,
    retry_listeners: BTreeMap<String, Arc<dyn RetryListener>>,
    item_read_listeners: BTreeMap<String, Arc<dyn ItemReadListener<Record>>>,
    item_process_listeners: BTreeMap<String, Arc<dyn ItemProcessListener<Record, Record>>>,
    item_write_listeners: BTreeMap<String, Arc<dyn ItemWriteListener<Record>>>,
    incrementers: BTreeMap<String, Arc<dyn JobParametersIncrementer>>,
}

impl fmt::Debug for ComponentRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentRegistry")
            .field(
                "reader_types",
                &self.readers.types.keys().collect::<Vec<_>>(),
            )
            .field(
                "processor_types",
                &self.processors.types.keys().collect::<Vec<_>>(),
            )
            .field(
                "writer_types",
                &self.writers.types.keys().collect::<Vec<_>>(),
            )
            .field(
                "tasklet_types",
                &self.tasklets.types.keys().collect::<Vec<_>>(),
            )
            .field(
                "decider_types",
                &self.deciders.types.keys().collect::<Vec<_>>(),
            )
            .field("job_listeners", &keys(&self.job_listeners))
            .field("step_listeners", &keys(&self.step_listeners))
            .field("chunk_listeners", &keys(&self.chunk_listeners))
            .field("skip_listeners", &keys(&self.skip_listeners))
            .field("retry_listeners", &keys(&self.retry_listeners))
            .field("item_read_listeners", &keys(&self.item_read_listeners))
            .field(
                "item_process_listeners",
                &keys(&self.item_process_listeners),
            )
            .field("item_write_listeners", &keys(&self.item_write_listeners))
            .finish_non_exhaustive()
    }
}

macro_rules! registrations {
    ($(
        $field:ident, $item:ty,
        $reg_type:ident, $reg_ref:ident, $doc_kind:literal;
    )*) => {
        $(
            #[doc = concat!("Registers the ", $doc_kind, " type `name` (`type: name` in a job file); replaces any earlier one.")]
            pub fn $reg_type<F>(&mut self, name: impl Into<String>, factory: F) -> &mut Self
            where
                F: Fn(&Properties, &BuildContext<'_>) -> ikkatsu_core::Result<$item>
                    + Send
                    + Sync
                    + 'static,
            {
                self.$field.types.insert(name.into(), Arc::new(factory));
                self
            }

            #[doc = concat!("Registers a named ", $doc_kind, " factory (`ref: name` in a job file); it is called once per step that uses it.")]
            pub fn $reg_ref<F>(&mut self, name: impl Into<String>, factory: F) -> &mut Self
            where
                F: Fn(&Properties, &BuildContext<'_>) -> ikkatsu_core::Result<$item>
                    + Send
                    + Sync
                    + 'static,
            {
                self.$field.refs.insert(name.into(), Arc::new(factory));
                self
            }
        )*
    };
}

impl ComponentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        ComponentRegistry::default()
    }

    registrations! {
        readers, Box<dyn ItemReader<Record>>, register_reader, register_reader_ref, "reader";
        processors, Arc<dyn ItemProcessor<Record, Record>>, register_processor, register_processor_ref, "processor";
        writers, Box<dyn ItemWriter<Record>>, register_writer, register_writer_ref, "writer";
        tasklets, Arc<dyn Tasklet>, register_tasklet, register_tasklet_ref, "tasklet";
        deciders, Arc<dyn JobExecutionDecider>, register_decider, register_decider_ref, "decider";
        partitioners, Arc<dyn Partitioner>, register_partitioner, register_partitioner_ref, "partitioner";
    }

    /// Registers the broker for URLs of `scheme` (`amqp`, `nats`), used by partitioned
    /// steps with `remote: {broker: URL}` and by `ikkatsu worker --broker URL`.
    pub fn register_broker<F>(&mut self, scheme: impl Into<String>, factory: F) -> &mut Self
    where
        F: Fn(&BrokerSettings) -> ikkatsu_core::Result<Arc<dyn PartitionBroker>>
            + Send
            + Sync
            + 'static,
    {
        self.brokers.insert(scheme.into(), Arc::new(factory));
        self
    }

    /// A broker client for `settings`, by its URL's scheme; an unknown scheme is an error
    /// listing the known ones.
    pub fn broker(
        &self,
        settings: &BrokerSettings,
    ) -> ikkatsu_core::Result<Arc<dyn PartitionBroker>> {
        let scheme = settings.url.split_once("://").map_or("", |(s, _)| s);
        match self.brokers.get(scheme) {
            Some(factory) => factory(settings),
            None => Err(ikkatsu_core::Error::config(format!(
                "no broker for `{scheme}://` URLs (known: {}); write e.g. amqp://guest:guest@127.0.0.1:5672/%2f or nats://127.0.0.1:4222",
                list(keys(&self.brokers))
            ))),
        }
    }

    /// Registers the listener type `name` (`listeners: [{type: name, properties: {...}}]`
    /// of the job or of an element); replaces any earlier one.
    pub fn register_listener<F>(&mut self, name: impl Into<String>, factory: F) -> &mut Self
    where
        F: Fn(&Properties, &BuildContext<'_>) -> ikkatsu_core::Result<Listeners>
            + Send
            + Sync
            + 'static,
    {
        self.listeners.types.insert(name.into(), Arc::new(factory));
        self
    }

    /// Registers a shared decider instance under `name` (`decision: {ref: name}`).
    pub fn register_decider_instance(
        &mut self,
        name: impl Into<String>,
        decider: Arc<dyn JobExecutionDecider>,
    ) -> &mut Self {
        self.register_decider_ref(name, move |_, _| Ok(decider.clone()))
    }

    /// Registers a shared processor instance under `name` (`ref: name`).
    pub fn register_processor_instance(
        &mut self,
        name: impl Into<String>,
        processor: Arc<dyn ItemProcessor<Record, Record>>,
    ) -> &mut Self {
        self.register_processor_ref(name, move |_, _| Ok(processor.clone()))
    }

    /// Registers a shared tasklet instance under `name` (`ref: name`).
    pub fn register_tasklet_instance(
        &mut self,
        name: impl Into<String>,
        tasklet: Arc<dyn Tasklet>,
    ) -> &mut Self {
        self.register_tasklet_ref(name, move |_, _| Ok(tasklet.clone()))
    }

    /// Registers a job listener (`listeners: [{ref: name}]` at the job level).
    pub fn register_job_listener(
        &mut self,
        name: impl Into<String>,
        listener: Arc<dyn JobExecutionListener>,
    ) -> &mut Self {
        self.job_listeners.insert(name.into(), listener);
        self
    }

    /// Registers a step listener (`listeners: [{ref: name}]` in an element). A name may
    /// also be registered as a chunk listener; the step then gets both.
    pub fn register_step_listener(
        &mut self,
        name: impl Into<String>,
        listener: Arc<dyn StepExecutionListener>,
    ) -> &mut Self {
        self.step_listeners.insert(name.into(), listener);
        self
    }

    /// Registers a chunk listener (`listeners: [{ref: name}]` in an element), called around
    /// every chunk or tasklet iteration.
    pub fn register_chunk_listener(
        &mut self,
        name: impl Into<String>,
        listener: Arc<dyn ChunkListener>,
    ) -> &mut Self {
        self.chunk_listeners.insert(name.into(), listener);
        self
    }

    /// Registers a skip listener (`listeners: [{ref: name}]` in a chunk element), told of
    /// every item the step skips, when its chunk commits. A name may also be registered as
    /// another kind of listener; the step then gets each.
    pub fn register_skip_listener(
        &mut self,
        name: impl Into<String>,
        listener: Arc<dyn SkipListener<Record, Record>>,
    ) -> &mut Self {
        self.skip_listeners.insert(name.into(), listener);
        self
    }

    /// Registers a retry listener (`listeners: [{ref: name}]` in a chunk element), told of
    /// every retry of a read, a processing or a write.
    pub fn register_retry_listener(
        &mut self,
        name: impl Into<String>,
        listener: Arc<dyn RetryListener>,
    ) -> &mut Self {
        self.retry_listeners.insert(name.into(), listener);
        self
    }

    /// Registers an item read listener (`item-read-listeners: [{ref: name}]`, or
    /// `listeners: [{ref: name}]`, in a chunk element), told of every read.
    pub fn register_item_read_listener(
        &mut self,
        name: impl Into<String>,
        listener: Arc<dyn ItemReadListener<Record>>,
    ) -> &mut Self {
        self.item_read_listeners.insert(name.into(), listener);
        self
    }

    /// Registers an item process listener (`item-process-listeners: [{ref: name}]`, or
    /// `listeners: [{ref: name}]`, in a chunk element), told of the processing of every item.
    pub fn register_item_process_listener(
        &mut self,
        name: impl Into<String>,
        listener: Arc<dyn ItemProcessListener<Record, Record>>,
    ) -> &mut Self {
        self.item_process_listeners.insert(name.into(), listener);
        self
    }

    /// Registers an item write listener (`item-write-listeners: [{ref: name}]`, or
    /// `listeners: [{ref: name}]`, in a chunk element), told of every write.
    pub fn register_item_write_listener(
        &mut self,
        name: impl Into<String>,
        listener: Arc<dyn ItemWriteListener<Record>>,
    ) -> &mut Self {
        self.item_write_listeners.insert(name.into(), listener);
        self
    }

    /// Registers a parameters incrementer (`incrementer: name`). `run-id` is always known.
    pub fn register_incrementer(
        &mut self,
        name: impl Into<String>,
        incrementer: Arc<dyn JobParametersIncrementer>,
    ) -> &mut Self {
        self.incrementers.insert(name.into(), incrementer);
        self
    }

    /// Whether `name` is a registered type of `kind`.
    pub fn has_type(&self, kind: ComponentKind, name: &str) -> bool {
        self.type_names(kind).contains(name)
    }

    /// The registered type names of `kind`, sorted.
    pub fn type_names(&self, kind: ComponentKind) -> BTreeSet<&str> {
        match kind {
            ComponentKind::Reader => keys(&self.readers.types),
            ComponentKind::Processor => keys(&self.processors.types),
            ComponentKind::Writer => keys(&self.writers.types),
            ComponentKind::Tasklet => keys(&self.tasklets.types),
            ComponentKind::Decider => keys(&self.deciders.types),
            ComponentKind::Listener => keys(&self.listeners.types),
            ComponentKind::Partitioner => keys(&self.partitioners.types),
        }
    }

    /// The registered ref names of `kind`, sorted.
    pub fn ref_names(&self, kind: ComponentKind) -> BTreeSet<&str> {
        match kind {
            ComponentKind::Reader => keys(&self.readers.refs),
            ComponentKind::Processor => keys(&self.processors.refs),
            ComponentKind::Writer => keys(&self.writers.refs),
            ComponentKind::Tasklet => keys(&self.tasklets.refs),
            ComponentKind::Decider => keys(&self.deciders.refs),
            ComponentKind::Listener => keys(&self.listeners.refs),
            ComponentKind::Partitioner => keys(&self.partitioners.refs),
        }
    }

    pub(crate) fn reader(&self, by_ref: bool, name: &str) -> Option<&ReaderFactory> {
        pick(&self.readers, by_ref, name)
    }

    pub(crate) fn processor(&self, by_ref: bool, name: &str) -> Option<&ProcessorFactory> {
        pick(&self.processors, by_ref, name)
    }

    pub(crate) fn writer(&self, by_ref: bool, name: &str) -> Option<&WriterFactory> {
        pick(&self.writers, by_ref, name)
    }

    pub(crate) fn tasklet(&self, by_ref: bool, name: &str) -> Option<&TaskletFactory> {
        pick(&self.tasklets, by_ref, name)
    }

    pub(crate) fn decider(&self, by_ref: bool, name: &str) -> Option<&DeciderFactory> {
        pick(&self.deciders, by_ref, name)
    }

    pub(crate) fn listener(&self, by_ref: bool, name: &str) -> Option<&ListenerFactory> {
        pick(&self.listeners, by_ref, name)
    }

    pub(crate) fn partitioner(&self, by_ref: bool, name: &str) -> Option<&PartitionerFactory> {
        pick(&self.partitioners, by_ref, name)
    }

    pub(crate) fn job_listener(&self, name: &str) -> Option<&Arc<dyn JobExecutionListener>> {
        self.job_listeners.get(name)
    }

    pub(crate) fn step_listener(&self, name: &str) -> Option<&Arc<dyn StepExecutionListener>> {
        self.step_listeners.get(name)
    }

    pub(crate) fn chunk_listener(&self, name: &str) -> Option<&Arc<dyn ChunkListener>> {
        self.chunk_listeners.get(name)
    }

    pub(crate) fn skip_listener(
        &self,
        name: &str,
    ) -> Option<&Arc<dyn SkipListener<Record, Record>>> {
        self.skip_listeners.get(name)
    }

    pub(crate) fn retry_listener(&self, name: &str) -> Option<&Arc<dyn RetryListener>> {
        self.retry_listeners.get(name)
    }

    pub(crate) fn item_read_listener(
        &self,
        name: &str,
    ) -> Option<&Arc<dyn ItemReadListener<Record>>> {
        self.item_read_listeners.get(name)
    }

    pub(crate) fn item_process_listener(
        &self,
        name: &str,
    ) -> Option<&Arc<dyn ItemProcessListener<Record, Record>>> {
        self.item_process_listeners.get(name)
    }

    pub(crate) fn item_write_listener(
        &self,
        name: &str,
    ) -> Option<&Arc<dyn ItemWriteListener<Record>>> {
        self.item_write_listeners.get(name)
    }

    /// The names registered as listeners of `role` (every element listener for `Any`).
    pub(crate) fn role_listener_names(&self, role: ListenerRole) -> BTreeSet<&str> {
        match role {
            ListenerRole::Chunk => keys(&self.chunk_listeners),
            ListenerRole::ItemRead => keys(&self.item_read_listeners),
            ListenerRole::ItemProcess => keys(&self.item_process_listeners),
            ListenerRole::ItemWrite => keys(&self.item_write_listeners),
            ListenerRole::Skip => keys(&self.skip_listeners),
            ListenerRole::Retry => keys(&self.retry_listeners),
            _ => self.step_listener_names(),
        }
    }

    pub(crate) fn incrementer(&self, name: &str) -> Option<&Arc<dyn JobParametersIncrementer>> {
        self.incrementers.get(name)
    }

    pub(crate) fn job_listener_names(&self) -> BTreeSet<&str> {
        keys(&self.job_listeners)
    }

    pub(crate) fn step_listener_names(&self) -> BTreeSet<&str> {
        keys(&self.step_listeners)
            .into_iter()
            .chain(keys(&self.chunk_listeners))
            .chain(keys(&self.skip_listeners))
            .chain(keys(&self.retry_listeners))
            .chain(keys(&self.item_read_listeners))
            .chain(keys(&self.item_process_listeners))
            .chain(keys(&self.item_write_listeners))
            .collect()
    }

    pub(crate) fn incrementer_names(&self) -> BTreeSet<&str> {
        keys(&self.incrementers)
    }
}

fn list(names: BTreeSet<&str>) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.into_iter().collect::<Vec<_>>().join(", ")
    }
}

fn keys<V>(map: &BTreeMap<String, V>) -> BTreeSet<&str> {
    map.keys().map(String::as_str).collect()
}

fn pick<'a, T>(factories: &'a Factories<T>, by_ref: bool, name: &str) -> Option<&'a Factory<T>> {
    if by_ref {
        factories.refs.get(name)
    } else {
        factories.types.get(name)
    }
}
