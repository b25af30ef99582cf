//! Listener types for job files, needing no Rust: `log` writes every job or step event to
//! the log, `command` runs a program on them, `webhook` posts them to a URL. All take
//! `events` (which events, by name) and listen at the job level (`listeners` of the job:
//! `job-started`, `job-ended`) and at the step level (`listeners` of an element:
//! `step-started`, `step-ended`, and, only when named in `events`, `storage-calls` and
//! `sql-calls`).
//!
//! An event is a JSON object: `event`, `job_name`, `execution_id`, `status`, `exit_code`,
//! `exit_description`, and for steps `step_name`, for `step-ended` the step's `counts`
//! and `resources` (CPU time, resident memory, open files: see [`StepResources`]), and for
//! `storage-calls` and `sql-calls` the step's external calls summed up (`calls`: see
//! [`CallSummary`]).

mod calls;
mod command;
mod logging;
mod usage;
mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use ikkatsu_config::registry::Listeners;
use ikkatsu_core::call::ExternalCallListener;
use ikkatsu_core::listener::{JobExecutionListener, StepExecutionListener};
use ikkatsu_core::{ExitStatus, JobExecution, Result, StepExecution};

pub use calls::{CallSummary, MAX_GROUPS};
pub use command::{CommandListener, CommandListenerConfig};
pub use logging::LoggingListener;
pub use usage::StepResources;
pub use webhook::{WebhookListener, WebhookListenerConfig};

use crate::log::LogLevel;

/// The events a listener type may listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Before the job's first step.
    JobStarted,
    /// After the job, with its status.
    JobEnded,
    /// Before a step.
    StepStarted,
    /// After a step, with its status and counts.
    StepEnded,
    /// After a step, its storage requests summed up (only when named in `events`).
    StorageCalls,
    /// After a step, its SQL statements summed up (only when named in `events`).
    SqlCalls,
}

impl EventKind {
    /// The name in job files and events (`job-ended`).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::JobStarted => "job-started",
            EventKind::JobEnded => "job-ended",
            EventKind::StepStarted => "step-started",
            EventKind::StepEnded => "step-ended",
            EventKind::StorageCalls => "storage-calls",
            EventKind::SqlCalls => "sql-calls",
        }
    }
}

/// One event, as listeners get it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// The job's name.
    pub job_name: String,
    /// The job execution's id.
    pub execution_id: i64,
    /// The step's name (step events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// The batch status (`STARTED`, then `COMPLETED`, `FAILED`, `STOPPED`).
    pub status: String,
    /// The exit code.
    pub exit_code: String,
    /// The exit description (the error of a failure).
    pub exit_description: String,
    /// The step's counts (`step-ended`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<serde_json::Value>,
    /// What the process used during the step (`step-ended`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<StepResources>,
    /// The step's calls of the event's kind (`storage-calls`, `sql-calls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<CallSummary>>,
}

impl Event {
    fn of_job(event: EventKind, execution: &JobExecution) -> Self {
        Event {
            event,
            job_name: execution.job_name.clone(),
            execution_id: execution.id,
            step_name: None,
            status: execution.status.to_string(),
            exit_code: execution.exit_status.exit_code.clone(),
            exit_description: execution.exit_status.description.clone(),
            counts: None,
            resources: None,
            calls: None,
        }
    }

    fn of_step(event: EventKind, job_name: &str, execution: &StepExecution) -> Self {
        Event {
            event,
            job_name: job_name.to_string(),
            execution_id: execution.job_execution_id,
            step_name: Some(execution.step_name.clone()),
            status: execution.status.to_string(),
            exit_code: execution.exit_status.exit_code.clone(),
            exit_description: execution.exit_status.description.clone(),
            counts: (event == EventKind::StepEnded)
                .then(|| serde_json::to_value(execution.counts).ok())
                .flatten(),
            resources: None,
            calls: None,
        }
    }

