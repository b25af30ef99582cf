//! External calls: each request a step makes to a storage (list, read, write, delete an
//! object) and each SQL statement it runs, told to the [`ExternalCallListener`]s of the step.
//!
//! One rule says which step a call belongs to: the step runner runs the step (from its
//! listeners' `before_step` to the end of its work) inside a [`CallScope`], a tokio
//! task-local holding the listeners the step's [`StepExecutionListener`]s offer
//! ([`StepExecutionListener::call_listener`]). A storage or a SQL site reports a call with
//! [`CallTimer::start`] before it and [`CallTimer::finish`] after it; with nobody listening
//! (no scope, or a scope without listeners) `start` is one task-local lookup and nothing is
//! built or timed. Work a step spawns onto other tasks keeps the step's scope when it is
//! spawned through [`carry`].
//!
//! Listeners are called synchronously on the task that made the call, once per call: they
//! must be quick (count, aggregate, hand off to a channel), never block. The listener types
//! of job files aggregate the calls of a step and send one event when the step ends.
//!
//! [`StepExecutionListener`]: crate::listener::StepExecutionListener
//! [`StepExecutionListener::call_listener`]: crate::listener::StepExecutionListener::call_listener
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::{Arc, Mutex};
//! use ikkatsu_core::call::{CallKind, CallScope, CallTimer, ExternalCall, ExternalCallListener};
//!
//! #[derive(Default)]
//! struct Seen(Mutex<Vec<String>>);
//! impl ExternalCallListener for Seen {
//!     fn on_call(&self, call: &ExternalCall) {
//!         self.0.lock().unwrap().push(format!("{} {} {}", call.backend, call.operation, call.target));
//!     }
//! }
//!
//! let seen = Arc::new(Seen::default());
//! let scope = CallScope::new("load", 7, vec![seen.clone() as Arc<dyn ExternalCallListener>]);
//! scope
//!     .run(async {
//!         let timer = CallTimer::start();
//!         // ... the request ...
//!         timer.finish(|| ExternalCall::new(CallKind::Storage, "s3", "read", "in/a.csv").bytes(10));
//!     })
//!     .await;
//! assert_eq!(*seen.0.lock().unwrap(), ["s3 read in/a.csv"]);
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallKind {
    /// A request to a storage (local files included).
    Storage,
    /// A SQL statement.
    Sql,
}

/// One call a step made to a storage or a database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExternalCall {
    /// A storage request or a SQL statement.
    pub kind: CallKind,
    /// The step that made it (filled in by the scope).
    pub step_name: Arc<str>,
    /// The step execution's id (filled in by the scope).
    pub step_execution_id: i64,
    /// The storage's scheme (`s3`, `fs`, `sftp`, …) or the database (`postgres`, `mysql`,
    /// `sqlite`).
    pub backend: String,
    /// `list`, `read`, `write`, `delete`, `stat` for storages; the statement's first keyword
    /// (`select`, `insert`, `update`, `delete`, …) for SQL.
    pub operation: String,
    /// The object path (never a URL with credentials) or the table (never a bound value).
    pub target: String,
    /// Bytes read or written.
    pub bytes: Option<u64>,
    /// Rows returned or changed.
    pub rows: Option<u64>,
    /// How long the call took.
    pub duration: Duration,
    /// The error of a failed call (credentials masked), `None` when it succeeded.
    pub error: Option<String>,
}

impl ExternalCall {
    /// A call of `kind` to `backend`, doing `operation` on `target`.
    pub fn new(
        kind: CallKind,
        backend: impl Into<String>,
        operation: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        ExternalCall {
            kind,
            step_name: Arc::from(""),
            step_execution_id: 0,
            backend: backend.into(),
            operation: operation.into(),
            target: target.into(),
            bytes: None,
            rows: None,
            duration: Duration::ZERO,
            error: None,
        }
    }

    /// With the bytes it moved.
    pub fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// With the rows it returned or changed.
    pub fn rows(mut self, rows: u64) -> Self {
        self.rows = Some(rows);
        self
    }

    /// Failed with `error`.
    pub fn failed(mut self, error: impl std::fmt::Display) -> Self {
        self.error = Some(error.to_string());
        self
    }

    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// Told of each external call of the steps it is given to.
pub trait ExternalCallListener: Send + Sync {
    /// `call` ended. Called on the task that made the call: be quick, never block.
    fn on_call(&self, call: &ExternalCall);
}

/// The listeners of the calls of one running step.
#[derive(Clone, Default)]
pub struct CallScope {
    inner: Option<Arc<ScopeInner>>,
}

struct ScopeInner {
    step_name: Arc<str>,
    step_execution_id: i64,
    listeners: Vec<Arc<dyn ExternalCallListener>>,
}

tokio::task_local! {
    static SCOPE: CallScope;
}

impl std::fmt::Debug for CallScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallScope")
            .field("step", &self.inner.as_ref().map(|i| i.step_name.clone()))
            .field(
                "listeners",
                &self.inner.as_ref().map_or(0, |i| i.listeners.len()),
            )
            .finish()
    }
}

