//! Named flows (`flows: {NAME: {...}}` of the job) and the `flow` element that runs one,
//! or a flow written in place; every name a `flow` element gives must be a named flow, and
//! no named flow may run itself, directly or through others.

use super::Parser;
use crate::model::{
    ElementKind, FlowDefinition, FlowElementDefinition, JobDefinition, Located, NamedFlow,
};
use crate::node::Node;

impl Parser<'_> {
    /// `flows: {NAME: {start-element, elements} | {steps: [...]}}`.
    pub(crate) fn named_flows(&mut self, node: &Node) -> Vec<NamedFlow> {
        let Some(f) = self.map_any(node, "`flows` of the job") else {
            return Vec::new();
        };
        let mut flows = Vec::new();
        for (key, value) in f.entries {
            if key.name.trim().is_empty() {
                self.error(key.position, "flow names must not be empty");
                continue;
            }
            let what = format!("flow `{}` of `flows`", key.name);
            if let Some(flow) = self.flow_item(value, &what) {
                flows.push(NamedFlow {
                    name: Located::new(key.name.clone(), key.position),
                    flow,
                });
            }
        }
        flows
    }

    /// The value of a `flow` element: a name, or a flow in place.
    pub(crate) fn flow_element(
        &mut self,
        node: &Node,
        what: &str,
    ) -> Option<FlowElementDefinition> {
        if node.is_map() {
            let what = format!("the flow of {what}");
            return self
                .flow_item(node, &what)
                .map(|flow| FlowElementDefinition::Inline(Box::new(flow)));
        }
        self.name(node, "flow", what)
            .map(FlowElementDefinition::Named)
    }

    /// Checks that every `flow: NAME` names a flow of `flows`, and that no named flow runs
    /// itself.
    pub(crate) fn check_flow_refs(&mut self, job: &JobDefinition) {
        let names: Vec<&str> = job.flows.iter().map(|f| f.name.value.as_str()).collect();
        let mut refs = Vec::new();
        collect_refs(&job.flow, &mut refs);
        for named in &job.flows {
            collect_refs(&named.flow, &mut refs);
        }
        for name in refs {
            if !names.contains(&name.value.as_str()) {
                let known = if names.is_empty() {
                    "the job has no `flows`".to_string()
                } else {
                    format!("flows: {}", names.join(", "))
                };
                self.error(
                    name.position,
                    format!("flow `{}` does not exist ({known})", name.value),
                );
            }
        }
        for named in &job.flows {
            let mut path = vec![named.name.value.as_str()];
            if let Some(cycle) = find_cycle(job, &named.flow, &mut path) {
                self.error(
                    named.name.position,
                    format!(
                        "flow `{}` runs itself ({}): a flow may not contain itself",
                        named.name.value,
                        cycle.join(" → ")
                    ),
                );
            }
        }
    }
}

/// The names `flow` elements give in `flow`, its splits and its flows in place.
fn collect_refs<'a>(flow: &'a FlowDefinition, refs: &mut Vec<&'a Located<String>>) {
    for element in &flow.elements {
        match &element.kind {
            ElementKind::Flow(FlowElementDefinition::Named(name)) => refs.push(name),
            ElementKind::Flow(FlowElementDefinition::Inline(inner)) => collect_refs(inner, refs),
            ElementKind::Split(split) => {
                for inner in &split.flows {
                    collect_refs(inner, refs);
                }
            }
            _ => {}
        }
    }
}

/// A path of named flows from `path`'s first back to itself, if `flow` leads there.
fn find_cycle<'a>(
    job: &'a JobDefinition,
    flow: &'a FlowDefinition,
    path: &mut Vec<&'a str>,
) -> Option<Vec<String>> {
    let mut refs = Vec::new();
    collect_refs(flow, &mut refs);
    for name in refs {
        let name = name.value.as_str();
        if name == path[0] {
            let mut cycle: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if path.contains(&name) {
            continue;
        }
        let Some(inner) = job.named_flow(name) else {
            continue;
        };
        path.push(name);
        if let Some(cycle) = find_cycle(job, inner, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}
