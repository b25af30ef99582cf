//! [`LogTasklet`]: writes a message to the log and finishes (a marker step, or a
//! placeholder while a job is being written).

use async_trait::async_trait;
use serde::Deserialize;

use ikkatsu_core::{RepeatStatus, Result, StepContext, StepExecution, Tasklet};

/// The level of a logged message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info` (the default).
    #[default]
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

/// Properties of a log tasklet (`log` in job YAML).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogTaskletConfig {
    /// The message; without it the tasklet does nothing.
    #[serde(default)]
    pub message: Option<String>,
    /// The level: `trace`, `debug`, `info` (default), `warn` or `error`.
    #[serde(default)]
    pub level: LogLevel,
}

/// Logs a message with the step and job names, then finishes.
pub struct LogTasklet {
    config: LogTaskletConfig,
}

impl LogTasklet {
    /// A tasklet for `config`.
    pub fn new(config: LogTaskletConfig) -> Result<Self> {
        Ok(LogTasklet { config })
    }
}

#[async_trait]
impl Tasklet for LogTasklet {
    async fn execute(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
    ) -> Result<RepeatStatus> {
        let Some(message) = &self.config.message else {
            return Ok(RepeatStatus::Finished);
        };
        let step = execution.step_name.as_str();
        let job = ctx.job_name.as_str();
        match self.config.level {
            LogLevel::Trace => tracing::trace!(job, step, "{message}"),
            LogLevel::Debug => tracing::debug!(job, step, "{message}"),
            LogLevel::Info => tracing::info!(job, step, "{message}"),
            LogLevel::Warn => tracing::warn!(job, step, "{message}"),
            LogLevel::Error => tracing::error!(job, step, "{message}"),
        }
        Ok(RepeatStatus::Finished)
    }
}
