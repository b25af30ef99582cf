//! The `command` listener type: runs a program on each event, the event in its environment.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::process::Command;

use ikkatsu_config::registry::Listeners;
use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::{Error, ErrorKind, Result};

use super::{Event, EventKind, EventListener, EventSink};

/// How long a command may run unless `timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Properties of the `command` listener type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CommandListenerConfig {
    /// The program (looked up in `PATH`), run without a shell.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// The events to run it on (default: all of the level the listener is given at).
    #[serde(default)]
    pub events: Option<Vec<EventKind>>,
    /// How long it may run (default 60s); then it is killed and counts as failed.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Whether a failed command (exit code other than 0, not started, timed out) fails the
    /// job or step (default `false`: it is logged as a warning).
    #[serde(default)]
    pub fail_job: bool,
}

/// Runs a program on each event. Its environment has `IKKATSU_EVENT` (`job-ended`, ...),
/// `IKKATSU_EVENT_JSON` (the whole event), `IKKATSU_JOB_NAME`, `IKKATSU_EXECUTION_ID`,
/// `IKKATSU_STATUS`, `IKKATSU_EXIT_CODE` and, for step events, `IKKATSU_STEP_NAME`.
pub struct CommandListener {
    config: CommandListenerConfig,
    timeout: Duration,
}

impl CommandListener {
    /// The listeners of `config`, for the job `job_name`.
    pub fn listeners(config: CommandListenerConfig, job_name: &str) -> Result<Listeners> {
        if config.command.trim().is_empty() {
            return Err(Error::config("command listener: `command` is empty"));
        }
        let timeout = config
            .timeout
            .map_or(DEFAULT_TIMEOUT, HumanDuration::as_duration);
        let events = config.events.clone();
        Ok(EventListener::listeners(
            CommandListener { config, timeout },
            events,
            job_name,
        ))
    }

    async fn run(&self, event: &Event) -> std::result::Result<(), String> {
        let json = serde_json::to_string(event).map_err(|err| err.to_string())?;
        let mut command = Command::new(&self.config.command);
        command
            .args(&self.config.args)
            .env("IKKATSU_EVENT", event.event.name())
            .env("IKKATSU_EVENT_JSON", json)
            .env("IKKATSU_JOB_NAME", &event.job_name)
            .env("IKKATSU_EXECUTION_ID", event.execution_id.to_string())
            .env("IKKATSU_STATUS", &event.status)
            .env("IKKATSU_EXIT_CODE", &event.exit_code)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(step) = &event.step_name {
            command.env("IKKATSU_STEP_NAME", step);
        }
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start `{}`: {err}", self.config.command))?;
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("`{}` ended with {status}", self.config.command)),
            Ok(Err(err)) => Err(format!("`{}`: {err}", self.config.command)),
            Err(_) => Err(format!(
                "`{}` ran longer than {} and was killed",
                self.config.command,
                HumanDuration::from(self.timeout)
            )),
        }
    }
}

#[async_trait]
impl EventSink for CommandListener {
    async fn notify(&self, event: &Event) -> Result<()> {
        let Err(problem) = self.run(event).await else {
            return Ok(());
        };
        let message = format!("command listener on {}: {problem}", event.event.name());
        if self.config.fail_job {
            return Err(Error::new(ErrorKind::Component, message));
        }
        tracing::warn!("{message} (ignored: set `fail-job: true` to fail on it)");
        Ok(())
    }
}
