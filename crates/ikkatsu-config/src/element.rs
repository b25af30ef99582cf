//! The kinds of flow elements, in one table: the key that names each kind in a job file, the
//! [`ElementKind`] variant it parses to, the function that parses it and the one that builds
//! its step. The keys of kinds not supported yet are refused with a message saying so.
//!
//! Adding a kind (a `decision`, a `split`, a `partition`) is one row here, with its parse
//! function (beside the others in `parse/step.rs`, or in a module of its own) and its build
//! function (in `build.rs`, or a module of its own).

use std::sync::Arc;

use ikkatsu_core::Step;
use ikkatsu_core::listener::ChunkListener;

use crate::build::StepBuilder;
use crate::error::ConfigErrors;
use crate::model::{ChunkDefinition, ComponentDefinition, ElementDefinition};
use crate::node::Node;
use crate::parse::Parser;

/// The keys every element has, whatever its kind.
pub(crate) const COMMON_ELEMENT_KEYS: &[&str] = &[
    "transitions",
    "listeners",
    "execution-context-promotion",
    "allow-start-if-complete",
    "start-limit",
    "next",
];

macro_rules! element_kinds {
    (
        supported {
            $( $key:literal => $variant:ident($data:ty) #[doc = $doc:literal]
                parse $parse:path, build $build:path; )*
        }
        refused { $( $refused:literal ),* $(,)? }
    ) => {
        /// The kind of a flow element, one variant per supported row of the table in
        /// [`crate::element`].
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum ElementKind {
            $( #[doc = $doc] $variant($data), )*
        }

        /// The keys naming an element's kind, supported first, then refused.
        pub(crate) const KIND_KEYS: &[&str] = &[$( $key, )* $( $refused, )*];

        /// The keys of the supported kinds.
        const SUPPORTED_KEYS: &[&str] = &[$( $key ),*];

        impl Parser<'_> {
            /// Parses the element kind named by `key` from `node`; a refused kind is an
            /// error saying it is not supported yet.
            pub(crate) fn element_kind(
                &mut self,
                key: &str,
                node: &Node,
                key_position: crate::error::Position,
                what: &str,
            ) -> Option<ElementKind> {
                match key {
                    $( $key => $parse(self, node, what).map(ElementKind::$variant), )*
                    other => {
                        self.error(
                            key_position,
                            format!(
                                "{what}: {other}s are not supported yet; use steps with transitions"
                            ),
                        );
                        None
                    }
                }
            }
        }

        impl StepBuilder<'_> {
            /// Builds the step of `element` with the kind's build function.
            pub(crate) fn element_step(
                &self,
                element: &ElementDefinition,
                chunk_listeners: Vec<Arc<dyn ChunkListener>>,
                errors: &mut ConfigErrors,
            ) -> Option<Arc<dyn Step>> {
                match &element.kind {
                    $( ElementKind::$variant(data) => $build(self, element, data, chunk_listeners, errors), )*
                }
            }
        }
    };
}

element_kinds! {
    supported {
        "chunk" => Chunk(Box<ChunkDefinition>)
            #[doc = "A chunk-oriented step."]
            parse parse_chunk, build StepBuilder::chunk_step;
        "tasklet" => Tasklet(ComponentDefinition)
            #[doc = "A tasklet step."]
            parse parse_tasklet, build StepBuilder::tasklet_step;
    }
    refused { "decision", "split", "partition" }
}

fn parse_chunk(parser: &mut Parser<'_>, node: &Node, what: &str) -> Option<Box<ChunkDefinition>> {
    parser.chunk(node, what).map(Box::new)
}

fn parse_tasklet(parser: &mut Parser<'_>, node: &Node, what: &str) -> Option<ComponentDefinition> {
    parser.component(node, &format!("the tasklet of {what}"))
}

/// The keys an element may have: its kind, then the keys common to every kind.
pub(crate) fn element_keys() -> Vec<&'static str> {
    KIND_KEYS
        .iter()
        .chain(COMMON_ELEMENT_KEYS)
        .copied()
        .collect()
}

/// `` `chunk` or `tasklet` ``: the supported kinds, for messages.
pub(crate) fn supported_kinds() -> String {
    let quoted: Vec<String> = SUPPORTED_KEYS.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}
