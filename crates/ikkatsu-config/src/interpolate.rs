//! Interpolation of `${...}` references in string values.
//!
//! * `${params.NAME}`: the job parameter `NAME` (after the defaults are merged);
//! * `${context.KEY}`: the entry `KEY` of the job execution context when the step starts
//!   (late binding: a step whose properties use it is built when it starts);
//! * `${partition.KEY}`: the entry `partition.KEY` of a partition's context (in the worker
//!   step of a `partition` element, built for each partition);
//! * `${NAME}` or `${env.NAME}`: the environment variable `NAME`;
//! * `${...:-default}`: `default` when the parameter or variable is not set;
//! * `${file:/path}`: the trimmed contents of the file (a secret);
//! * `file:///path` as the whole value of a key whose name looks secret (the workspace's one
//!   rule, [`ikkatsu_core::secret::is_secret_name`]): the trimmed contents of the file (a
//!   secret);
//! * `$${` is a literal `${`.

use std::path::Path;

use ikkatsu_core::secret::is_secret_name;
use ikkatsu_core::{ExecutionContext, JobParameters};

/// What a value may refer to.
pub(crate) struct Scope<'a> {
    /// The job parameters, or `None` where `${params.…}` is not allowed (in parameter
    /// defaults).
    pub(crate) params: Option<&'a JobParameters>,
    /// The contexts late-bound references read, or `None` before the step starts.
    pub(crate) late: Option<LateValues<'a>>,
}

/// What `${context.KEY}` and `${partition.KEY}` read, when a step starts.
#[derive(Clone, Copy)]
pub(crate) struct LateValues<'a> {
    /// The job execution's context.
    pub(crate) job: &'a ExecutionContext,
    /// The step execution's context (a partition's: its `partition.*` keys).
    pub(crate) step: &'a ExecutionContext,
}

/// The prefixes of late-bound references.
const LATE_PREFIXES: [&str; 2] = ["${context.", "${partition."];

/// Whether `text` holds a late-bound reference (`${context.…}`, `${partition.…}`).
pub(crate) fn references_late(text: &str) -> bool {
    LATE_PREFIXES.iter().any(|prefix| {
        text.match_indices(prefix)
            .any(|(i, _)| i == 0 || text.as_bytes()[i - 1] != b'$')
    })
}

/// A resolved value: the text and whether it holds a secret.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) text: String,
    pub(crate) secret: bool,
    pub(crate) changed: bool,
}

