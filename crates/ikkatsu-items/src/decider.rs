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
