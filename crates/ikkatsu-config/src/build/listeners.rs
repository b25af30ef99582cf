//! The listeners a job file names: `{ref: NAME}` for one registered from Rust
//! (`register_job_listener`, `register_step_listener`, `register_chunk_listener`,
//! `register_skip_listener`, `register_item_read_listener`, ...), and
//! `{type: NAME, properties: {...}}` for a listener type (`register_listener`; the built-ins
//! of `ikkatsu-items`: `log`, `command`). An element's `listeners` take a name in every
//! role it is registered for; its lists of one role (`item-read-listeners`, ...) in that
//! role only.

use std::sync::Arc;

use ikkatsu_core::Record;
use ikkatsu_core::listener::{
    ChunkListener, ItemProcessListener, ItemReadListener, ItemWriteListener, JobExecutionListener,
    RetryListener, SkipListener, StepExecutionListener,
};

use super::{StepBuilder, list};
use crate::error::ConfigErrors;
use crate::model::{
    ComponentDefinition, ComponentSelector, ElementDefinition, ListenerRole, Located,
};
use crate::registry::{ComponentKind, ComponentRegistry, Listeners};

/// The listeners of an element: before/after the step, around its chunks, and those only
/// chunk steps hear.
pub(super) type ElementListeners = (
    Vec<Arc<dyn StepExecutionListener>>,
    Vec<Arc<dyn ChunkListener>>,
    ItemListeners,
);

/// The listeners an element names that only chunk steps hear: on skips and retries, and
/// around the reading, processing and writing of items.
#[derive(Clone, Default)]
pub(super) struct ItemListeners {
    pub skip: Vec<Arc<dyn SkipListener<Record, Record>>>,
    pub retry: Vec<Arc<dyn RetryListener>>,
    pub read: Vec<Arc<dyn ItemReadListener<Record>>>,
    pub process: Vec<Arc<dyn ItemProcessListener<Record, Record>>>,
    pub write: Vec<Arc<dyn ItemWriteListener<Record>>>,
    /// The names that listen to nothing but items, skips and retries.
    only_items: Vec<Located<String>>,
}

impl ItemListeners {
    /// Adds the listeners registered as `name` in `role` (each role for `Any`); whether
    /// there is one.
    fn add(
        &mut self,
        registry: &ComponentRegistry,
        name: &Located<String>,
        role: ListenerRole,
    ) -> bool {
        let any = role == ListenerRole::Any;
        let n = name.value.as_str();
        let mut found = false;
        if any || role == ListenerRole::Skip {
            found |= push(&mut self.skip, registry.skip_listener(n));
        }
        if any || role == ListenerRole::Retry {
            found |= push(&mut self.retry, registry.retry_listener(n));
        }
        if any || role == ListenerRole::ItemRead {
            found |= push(&mut self.read, registry.item_read_listener(n));
        }
        if any || role == ListenerRole::ItemProcess {
            found |= push(&mut self.process, registry.item_process_listener(n));
        }
        if any || role == ListenerRole::ItemWrite {
            found |= push(&mut self.write, registry.item_write_listener(n));
        }
        let other =
            any && (registry.step_listener(n).is_some() || registry.chunk_listener(n).is_some());
        if found && !other {
            self.only_items.push(name.clone());
        }
        found
    }

    /// Errors for the names of a tasklet step that listen only to chunk steps.
    pub(super) fn refuse_in_tasklet(&self, builder: &StepBuilder<'_>, errors: &mut ConfigErrors) {
        for name in &self.only_items {
            builder.err(
                errors,
                name.position,
                format!(
                    "listener `{}` in step `{}` is a skip, retry or item listener: those listen to chunk steps, and this step is a tasklet",
                    name.value, builder.step
                ),
            );
        }
    }
}

fn push<T: ?Sized>(to: &mut Vec<Arc<T>>, found: Option<&Arc<T>>) -> bool {
    to.extend(found.cloned());
    found.is_some()
}

impl StepBuilder<'_> {
    /// Makes a listener of a type.
    fn typed_listener(
        &self,
        definition: &ComponentDefinition,
        errors: &mut ConfigErrors,
    ) -> Option<Listeners> {
        self.make(
            definition,
            ComponentKind::Listener,
            errors,
            |r, by_ref, n| r.listener(by_ref, n),
        )
    }

    /// The job's listeners (the builder of the job: its step is empty).
    pub(super) fn job_listeners(
        &self,
        definitions: &[ComponentDefinition],
        errors: &mut ConfigErrors,
    ) -> Vec<Arc<dyn JobExecutionListener>> {
        let mut listeners = Vec::new();
        for definition in definitions {
            match &definition.selector {
                ComponentSelector::Ref(name) => match self.registry.job_listener(&name.value) {
                    Some(l) => listeners.push(l.clone()),
                    None => self.err(
                        errors,
                        name.position,
                        format!(
                            "unknown job listener `{}` (registered: {})",
                            name.value,
                            list(self.registry.job_listener_names())
                        ),
                    ),
                },
                ComponentSelector::Type(name) => {
                    match self.typed_listener(definition, errors).map(|l| l.job) {
                        Some(Some(l)) => listeners.push(l),
                        Some(None) => self.err(
                            errors,
                            name.position,
                            format!(
                                "listener type `{}` does not listen to jobs: give it to a step",
                                name.value
                            ),
                        ),
                        None => {}
                    }
                }
            }
        }
        listeners
    }

    /// An element's step and chunk listeners.
    pub(super) fn element_listeners(
        &self,
        element: &ElementDefinition,
        errors: &mut ConfigErrors,
    ) -> ElementListeners {
        let mut step_listeners = Vec::new();
        let mut chunk_listeners = Vec::new();
        let mut item_listeners = ItemListeners::default();
        for definition in &element.listeners {
            match &definition.selector {
                ComponentSelector::Ref(name) => {
                    let step = self.registry.step_listener(&name.value);
                    let chunk = self.registry.chunk_listener(&name.value);
                    if let Some(l) = step {
                        step_listeners.push(l.clone());
                    }
                    if let Some(l) = chunk {
                        chunk_listeners.push(l.clone());
                    }
                    let items = item_listeners.add(self.registry, name, ListenerRole::Any);
                    if step.is_none() && chunk.is_none() && !items {
                        self.err(
                            errors,
                            name.position,
                            format!(
                                "unknown step listener `{}` in step `{}` (registered: {})",
                                name.value,
                                self.step,
                                list(self.registry.step_listener_names())
                            ),
                        );
                    }
                }
                ComponentSelector::Type(name) => {
                    match self.typed_listener(definition, errors).map(|l| l.step) {
                        Some(Some(l)) => step_listeners.push(l),
                        Some(None) => self.err(
                            errors,
                            name.position,
                            format!(
                                "listener type `{}` does not listen to steps: give it to the job",
                                name.value
                            ),
                        ),
                        None => {}
                    }
                }
            }
        }
        for (role, definition) in &element.role_listeners {
            let name = definition.selector.name();
            let found = match role {
                ListenerRole::Chunk => {
                    let chunk = self.registry.chunk_listener(&name.value);
                    push(&mut chunk_listeners, chunk)
                }
                role => item_listeners.add(self.registry, name, *role),
            };
            if !found {
                let what = role.describe();
                self.err(
                    errors,
                    name.position,
                    format!(
                        "unknown {what} `{}` in step `{}` (registered {what}s: {})",
                        name.value,
                        self.step,
                        list(self.registry.role_listener_names(*role))
                    ),
                );
            }
        }
        (step_listeners, chunk_listeners, item_listeners)
    }
}
