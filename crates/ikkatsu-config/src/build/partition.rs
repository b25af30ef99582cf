//! A `partition` element's [`PartitionStep`]: its partitioner, its worker step (built for
//! each partition as it starts, see `late.rs`) and its handler — local tasks, or remote
//! workers reached through a broker registered for the URL's scheme.

use std::sync::Arc;

use ikkatsu_core::FlowElement;
use ikkatsu_core::partition::{
    LocalPartitionHandler, PartitionHandler, PartitionStep, PartitionTiming, RemotePartitionHandler,
};

use super::{ElementInput, StepBuilder};
use crate::error::ConfigErrors;
use crate::model::{ComponentDefinition, ElementKind, PartitionDefinition};
use crate::registry::{BrokerSettings, ComponentKind};

/// The queue partition requests travel on when `remote` names none.
pub const DEFAULT_QUEUE: &str = "ikkatsu.partitions";
/// Partitions asked for when `grid-size` is not given.
const DEFAULT_GRID_SIZE: u64 = 4;

impl StepBuilder<'_> {
    pub(super) fn partition_step(
        &self,
        partition: &PartitionDefinition,
        input: ElementInput<'_>,
    ) -> Option<FlowElement> {
        let element = input.element;
        let partitioner = self.make(
            &partition.partitioner,
            ComponentKind::Partitioner,
            input.errors,
            |r, by_ref, n| r.partitioner(by_ref, n),
        );
        self.check_worker(element, &partition.worker, input.errors);
        let worker = self.late_step(element, &partition.worker, &input);
        let ElementInput { errors, .. } = input;
        let defaults = PartitionTiming::default();
        let timing = PartitionTiming {
            heartbeat: partition.heartbeat.unwrap_or(defaults.heartbeat),
            stale_after: partition.stale_after.unwrap_or(defaults.stale_after),
            poll_interval: partition
                .remote
                .as_ref()
                .and_then(|r| r.poll_interval)
                .unwrap_or(defaults.poll_interval),
            timeout: partition.remote.as_ref().and_then(|r| r.timeout),
        };
        let grid_size = partition.grid_size.unwrap_or(DEFAULT_GRID_SIZE);
        let handler: Arc<dyn PartitionHandler> = match &partition.remote {
            None => Arc::new(
                LocalPartitionHandler::new(clamp(partition.parallelism.unwrap_or(grid_size)))
                    .with_timing(timing),
            ),
            Some(remote) => {
                let url = self.interpolate(&remote.broker, Some("broker"), errors)?;
                let url = url.scalar_text().unwrap_or_default();
                ikkatsu_core::secret::register_url(&url);
                let queue = remote.queue.as_deref().unwrap_or(DEFAULT_QUEUE);
                match self.registry.broker(&BrokerSettings::new(url, queue)) {
                    Ok(broker) => Arc::new(RemotePartitionHandler::new(broker).with_timing(timing)),
                    Err(err) => {
                        self.err(
                            errors,
                            remote.broker.position(),
                            format!("`broker` of step `{}`: {}", self.step, err.message()),
                        );
                        return None;
                    }
                }
            }
        };
        let mut step = PartitionStep::new(self.step, Arc::new(worker), partitioner?, handler)
            .with_grid_size(clamp(grid_size))
            .with_timing(timing)
            .with_allow_start_if_complete(element.allow_start_if_complete);
        if let Some(limit) = element.start_limit {
            step = step.with_start_limit(limit);
        }
        Some(FlowElement::step(Arc::new(step)))
    }

    /// Checks a worker step before any partition runs: its component types always, and,
    /// when its properties read no partition or context value, the whole step (so a bad
    /// property is reported by `validate`, not by the first partition).
    fn check_worker(
        &self,
        element: &crate::model::ElementDefinition,
        worker: &ElementKind,
        errors: &mut ConfigErrors,
    ) {
        if super::late::late_bound(worker) {
            self.check_types(worker, errors);
        } else {
            let input = ElementInput {
                element,
                chunk_listeners: Vec::new(),
                item_listeners: Default::default(),
                errors,
            };
            let _ = worker.build(self, input);
        }
    }

    /// Reports every component of a chunk or tasklet whose type or ref is not registered.
    pub(super) fn check_types(&self, kind: &ElementKind, errors: &mut ConfigErrors) {
        let mut check = |component: &ComponentDefinition, kind: ComponentKind| {
            let name = &component.selector.name().value;
            let by_ref = matches!(component.selector, crate::model::ComponentSelector::Ref(_));
            let known = match kind {
                ComponentKind::Reader => self.registry.reader(by_ref, name).is_some(),
                ComponentKind::Processor => self.registry.processor(by_ref, name).is_some(),
                ComponentKind::Writer => self.registry.writer(by_ref, name).is_some(),
                _ => self.registry.tasklet(by_ref, name).is_some(),
            };
            if !known {
                self.unknown(component, kind, errors);
            }
        };
        match kind {
            ElementKind::Chunk(chunk) => {
                check(&chunk.reader, ComponentKind::Reader);
                if let Some(p) = &chunk.processor {
                    check(p, ComponentKind::Processor);
                }
                check(&chunk.writer, ComponentKind::Writer);
                if let Some(w) = &chunk.dead_letter {
                    check(w, ComponentKind::Writer);
                }
            }
            ElementKind::Tasklet(tasklet) => check(tasklet, ComponentKind::Tasklet),
            _ => {}
        }
    }
}

fn clamp(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
