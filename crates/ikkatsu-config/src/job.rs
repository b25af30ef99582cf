//! The job definition model (JSL / JSR-352 shape) and its parser.
//!
//! A document is read into a tree of positioned nodes, then walked key by key: every
//! unknown key, wrong type, missing key, duplicate name and dangling transition target is
//! recorded with its line and column, and all of them are returned together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ikkatsu_core::{ErrorKind, TransitionTarget};

use crate::error::{ConfigError, ConfigErrors, Position};
use crate::node::{Key, Node, NodeKind, parse_yaml};

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub position: Position,
}

impl<T> Located<T> {
    fn new(value: T, position: Position) -> Self {
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

/// The kind of a flow element. Decisions and splits will be added here.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ElementKind {
    /// A chunk-oriented step.
    Chunk(Box<ChunkDefinition>),
    /// A tasklet step.
    Tasklet(ComponentDefinition),
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

const JOB_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "restartable",
    "incrementer",
    "params",
    "listeners",
    "flow",
    "steps",
];
const FLOW_KEYS: &[&str] = &["start-element", "elements"];
const ELEMENT_KEYS: &[&str] = &[
    "chunk",
    "tasklet",
    "decision",
    "split",
    "transitions",
    "listeners",
    "execution-context-promotion",
    "allow-start-if-complete",
    "start-limit",
    "next",
];
const CHUNK_KEYS: &[&str] = &[
    "reader",
    "processor",
    "writer",
    "chunk-size",
    "commit-interval",
    "item-skip",
    "item-retry",
    "read-ahead",
];
const COMPONENT_KEYS: &[&str] = &["type", "ref", "properties"];
const TRANSITION_KEYS: &[&str] = &["on", "to", "end", "fail", "stop", "restart", "exit-code"];
const PARAM_KEYS: &[&str] = &["value", "type", "identifying"];
const LISTENER_KEYS: &[&str] = &["ref"];
const SKIP_KEYS: &[&str] = &["limit", "kinds"];
const RETRY_KEYS: &[&str] = &["limit", "kinds", "backoff", "max-backoff"];

impl JobDefinition {
    /// Reads and parses the job file at `path`. Errors name the path as given.
    pub fn from_path(path: impl AsRef<Path>) -> Result<JobDefinition, ConfigErrors> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                origin.as_str(),
                Position::UNKNOWN,
                format!("cannot read the job file: {e}"),
            )
        })?;
        let mut definition = JobDefinition::from_str(&text, &origin)?;
        definition.path = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(definition)
    }

    /// Parses a job definition from `text`; `origin` names it in errors (usually a path).
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, origin: &str) -> Result<JobDefinition, ConfigErrors> {
        let root = parse_yaml(text, origin)?;
        let mut p = Parser {
            origin,
            errors: ConfigErrors::new(),
        };
        match p.job(&root) {
            Some(definition) if p.errors.is_empty() => Ok(definition),
            _ => {
                if p.errors.is_empty() {
                    p.error(root.position(), "the job definition is invalid");
                }
                p.errors.normalize();
                Err(p.errors)
            }
        }
    }

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

/// Fields of a mapping whose keys were checked.
struct Fields<'n> {
    node: &'n Node,
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    fn key_position(&self, key: &str) -> Position {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k.position)
            .unwrap_or(self.node.position())
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

struct Parser<'o> {
    origin: &'o str,
    errors: ConfigErrors,
}

