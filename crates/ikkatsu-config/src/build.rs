//! Building a [`Job`] from a [`JobDefinition`]: parameters are merged and interpolated,
//! components are made by the registry's factories, and every error found on the way is
//! collected with its position.

mod flow;
mod listeners;

use std::collections::HashMap;
use std::sync::Arc;

mod chunk;
mod late;
mod partition;

use ikkatsu_core::job::RunIdIncrementer;
use ikkatsu_core::listener::ChunkListener;
use ikkatsu_core::{
    Flow, FlowElement, Job, JobParameters, ParameterValue, Sensitivity, TaskletStep, Transition,
};

use crate::error::{ConfigError, ConfigErrors, Position};
use crate::interpolate::{LateValues, Scope, interpolate};
use crate::model::element::ElementBuilder;
use crate::model::{
    ChunkDefinition, ComponentDefinition, ComponentSelector, ElementDefinition, FlowDefinition,
    FlowElementDefinition, JobDefinition, PartitionDefinition, SplitDefinition,
};
use crate::node::{Node, NodeKind};
use crate::parameters::{Settled, resolve_references, settle};
use crate::properties::Properties;
use crate::registry::{BuildContext, ComponentKind, ComponentRegistry, Factory};
use listeners::ItemListeners;

impl JobDefinition {
    /// Checks everything [`JobDefinition::build`] checks (parameters, interpolation,
    /// component types and refs, component properties, listeners) without running anything.
    /// Factories are called with [`BuildContext::validating`] set and their components are
    /// dropped; they open no files.
    pub fn validate(
        &self,
        registry: &ComponentRegistry,
        parameters: &JobParameters,
    ) -> Result<(), ConfigErrors> {
        self.compile(registry, parameters, true).map(|_| ())
    }

    /// Builds the job. `parameters` are those the job will be launched with (the job's
    /// `params` fill in the rest); `${params.NAME}` in properties is resolved against them.
    /// The job records its file's absolute path (when read with
    /// [`JobDefinition::from_path`]), default parameters, incrementer, listeners and
    /// restartability.
    pub fn build(
        &self,
        registry: &ComponentRegistry,
        parameters: &JobParameters,
    ) -> Result<Job, ConfigErrors> {
        self.compile(registry, parameters, false)
    }

