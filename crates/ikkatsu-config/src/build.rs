//! Building a [`Job`] from a [`JobDefinition`]: parameters are merged and interpolated,
//! components are made by the registry's factories, and every error found on the way is
//! collected with its position.

use std::collections::HashMap;
use std::sync::Arc;

mod chunk;

use ikkatsu_core::job::RunIdIncrementer;
use ikkatsu_core::listener::{ChunkListener, RetryListener, SkipListener};
use ikkatsu_core::{
    Flow, FlowElement, Job, JobParameters, ParameterValue, Record, Sensitivity, Step, TaskletStep,
    Transition,
};

use crate::error::{ConfigError, ConfigErrors, Position};
use crate::interpolate::{Scope, interpolate};
use crate::model::element::ElementBuilder;
use crate::model::{
    ChunkDefinition, ComponentDefinition, ComponentSelector, ElementDefinition, JobDefinition,
    Located,
};
use crate::node::{Node, NodeKind};
use crate::parameters::{Settled, resolve_references, settle};
use crate::properties::Properties;
use crate::registry::{BuildContext, ComponentKind, ComponentRegistry, Factory};

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

    fn defaults(&self, errors: &mut ConfigErrors) -> JobParameters {
        let mut defaults = JobParameters::new();
        for param in &self.params {
            let name = &param.name.value;
            let Some(raw) = param.value.scalar_text() else {
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
                            param.value.position(),
                            format!(
                                "parameter `{name}`: a secret (`${{file:…}}`, a secret-looking variable or name) must be a string parameter: remove its `type`"
                            ),
                        );
                    }
                    continue;
                }
                Err(messages) => {
                    for m in messages {
                        self.err(
                            errors,
                            param.value.position(),
                            format!("parameter `{name}`: {m}"),
                        );
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
                                param.value.position()
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
                .map_or(Position::UNKNOWN, |p| p.value.position());
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
        let mut merged = parameters.clone();
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

        let mut job_listeners = Vec::new();
        for listener in &self.listeners {
            match registry.job_listener(&listener.value) {
                Some(l) => job_listeners.push(l.clone()),
                None => self.err(
                    &mut errors,
                    listener.position,
                    format!(
                        "unknown job listener `{}` (registered: {})",
                        listener.value,
                        list(registry.job_listener_names())
                    ),
                ),
            }
        }

        let mut elements = HashMap::new();
        for element in &self.flow.elements {
            let builder = StepBuilder {
                definition: self,
                registry,
                parameters: &merged,
                validating,
                step: &element.name.value,
            };
            if let Some(flow_element) = builder.element(element, &mut errors) {
                elements.insert(element.name.value.clone(), flow_element);
            }
        }
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
    fault_listeners: FaultListeners,
    errors: &'e mut ConfigErrors,
}

/// The skip and retry listeners an element names.
#[derive(Default)]
struct FaultListeners {
    skip: Vec<Arc<dyn SkipListener<Record, Record>>>,
    retry: Vec<Arc<dyn RetryListener>>,
    /// The names registered only as skip or retry listeners.
    only_fault: Vec<Located<String>>,
}

impl FaultListeners {
    /// Adds the skip and retry listeners registered as `name`; whether there is one.
    fn add(&mut self, registry: &ComponentRegistry, name: &Located<String>) -> bool {
        let skip = registry.skip_listener(&name.value);
        let retry = registry.retry_listener(&name.value);
        self.skip.extend(skip.cloned());
        self.retry.extend(retry.cloned());
        let other = registry.step_listener(&name.value).is_some()
            || registry.chunk_listener(&name.value).is_some();
        if !other && (skip.is_some() || retry.is_some()) {
            self.only_fault.push(name.clone());
        }
        skip.is_some() || retry.is_some()
    }
}

/// Builds the step of one element of a job definition.
pub(crate) struct StepBuilder<'a> {
    definition: &'a JobDefinition,
    registry: &'a ComponentRegistry,
    parameters: &'a JobParameters,
    validating: bool,
    step: &'a str,
}