impl Parser<'_> {
    fn error(&mut self, position: Position, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.origin, position, message));
    }

    /// Checks that `node` is a mapping with only `allowed` keys, each once.
    fn map<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.error(
                node.position(),
                format!("{what} must be a mapping, found {}", node.type_name()),
            );
            return None;
        };
        for (i, (key, _)) in entries.iter().enumerate() {
            if !allowed.contains(&key.name.as_str()) {
                self.error(
                    key.position,
                    format!(
                        "unknown key `{}` in {what} (expected one of: {})",
                        key.name,
                        allowed.join(", ")
                    ),
                );
            } else if entries[..i].iter().any(|(k, _)| k.name == key.name) {
                self.error(
                    key.position,
                    format!("duplicate key `{}` in {what}", key.name),
                );
            }
        }
        Some(Fields { node, entries })
    }

    fn required<'n>(&mut self, fields: &Fields<'n>, key: &str, what: &str) -> Option<&'n Node> {
        let value = fields.get(key);
        if value.is_none() {
            self.error(
                fields.node.position(),
                format!("missing key `{key}` in {what}"),
            );
        }
        value
    }

    /// A scalar as text (numbers and booleans are taken as written).
    fn text(&mut self, node: &Node, key: &str, what: &str) -> Option<Located<String>> {
        match node.scalar_text() {
            Some(text) => Some(Located::new(text, node.position())),
            None => {
                self.error(
                    node.position(),
                    format!("`{key}` in {what} must be text, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// A non-empty name.
    fn name(&mut self, node: &Node, key: &str, what: &str) -> Option<Located<String>> {
        let text = self.text(node, key, what)?;
        if text.value.trim().is_empty() {
            self.error(
                node.position(),
                format!("`{key}` in {what} must not be empty"),
            );
            return None;
        }
        Some(text)
    }

    fn boolean(&mut self, node: &Node, key: &str, what: &str) -> Option<bool> {
        let value = node.as_bool();
        if value.is_none() {
            self.error(
                node.position(),
                format!(
                    "`{key}` in {what} must be true or false, found {}",
                    node.type_name()
                ),
            );
        }
        value
    }

    fn count(&mut self, node: &Node, key: &str, what: &str, min: u64) -> Option<u64> {
        match node.as_u64() {
            Some(n) if n >= min => Some(n),
            _ => {
                let found = node
                    .scalar_text()
                    .map(|t| format!("`{t}`"))
                    .unwrap_or_else(|| node.type_name().to_string());
                self.error(
                    node.position(),
                    format!(
                        "`{key}` in {what} must be an integer of at least {min}, found {found}"
                    ),
                );
                None
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node, key: &str, what: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            NodeKind::Null => Some(&[]),
            _ => {
                self.error(
                    node.position(),
                    format!(
                        "`{key}` in {what} must be a list, found {}",
                        node.type_name()
                    ),
                );
                None
            }
        }
    }

    fn job(&mut self, root: &Node) -> Option<JobDefinition> {
        if root.is_null() {
            self.error(
                root.position(),
                "the job definition is empty: it needs at least `id` and `flow` or `steps`",
            );
            return None;
        }
        let what = "the job";
        let f = self.map(root, what, JOB_KEYS)?;
        let id = match (f.get("id"), f.get("name")) {
            (Some(id), Some(_)) => {
                self.error(
                    f.key_position("name"),
                    "`name` is an alias of `id`: give only one of them",
                );
                self.name(id, "id", what)
            }
            (Some(id), None) => self.name(id, "id", what),
            (None, Some(name)) => self.name(name, "name", what),
            (None, None) => {
                self.error(
                    root.position(),
                    "missing key `id` (the job's name) in the job",
                );
                None
            }
        };
        let description = f
            .get("description")
            .and_then(|n| self.text(n, "description", what))
            .map(|t| t.value);
        let restartable = f
            .get("restartable")
            .and_then(|n| self.boolean(n, "restartable", what))
            .unwrap_or(true);
        let incrementer = f
            .get("incrementer")
            .and_then(|n| self.name(n, "incrementer", what));
        let params = f.get("params").map(|n| self.params(n)).unwrap_or_default();
        let listeners = f
            .get("listeners")
            .map(|n| self.listeners(n, what))
            .unwrap_or_default();
        let flow = match (f.get("flow"), f.get("steps")) {
            (Some(flow), None) => self.flow(flow),
            (None, Some(steps)) => self.steps(steps),
            (Some(_), Some(_)) => {
                self.error(
                    f.key_position("steps"),
                    "give either `flow` or `steps`, not both",
                );
                None
            }
            (None, None) => {
                self.error(root.position(), "missing key `flow` or `steps` in the job");
                None
            }
        };
        let flow = flow?;
        self.check_targets(&flow);
        Some(JobDefinition {
            id: id?,
            description,
            restartable,
            incrementer,
            params,
            listeners,
            flow,
            origin: Arc::from(self.origin),
            path: None,
        })
    }

    fn params(&mut self, node: &Node) -> Vec<ParamDefinition> {
        let Some(f) = self.map_any(node, "`params`") else {
            return Vec::new();
        };
        let mut params = Vec::new();
        for (key, value) in f.entries {
            let name = Located::new(key.name.clone(), key.position);
            let what = format!("parameter `{}`", key.name);
            if value.is_map() {
                let Some(pf) = self.map(value, &what, PARAM_KEYS) else {
                    continue;
                };
                let Some(v) = self.required(&pf, "value", &what) else {
                    continue;
                };
                if self.text(v, "value", &what).is_none() {
                    continue;
                }
                let type_name = pf.get("type").and_then(|n| self.name(n, "type", &what));
                let identifying = pf
                    .get("identifying")
                    .and_then(|n| self.boolean(n, "identifying", &what))
                    .unwrap_or(true);
                params.push(ParamDefinition {
                    name,
                    value: v.clone(),
                    type_name,
                    identifying,
                });
            } else if self.text(value, "value", &what).is_some() {
                params.push(ParamDefinition {
                    name,
                    value: value.clone(),
                    type_name: None,
                    identifying: true,
                });
            }
        }
        params
    }

    /// A mapping with free keys (still checked for duplicates).
    fn map_any<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            if node.is_null() {
                return None;
            }
            self.error(
                node.position(),
                format!("{what} must be a mapping, found {}", node.type_name()),
            );
            return None;
        };
        for (i, (key, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(k, _)| k.name == key.name) {
                self.error(
                    key.position,
                    format!("duplicate key `{}` in {what}", key.name),
                );
            }
        }
        Some(Fields { node, entries })
    }

    fn listeners(&mut self, node: &Node, what: &str) -> Vec<Located<String>> {
        let Some(items) = self.list(node, "listeners", what) else {
            return Vec::new();
        };
        let what = format!("a listener of {what}");
        let mut refs = Vec::new();
        for item in items {
            let Some(f) = self.map(item, &what, LISTENER_KEYS) else {
                continue;
            };
            if let Some(r) = self.required(&f, "ref", &what)
                && let Some(name) = self.name(r, "ref", &what)
            {
                refs.push(name);
            }
        }
        refs
    }

    fn flow(&mut self, node: &Node) -> Option<FlowDefinition> {
        let what = "`flow`";
        let f = self.map(node, what, FLOW_KEYS)?;
        let start = self
            .required(&f, "start-element", what)
            .and_then(|n| self.name(n, "start-element", what));
        let elements_node = self.required(&f, "elements", what)?;
        let ef = self.map_any(elements_node, "`flow.elements`")?;
        let mut elements = Vec::new();
        for (key, value) in ef.entries {
            let name = Located::new(key.name.clone(), key.position);
            if name.value.trim().is_empty() {
                self.error(key.position, "element names must not be empty");
                continue;
            }
            let what = format!("element `{}`", key.name);
            if let Some(fields) = self.map(value, &what, ELEMENT_KEYS)
                && let Some(element) = self.element(name, &fields, &what)
            {
                elements.push(element);
            }
        }
        if elements.is_empty() && ef.entries.is_empty() {
            self.error(elements_node.position(), "`flow.elements` is empty");
        }
        Some(FlowDefinition {
            start: start?,
            elements,
        })
    }

    fn steps(&mut self, node: &Node) -> Option<FlowDefinition> {
        let items = self.list(node, "steps", "the job")?;
        if items.is_empty() {
            self.error(
                node.position(),
                "`steps` is empty: a job needs at least one step",
            );
            return None;
        }
        let mut allowed = ELEMENT_KEYS.to_vec();
        allowed.push("name");
        let mut parsed = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let what = format!("step #{}", i + 1);
            let Some(f) = self.map(item, &what, &allowed) else {
                continue;
            };
            let Some(name) = self
                .required(&f, "name", &what)
                .and_then(|n| self.name(n, "name", &what))
            else {
                continue;
            };
            let what = format!("step `{}`", name.value);
            parsed.push((i, self.element(name, &f, &what)));
        }
        let names: Vec<Option<String>> = (0..items.len())
            .map(|i| {
                parsed
                    .iter()
                    .find(|(j, _)| *j == i)
                    .and_then(|(_, e)| e.as_ref().map(|e| e.name.value.clone()))
            })
            .collect();
        let mut elements = Vec::new();
        for (i, element) in parsed {
            let Some(mut element) = element else { continue };
            if element.next.is_none()
                && let Some(Some(next)) = names.get(i + 1)
            {
                element.next = Some(Located::new(next.clone(), element.name.position));
            }
            elements.push(element);
        }
        let first = elements.first()?.name.clone();
        Some(FlowDefinition {
            start: first,
            elements,
        })
    }

    fn element(
        &mut self,
        name: Located<String>,
        f: &Fields<'_>,
        what: &str,
    ) -> Option<ElementDefinition> {
        let kinds: Vec<&str> = ["chunk", "tasklet", "decision", "split"]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
        let kind = match kinds.as_slice() {
            [] => {
                self.error(
                    f.node.position(),
                    format!("{what} needs one of `chunk` or `tasklet`"),
                );
                None
            }
            [_, second, ..] => {
                self.error(
                    f.key_position(second),
                    format!(
                        "{what} has both `{}` and `{second}`: give only one",
                        kinds[0]
                    ),
                );
                None
            }
            ["chunk"] => f
                .get("chunk")
                .and_then(|n| self.chunk(n, what))
                .map(|c| ElementKind::Chunk(Box::new(c))),
            ["tasklet"] => f
                .get("tasklet")
                .and_then(|n| self.component(n, &format!("the tasklet of {what}")))
                .map(ElementKind::Tasklet),
            [other] => {
                self.error(
                    f.key_position(other),
                    format!("{what}: {other}s are not supported yet; use steps with transitions"),
                );
                None
            }
        };
        let transitions = f
            .get("transitions")
            .map(|n| self.transitions(n, what))
            .unwrap_or_default();
        let next = f.get("next").and_then(|n| self.name(n, "next", what));
        let listeners = f
            .get("listeners")
            .map(|n| self.listeners(n, what))
            .unwrap_or_default();
        let promote_keys = match f.get("execution-context-promotion") {
            Some(n) => self
                .list(n, "execution-context-promotion", what)
                .unwrap_or_default()
                .iter()
                .filter_map(|k| self.name(k, "execution-context-promotion", what))
                .map(|k| k.value)
                .collect(),
            None => Vec::new(),
        };
        let allow_start_if_complete = f
            .get("allow-start-if-complete")
            .and_then(|n| self.boolean(n, "allow-start-if-complete", what))
            .unwrap_or(false);
        let start_limit = f
            .get("start-limit")
            .and_then(|n| self.count(n, "start-limit", what, 1));
        Some(ElementDefinition {
            name,
            kind: kind?,
            transitions,
            next,
            listeners,
            promote_keys,
            allow_start_if_complete,
            start_limit,
        })
    }

    fn chunk(&mut self, node: &Node, step: &str) -> Option<ChunkDefinition> {
        let what = format!("the chunk of {step}");
        let f = self.map(node, &what, CHUNK_KEYS)?;
        let reader = self
            .required(&f, "reader", &what)
            .and_then(|n| self.component(n, &format!("the reader of {step}")));
        let processor = f
            .get("processor")
            .and_then(|n| self.component(n, &format!("the processor of {step}")));
        let writer = self
            .required(&f, "writer", &what)
            .and_then(|n| self.component(n, &format!("the writer of {step}")));
        let chunk_size = match (f.get("chunk-size"), f.get("commit-interval")) {
            (Some(_), Some(_)) => {
                self.error(
                    f.key_position("commit-interval"),
                    format!(
                        "`commit-interval` is an alias of `chunk-size` in {what}: give only one"
                    ),
                );
                None
            }
            (Some(n), None) => self
                .count(n, "chunk-size", &what, 1)
                .map(|v| Located::new(v, n.position())),
            (None, Some(n)) => self
                .count(n, "commit-interval", &what, 1)
                .map(|v| Located::new(v, n.position())),
            (None, None) => None,
        };
        let skip = f.get("item-skip").and_then(|n| self.skip(n, step));
        let retry = f.get("item-retry").and_then(|n| self.retry(n, step));
        let read_ahead = f
            .get("read-ahead")
            .and_then(|n| self.boolean(n, "read-ahead", &what));
        Some(ChunkDefinition {
            reader: reader?,
            processor,
            writer: writer?,
            chunk_size,
            skip,
            retry,
            read_ahead,
        })
    }

    fn kinds(&mut self, node: Option<&Node>, what: &str) -> Vec<ErrorKind> {
        let Some(node) = node else {
            return Vec::new();
        };
        let Some(items) = self.list(node, "kinds", what) else {
            return Vec::new();
        };
        let mut kinds = Vec::new();
        for item in items {
            let Some(name) = self.text(item, "kinds", what) else {
                continue;
            };
            match ErrorKind::parse(name.value.trim()) {
                Some(kind) => kinds.push(kind),
                None => self.error(
                    item.position(),
                    format!(
                        "unknown error kind `{}` in {what} (expected one of: {})",
                        name.value,
                        ERROR_KINDS.join(", ")
                    ),
                ),
            }
        }
        kinds
    }

    fn skip(&mut self, node: &Node, step: &str) -> Option<SkipDefinition> {
        let what = format!("`item-skip` of {step}");
        let f = self.map(node, &what, SKIP_KEYS)?;
        let limit = self
            .required(&f, "limit", &what)
            .and_then(|n| self.count(n, "limit", &what, 0));
        let kinds = self.kinds(f.get("kinds"), &what);
        Some(SkipDefinition {
            limit: limit?,
            kinds,
        })
    }

    fn retry(&mut self, node: &Node, step: &str) -> Option<RetryDefinition> {
        let what = format!("`item-retry` of {step}");
        let f = self.map(node, &what, RETRY_KEYS)?;
        let limit = self
            .required(&f, "limit", &what)
            .and_then(|n| self.count(n, "limit", &what, 0));
        let limit = match limit.map(u32::try_from) {
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                self.error(
                    f.key_position("limit"),
                    format!("`limit` in {what} is too large"),
                );
                None
            }
            None => None,
        };
        let kinds = self.kinds(f.get("kinds"), &what);
        let backoff = f
            .get("backoff")
            .and_then(|n| self.duration(n, "backoff", &what));
        let max_backoff = f
            .get("max-backoff")
            .and_then(|n| self.duration(n, "max-backoff", &what));
        Some(RetryDefinition {
            limit: limit?,
            kinds,
            backoff,
            max_backoff,
        })
    }

    fn duration(&mut self, node: &Node, key: &str, what: &str) -> Option<Duration> {
        let text = self.text(node, key, what)?;
        let parsed = parse_duration(&text.value);
        if parsed.is_none() {
            self.error(
                node.position(),
                format!(
                    "`{key}` in {what} must be a duration such as `250ms`, `2s`, `1m` or `1h`, found `{}`",
                    text.value
                ),
            );
        }
        parsed
    }

    fn component(&mut self, node: &Node, what: &str) -> Option<ComponentDefinition> {
        let f = self.map(node, what, COMPONENT_KEYS)?;
        let selector = match (f.get("type"), f.get("ref")) {
            (Some(t), None) => self.name(t, "type", what).map(ComponentSelector::Type),
            (None, Some(r)) => self.name(r, "ref", what).map(ComponentSelector::Ref),
            (Some(_), Some(_)) => {
                self.error(
                    f.key_position("ref"),
                    format!("{what} has both `type` and `ref`: give only one"),
                );
                None
            }
            (None, None) => {
                self.error(
                    node.position(),
                    format!("{what} needs `type` (a built-in component) or `ref` (one registered from Rust)"),
                );
                None
            }
        };
        let properties = match f.get("properties") {
            None => Node::new(node.position(), NodeKind::Map(Vec::new())),
            Some(p) if p.is_null() => Node::new(p.position(), NodeKind::Map(Vec::new())),
            Some(p) if p.is_map() => {
                self.map_any(p, &format!("`properties` of {what}"));
                p.clone()
            }
            Some(p) => {
                self.error(
                    p.position(),
                    format!(
                        "`properties` of {what} must be a mapping, found {}",
                        p.type_name()
                    ),
                );
                return None;
            }
        };
        Some(ComponentDefinition {
            selector: selector?,
            properties,
            position: node.position(),
        })
    }

    fn transitions(&mut self, node: &Node, step: &str) -> Vec<TransitionDefinition> {
        let Some(items) = self.list(node, "transitions", step) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let what = format!("transition #{} of {step}", i + 1);
            let Some(f) = self.map(item, &what, TRANSITION_KEYS) else {
                continue;
            };
            let on = self
                .required(&f, "on", &what)
                .and_then(|n| self.name(n, "on", &what));
            let exit_code = f
                .get("exit-code")
                .and_then(|n| self.name(n, "exit-code", &what))
                .map(|t| t.value);
            let targets: Vec<&str> = ["to", "end", "fail", "stop"]
                .into_iter()
                .filter(|k| f.has(k))
                .collect();
            let flag = |p: &mut Self, key: &str| {
                let value = f.get(key).and_then(|n| p.boolean(n, key, &what));
                if value == Some(false) {
                    p.error(
                        f.key_position(key),
                        format!(
                            "`{key}: false` in {what} has no meaning: write `{key}: true` or remove it"
                        ),
                    );
                }
                value.unwrap_or(false)
            };
            let (target, target_position) = match targets.as_slice() {
                ["to"] => {
                    let to = f.get("to").and_then(|n| self.name(n, "to", &what));
                    if exit_code.is_some() {
                        self.error(
                            f.key_position("exit-code"),
                            format!("`exit-code` in {what} needs `end`, `fail` or `stop`"),
                        );
                    }
                    match to {
                        Some(to) => (Some(TransitionTarget::To(to.value)), to.position),
                        None => (None, Position::UNKNOWN),
                    }
                }
                ["end"] => (
                    flag(self, "end").then_some(TransitionTarget::End { exit_code }),
                    Position::UNKNOWN,
                ),
                ["fail"] => (
                    flag(self, "fail").then_some(TransitionTarget::Fail { exit_code }),
                    Position::UNKNOWN,
                ),
                ["stop"] => {
                    let restart = f
                        .get("restart")
                        .and_then(|n| self.name(n, "restart", &what));
                    let position = restart.as_ref().map(|r| r.position).unwrap_or_default();
                    (
                        flag(self, "stop").then_some(TransitionTarget::Stop {
                            restart: restart.map(|r| r.value),
                            exit_code,
                        }),
                        position,
                    )
                }
                [] => {
                    self.error(
                        item.position(),
                        format!("{what} needs one of `to`, `end`, `fail` or `stop`"),
                    );
                    (None, Position::UNKNOWN)
                }
                [_, second, ..] => {
                    self.error(
                        f.key_position(second),
                        format!(
                            "{what} has both `{}` and `{second}`: give only one",
                            targets[0]
                        ),
                    );
                    (None, Position::UNKNOWN)
                }
                [_] => (None, Position::UNKNOWN),
            };
            if f.has("restart") && !f.has("stop") {
                self.error(
                    f.key_position("restart"),
                    format!("`restart` in {what} needs `stop: true`"),
                );
            }
            if let (Some(on), Some(target)) = (on, target) {
                out.push(TransitionDefinition {
                    on,
                    target,
                    target_position,
                });
            }
        }
        out
    }

    /// Checks element names: unique, and every start/next/to/restart names one of them.
    fn check_targets(&mut self, flow: &FlowDefinition) {
        let mut names: Vec<&str> = Vec::new();
        for element in &flow.elements {
            if names.contains(&element.name.value.as_str()) {
                self.error(
                    element.name.position,
                    format!(
                        "duplicate step name `{}`: step names must be unique within a job",
                        element.name.value
                    ),
                );
            } else {
                names.push(&element.name.value);
            }
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        let known = sorted.join(", ");
        let check = |p: &mut Self, target: &str, position: Position, what: String| {
            if !names.contains(&target) {
                p.error(
                    position,
                    format!("{what} `{target}` does not exist (elements: {known})"),
                );
            }
        };
        check(
            self,
            &flow.start.value,
            flow.start.position,
            "start element".to_string(),
        );
        for element in &flow.elements {
            let of = format!("of element `{}`", element.name.value);
            if let Some(next) = &element.next {
                check(self, &next.value, next.position, format!("`next` {of}:"));
            }
            for t in &element.transitions {
                match &t.target {
                    TransitionTarget::To(to) => check(
                        self,
                        to,
                        t.target_position,
                        format!("transition target {of}:"),
                    ),
                    TransitionTarget::Stop {
                        restart: Some(r), ..
                    } => check(self, r, t.target_position, format!("`restart` {of}:")),
                    _ => {}
                }
            }
        }
    }
}

const ERROR_KINDS: &[&str] = &[
    "config",
    "parse",
    "io",
    "not-found",
    "already-exists",
    "already-running",
    "already-complete",
    "invalid-state",
    "repository",
    "component",
    "permission-denied",
    "cancelled",
    "unexpected",
];

/// Parses `250ms`, `2s`, `1.5s`, `3m`, `1h`; a bare number is milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "ms" => number / 1000.0,
        "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        "us" | "µs" => number / 1_000_000.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("1e400s"), None);
    }

    #[test]
    fn error_kind_names_match_the_core() {
        for name in ERROR_KINDS {
            assert!(ErrorKind::parse(name).is_some(), "{name}");
        }
    }
}