    /// The default parameters of `params`. A string parameter holding a `${ENV}` or
    /// `${file:...}` reference keeps the reference (it is read when the job is built); other
    /// types are resolved here.
    pub fn default_parameters(&self) -> Result<JobParameters, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let defaults = self.defaults(&mut errors);
        errors.into_result(defaults)
    }

    fn err(&self, errors: &mut ConfigErrors, position: Position, message: impl Into<String>) {
        errors.push(ConfigError::new(self.origin.as_ref(), position, message));
    }

    /// The launch parameters `given`, checked against the job's declarations: every
    /// required parameter is there, and a value given as text (`-p day=2026-01-31`) for a
    /// parameter declared with a `type` becomes a value of that type. What the job is
    /// launched with: validate and build apply it too, so a missing or mistyped parameter
    /// fails before anything runs.
    pub fn typed_parameters(&self, given: &JobParameters) -> Result<JobParameters, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let typed = self.declared(given, &mut errors);
        errors.into_result(typed)
    }

    fn declared(&self, given: &JobParameters, errors: &mut ConfigErrors) -> JobParameters {
        let mut typed = given.clone();
        for param in &self.params {
            let name = &param.name.value;
            let declared = param
                .type_name
                .as_ref()
                .and_then(|t| ikkatsu_core::parameters::canonical_type_name(&t.value));
            let Some(value) = given.get(name) else {
                if param.required {
                    let example = match declared {
                        Some("date") => "2026-01-31",
                        Some("datetime") => "2026-01-31T12:00:00Z",
                        Some("integer") => "42",
                        Some("float") => "0.5",
                        Some("bool") => "true",
                        _ => "VALUE",
                    };
                    self.err(
                        errors,
                        param.name.position,
                        format!(
                            "parameter `{name}` is required{}: give it with `-p {name}={example}`",
                            declared.map(|t| format!(" (a {t})")).unwrap_or_default()
                        ),
                    );
                }
                continue;
            };
            let Some(declared) = declared else { continue };
            match &value.value {
                ParameterValue::String(text) if declared != "string" && !value.is_secret() => {
                    match ParameterValue::parse_typed(text, declared) {
                        Ok(parsed) => typed.insert(name.clone(), parsed, value.identifying),
                        Err(e) => self.err(
                            errors,
                            param.name.position,
                            format!(
                                "parameter `{name}` is declared `{declared}`: {}",
                                e.message()
                            ),
                        ),
                    }
                }
                other if other.type_name() != declared && !value.is_secret() => self.err(
                    errors,
                    param.name.position,
                    format!(
                        "parameter `{name}` is declared `{declared}` but was given as a {}: \
                         give it as a {declared} (`-p {name}=...,{declared}`) or as text",
                        other.type_name()
                    ),
                ),
                _ => {}
            }
        }
        typed
    }

    fn defaults(&self, errors: &mut ConfigErrors) -> JobParameters {
        let mut defaults = JobParameters::new();
        for param in &self.params {
            let name = &param.name.value;
            let Some(node) = &param.value else {
                continue;
            };
            let Some(raw) = node.scalar_text() else {
                continue;
            };
            let text = match settle(name, &raw) {
                Ok(Settled::Value(text)) => text,
                Ok(Settled::Reference) => {
                    let string_typed = param.type_name.as_ref().is_none_or(|t| {
                        matches!(
                            t.value.trim().to_ascii_lowercase().as_str(),
                            "string" | "str"
                        )
                    });
                    if string_typed {
                        // Kept as written; read when the job is built.
                        defaults.insert(
                            name.clone(),
                            ParameterValue::String(raw),
                            param.identifying,
                        );
                    } else {
                        self.err(
                            errors,
                            node.position(),
                            format!(
                                "parameter `{name}`: a secret (`${{file:…}}`, a secret-looking variable or name) must be a string parameter: remove its `type`"
                            ),
                        );
                    }
                    continue;
                }
                Err(messages) => {
                    for m in messages {
                        self.err(errors, node.position(), format!("parameter `{name}`: {m}"));
                    }
                    continue;
                }
            };
            let value = match &param.type_name {
                None => ParameterValue::String(text),
                Some(type_name) => {
                    match ParameterValue::parse_typed(&text.replace("$${", "${"), &type_name.value)
                    {
                        Ok(value) => value,
                        Err(e) => {
                            let position = if e.message().starts_with("unknown job parameter type")
                            {
                                type_name.position
                            } else {
                                node.position()
                            };
                            self.err(
                                errors,
                                position,
                                format!("parameter `{name}`: {}", e.message()),
                            );
                            continue;
                        }
                    }
                }
            };
            defaults.insert(name.clone(), value, param.identifying);
        }
        defaults
    }

    /// `parameters` with every reference read (what the job's components see); an unset
    /// variable or unreadable file is an error at the parameter's position in `params`.
    fn resolve_references(
        &self,
        parameters: &JobParameters,
        errors: &mut ConfigErrors,
    ) -> JobParameters {
        let (resolved, failures) = resolve_references(parameters);
        for (name, message) in failures {
            let position = self
                .params
                .iter()
                .find(|p| p.name.value == name)
                .map_or(Position::UNKNOWN, |p| {
                    p.value.as_ref().map_or(p.name.position, Node::position)
                });
            self.err(errors, position, format!("parameter `{name}`: {message}"));
        }
        resolved
    }

    fn compile(
        &self,
        registry: &ComponentRegistry,
        parameters: &JobParameters,
        validating: bool,
    ) -> Result<Job, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let defaults = self.defaults(&mut errors);
        let mut merged = self.declared(parameters, &mut errors);
        merged.merge_defaults(&defaults);
        // A secret read back from the repository is filled from the job's own `params`.
        for (name, default) in defaults.iter() {
            if default.sensitivity == Sensitivity::Secret
                && merged
                    .get(name)
                    .is_some_and(|p| p.sensitivity == Sensitivity::Withheld)
            {
                merged.insert_secret(name.clone(), default.value.to_text(), default.identifying);
            }
        }
        let merged = self.resolve_references(&merged, &mut errors);

        let incrementer = self
            .incrementer
            .as_ref()
            .and_then(|inc| match inc.value.as_str() {
                "run-id" | "run.id" | "RunIdIncrementer" => Some(Arc::new(RunIdIncrementer)
                    as Arc<dyn ikkatsu_core::job::JobParametersIncrementer>),
                name => match registry.incrementer(name) {
                    Some(inc) => Some(inc.clone()),
                    None => {
                        let known: Vec<&str> = std::iter::once("run-id")
                            .chain(registry.incrementer_names())
                            .collect();
                        self.err(
                            &mut errors,
                            inc.position,
                            format!("unknown incrementer `{name}` (known: {})", known.join(", ")),
                        );
                        None
                    }
                },
            });

        let job_builder = StepBuilder {
            definition: self,
            registry,
            parameters: &merged,
            validating,
            step: "",
            late: None,
        };
        let job_listeners = job_builder.job_listeners(&self.listeners, &mut errors);

        let elements = self.build_elements(&self.flow, registry, &merged, validating, &mut errors);
        if !errors.is_empty() {
            errors.normalize();
            return Err(errors);
        }

        let flow = Flow::new(self.flow.start.value.clone(), elements);
        let job = Job::new(self.id.value.clone(), flow).map_err(|e| {
            ConfigErrors::from(ConfigError::new(
                self.origin.as_ref(),
                self.flow.start.position,
                e.message().to_string(),
            ))
        })?;
        let mut job = job
            .with_restartable(self.restartable)
            .with_default_parameters(defaults);
        if let Some(path) = &self.path {
            job = job.with_location(path.display().to_string());
        }
        if let Some(incrementer) = incrementer {
            job = job.with_incrementer(incrementer);
        }
        for listener in job_listeners {
            job = job.with_listener(listener);
        }
        Ok(job)
    }
}