/// Resolves the references in `value`, found under `key`. Errors are messages (one per
/// unresolved reference).
pub(crate) fn interpolate(
    key: Option<&str>,
    value: &str,
    scope: &Scope<'_>,
) -> Result<Resolved, Vec<String>> {
    let secret_key = key.is_some_and(is_secret_name);
    if secret_key && let Some(path) = value.strip_prefix("file://") {
        return read_secret_file(path)
            .map_err(|e| vec![e])
            .inspect(|text| ikkatsu_core::secret::register(text))
            .map(|text| Resolved {
                text,
                secret: true,
                changed: true,
            });
    }
    let mut out = String::with_capacity(value.len());
    let mut errors = Vec::new();
    let mut secret = false;
    let mut changed = false;
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            changed = true;
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            changed = true;
            let Some(end) = tail.find('}') else {
                errors.push(format!(
                    "unterminated reference `{after}`: close it with `}}` (write `$${{` for a literal `${{`)"
                ));
                rest = "";
                break;
            };
            let expr = &tail[..end];
            match resolve(expr, scope) {
                Ok((text, from_secret)) => {
                    if from_secret || secret_key {
                        ikkatsu_core::secret::register(&text);
                    }
                    secret |= from_secret || secret_key;
                    out.push_str(&text);
                }
                Err(e) => errors.push(e),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if secret_key {
        // The whole value under a secret name is the secret (its references are recorded
        // one by one above).
        ikkatsu_core::secret::register(&out);
    }
    if errors.is_empty() {
        Ok(Resolved {
            text: out,
            secret,
            changed,
        })
    } else {
        Err(errors)
    }
}

/// Resolves one `${expr}`; returns the text and whether it is a secret: read from a file, from
/// a secret job parameter, or from an environment variable with a secret-looking name
/// (`${DB_PASSWORD}`).
fn resolve(expr: &str, scope: &Scope<'_>) -> Result<(String, bool), String> {
    if let Some(path) = expr.strip_prefix("file:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        return read_secret_file(path).map(|text| (text, true));
    }
    let (name, default) = match expr.split_once(":-") {
        Some((name, default)) => (name.trim(), Some(default)),
        None => (expr.trim(), None),
    };
    if let Some(param) = name.strip_prefix("params.") {
        let Some(params) = scope.params else {
            return Err(format!(
                "`${{{expr}}}`: job parameters cannot be used in parameter defaults"
            ));
        };
        if let Some(p) = params.get(param)
            && p.sensitivity == ikkatsu_core::Sensitivity::Withheld
        {
            return Err(format!(
                "job parameter `{param}` is a secret given in clear at launch, and secrets are never stored: run the job again with `ikkatsu run JOB -p {param}=…` (it restarts the same job instance), or launch it with `-p '{param}=${{ENV_VAR}}'` or `${{file:/path}}` so a restart reads it again"
            ));
        }
        return match (params.get(param), default) {
            (Some(p), _) => Ok((p.value.to_text(), p.is_secret())),
            (None, Some(default)) => Ok((default.to_string(), false)),
            (None, None) => Err(format!(
                "job parameter `{param}` is not set: give it at launch (`{param}=VALUE`), add it to `params`, or write `${{params.{param}:-DEFAULT}}`"
            )),
        };
    }
    for (prefix, stored_prefix) in [("context.", ""), ("partition.", "partition.")] {
        let Some(key) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(late) = scope.late else {
            return Err(format!(
                "`${{{expr}}}` is read when the step starts; it can be used only in the properties of a step's components"
            ));
        };
        let (context, whose) = if prefix == "context." {
            (late.job, "the job execution context")
        } else {
            (late.step, "the partition's context")
        };
        return match (context.get_value(&format!("{stored_prefix}{key}")), default) {
            (Some(serde_json::Value::String(text)), _) => Ok((text.clone(), false)),
            (Some(value), _) => Ok((value.to_string(), false)),
            (None, Some(default)) => Ok((default.to_string(), false)),
            (None, None) => Err(format!(
                "{whose} has no `{key}`{}; or write `${{{prefix}{key}:-DEFAULT}}`",
                if prefix == "context." {
                    " (an earlier step puts it there with `execution-context-promotion`, or a tasklet)"
                } else {
                    " (the partitioner sets the partition's keys)"
                }
            )),
        };
    }
    let var = name.strip_prefix("env.").unwrap_or(name);
    if var.is_empty() {
        return Err(format!("empty reference `${{{expr}}}`"));
    }
    let secret_var = is_secret_name(var);
    match (std::env::var(var), default) {
        (Ok(text), _) => Ok((text, secret_var)),
        (Err(std::env::VarError::NotPresent), Some(default)) => Ok((default.to_string(), false)),
        (Err(std::env::VarError::NotPresent), None) => Err(format!(
            "environment variable `{var}` is not set: set it, or write `${{{var}:-DEFAULT}}`"
        )),
        (Err(std::env::VarError::NotUnicode(_)), _) => {
            Err(format!("environment variable `{var}` is not valid UTF-8"))
        }
    }
}

fn read_secret_file(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("secret file reference has no path (write `file:///absolute/path`)".into());
    }
    std::fs::read_to_string(Path::new(path))
        .map(|text| text.trim().to_string())
        .map_err(|e| format!("cannot read secret file `{path}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikkatsu_core::ParameterValue;

    fn run(
        key: Option<&str>,
        value: &str,
        params: &JobParameters,
    ) -> Result<Resolved, Vec<String>> {
        interpolate(
            key,
            value,
            &Scope {
                params: Some(params),
                late: None,
            },
        )
    }

    #[test]
    fn params_env_defaults_and_escapes() {
        let params = JobParameters::new().with("input", ParameterValue::String("in.csv".into()));
        let r = run(
            None,
            "read ${params.input} $${params.input} ${params.missing:-x} $5",
            &params,
        )
        .unwrap();
        assert_eq!(r.text, "read in.csv ${params.input} x $5");
        assert!(!r.secret);
        let r = run(None, "${CARGO_PKG_NAME}/${env.CARGO_PKG_NAME}", &params).unwrap();
        assert_eq!(r.text, "ikkatsu-config/ikkatsu-config");
        let r = run(None, "${IKKATSU_SURELY_UNSET_VAR:-fallback}", &params).unwrap();
        assert_eq!(r.text, "fallback");
        let errs = run(
            None,
            "${IKKATSU_SURELY_UNSET_VAR} ${params.nope} ${oops",
            &params,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("IKKATSU_SURELY_UNSET_VAR"));
        assert!(errs[1].contains("`nope`"));
        assert!(errs[2].contains("unterminated"));
        let r = run(None, "plain", &params).unwrap();
        assert!(!r.changed);
    }

    #[test]
    fn secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let params = JobParameters::new();
        let whole = format!("file://{}", path.display());
        let r = run(Some("db-password"), &whole, &params).unwrap();
        assert_eq!(r.text, "s3cret");
        assert!(r.secret);
        // Only secret-named keys read `file://` values; others keep the text.
        assert_eq!(run(Some("path"), &whole, &params).unwrap().text, whole);
        let r = run(
            Some("url"),
            &format!("x:${{file:{}}}", path.display()),
            &params,
        )
        .unwrap();
        assert_eq!(r.text, "x:s3cret");
        assert!(r.secret);
        let r = run(Some("api-token"), "${CARGO_PKG_NAME}", &params).unwrap();
        assert!(r.secret);
        assert!(run(Some("token"), "file:///nonexistent/ikkatsu", &params).is_err());
    }
}
