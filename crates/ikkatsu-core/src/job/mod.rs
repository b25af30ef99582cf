//! Jobs: a [`Flow`] of elements (steps, decisions, splits of parallel flows) joined by
//! [`Transition`]s on exit codes, plus job listeners and a parameters incrementer.

mod decision;
mod flow;

use std::sync::Arc;

pub use decision::{FnDecider, JobExecutionDecider};
pub use flow::{
    Flow, FlowElement, Routing, Transition, TransitionTarget, exit_code_matches,
    pattern_specificity, sort_by_specificity,
};

use crate::error::{Error, Result};
use crate::listener::JobExecutionListener;
use crate::parameters::{JobParameters, ParameterValue};

/// Computes the parameters of the next instance of a job (for jobs run again and again).
pub trait JobParametersIncrementer: Send + Sync {
    /// The next parameters after `previous` (the last execution's, or empty).
    fn next(&self, previous: &JobParameters) -> JobParameters;
}

/// Increments the integer parameter `run.id` (Spring Batch's `RunIdIncrementer`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunIdIncrementer;

impl JobParametersIncrementer for RunIdIncrementer {
    fn next(&self, previous: &JobParameters) -> JobParameters {
        let last = match previous.get("run.id").map(|p| &p.value) {
            Some(ParameterValue::Integer(n)) => *n,
            _ => 0,
        };
        let mut next = previous.clone();
        next.insert("run.id", ParameterValue::Integer(last + 1), true);
        next
    }
}

/// A job: a named flow of steps with listeners.
pub struct Job {
    name: String,
    flow: Flow,
    listeners: Vec<Arc<dyn JobExecutionListener>>,
    incrementer: Option<Arc<dyn JobParametersIncrementer>>,
    restartable: bool,
    default_parameters: JobParameters,
    location: Option<String>,
}

impl Job {
    /// A job named `name` running `flow`. The flow is checked: every `to` must name an element.
    pub fn new(name: impl Into<String>, flow: Flow) -> Result<Self> {
        let name = name.into();
        flow.validate()
            .map_err(|err| err.context(format!("job `{name}`")))?;
        Ok(Job {
            name,
            flow,
            listeners: Vec::new(),
            incrementer: None,
            restartable: true,
            default_parameters: JobParameters::new(),
            location: None,
        })
    }

    /// A job whose steps run one after the other; any failure fails the job.
    pub fn linear(name: impl Into<String>, steps: Vec<Arc<dyn crate::step::Step>>) -> Result<Self> {
        let name = name.into();
        if steps.is_empty() {
            return Err(Error::config(format!("job `{name}` has no steps")));
        }
        Job::new(name, Flow::linear(steps)?)
    }

    /// Adds a job listener.
    pub fn with_listener(mut self, listener: Arc<dyn JobExecutionListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Sets the incrementer used when the job is started without a restart pending.
    pub fn with_incrementer(mut self, incrementer: Arc<dyn JobParametersIncrementer>) -> Self {
        self.incrementer = Some(incrementer);
        self
    }

    /// Whether failed or stopped executions may be restarted (default true).
    pub fn with_restartable(mut self, restartable: bool) -> Self {
        self.restartable = restartable;
        self
    }

    /// Parameters used when the launch does not set them.
    pub fn with_default_parameters(mut self, defaults: JobParameters) -> Self {
        self.default_parameters = defaults;
        self
    }

    /// Where the job was defined (a YAML path), stored with each execution.
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The job's flow.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// The job listeners.
    pub fn listeners(&self) -> &[Arc<dyn JobExecutionListener>] {
        &self.listeners
    }

    /// The incrementer, if any.
    pub fn incrementer(&self) -> Option<&Arc<dyn JobParametersIncrementer>> {
        self.incrementer.as_ref()
    }

    /// Whether failed or stopped executions may be restarted.
    pub fn is_restartable(&self) -> bool {
        self.restartable
    }

    /// Default parameters.
    pub fn default_parameters(&self) -> &JobParameters {
        &self.default_parameters
    }

    /// Where the job was defined.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
}