impl JobDefinition {
    /// The elements of `flow` (the job's, or one of a split), built.
    fn build_elements(
        &self,
        flow: &FlowDefinition,
        registry: &ComponentRegistry,
        parameters: &JobParameters,
        validating: bool,
        errors: &mut ConfigErrors,
    ) -> HashMap<String, FlowElement> {
        let mut elements = HashMap::new();
        for element in &flow.elements {
            let builder = StepBuilder {
                definition: self,
                registry,
                parameters,
                validating,
                step: &element.name.value,
                late: None,
            };
            if let Some(flow_element) = builder.element(element, errors) {
                elements.insert(element.name.value.clone(), flow_element);
            }
        }
        elements
    }
}

fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// What the build method of every element kind gets besides the kind's definition.
struct ElementInput<'e> {
    element: &'e ElementDefinition,
    chunk_listeners: Vec<Arc<dyn ChunkListener>>,
    item_listeners: ItemListeners,
    errors: &'e mut ConfigErrors,
}

/// Builds the step of one element of a job definition.
pub(crate) struct StepBuilder<'a> {
    definition: &'a JobDefinition,
    registry: &'a ComponentRegistry,
    parameters: &'a JobParameters,
    validating: bool,
    step: &'a str,
    /// The contexts of `${context.…}` and `${partition.…}`, when building a step as it
    /// starts (see `build/late.rs`).
    late: Option<LateValues<'a>>,
}

