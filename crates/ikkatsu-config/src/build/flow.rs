//! The `flow` element: a named flow of the job (or a flow written in place) run in
//! sequence, as a split of one flow. Its elements are renamed `ELEMENT.NAME` (the
//! elements of its splits too), so that a flow used by several elements runs steps of
//! different names, each restarted where it stopped.

use ikkatsu_core::{Flow, FlowElement, TransitionTarget};

use super::StepBuilder;
use crate::error::ConfigErrors;
use crate::model::{
    ElementDefinition, ElementKind, FlowDefinition, FlowElementDefinition, Located,
};

impl StepBuilder<'_> {
    /// The flow element `element` (this builder's step) running `flow`.
    pub(super) fn flow_element(
        &self,
        flow: &FlowElementDefinition,
        element: &ElementDefinition,
        errors: &mut ConfigErrors,
    ) -> Option<FlowElement> {
        let definition = match flow {
            FlowElementDefinition::Inline(flow) => flow.as_ref(),
            FlowElementDefinition::Named(name) => match self.definition.named_flow(&name.value) {
                Some(flow) => flow,
                None => {
                    self.err(
                        errors,
                        name.position,
                        format!("flow `{}` does not exist", name.value),
                    );
                    return None;
                }
            },
        };
        let prefixed = prefixed(definition, &format!("{}.", element.name.value));
        let elements = self.definition.build_elements(
            &prefixed,
            self.registry,
            self.parameters,
            self.validating,
            errors,
        );
        let flow = Flow::new(prefixed.start.value.clone(), elements);
        Some(FlowElement::split(vec![flow]))
    }
}

/// `flow` with `prefix` before the name of each of its elements (and those of its splits)
/// and of each target.
fn prefixed(flow: &FlowDefinition, prefix: &str) -> FlowDefinition {
    let name = |n: &Located<String>| Located::new(format!("{prefix}{}", n.value), n.position);
    let mut out = flow.clone();
    out.start = name(&flow.start);
    for element in &mut out.elements {
        element.name = name(&element.name);
        element.next = element.next.as_ref().map(name);
        for t in &mut element.transitions {
            match &mut t.target {
                TransitionTarget::To(to) => *to = format!("{prefix}{to}"),
                TransitionTarget::Stop {
                    restart: Some(r), ..
                } => *r = format!("{prefix}{r}"),
                _ => {}
            }
        }
        if let ElementKind::Split(split) = &mut element.kind {
            for inner in &mut split.flows {
                *inner = prefixed(inner, prefix);
            }
        }
    }
    out
}
