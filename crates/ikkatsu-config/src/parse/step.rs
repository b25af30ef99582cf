//! An element of the flow: the keys every element has, its kind (through the table in
//! [`crate::model::element`], whose parse methods are implemented here), and the parts of
//! steps: chunks and components (their fault tolerance: [`super::fault`]).

use std::time::Duration;

use ikkatsu_core::duration::HumanDuration;

use super::fault::FAULT_KEYS;
use super::{Fields, Parser};
use crate::error::Position;
use crate::model::element::{ElementParser, KIND_KEYS, supported_kinds};
use crate::model::{
    ChunkDefinition, ComponentDefinition, ComponentSelector, ElementDefinition,
    FlowElementDefinition, Located, PartitionDefinition, SplitDefinition,
};
use crate::node::{Node, NodeKind};

const CHUNK_KEYS: &[&str] = &[
    "reader",
    "processor",
    "writer",
    "chunk-size",
    "commit-interval",
    "read-ahead",
    "threads",
    "throttle-limit",
    "task-executor",
];
/// The keys of a multi-threaded chunk step, which is refused: see [`Parser::chunk`].
const MULTI_THREADED_KEYS: &[&str] = &["threads", "throttle-limit", "task-executor"];
const COMPONENT_KEYS: &[&str] = &["type", "ref", "properties"];

impl ElementParser for Parser<'_> {
    fn parse_chunk(&mut self, node: &Node, what: &str) -> Option<Box<ChunkDefinition>> {
        self.chunk(node, what).map(Box::new)
    }

    fn parse_tasklet(&mut self, node: &Node, what: &str) -> Option<ComponentDefinition> {
        self.component(node, &format!("the tasklet of {what}"))
    }

    fn parse_decision(&mut self, node: &Node, what: &str) -> Option<ComponentDefinition> {
        self.component(node, &format!("the decider of {what}"))
    }

    fn parse_split(&mut self, node: &Node, what: &str) -> Option<SplitDefinition> {
        self.split(node, what)
            .map(|flows| SplitDefinition { flows })
    }

    fn parse_partition(&mut self, node: &Node, what: &str) -> Option<Box<PartitionDefinition>> {
        self.partition(node, what).map(Box::new)
    }

    fn parse_flow(&mut self, node: &Node, what: &str) -> Option<FlowElementDefinition> {
        self.flow_element(node, what)
    }

    fn report(&mut self, position: Position, message: String) {
        self.error(position, message);
    }
}

impl Parser<'_> {
    pub(crate) fn element(
        &mut self,
        name: Located<String>,
        f: &Fields<'_>,
        what: &str,
    ) -> Option<ElementDefinition> {
        let kinds: Vec<&str> = KIND_KEYS.iter().copied().filter(|k| f.has(k)).collect();
        let kind = if let Some(shape) = self.surfin_shape(f, &kinds, what) {
            shape
        } else {
            match kinds.as_slice() {
                [] => {
                    self.error(
                    f.node.position(),
                    format!(
                        "{what} needs one of {} (or, as Surfin Batch writes them, `reader` and `writer` for a chunk step, `ref` for a decision)",
                        supported_kinds()
                    ),
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
                [key] => f
                    .get(key)
                    .and_then(|node| self.element_kind(key, node, f.key_position(key), what)),
            }
        };
        self.check_own_id(f, &name, what);
        let description = f
            .get("description")
            .and_then(|n| self.text(n, "description", what))
            .map(|t| t.value);
        let role_listeners = self.role_listeners(f, what);
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
            Some(n) => self.promotion(n, what),
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
            description,
            listeners,
            role_listeners,
            promote_keys,
            allow_start_if_complete,
            start_limit,
        })
    }

    pub(crate) fn chunk(&mut self, node: &Node, step: &str) -> Option<ChunkDefinition> {
        let what = format!("the chunk of {step}");
        let keys: Vec<&str> = CHUNK_KEYS.iter().chain(FAULT_KEYS).copied().collect();
        let f = self.map(node, &what, &keys)?;
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
        // Threads taking chunks from one reader commit them out of order, so no saved
        // position is right after a failure: such a step could not restart (Spring Batch's
        // multi-threaded steps cannot either). Partitions can: each has its own position.
        for key in MULTI_THREADED_KEYS.iter().filter(|k| f.has(k)) {
            self.error(
                f.key_position(key),
                format!(
                    "`{key}` in {what}: a multi-threaded chunk step is not offered, because its threads commit chunks out of order and no saved position could restart it; use a `partition` element with `parallelism: N` instead (each partition restarts from its own commits; see docs/partitioning.md)"
                ),
            );
        }
        let faults = self.faults(&f, step, &what);
        let read_ahead = f
            .get("read-ahead")
            .and_then(|n| self.boolean(n, "read-ahead", &what));
        Some(ChunkDefinition {
            reader: reader?,
            processor,
            writer: writer?,
            chunk_size,
            skip: faults.skip,
            retry: faults.retry,
            no_rollback: faults.no_rollback,
            dead_letter: faults.dead_letter,
            read_ahead,
        })
    }

    pub(crate) fn duration(&mut self, node: &Node, key: &str, what: &str) -> Option<Duration> {
        let text = self.text(node, key, what)?;
        match text.value.parse::<HumanDuration>() {
            Ok(duration) => Some(duration.as_duration()),
            Err(err) => {
                self.error(
                    node.position(),
                    format!("`{key}` in {what}: {}", err.message()),
                );
                None
            }
        }
    }

    pub(crate) fn component(&mut self, node: &Node, what: &str) -> Option<ComponentDefinition> {
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
        let properties = self.properties(&f, node, what);
        Some(ComponentDefinition {
            selector: selector?,
            properties: properties?,
            position: node.position(),
        })
    }

    /// The `properties` of the component `node` (a mapping; empty when absent).
    pub(crate) fn properties(&mut self, f: &Fields<'_>, node: &Node, what: &str) -> Option<Node> {
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
        Some(properties)
    }
}