    /// A one-line description for logs.
    pub fn describe(&self) -> String {
        let what = match &self.step_name {
            Some(step) => format!("step `{step}` of job `{}`", self.job_name),
            None => format!("job `{}`", self.job_name),
        };
        match self.event {
            EventKind::JobStarted | EventKind::StepStarted => {
                format!("{what} started (execution {})", self.execution_id)
            }
            EventKind::JobEnded | EventKind::StepEnded => {
                let used = self.resources.map_or(String::new(), |r| {
                    format!(
                        "; {} ms of CPU, {} MiB resident, {} open files",
                        r.cpu_time_ms,
                        r.rss_bytes / (1024 * 1024),
                        r.open_files
                    )
                });
                format!(
                    "{what} ended {} with exit code {} (execution {}{used})",
                    self.status, self.exit_code, self.execution_id
                )
            }
            EventKind::StorageCalls | EventKind::SqlCalls => {
                let calls = self.calls.as_deref().unwrap_or_default();
                let count: u64 = calls.iter().map(|c| c.count).sum();
                let failed: u64 = calls.iter().map(|c| c.failed).sum();
                let bytes: u64 = calls.iter().filter_map(|c| c.bytes).sum();
                let rows: u64 = calls.iter().filter_map(|c| c.rows).sum();
                let ms: f64 = calls.iter().map(|c| c.duration_ms).sum();
                let what_calls = match self.event {
                    EventKind::SqlCalls => "SQL statements",
                    _ => "storage calls",
                };
                format!(
                    "{what}: {count} {what_calls} ({failed} failed), {bytes} bytes, {rows} rows, {ms:.1} ms (execution {})",
                    self.execution_id
                )
            }
        }
    }
}

/// Reacts to events; the built-in listener types are one each.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Handles `event`; an error fails the job (or step) only when the listener is
    /// configured so.
    async fn notify(&self, event: &Event) -> Result<()>;
}

/// Makes a job listener and a step listener of `sink`, for the `events` chosen (all of a
/// level when none are given).
pub struct EventListener<S> {
    sink: S,
    events: Vec<EventKind>,
    job_name: String,
    /// What the process used when each running step (by step execution id) started.
    started: std::sync::Mutex<std::collections::HashMap<i64, usage::Sample>>,
    /// The external calls of the running steps, when `storage-calls` or `sql-calls` is
    /// wanted.
    calls: Option<Arc<calls::CallTally>>,
}

impl<S: EventSink> EventListener<S> {
    /// The listeners of `sink` at both levels, for the job `job_name`.
    pub fn listeners(sink: S, events: Option<Vec<EventKind>>, job_name: &str) -> Listeners {
        let all = vec![
            EventKind::JobStarted,
            EventKind::JobEnded,
            EventKind::StepStarted,
            EventKind::StepEnded,
        ];
        let events = events.unwrap_or(all);
        let storage = events.contains(&EventKind::StorageCalls);
        let sql = events.contains(&EventKind::SqlCalls);
        let listener = Arc::new(EventListener {
            sink,
            events,
            job_name: job_name.to_string(),
            started: std::sync::Mutex::default(),
            calls: (storage || sql).then(|| Arc::new(calls::CallTally::new(storage, sql))),
        });
        Listeners {
            job: Some(listener.clone()),
            step: Some(listener),
        }
    }