impl CallScope {
    /// The scope of the step `step_name` (execution `step_execution_id`); empty (nothing
    /// reported, nothing timed) without listeners.
    pub fn new(
        step_name: &str,
        step_execution_id: i64,
        listeners: Vec<Arc<dyn ExternalCallListener>>,
    ) -> Self {
        if listeners.is_empty() {
            return CallScope::default();
        }
        CallScope {
            inner: Some(Arc::new(ScopeInner {
                step_name: Arc::from(step_name),
                step_execution_id,
                listeners,
            })),
        }
    }

    /// The scope of the current task (empty outside a step).
    pub fn current() -> CallScope {
        SCOPE.try_with(CallScope::clone).unwrap_or_default()
    }

    /// Runs `future` with this scope: the calls it makes go to this scope's listeners.
    pub async fn run<F: Future>(self, future: F) -> F::Output {
        SCOPE.scope(self, future).await
    }

    /// Whether anybody listens.
    pub fn is_observed(&self) -> bool {
        self.inner.is_some()
    }

    fn deliver(&self, mut call: ExternalCall) {
        if let Some(inner) = &self.inner {
            call.step_name = inner.step_name.clone();
            call.step_execution_id = inner.step_execution_id;
            for listener in &inner.listeners {
                listener.on_call(&call);
            }
        }
    }
}

/// `future` with the scope of the current task, to be spawned onto another task whose calls
/// then count for the same step.
pub fn carry<F: Future>(future: F) -> impl Future<Output = F::Output> {
    CallScope::current().run(future)
}

/// Times one call when somebody listens.
#[derive(Debug)]
#[must_use = "finish the timer after the call"]
pub struct CallTimer {
    started: Option<(Instant, CallScope)>,
}

impl CallTimer {
    /// Before a call: notes the time if the current step has call listeners.
    pub fn start() -> CallTimer {
        let scope = CallScope::current();
        CallTimer {
            started: scope.is_observed().then(|| (Instant::now(), scope)),
        }
    }

    /// Whether the call will be reported.
    pub fn is_observed(&self) -> bool {
        self.started.is_some()
    }

    /// After the call: builds it with `call` (only when somebody listens) and tells the
    /// listeners.
    pub fn finish(self, call: impl FnOnce() -> ExternalCall) {
        if let Some((started, scope)) = self.started {
            let mut call = call();
            call.duration = started.elapsed();
            scope.deliver(call);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<ExternalCall>>);

    impl ExternalCallListener for Recorder {
        fn on_call(&self, call: &ExternalCall) {
            self.0.lock().unwrap().push(call.clone());
        }
    }

    fn call() -> ExternalCall {
        ExternalCall::new(CallKind::Sql, "postgres", "insert", "people").rows(3)
    }

    #[tokio::test]
    async fn calls_outside_a_scope_or_without_listeners_are_not_built() {
        let timer = CallTimer::start();
        assert!(!timer.is_observed());
        timer.finish(|| unreachable!("nobody listens"));
        CallScope::new("s", 1, Vec::new())
            .run(async {
                let timer = CallTimer::start();
                assert!(!timer.is_observed());
                timer.finish(|| unreachable!("nobody listens"));
            })
            .await;
    }

    #[tokio::test]
    async fn calls_carry_their_step_also_on_spawned_tasks() {
        let recorder = Arc::new(Recorder::default());
        let scope = CallScope::new(
            "load",
            42,
            vec![recorder.clone() as Arc<dyn ExternalCallListener>],
        );
        scope
            .run(async {
                CallTimer::start().finish(call);
                tokio::spawn(carry(async { CallTimer::start().finish(call) }))
                    .await
                    .unwrap();
                // Spawned without `carry`: outside the step.
                tokio::spawn(async { CallTimer::start().finish(call) })
                    .await
                    .unwrap();
            })
            .await;
        let seen = recorder.0.lock().unwrap();
        assert_eq!(seen.len(), 2);
        for call in seen.iter() {
            assert_eq!(&*call.step_name, "load");
            assert_eq!(call.step_execution_id, 42);
            assert_eq!(call.rows, Some(3));
            assert!(call.succeeded());
        }
    }
}
