//! [`ScriptItemProcessor`]: transforms or filters [`Record`]s with an embedded
//! [Rhai](https://rhai.rs) script.
//!
//! The script sees the item as the map variable `record` and the job parameters as the
//! constant string map `params`. Its value decides the outcome:
//!
//! * a map → the item passes, with the map's fields (fields of the input keep their order,
//!   new fields follow in alphabetical order, as Rhai maps are sorted);
//! * `()` (for example an empty `return;`) → the item is filtered out.
//!
//! The script must therefore end with `record` (or return it) when it modifies the record
//! in place: a trailing assignment evaluates to `()` and filters the item.
//!
//! ```text
//! if record.amount.parse_int() < 10 { return; }   // filter small amounts
//! record.name = record.name.to_upper();
//! record
//! ```
//!
//! The script is compiled once. Each item runs with an operation limit (`max-operations`,
//! default 1,000,000), so an endless loop fails the item instead of hanging the step.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use rhai::{AST, Dynamic, Engine, EvalAltResult, Position, Scope};
use serde::Deserialize;
use serde_json::Value;

use ikkatsu_core::{Error, ErrorKind, ItemProcessor, JobParameters, Record, Result};

/// The default operation limit per item.
pub const DEFAULT_MAX_OPERATIONS: u64 = 1_000_000;

/// Properties of a script processor (`script-processor` in job YAML). Exactly one of
/// `script` and `file` is required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScriptProcessorConfig {
    /// The Rhai source, inline.
    #[serde(default)]
    pub script: Option<String>,
    /// A file holding the Rhai source (read and compiled when the processor is created).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// How many operations the script may run per item before it is stopped with an
    /// error (default 1,000,000).
    #[serde(default)]
    pub max_operations: Option<u64>,
}

impl ScriptProcessorConfig {
    /// A configuration running the inline `source`.
    pub fn inline(source: impl Into<String>) -> Self {
        ScriptProcessorConfig {
            script: Some(source.into()),
            file: None,
            max_operations: None,
        }
    }

    /// A configuration running the script in `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        ScriptProcessorConfig {
            script: None,
            file: Some(path.into()),
            max_operations: None,
        }
    }
}

/// A compiled Rhai script with its engine (operation limit, `print` and `debug` to the log):
/// what the script processor and the script decider run.
pub(crate) struct CompiledScript {
    pub engine: Engine,
    pub ast: AST,
    /// How the script is named in errors: the file path or `inline script`.
    pub name: String,
    pub max_operations: u64,
}

impl CompiledScript {
    /// Reads and compiles the script of `config`; `what` names the component in messages
    /// (`script processor`). A syntax error is a [`ErrorKind::Config`] error naming the
    /// script, line and position.
    pub(crate) fn compile(config: &ScriptProcessorConfig, what: &str) -> Result<Self> {
        let (name, source) = match (&config.script, &config.file) {
            (Some(source), None) => ("inline script".to_owned(), source.clone()),
            (None, Some(path)) => {
                let source = std::fs::read_to_string(path).map_err(|err| {
                    Error::io(
                        format_args!(
                            "cannot read script file `{}` (the `file` property)",
                            path.display()
                        ),
                        err,
                    )
                })?;
                (format!("script `{}`", path.display()), source)
            }
            (Some(_), Some(_)) => {
                return Err(Error::config(format!(
                    "{what}: set either `script` (inline source) or `file`, not both"
                )));
            }
            (None, None) => {
                return Err(Error::config(format!(
                    "{what}: one of `script` (inline source) or `file` is required"
                )));
            }
        };
        let max_operations = config.max_operations.unwrap_or(DEFAULT_MAX_OPERATIONS);
        let mut engine = Engine::new();
        engine
            .set_max_operations(max_operations)
            .set_max_string_size(64 * 1024 * 1024)
            .set_max_array_size(10_000_000)
            .set_max_map_size(10_000_000);
        let print_name = name.clone();
        engine.on_print(move |text| tracing::info!(script = %print_name, "{text}"));
        let debug_name = name.clone();
        engine.on_debug(
            move |text, _, pos| tracing::debug!(script = %debug_name, line = pos.line(), "{text}"),
        );
        let ast = engine.compile(&source).map_err(|err| {
            Error::config(format!(
                "{name}: syntax error{}: {}",
                at(err.position()),
                err.err_type()
            ))
        })?;
        Ok(CompiledScript {
            engine,
            ast,
            name,
            max_operations,
        })
    }

