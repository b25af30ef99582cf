//! The kinds of flow elements, in one table: the key that names each kind in a job file, the
//! [`ElementKind`] variant it parses to, the method of [`ElementParser`] that parses it and the
//! method of [`ElementBuilder`] that builds its flow element. The keys of kinds not supported
//! yet are refused with a message saying so.
//!
//! Adding a kind is one row here; the compiler then asks for its parse method
//! in the parser's `impl ElementParser` (`parse/step.rs`) and its build method in the
//! builder's `impl ElementBuilder` (`build.rs`).
//!
//! The table sits below the parser and the builder: they implement its traits, it knows
//! neither of them.

use super::step::{ChunkDefinition, ComponentDefinition};
use super::{FlowElementDefinition, PartitionDefinition, SplitDefinition};
use crate::error::Position;
use crate::node::Node;

/// The keys every element has, whatever its kind.
const COMMON_ELEMENT_KEYS: &[&str] = &[
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
                parse $parse:ident, build $build:ident; )*
        }
        refused { $( $refused:literal ),* $(,)? }
    ) => {
        /// The kind of a flow element, one variant per supported row of the table in
        /// `model/element.rs`.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum ElementKind {
            $( #[doc = $doc] $variant($data), )*
        }

        /// The keys naming an element's kind, supported first, then refused.
        pub(crate) const KIND_KEYS: &[&str] = &[$( $key, )* $( $refused, )*];

        /// The keys of the supported kinds.
        const SUPPORTED_KEYS: &[&str] = &[$( $key ),*];

        /// What parses the value of each supported kind: one method per row of the table.
        pub(crate) trait ElementParser {
            $(
                #[doc = concat!("Parses the value of `", $key, "`, the element named `what`.")]
                fn $parse(&mut self, node: &Node, what: &str) -> Option<$data>;
            )*

            /// Reports a problem with the job file at `position`.
            fn report(&mut self, position: Position, message: String);

            /// Parses the element kind named by `key` from `node`; a refused kind is an
            /// error saying it is not supported yet.
            fn element_kind(
                &mut self,
                key: &str,
                node: &Node,
                key_position: Position,
                what: &str,
            ) -> Option<ElementKind> {
                match key {
                    $( $key => self.$parse(node, what).map(ElementKind::$variant), )*
                    other => {
                        self.report(
                            key_position,
                            format!(
                                "{what}: {other}s are not supported yet; use steps, decisions and splits"
                            ),
                        );
                        None
                    }
                }
            }
        }

        /// What builds the flow element of each supported kind: one method per row of the table.
        /// `Input` is what every kind's build method gets besides the kind's definition.
        pub(crate) trait ElementBuilder<Input> {
            /// What a build method returns.
            type Output;

            $(
                #[doc = concat!("Builds a `", $key, "` element.")]
                fn $build(&self, definition: &$data, input: Input) -> Self::Output;
            )*
        }

        impl ElementKind {
            /// Builds the element of this kind with `builder`'s method for it.
            pub(crate) fn build<I, B: ElementBuilder<I>>(&self, builder: &B, input: I) -> B::Output {
                match self {
                    $( ElementKind::$variant(definition) => builder.$build(definition, input), )*
                }
            }
        }
    };
}

element_kinds! {
    supported {
        "chunk" => Chunk(Box<ChunkDefinition>)
            #[doc = "A chunk-oriented step."]
            parse parse_chunk, build chunk_step;
        "tasklet" => Tasklet(ComponentDefinition)
            #[doc = "A tasklet step."]
            parse parse_tasklet, build tasklet_step;
        "decision" => Decision(ComponentDefinition)
            #[doc = "A decision: a decider (`type` or `ref`) whose status chooses the transition."]
            parse parse_decision, build decision;
        "split" => Split(SplitDefinition)
            #[doc = "A split: flows run in parallel, joined before the next element."]
            parse parse_split, build split;
        "partition" => Partition(Box<PartitionDefinition>)
            #[doc = "A partitioned step: a worker step run once per partition, here or on remote workers."]
            parse parse_partition, build partition;
        "flow" => Flow(FlowElementDefinition)
            #[doc = "A flow element: a named flow of the job, or a flow in place, run in sequence."]
            parse parse_flow, build flow;
    }
    refused { }
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