impl StepBuilder<'_> {
    /// `step `NAME``, or `the job` for the job's own components (its listeners).
    fn place(&self) -> String {
        if self.step.is_empty() {
            "the job".to_string()
        } else {
            format!("step `{}`", self.step)
        }
    }

    fn err(&self, errors: &mut ConfigErrors, position: Position, message: impl Into<String>) {
        self.definition.err(errors, position, message);
    }

    fn element(
        &self,
        element: &ElementDefinition,
        errors: &mut ConfigErrors,
    ) -> Option<FlowElement> {
        let (step_listeners, chunk_listeners, item_listeners) =
            self.element_listeners(element, errors);
        let input = ElementInput {
            element,
            chunk_listeners,
            item_listeners,
            errors,
        };
        let built = if self.late.is_none() && late::late_bound(&element.kind) {
            self.late_element(element, input)?
        } else {
            element.kind.build(self, input)?
        };
        Some(
            built
                .with_transitions(
                    element
                        .transitions
                        .iter()
                        .map(|t| Transition {
                            on: t.on.value.clone(),
                            target: t.target.clone(),
                        })
                        .collect(),
                )
                .with_next(element.next.as_ref().map(|n| n.value.clone()))
                .with_promote_keys(element.promote_keys.clone())
                .with_listeners(step_listeners),
        )
    }

    /// Finds the factory of `component`, interpolates its properties and calls it.
    fn make<T>(
        &self,
        component: &ComponentDefinition,
        kind: ComponentKind,
        errors: &mut ConfigErrors,
        find: impl for<'r> Fn(&'r ComponentRegistry, bool, &str) -> Option<&'r Factory<T>>,
    ) -> Option<T> {
        let (by_ref, name) = match &component.selector {
            ComponentSelector::Type(n) => (false, n),
            ComponentSelector::Ref(n) => (true, n),
        };
        let factory = find(self.registry, by_ref, &name.value);
        let properties = self.interpolate(&component.properties, None, errors);
        let Some(factory) = factory else {
            self.unknown(component, kind, errors);
            return None;
        };
        let properties = properties?;
        let what = format!("properties of {kind} `{}` in {}", name.value, self.place());
        let properties = Properties::new(properties, self.definition.origin.clone(), what);
        let ctx = BuildContext {
            job_name: &self.definition.id.value,
            step_name: self.step,
            parameters: self.parameters,
            origin: &self.definition.origin,
            validating: self.validating,
        };
        match factory(&properties, &ctx) {
            Ok(component) => Some(component),
            Err(err) => {
                let located =
                    std::iter::successors(std::error::Error::source(&err), |e| e.source())
                        .find_map(|e| e.downcast_ref::<ConfigError>());
                match located {
                    Some(e) => errors.push(e.clone()),
                    None => self.err(
                        errors,
                        component.position,
                        format!(
                            "cannot create {kind} `{}` of {}: {err}",
                            name.value,
                            self.place()
                        ),
                    ),
                }
                None
            }
        }
    }

    /// Reports that `component` names no registered `kind` type or ref.
    fn unknown(
        &self,
        component: &ComponentDefinition,
        kind: ComponentKind,
        errors: &mut ConfigErrors,
    ) {
        let (what, name, known) = match &component.selector {
            ComponentSelector::Ref(n) => ("ref", n, self.registry.ref_names(kind)),
            ComponentSelector::Type(n) => ("type", n, self.registry.type_names(kind)),
        };
        self.err(
            errors,
            name.position,
            format!(
                "unknown {kind} {what} `{}` in {} (registered {kind} {what}s: {})",
                name.value,
                self.place(),
                list(known)
            ),
        );
    }

    /// A copy of `node` with every string interpolated; errors name the key and position.
    fn interpolate(
        &self,
        node: &Node,
        key: Option<&str>,
        errors: &mut ConfigErrors,
    ) -> Option<Node> {
        let scope = Scope {
            params: Some(self.parameters),
            late: self.late,
        };
        interpolate_tree(node, key, &scope, &mut |position, key, message| {
            self.err(
                errors,
                position,
                format!("`{key}` in {}: {message}", self.place()),
            );
        })
    }
}

