//! The job: its own keys, `params`, `listeners`, and its flow (`flow` or `steps`), with the
//! check that every element name is unique and every target exists.

use std::path::Path;
use std::sync::Arc;

use ikkatsu_core::TransitionTarget;

use super::Parser;
use super::jsl::all_element_keys;
use crate::error::{ConfigError, ConfigErrors, Position};
use crate::model::{ComponentDefinition, FlowDefinition, JobDefinition, Located, ParamDefinition};
use crate::node::{Node, parse_yaml};

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
    "flows",
];
const FLOW_KEYS: &[&str] = &["start-element", "elements", "transition-rules"];
const SPLIT_KEYS: &[&str] = &["flows"];
const SPLIT_FLOW_KEYS: &[&str] = &["steps", "start-element", "elements", "transition-rules"];
const PARAM_KEYS: &[&str] = &["value", "type", "identifying", "required", "description"];

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
}

impl Parser<'_> {
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
        // `name` alone is the job's name; beside `id`, it is a name for people.
        let mut display_name = None;
        let id = match (f.get("id"), f.get("name")) {
            (Some(id), Some(name)) => {
                display_name = self.text(name, "name", what).map(|t| t.value);
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
        let incrementer = f.get("incrementer").and_then(|n| self.incrementer(n, what));
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
        let flows = f
            .get("flows")
            .map(|n| self.named_flows(n))
            .unwrap_or_default();
        let flow = flow?;
        self.check_targets(&flow);
        let definition = JobDefinition {
            id: id?,
            display_name,
            description,
            restartable,
            incrementer,
            params,
            listeners,
            flow,
            flows,
            origin: Arc::from(self.origin),
            path: None,
        };
        self.check_flow_refs(&definition);
        Some(definition)
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
                let v = pf.get("value");
                if v.is_some_and(|v| self.text(v, "value", &what).is_none()) {
                    continue;
                }
                let type_name = pf.get("type").and_then(|n| self.name(n, "type", &what));
                let identifying = pf
                    .get("identifying")
                    .and_then(|n| self.boolean(n, "identifying", &what))
                    .unwrap_or(true);
                let required = pf
                    .get("required")
                    .and_then(|n| self.boolean(n, "required", &what))
                    .unwrap_or(false);
                let description = pf
                    .get("description")
                    .and_then(|n| self.text(n, "description", &what))
                    .map(|t| t.value);
                if required && v.is_some() {
                    self.error(
                        pf.key_position("required"),
                        format!(
                            "{what}: a required parameter has no default; remove `value` or `required`"
                        ),
                    );
                    continue;
                }
                if v.is_none() && !required && type_name.is_none() {
                    self.error(
                        value.position(),
                        format!("{what}: give a default (`value`), `required: true` or a `type`"),
                    );
                    continue;
                }
                params.push(ParamDefinition {
                    name,
                    value: v.cloned(),
                    type_name,
                    identifying,
                    required,
                    description,
                });
            } else if self.text(value, "value", &what).is_some() {
                params.push(ParamDefinition {
                    name,
                    value: Some(value.clone()),
                    type_name: None,
                    identifying: true,
                    required: false,
                    description: None,
                });
            }
        }
        params
    }

    /// `listeners: [{ref: NAME}, {type: NAME, properties: {...}}]`.
    pub(crate) fn listeners(&mut self, node: &Node, what: &str) -> Vec<ComponentDefinition> {
        let Some(items) = self.list(node, "listeners", what) else {
            return Vec::new();
        };
        let what = format!("a listener of {what}");
        items
            .iter()
            .filter_map(|item| self.component(item, &what))
            .collect()
    }

    /// `split: {flows: [{steps: [...]}, {start-element: X, elements: {...}}, ...]}`: each
    /// flow in the shape of a job's `steps` or `flow`.
    pub(crate) fn split(&mut self, node: &Node, what: &str) -> Option<Vec<FlowDefinition>> {
        let what = format!("the split of {what}");
        let f = self.map(node, &what, SPLIT_KEYS)?;
        let flows_node = self.required(&f, "flows", &what)?;
        let items = self.list(flows_node, "flows", &what)?;
        if items.is_empty() {
            self.error(
                flows_node.position(),
                format!("{what}: `flows` is empty; give at least one flow"),
            );
            return None;
        }
        let mut flows = Vec::new();
        let mut complete = true;
        for (i, item) in items.iter().enumerate() {
            let what = format!("flow #{} of {what}", i + 1);
            match self.flow_item(item, &what) {
                Some(flow) => flows.push(flow),
                None => complete = false,
            }
        }
        complete.then_some(flows)
    }

    /// A flow in the shape of a job's `steps` (`{steps: [...]}`) or `flow`
    /// (`{start-element, elements}`), its targets checked.
    pub(crate) fn flow_item(&mut self, item: &Node, what: &str) -> Option<FlowDefinition> {
        let ff = self.map(item, what, SPLIT_FLOW_KEYS)?;
        let flow = match ff.get("steps") {
            Some(_)
                if ff.has("start-element") || ff.has("elements") || ff.has("transition-rules") =>
            {
                self.error(
                    ff.key_position("steps"),
                    format!(
                        "{what}: give either `steps` or `start-element` and `elements`, not both"
                    ),
                );
                None
            }
            Some(steps) => self.steps(steps),
            None => self.flow_in(item, what),
        }?;
        self.check_targets(&flow);
        Some(flow)
    }

    fn flow(&mut self, node: &Node) -> Option<FlowDefinition> {
        self.flow_in(node, "`flow`")
    }

    fn flow_in(&mut self, node: &Node, what: &str) -> Option<FlowDefinition> {
        let f = self.map(node, what, FLOW_KEYS)?;
        let start = self
            .required(&f, "start-element", what)
            .and_then(|n| self.name(n, "start-element", what));
        let elements_node = self.required(&f, "elements", what)?;
        let ef = self.map_any(elements_node, &format!("`elements` of {what}"))?;
        let mut elements = Vec::new();
        for (key, value) in ef.entries {
            let name = Located::new(key.name.clone(), key.position);
            if name.value.trim().is_empty() {
                self.error(key.position, "element names must not be empty");
                continue;
            }
            let what = format!("element `{}`", key.name);
            if let Some(fields) = self.map(value, &what, &all_element_keys())
                && let Some(element) = self.element(name, &fields, &what)
            {
                elements.push(element);
            }
        }
        if elements.is_empty() && ef.entries.is_empty() {
            self.error(
                elements_node.position(),
                format!("`elements` of {what} is empty"),
            );
        }
        let mut flow = FlowDefinition {
            start: start?,
            elements,
        };
        self.gather_split_steps(&mut flow);
        if let Some(rules) = f.get("transition-rules") {
            self.transition_rules(rules, &mut flow, what);
        }
        Some(flow)
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
        let mut allowed = all_element_keys();
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
        self.refuse_split_steps(&elements);
        let first = elements.first()?.name.clone();
        Some(FlowDefinition {
            start: first,
            elements,
        })
    }

    /// Checks element names: unique, and every start/next/to/restart names one of them.
    pub(crate) fn check_targets(&mut self, flow: &FlowDefinition) {
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
