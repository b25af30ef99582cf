//! Job parameters holding `${ENV}` or `${file:…}` references: which are kept as references
//! and which are read at launch.
//!
//! A reference whose value is a secret (read from a file, from an environment variable whose
//! name looks secret such as `${DB_PASSWORD}`, or under a parameter whose name looks secret)
//! is kept as written: the reference is what logs, `--json` and the job repository show, it
//! takes part in the job instance key as written, and it is read again each time the job is
//! built, so a restart reads it again. Any other reference (`${INPUT_DIR}/a.csv`) is read at
//! launch and its value is the parameter, as if it had been written out.

use ikkatsu_core::parameters::is_reference;
use ikkatsu_core::{JobParameters, ParameterValue};

use crate::error::{ConfigError, ConfigErrors, Position};
use crate::interpolate::{Scope, interpolate};

/// What a parameter given as `raw` becomes at launch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The text to launch with: references read; a `${` in the result is written `$${`, so
    /// that it is not read as a reference again when the job is built.
    Value(String),
    /// A secret reference, kept as written.
    Reference,
}

/// Settles the value `raw` of the parameter `name` (see the module documentation).
pub(crate) fn settle(name: &str, raw: &str) -> Result<Settled, Vec<String>> {
    if !is_reference(name, raw) {
        return Ok(Settled::Value(raw.to_string()));
    }
    let resolved = interpolate(
        Some(name),
        raw,
        &Scope {
            params: None,
            late: None,
        },
    )?;
    Ok(if resolved.secret {
        Settled::Reference
    } else {
        Settled::Value(resolved.text.replace("${", "$${"))
    })
}

/// The parameters a job is launched with: `given` (e.g. from `-p key=value`) with every
/// reference that is not a secret read, and secret references kept as written (see the module
/// documentation). An unset variable or unreadable file is an error naming the parameter.
pub fn launch_parameters(given: &JobParameters) -> Result<JobParameters, ConfigErrors> {
    let mut out = given.clone();
    let mut errors = ConfigErrors::new();
    for (name, param) in given.iter() {
        let ParameterValue::String(raw) = &param.value else {
            continue;
        };
        if param.is_secret() {
            continue;
        }
        match settle(name, raw) {
            Ok(Settled::Value(text)) if text != *raw => {
                out.insert(
                    name.clone(),
                    ParameterValue::String(text),
                    param.identifying,
                );
            }
            Ok(_) => {}
            Err(messages) => {
                for m in messages {
                    errors.push(ConfigError::new(
                        "job parameters",
                        Position::UNKNOWN,
                        format!("parameter `{name}`: {m}"),
                    ));
                }
            }
        }
    }
    errors.into_result(out)
}

/// `parameters` with every reference read: what the job's components see. A value read from
/// a secret is a [`ikkatsu_core::Sensitivity::Secret`]. Errors are `(name, message)`.
pub(crate) fn resolve_references(
    parameters: &JobParameters,
) -> (JobParameters, Vec<(String, String)>) {
    let scope = Scope {
        params: None,
        late: None,
    };
    let mut out = parameters.clone();
    let mut errors = Vec::new();
    for (name, param) in parameters.iter() {
        let ParameterValue::String(text) = &param.value else {
            continue;
        };
        if param.is_secret() || !is_reference(name, text) {
            continue;
        }
        match interpolate(Some(name), text, &scope) {
            Ok(resolved) if resolved.secret => {
                out.insert_secret(name.clone(), resolved.text, param.identifying);
            }
            Ok(resolved) => {
                out.insert(
                    name.clone(),
                    ParameterValue::String(resolved.text),
                    param.identifying,
                );
            }
            Err(messages) => errors.extend(messages.into_iter().map(|m| (name.clone(), m))),
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_are_kept_others_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "From-A-File-1\n").unwrap();
        let mut given = JobParameters::new();
        given.insert_parsed("dir=${CARGO_PKG_NAME}/in").unwrap();
        given
            .insert_parsed(&format!("conn=db:${{file:{}}}", file.display()))
            .unwrap();
        given
            .insert_parsed("db-password=${CARGO_PKG_NAME}")
            .unwrap();
        given.insert_parsed("literal=$${HOME}").unwrap();
        let launched = launch_parameters(&given).unwrap();
        assert_eq!(launched.get_text("dir").unwrap(), "ikkatsu-config/in");
        assert_eq!(launched.get_text("literal").unwrap(), "$${HOME}");
        assert_eq!(
            launched.get_text("conn").unwrap(),
            given.get_text("conn").unwrap()
        );
        assert_eq!(
            launched.get_text("db-password").unwrap(),
            "${CARGO_PKG_NAME}"
        );
        let (resolved, errors) = resolve_references(&launched);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(resolved.get_text("conn").unwrap(), "db:From-A-File-1");
        assert!(resolved.get("conn").unwrap().is_secret());
        assert_eq!(resolved.get_text("db-password").unwrap(), "ikkatsu-config");
        assert!(resolved.get("db-password").unwrap().is_secret());
        // `$${HOME}` is the literal `${HOME}`: not read.
        assert_eq!(resolved.get_text("literal").unwrap(), "${HOME}");
        assert!(!resolved.get("literal").unwrap().is_secret());

        let mut unset = JobParameters::new();
        unset
            .insert_parsed("x=${IKKATSU_SURELY_UNSET_VAR}")
            .unwrap();
        let err = launch_parameters(&unset).unwrap_err().to_string();
        assert!(
            err.contains("parameter `x`") && err.contains("IKKATSU_SURELY_UNSET_VAR"),
            "{err}"
        );
    }
}