/// The flow element of each element kind, for the table in `model/element.rs` (its
/// transitions, next element, promoted keys and step listeners are added by
/// [`StepBuilder::element`]).
impl<'e> ElementBuilder<ElementInput<'e>> for StepBuilder<'_> {
    type Output = Option<FlowElement>;

    fn chunk_step(&self, chunk: &Box<ChunkDefinition>, input: ElementInput<'e>) -> Self::Output {
        let ElementInput {
            element,
            chunk_listeners,
            item_listeners,
            errors,
        } = input;
        let mut builder = self.chunk(chunk, item_listeners, errors)?;
        for l in chunk_listeners {
            builder = builder.listener(l);
        }
        builder = builder.allow_start_if_complete(element.allow_start_if_complete);
        if let Some(limit) = element.start_limit {
            builder = builder.start_limit(limit);
        }
        match builder.build() {
            Ok(step) => Some(FlowElement::step(Arc::new(step))),
            Err(e) => {
                self.err(errors, element.name.position, e.message().to_string());
                None
            }
        }
    }

    fn tasklet_step(
        &self,
        component: &ComponentDefinition,
        input: ElementInput<'e>,
    ) -> Self::Output {
        let ElementInput {
            element,
            chunk_listeners,
            item_listeners,
            errors,
        } = input;
        item_listeners.refuse_in_tasklet(self, errors);
        let tasklet = self.make(component, ComponentKind::Tasklet, errors, |r, by_ref, n| {
            r.tasklet(by_ref, n)
        })?;
        let mut step = TaskletStep::new(self.step, tasklet)
            .with_allow_start_if_complete(element.allow_start_if_complete);
        if let Some(limit) = element.start_limit {
            step = step.with_start_limit(limit);
        }
        for l in chunk_listeners {
            step = step.with_listener(l);
        }
        Some(FlowElement::step(Arc::new(step)))
    }

    fn decision(&self, component: &ComponentDefinition, input: ElementInput<'e>) -> Self::Output {
        let decider = self.make(
            component,
            ComponentKind::Decider,
            input.errors,
            |r, by_ref, n| r.decider(by_ref, n),
        )?;
        Some(FlowElement::decision(decider))
    }

    fn partition(
        &self,
        partition: &Box<PartitionDefinition>,
        input: ElementInput<'e>,
    ) -> Self::Output {
        self.partition_step(partition, input)
    }

    fn split(&self, split: &SplitDefinition, input: ElementInput<'e>) -> Self::Output {
        let ElementInput {
            element, errors, ..
        } = input;
        let built: Vec<Flow> = split
            .flows
            .iter()
            .map(|flow| {
                let elements = self.definition.build_elements(
                    flow,
                    self.registry,
                    self.parameters,
                    self.validating,
                    errors,
                );
                Flow::new(flow.start.value.clone(), elements)
            })
            .collect();
        if built.is_empty() {
            self.err(
                errors,
                element.name.position,
                "a split needs at least one flow",
            );
            return None;
        }
        Some(FlowElement::split(built))
    }

    fn flow(&self, flow: &FlowElementDefinition, input: ElementInput<'e>) -> Self::Output {
        self.flow_element(flow, input.element, input.errors)
    }
}

/// A copy of `node` with every string interpolated in `scope`; each unresolved reference is
/// reported to `report` with its position, the key it is under, and the message.
pub(crate) fn interpolate_tree(
    node: &Node,
    key: Option<&str>,
    scope: &Scope<'_>,
    report: &mut dyn FnMut(crate::error::Position, &str, String),
) -> Option<Node> {
    let mut out = node.clone();
    let kind = match &node.kind {
        NodeKind::Str(s) => match interpolate(key, s, scope) {
            Ok(resolved) => {
                out.secret = resolved.secret;
                out.interpolated = resolved.changed;
                NodeKind::Str(resolved.text)
            }
            Err(messages) => {
                for m in messages {
                    report(node.position(), key.unwrap_or("value"), m);
                }
                return None;
            }
        },
        NodeKind::Seq(items) => {
            let mut out_items = Vec::with_capacity(items.len());
            let mut ok = true;
            for item in items {
                match interpolate_tree(item, key, scope, report) {
                    Some(n) => out_items.push(n),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            NodeKind::Seq(out_items)
        }
        NodeKind::Map(entries) => {
            let mut out_entries = Vec::with_capacity(entries.len());
            let mut ok = true;
            for (k, v) in entries {
                match interpolate_tree(v, Some(&k.name), scope, report) {
                    Some(n) => out_entries.push((k.clone(), n)),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            NodeKind::Map(out_entries)
        }
        other => other.clone(),
    };
    out.kind = kind;
    Some(out)
}
