//! Late binding: a step whose component properties read `${context.KEY}` (the job execution
//! context) or `${partition.KEY}` (a partition's context) is built when it starts, from
//! those contexts — Spring Batch's step scope. Each start builds fresh components, so one
//! definition serves any number of partitions running at once.

use std::sync::Arc;

use async_trait::async_trait;
use ikkatsu_core::listener::ChunkListener;
use ikkatsu_core::{
    ExecutionContext, FlowElement, JobParameters, Step, StepContext, StepExecution,
};

use super::{ElementInput, ItemListeners, StepBuilder};
use crate::error::ConfigErrors;
use crate::interpolate::{LateValues, references_late};
use crate::model::{ComponentDefinition, ElementDefinition, ElementKind, JobDefinition};
use crate::node::{Node, NodeKind};
use crate::registry::ComponentRegistry;

/// Whether an element of this kind is built when it starts: a chunk or tasklet whose
/// components' properties hold a late-bound reference.
pub(super) fn late_bound(kind: &ElementKind) -> bool {
    let components: Vec<&ComponentDefinition> = match kind {
        ElementKind::Chunk(chunk) => [
            Some(&chunk.reader),
            chunk.processor.as_ref(),
            Some(&chunk.writer),
            chunk.dead_letter.as_ref(),
        ]
        .into_iter()
        .flatten()
        .collect(),
        ElementKind::Tasklet(tasklet) => vec![tasklet],
        _ => Vec::new(),
    };
    components
        .iter()
        .any(|c| node_references_late(&c.properties))
}

fn node_references_late(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Str(text) => references_late(text),
        NodeKind::Seq(items) => items.iter().any(node_references_late),
        NodeKind::Map(entries) => entries.iter().any(|(_, v)| node_references_late(v)),
        _ => false,
    }
}

/// A step built from its definition each time it starts.
pub(super) struct LateStep {
    name: String,
    definition: Arc<JobDefinition>,
    registry: Arc<ComponentRegistry>,
    parameters: JobParameters,
    element: ElementDefinition,
    /// What is built: the element's kind, or a partition's worker step.
    kind: ElementKind,
    chunk_listeners: Vec<Arc<dyn ChunkListener>>,
    item_listeners: ItemListeners,
}

impl StepBuilder<'_> {
    /// A step of `kind` for `element` that is built when it starts.
    pub(super) fn late_step(
        &self,
        element: &ElementDefinition,
        kind: &ElementKind,
        input: &ElementInput<'_>,
    ) -> LateStep {
        LateStep {
            name: self.step.to_string(),
            definition: Arc::new(self.definition.clone()),
            registry: Arc::new(self.registry.clone()),
            parameters: self.parameters.clone(),
            element: element.clone(),
            kind: kind.clone(),
            chunk_listeners: input.chunk_listeners.clone(),
            item_listeners: input.item_listeners.clone(),
        }
    }

    /// The element as a late-bound step. Its component types are checked now; its
    /// properties when it starts.
    pub(super) fn late_element(
        &self,
        element: &ElementDefinition,
        input: ElementInput<'_>,
    ) -> Option<FlowElement> {
        self.check_types(&element.kind, input.errors);
        let step = self.late_step(element, &element.kind, &input);
        Some(FlowElement::step(Arc::new(step)))
    }
}

impl LateStep {
    /// Builds the step with the job's and the step execution's contexts.
    fn build(
        &self,
        job: &ExecutionContext,
        step: &ExecutionContext,
    ) -> ikkatsu_core::Result<Arc<dyn Step>> {
        let builder = StepBuilder {
            definition: &self.definition,
            registry: &self.registry,
            parameters: &self.parameters,
            validating: false,
            step: &self.name,
            late: Some(LateValues { job, step }),
        };
        let mut errors = ConfigErrors::new();
        let input = ElementInput {
            element: &self.element,
            chunk_listeners: self.chunk_listeners.clone(),
            item_listeners: self.item_listeners.clone(),
            errors: &mut errors,
        };
        let built = self.kind.build(&builder, input);
        match built {
            Some(FlowElement::Step { step, .. }) if errors.is_empty() => Ok(step),
            _ => {
                errors.normalize();
                Err(ikkatsu_core::Error::from(errors)
                    .context(format!("building step `{}` as it starts", self.name)))
            }
        }
    }
}

#[async_trait]
impl Step for LateStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn allow_start_if_complete(&self) -> bool {
        self.element.allow_start_if_complete
    }

    fn start_limit(&self) -> u64 {
        self.element.start_limit.unwrap_or(u64::MAX)
    }

    async fn execute(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
    ) -> ikkatsu_core::Result<()> {
        let step = self.build(&ctx.job_context, &execution.execution_context)?;
        step.execute(execution, ctx).await
    }
}