impl StepBuilder<'_> {
    fn err(&self, errors: &mut ConfigErrors, position: Position, message: impl Into<String>) {
        self.definition.err(errors, position, message);
    }

    fn element(
        &self,
        element: &ElementDefinition,
        errors: &mut ConfigErrors,
    ) -> Option<FlowElement> {
        let mut step_listeners = Vec::new();
        let mut chunk_listeners = Vec::new();
        let mut fault_listeners = FaultListeners::default();
        for listener in &element.listeners {
            let step = self.registry.step_listener(&listener.value);
            let chunk = self.registry.chunk_listener(&listener.value);
            if let Some(l) = step {
                step_listeners.push(l.clone());
            }
            if let Some(l) = chunk {
                chunk_listeners.push(l.clone());
            }
            let fault = fault_listeners.add(self.registry, listener);
            if step.is_none() && chunk.is_none() && !fault {
                self.err(
                    errors,
                    listener.position,
                    format!(
                        "unknown step listener `{}` in step `{}` (registered: {})",
                        listener.value,
                        self.step,
                        list(self.registry.step_listener_names())
                    ),
                );
            }
        }
        let input = ElementInput {
            element,
            chunk_listeners,
            fault_listeners,
            errors,
        };
        let step = element.kind.build(self, input)?;
        Some(FlowElement::Step {
            step,
            transitions: element
                .transitions
                .iter()
                .map(|t| Transition {
                    on: t.on.value.clone(),
                    target: t.target.clone(),
                })
                .collect(),
            next: element.next.as_ref().map(|n| n.value.clone()),
            promote_keys: element.promote_keys.clone(),
            listeners: step_listeners,
        })
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
            let (what, known) = if by_ref {
                ("ref", self.registry.ref_names(kind))
            } else {
                ("type", self.registry.type_names(kind))
            };
            self.err(
                errors,
                name.position,
                format!(
                    "unknown {kind} {what} `{}` in step `{}` (registered {kind} {what}s: {})",
                    name.value,
                    self.step,
                    list(known)
                ),
            );
            return None;
        };
        let properties = properties?;
        let what = format!(
            "properties of {kind} `{}` in step `{}`",
            name.value, self.step
        );
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
                            "cannot create {kind} `{}` of step `{}`: {err}",
                            name.value, self.step
                        ),
                    ),
                }
                None
            }
        }
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
        };
        interpolate_tree(node, key, &scope, &mut |position, key, message| {
            self.err(
                errors,
                position,
                format!("`{key}` in step `{}`: {message}", self.step),
            );
        })
    }
}

/// The step of each element kind, for the table in `model/element.rs`.
impl<'e> ElementBuilder<ElementInput<'e>> for StepBuilder<'_> {
    type Output = Option<Arc<dyn Step>>;

    fn chunk_step(&self, chunk: &Box<ChunkDefinition>, input: ElementInput<'e>) -> Self::Output {
        let ElementInput {
            element,
            chunk_listeners,
            fault_listeners,
            errors,
        } = input;
        let mut builder = self.chunk(chunk, fault_listeners, errors)?;
        for l in chunk_listeners {
            builder = builder.listener(l);
        }
        builder = builder.allow_start_if_complete(element.allow_start_if_complete);
        if let Some(limit) = element.start_limit {
            builder = builder.start_limit(limit);
        }
        match builder.build() {
            Ok(step) => Some(Arc::new(step)),
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
            fault_listeners,
            errors,
        } = input;
        for name in &fault_listeners.only_fault {
            self.err(
                errors,
                name.position,
                format!(
                    "listener `{}` in step `{}` is a skip or retry listener: those listen to chunk steps, and this step is a tasklet",
                    name.value, self.step
                ),
            );
        }
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
        Some(Arc::new(step))
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
