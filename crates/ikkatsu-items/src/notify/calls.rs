//! The external calls of a step (storage requests, SQL statements), summed up for the
//! `storage-calls` and `sql-calls` events: one event per kind when the step ends, not one
//! per call, so that a listener that posts or runs a program costs one request per step
//! however many objects or statements the step touched. Calls are grouped by backend,
//! operation and target (object path or table); past [`MAX_GROUPS`] groups in a step, further
//! targets are summed up under the target `*`.

use std::collections::HashMap;
use std::sync::Mutex;

use indexmap::IndexMap;
use serde::Serialize;

use ikkatsu_core::call::{CallKind, ExternalCall, ExternalCallListener};

/// The most groups of one kind an event lists; later targets share the group `*`.
pub const MAX_GROUPS: usize = 100;

/// The calls of one backend, operation and target during a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSummary {
    /// The storage's scheme (`s3`, `fs`, …) or the database (`postgres`, `sqlite`, `mysql`).
    pub backend: String,
    /// `list`, `read`, `write`, `delete`, `stat`; for SQL the statement's kind (`select`,
    /// `update`, …).
    pub operation: String,
    /// The object path (a listing's directory) or the table; `*` for the targets past
    /// [`MAX_GROUPS`].
    pub target: String,
    /// How many calls.
    pub count: u64,
    /// How many of them failed.
    pub failed: u64,
    /// Bytes read or written, summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Rows returned or changed (entries of a listing), summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Time spent in the calls, summed, in milliseconds.
    pub duration_ms: f64,
    /// The longest call, in milliseconds.
    pub max_duration_ms: f64,
    /// The error of the last failed call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

type Groups = IndexMap<(String, String, String), CallSummary>;

/// Sums up the calls of each running step (by step execution id) for the kinds wanted.
#[derive(Default)]
pub(crate) struct CallTally {
    storage: bool,
    sql: bool,
    steps: Mutex<HashMap<i64, [Groups; 2]>>,
}

impl CallTally {
    /// A tally of storage calls, SQL statements, or both.
    pub(crate) fn new(storage: bool, sql: bool) -> Self {
        CallTally {
            storage,
            sql,
            steps: Mutex::default(),
        }
    }

    /// The storage calls and the SQL statements of the step execution `id`, forgotten.
    pub(crate) fn take(&self, id: i64) -> (Vec<CallSummary>, Vec<CallSummary>) {
        let groups = self
            .steps
            .lock()
            .ok()
            .and_then(|mut steps| steps.remove(&id))
            .unwrap_or_default();
        let [storage, sql] = groups.map(|g| g.into_values().collect());
        (storage, sql)
    }
}

impl ExternalCallListener for CallTally {
    fn on_call(&self, call: &ExternalCall) {
        let index = match call.kind {
            CallKind::Storage if self.storage => 0,
            CallKind::Sql if self.sql => 1,
            _ => return,
        };
        let Ok(mut steps) = self.steps.lock() else {
            return;
        };
        let groups = &mut steps.entry(call.step_execution_id).or_default()[index];
        let mut key = (
            call.backend.clone(),
            call.operation.clone(),
            call.target.clone(),
        );
        if groups.len() >= MAX_GROUPS && !groups.contains_key(&key) {
            key.2 = "*".to_string();
        }
        let ms = call.duration.as_secs_f64() * 1000.0;
        let group = groups
            .entry(key)
            .or_insert_with_key(|(b, o, t)| CallSummary {
                backend: b.clone(),
                operation: o.clone(),
                target: t.clone(),
                count: 0,
                failed: 0,
                bytes: None,
                rows: None,
                duration_ms: 0.0,
                max_duration_ms: 0.0,
                last_error: None,
            });
        group.count += 1;
        group.duration_ms += ms;
        group.max_duration_ms = group.max_duration_ms.max(ms);
        if let Some(bytes) = call.bytes {
            *group.bytes.get_or_insert(0) += bytes;
        }
        if let Some(rows) = call.rows {
            *group.rows.get_or_insert(0) += rows;
        }
        if let Some(error) = &call.error {
            group.failed += 1;
            group.last_error = Some(error.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ikkatsu_core::call::{CallScope, CallTimer};

    use super::*;

    #[tokio::test]
    async fn calls_are_grouped_per_step_and_kind_and_bounded() {
        let tally = Arc::new(CallTally::new(true, false));
        let listener: Arc<dyn ExternalCallListener> = tally.clone();
        CallScope::new("load", 5, vec![listener])
            .run(async {
                for i in 0..(MAX_GROUPS + 10) {
                    CallTimer::start().finish(|| {
                        ExternalCall::new(CallKind::Storage, "s3", "write", format!("f{i}"))
                            .bytes(2)
                    });
                }
                CallTimer::start().finish(|| {
                    ExternalCall::new(CallKind::Storage, "s3", "write", "f0").failed("refused")
                });
                CallTimer::start()
                    .finish(|| ExternalCall::new(CallKind::Sql, "sqlite", "update", "t").rows(1));
            })
            .await;
        let (storage, sql) = tally.take(5);
        assert!(sql.is_empty(), "SQL was not asked for");
        assert_eq!(storage.len(), MAX_GROUPS + 1);
        assert_eq!(storage[0].target, "f0");
        assert_eq!((storage[0].count, storage[0].failed), (2, 1));
        assert_eq!(storage[0].last_error.as_deref(), Some("refused"));
        let rest = storage.last().unwrap();
        assert_eq!(
            (rest.target.as_str(), rest.count, rest.bytes),
            ("*", 10, Some(20))
        );
        assert_eq!(tally.take(5), (Vec::new(), Vec::new()));
    }
}
