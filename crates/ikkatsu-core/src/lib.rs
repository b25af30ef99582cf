//! # ikkatsu-core
//!
//! The model and engine of ikkatsu, a batch-processing framework in the style of Spring
//! Batch: a [`Job`] is a [`Flow`] of [`Step`]s joined by transitions on exit codes. A step is
//! either chunk-oriented ([`ChunkStep`]: read → process → write, committed every
//! `chunk_size` items) or a [`Tasklet`]. Every commit is recorded in a [`JobRepository`],
//! so a failed, stopped or killed execution restarts from its last committed chunk.
//!
//! The core knows no backend: repositories, item readers and writers live in other crates
//! and implement the ports defined here.
//!
//! Design decision: item components are trait objects over a generic item type, so a Rust
//! user's typed items and a YAML job's [`Record`]s run through the same engine.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use ikkatsu_core::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ikkatsu_core::Error> {
//! let writer = VecItemWriter::new();
//! let step = ChunkStep::<i64, i64>::builder("double")
//!     .reader(VecItemReader::new((1..=10).collect()))
//!     .processor(FnItemProcessor::new(|n: i64| Ok(Some(n * 2))))
//!     .writer(writer.clone())
//!     .chunk_size(3)
//!     .build()?;
//! let job = Job::linear("numbers", vec![Arc::new(step)])?;
//! let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
//! let execution = operator
//!     .start(&job, JobParameters::new(), CancellationToken::new())
//!     .await?;
//! assert_eq!(execution.status, BatchStatus::Completed);
//! assert_eq!(writer.items(), vec![2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod call;
pub mod context;
pub mod duration;
pub mod error;
pub mod execution;
pub mod item;
pub mod job;
pub mod launch;
pub mod listener;
pub mod parameters;
pub mod partition;
pub mod record;
pub mod repository;
pub mod retry;
pub mod secret;
pub mod status;
pub mod step;

pub use context::ExecutionContext;
pub use error::{Error, ErrorKind, Result};
pub use execution::{JobExecution, JobInstance, StepCounts, StepExecution};
pub use item::{ItemProcessor, ItemReader, ItemStream, ItemWriter, Record};
pub use job::{Flow, FlowElement, Job, Transition, TransitionTarget};
pub use launch::{JobOperator, OperatorSettings};
pub use parameters::{JobParameter, JobParameters, ParameterValue, Sensitivity};
pub use repository::{JobRepository, MemoryJobRepository};
pub use status::{BatchStatus, ExitStatus};
pub use step::{ChunkStep, RepeatStatus, Step, StepContext, Tasklet, TaskletStep};
pub use tokio_util::sync::CancellationToken;

/// A processor made from a closure.
pub struct FnItemProcessor<F> {
    f: F,
}

impl<F> FnItemProcessor<F> {
    /// Wraps `f`, called for each item.
    pub fn new(f: F) -> Self {
        FnItemProcessor { f }
    }
}

#[async_trait::async_trait]
impl<I, O, F> ItemProcessor<I, O> for FnItemProcessor<F>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I) -> Result<Option<O>> + Send + Sync,
{
    async fn process(&self, item: I) -> Result<Option<O>> {
        (self.f)(item)
    }

    async fn process_chunk(
        &self,
        items: &mut (dyn Iterator<Item = I> + Send),
        results: &mut Vec<Option<O>>,
    ) -> Result<()> {
        for item in items {
            results.push((self.f)(item)?);
        }
        Ok(())
    }
}

/// The names most programs need.
pub mod prelude {
    pub use crate::item::{
        ItemProcessor, ItemReader, ItemStream, ItemWriter, PassThroughItemProcessor, Record,
        VecItemReader, VecItemWriter,
    };
    pub use crate::job::{
        Flow, FlowElement, FnDecider, Job, JobExecutionDecider, RunIdIncrementer, Transition,
    };
    pub use crate::launch::{JobOperator, OperatorSettings};
    pub use crate::listener::{
        ChunkListener, ItemProcessListener, ItemReadListener, ItemWriteListener,
        JobExecutionListener, RetryEvent, RetryListener, SkipListener, StepExecutionListener,
    };
    pub use crate::repository::{JobRepository, MemoryJobRepository};
    pub use crate::step::{
        ChunkStep, Phase, RepeatStatus, RetryPolicy, SkipPolicy, Step, StepContext, Tasklet,
        TaskletStep,
    };
    pub use crate::{
        BatchStatus, CancellationToken, Error, ErrorKind, ExecutionContext, ExitStatus,
        FnItemProcessor, JobExecution, JobParameters, ParameterValue, StepExecution,
    };
}
