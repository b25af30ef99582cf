//! [`ConditionalDecider`]: a decider that compares a value of the job execution context
//! with an expected value, registered as the `conditionalDecision` ref (Surfin Batch's
//! name for it): `COMPLETED` when they are equal, else `defaultStatus`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use ikkatsu_core::job::JobExecutionDecider;
use ikkatsu_core::{ExitStatus, JobExecution, Result, StepExecution};

/// Properties of the `conditionalDecision` decider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionalDecisionConfig {
    /// The key in the job execution context: a key as it is (`decision.condition`), else a
    /// path through nested objects, its parts split on dots.
    pub condition_key: String,
    /// The value it must have, compared as text (`true`, `42`, `ready`).
    pub expected_value: Value,
    /// The status when the value differs or is missing (default `FAILED`).
    #[serde(default)]
    pub default_status: Option<String>,
}

/// Decides `COMPLETED` when the job context's value at `conditionKey` equals
/// `expectedValue`, else `defaultStatus` (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct ConditionalDecider {
    key: String,
    expected: String,
    default_status: String,
}

impl ConditionalDecider {
    /// The decider of `config`.
    pub fn new(config: ConditionalDecisionConfig) -> Self {
        ConditionalDecider {
            key: config.condition_key,
            expected: text(&config.expected_value),
            default_status: config
                .default_status
                .unwrap_or_else(|| ExitStatus::FAILED.to_string()),
        }
    }

    /// The value at the key: the key as it is, else the dotted path.
    fn lookup<'a>(&self, execution: &'a JobExecution) -> Option<&'a Value> {
        let context = &execution.execution_context;
        if let Some(value) = context.get_value(&self.key) {
            return Some(value);
        }
        let mut parts = self.key.split('.');
        let mut value = context.get_value(parts.next()?)?;
        for part in parts {
            value = value.get(part)?;
        }
        Some(value)
    }
}

#[async_trait]
impl JobExecutionDecider for ConditionalDecider {
    async fn decide(
        &self,
        execution: &JobExecution,
        _last: Option<&StepExecution>,
    ) -> Result<String> {
        let decided = match self.lookup(execution) {
            Some(value) if text(value) == self.expected => ExitStatus::COMPLETED.to_string(),
            _ => self.default_status.clone(),
        };
        Ok(decided)
    }
}

/// A JSON value as text: a string as it is, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use ikkatsu_core::{JobInstance, JobParameters};
    use serde_json::json;

    use super::*;

    fn execution(key: &str, value: Value) -> JobExecution {
        let instance = JobInstance {
            id: 1,
            job_name: "j".into(),
            job_key: String::new(),
        };
        let mut execution = JobExecution::new(&instance, JobParameters::new());
        execution.execution_context.put(key, value);
        execution
    }

    fn decider(key: &str, expected: Value, default: Option<&str>) -> ConditionalDecider {
        ConditionalDecider::new(ConditionalDecisionConfig {
            condition_key: key.into(),
            expected_value: expected,
            default_status: default.map(str::to_string),
        })
    }

    #[tokio::test]
    async fn equal_values_complete_and_others_take_the_default_status() {
        let flag = execution("decision.condition", json!("true"));
        let decide = |d: ConditionalDecider, e: JobExecution| async move {
            d.decide(&e, None).await.unwrap()
        };
        // The key as written, compared as text (a boolean `true` equals "true").
        assert_eq!(
            decide(
                decider("decision.condition", json!(true), None),
                flag.clone()
            )
            .await,
            "COMPLETED"
        );
        assert_eq!(
            decide(
                decider("decision.condition", json!("no"), None),
                flag.clone()
            )
            .await,
            "FAILED"
        );
        assert_eq!(
            decide(decider("missing", json!("true"), Some("SKIPPED")), flag).await,
            "SKIPPED"
        );
        // Else a dotted path into nested values.
        let nested = execution("reader", json!({"state": {"rows": 42}}));
        assert_eq!(
            decide(
                decider("reader.state.rows", json!(42), None),
                nested.clone()
            )
            .await,
            "COMPLETED"
        );
        assert_eq!(
            decide(decider("reader.state.cols", json!(42), None), nested).await,
            "FAILED"
        );
    }

    #[test]
    fn its_properties_are_checked() {
        let props: serde_json::Result<ConditionalDecisionConfig> =
            serde_json::from_value(json!({"conditionKey": "k", "expected": "v"}));
        let err = props.unwrap_err().to_string();
        assert!(err.contains("unknown field `expected`"), "{err}");
    }
}
