//! [`ScriptDecider`]: the `script` decider of `decision` elements: a [Rhai](https://rhai.rs)
//! script whose value is the status the decision's transitions are chosen on.
//!
//! The script sees the job parameters as the string map `params`, the job execution
//! context as the map `context`, and the step that ran last in the flow as `exit_code` (its
//! exit code, `""` before any step) and `status` (its batch status, `COMPLETED`, `FAILED`,
//! ...; `""` before any step). Its value, a string (or a number or boolean, taken as text),
//! is the decided status:
//!
//! ```text
//! if params.mode == "full" { "FULL" } else if context.rows > 0 { "DELTA" } else { "NOTHING" }
//! ```

use async_trait::async_trait;
use rhai::{Dynamic, Scope};

use ikkatsu_core::job::JobExecutionDecider;
use ikkatsu_core::{Error, ErrorKind, JobExecution, Result, StepExecution};

use crate::script::{CompiledScript, ScriptProcessorConfig, parameter_map};

/// Properties of the `script` decider: exactly one of `script` and `file`, and
/// `max-operations` (default 1,000,000), as for the script processor.
pub type ScriptDeciderConfig = ScriptProcessorConfig;

/// Decides with a Rhai script (see the [module docs](self)).
pub struct ScriptDecider {
    script: CompiledScript,
}

impl ScriptDecider {
    /// Reads and compiles the script; a syntax error is a [`ErrorKind::Config`] error.
    pub fn new(config: ScriptDeciderConfig) -> Result<Self> {
        Ok(ScriptDecider {
            script: CompiledScript::compile(&config, "script decider")?,
        })
    }
}

#[async_trait]
impl JobExecutionDecider for ScriptDecider {
    async fn decide(
        &self,
        execution: &JobExecution,
        last: Option<&StepExecution>,
    ) -> Result<String> {
        let subject = "the decision";
        let context = rhai::serde::to_dynamic(
            execution
                .execution_context
                .iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .map_err(|err| self.script.runtime_error(*err, subject))?;
        let mut scope = Scope::new();
        scope.push_constant("params", parameter_map(&execution.parameters));
        scope.push_constant("context", context);
        scope.push_constant(
            "exit_code",
            last.map(|s| s.exit_status.exit_code.clone())
                .unwrap_or_default(),
        );
        scope.push_constant(
            "status",
            last.map(|s| s.status.to_string()).unwrap_or_default(),
        );
        let value = self
            .script
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &self.script.ast)
            .map_err(|err| self.script.runtime_error(*err, subject))?;
        if value.is_string() || value.is_int() || value.is_float() || value.is_bool() {
            let text = value.to_string();
            if !text.is_empty() {
                return Ok(text);
            }
        }
        Err(Error::new(
            ErrorKind::Component,
            format!(
                "{}: the decision script returned `{}` of type `{}`; it must return the status \
                 to decide, a non-empty string such as \"FULL\"",
                self.script.name,
                value,
                value.type_name()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikkatsu_core::{BatchStatus, ExitStatus, JobInstance, JobParameters, ParameterValue};

    fn decide(script: &str, last: Option<&StepExecution>) -> Result<String> {
        let decider = ScriptDecider::new(ScriptDeciderConfig::inline(script))?;
        let instance = JobInstance {
            id: 1,
            job_name: "job".into(),
            job_key: String::new(),
        };
        let parameters = JobParameters::new().with("mode", ParameterValue::String("full".into()));
        let mut execution = JobExecution::new(&instance, parameters);
        execution.execution_context.put("rows", 42);
        execution.execution_context.put("source", "sftp");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|err| Error::new(ErrorKind::Unexpected, err.to_string()))?;
        runtime.block_on(decider.decide(&execution, last))
    }

    #[test]
    fn the_script_sees_params_context_and_the_last_step() {
        let mut last = StepExecution::new(1, "load");
        last.status = BatchStatus::Completed;
        last.exit_status = ExitStatus::new("COMPLETED WITH SKIPS");
        let script = r#"params.mode + "/" + context.source + "/" + context.rows + "/" + exit_code + "/" + status"#;
        assert_eq!(
            decide(script, Some(&last)).unwrap(),
            "full/sftp/42/COMPLETED WITH SKIPS/COMPLETED"
        );
        assert_eq!(decide("40 + 2", None).unwrap(), "42");
    }

    #[test]
    fn a_script_without_a_status_or_with_an_error_is_an_error() {
        let err = decide("let x = 1;", None).unwrap_err().to_string();
        assert!(err.contains("must return the status to decide"), "{err}");
        let err = decide(r#"exit_code + status"#, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must return the status"), "{err}");
        let err = decide("no_such_fn()", None).unwrap_err().to_string();
        assert!(
            err.contains("inline script") && err.contains("line 1"),
            "{err}"
        );
        let err = ScriptDecider::new(ScriptDeciderConfig::inline("if {"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("syntax error"), "{err}");
    }
}
