//! The listeners a job file names: `{ref: NAME}` for one registered from Rust
//! (`register_job_listener`, `register_step_listener`, `register_chunk_listener`), and
//! `{type: NAME, properties: {...}}` for a listener type (`register_listener`; the built-ins
//! of `ikkatsu-items`: `log`, `command`).

use std::sync::Arc;

use ikkatsu_core::listener::{ChunkListener, JobExecutionListener, StepExecutionListener};

use super::{FaultListeners, StepBuilder, list};
use crate::error::ConfigErrors;
use crate::model::{ComponentDefinition, ComponentSelector};
use crate::registry::{ComponentKind, Listeners};

/// The listeners of an element: before/after the step, around its chunks, and on its
/// skips and retries.
pub(super) type ElementListeners = (
    Vec<Arc<dyn StepExecutionListener>>,
    Vec<Arc<dyn ChunkListener>>,
    FaultListeners,
);

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
        definitions: &[ComponentDefinition],
        errors: &mut ConfigErrors,
    ) -> ElementListeners {
        let mut step_listeners = Vec::new();
        let mut chunk_listeners = Vec::new();
        let mut fault_listeners = FaultListeners::default();
        for definition in definitions {
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
                    let fault = fault_listeners.add(self.registry, name);
                    if step.is_none() && chunk.is_none() && !fault {
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
        (step_listeners, chunk_listeners, fault_listeners)
    }
}