    async fn emit(&self, event: Event) -> Result<()> {
        if self.events.contains(&event.event) {
            self.sink.notify(&event).await
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<S: EventSink> JobExecutionListener for EventListener<S> {
    async fn before_job(&self, execution: &JobExecution) -> Result<()> {
        self.emit(Event::of_job(EventKind::JobStarted, execution))
            .await
    }

    async fn after_job(&self, execution: &JobExecution) -> Result<()> {
        self.emit(Event::of_job(EventKind::JobEnded, execution))
            .await
    }
}

#[async_trait]
impl<S: EventSink> StepExecutionListener for EventListener<S> {
    async fn before_step(&self, execution: &StepExecution) -> Result<()> {
        if let Ok(mut started) = self.started.lock() {
            started.insert(execution.id, usage::sample());
        }
        let job = self.job_name.as_str();
        self.emit(Event::of_step(EventKind::StepStarted, job, execution))
            .await
    }

    async fn after_step(&self, execution: &StepExecution) -> Result<Option<ExitStatus>> {
        let job = self.job_name.as_str();
        let mut event = Event::of_step(EventKind::StepEnded, job, execution);
        let start = self
            .started
            .lock()
            .ok()
            .and_then(|mut started| started.remove(&execution.id));
        event.resources = start.map(usage::since);
        let (storage, sql) = match &self.calls {
            Some(tally) => tally.take(execution.id),
            None => Default::default(),
        };
        self.emit(event).await?;
        for (kind, calls) in [
            (EventKind::StorageCalls, storage),
            (EventKind::SqlCalls, sql),
        ] {
            if !calls.is_empty() {
                let mut event = Event::of_step(kind, job, execution);
                event.calls = Some(calls);
                self.emit(event).await?;
            }
        }
        Ok(None)
    }

    fn call_listener(&self) -> Option<Arc<dyn ExternalCallListener>> {
        self.calls
            .clone()
            .map(|tally| tally as Arc<dyn ExternalCallListener>)
    }
}

/// Properties of the `log` listener type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogListenerConfig {
    /// The level: `trace`, `debug`, `info` (default), `warn` or `error`.
    #[serde(default)]
    pub level: LogLevel,
    /// The events to log (default: all of the level the listener is given at).
    #[serde(default)]
    pub events: Option<Vec<EventKind>>,
}

/// Writes events to the log.
pub struct LogListener {
    level: LogLevel,
}

impl LogListener {
    /// The listeners of `config`, for the job `job_name`.
    pub fn listeners(config: LogListenerConfig, job_name: &str) -> Listeners {
        EventListener::listeners(
            LogListener {
                level: config.level,
            },
            config.events,
            job_name,
        )
    }
}

#[async_trait]
impl EventSink for LogListener {
    async fn notify(&self, event: &Event) -> Result<()> {
        let text = event.describe();
        let name = event.event.name();
        match self.level {
            LogLevel::Trace => tracing::trace!(event = name, "{text}"),
            LogLevel::Debug => tracing::debug!(event = name, "{text}"),
            LogLevel::Info => tracing::info!(event = name, "{text}"),
            LogLevel::Warn => tracing::warn!(event = name, "{text}"),
            LogLevel::Error => tracing::error!(event = name, "{text}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_events_are_described_by_their_totals() {
        let group = |bytes, rows, failed| CallSummary {
            backend: "s3".into(),
            operation: "write".into(),
            target: "out/p".into(),
            count: 2,
            failed,
            bytes,
            rows,
            duration_ms: 1.25,
            max_duration_ms: 1.0,
            last_error: None,
        };
        let event = Event {
            event: EventKind::StorageCalls,
            job_name: "daily".into(),
            execution_id: 7,
            step_name: Some("load".into()),
            status: "COMPLETED".into(),
            exit_code: "COMPLETED".into(),
            exit_description: String::new(),
            counts: None,
            resources: None,
            calls: Some(vec![group(Some(10), None, 1), group(Some(5), Some(3), 0)]),
        };
        assert_eq!(
            event.describe(),
            "step `load` of job `daily`: 4 storage calls (1 failed), 15 bytes, 3 rows, 2.5 ms (execution 7)"
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "storage-calls");
        assert_eq!(json["calls"][0]["bytes"], 10);
        assert!(json["calls"][0].get("rows").is_none(), "{json}");
        let sql = Event {
            event: EventKind::SqlCalls,
            calls: Some(vec![group(None, Some(1), 0)]),
            ..event
        };
        assert!(
            sql.describe().contains(": 2 SQL statements (0 failed)"),
            "{}",
            sql.describe()
        );
    }
}