    /// The error of a run that failed; `subject` says on what (`record #3`).
    pub(crate) fn runtime_error(&self, mut err: EvalAltResult, subject: &str) -> Error {
        let position = err.position();
        let hint = if matches!(err, EvalAltResult::ErrorTooManyOperations(_)) {
            format!(
                " (more than {} operations; is there an endless loop? raise `max-operations` if the work is legitimate)",
                self.max_operations
            )
        } else {
            String::new()
        };
        err.clear_position();
        Error::new(
            ErrorKind::Component,
            format!(
                "{}{}: error on {subject}: {err}{hint}",
                self.name,
                at(position)
            ),
        )
    }
}

/// `name → text` of the job parameters as a Rhai map (what scripts see as `params`).
pub(crate) fn parameter_map(parameters: &JobParameters) -> rhai::Map {
    parameters
        .iter()
        .map(|(name, param)| (name.as_str().into(), Dynamic::from(param.value.to_text())))
        .collect()
}

/// Runs a compiled Rhai script on every [`Record`] (see the [module docs](self)).
pub struct ScriptItemProcessor {
    script: CompiledScript,
    params: rhai::Map,
    seen: AtomicU64,
}

impl ScriptItemProcessor {
    /// Reads and compiles the script. A syntax error is a [`ErrorKind::Config`] error naming
    /// the script, line and position.
    pub fn new(config: ScriptProcessorConfig) -> Result<Self> {
        Ok(ScriptItemProcessor {
            script: CompiledScript::compile(&config, "script processor")?,
            params: rhai::Map::new(),
            seen: AtomicU64::new(0),
        })
    }

    /// Makes `params` visible to the script as the string map `params`.
    pub fn with_parameters<I, K, V>(mut self, params: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.params = params
            .into_iter()
            .map(|(k, v)| (k.into().into(), Dynamic::from(v.into())))
            .collect();
        self
    }

    /// Makes the job parameters visible to the script as `params` (values as text).
    pub fn with_job_parameters(mut self, parameters: &JobParameters) -> Self {
        self.params = parameter_map(parameters);
        self
    }

    fn runtime_error(&self, err: EvalAltResult, number: u64) -> Error {
        self.script.runtime_error(err, &format!("record #{number}"))
    }
}

fn at(position: Position) -> String {
    match (position.line(), position.position()) {
        (Some(line), Some(column)) => format!(" at line {line}, position {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

#[async_trait]
impl ItemProcessor<Record, Record> for ScriptItemProcessor {
    async fn process(&self, item: Record) -> Result<Option<Record>> {
        let number = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        let input =
            rhai::serde::to_dynamic(&item).map_err(|err| self.runtime_error(*err, number))?;
        let mut scope = Scope::new();
        scope.push("record", input);
        scope.push_constant("params", self.params.clone());
        let result = self
            .script
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &self.script.ast)
            .map_err(|err| self.runtime_error(*err, number))?;
        if result.is_unit() {
            return Ok(None);
        }
        let type_name = result.type_name();
        let Some(mut map) = result.try_cast::<rhai::Map>() else {
            return Err(Error::new(
                ErrorKind::Component,
                format!(
                    "{}: record #{number}: the script returned a value of type `{type_name}`; \
                     it must return the record map (end the script with `record`) or `()` to \
                     filter the record out",
                    self.script.name
                ),
            ));
        };
        // The output starts on the input's fields, so outputs of inputs that share fields
        // share theirs too (keys the script adds go through the fields' cache).
        let mut output = Record::with_fields(Arc::clone(item.fields()));
        let convert = |key: &str, value: &Dynamic| -> Result<Value> {
            rhai::serde::from_dynamic::<Value>(value).map_err(|err| {
                Error::new(
                    ErrorKind::Component,
                    format!(
                        "{}: record #{number}: field `{key}` of the returned map cannot be \
                         stored in a record: {err}",
                        self.script.name
                    ),
                )
            })
        };
        for key in item.keys() {
            if let Some(value) = map.remove(key.as_str()) {
                output.set(key, convert(key, &value)?);
            }
        }
        for (key, value) in &map {
            output.set(key, convert(key, value)?);
        }
        Ok(Some(output))
    }
}
