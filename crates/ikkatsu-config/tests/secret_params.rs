//! Secret job parameters when a job is built: references are read, a secret read back from a
//! repository (withheld) is taken from the job's own `params` or refused with a message.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ikkatsu_config::{ComponentRegistry, JobDefinition};
use ikkatsu_core::prelude::*;

/// A registry whose `probe` tasklet records its `value` property and the properties' `Debug`.
fn probe_registry(seen: Arc<Mutex<Vec<String>>>) -> ComponentRegistry {
    let mut registry = ComponentRegistry::new();
    registry.register_tasklet("probe", move |props, _| {
        let mut seen = seen.lock().unwrap();
        seen.push(props.get_str("value").unwrap_or_default().to_string());
        seen.push(format!("{props:?}"));
        struct Nothing;
        #[async_trait]
        impl Tasklet for Nothing {
            async fn execute(
                &self,
                _e: &mut StepExecution,
                _c: &StepContext,
            ) -> ikkatsu_core::Result<RepeatStatus> {
                Ok(RepeatStatus::Finished)
            }
        }
        Ok(Arc::new(Nothing))
    });
    registry
}

fn job(params: &str) -> JobDefinition {
    let yaml = format!(
        "id: s\n{params}steps:\n  - name: a\n    tasklet:\n      type: probe\n      properties: {{ value: \"${{params.db-password}}\" }}\n"
    );
    JobDefinition::from_str(&yaml, "s.yaml").unwrap()
}

/// Parameters as read back from a repository after a launch with `-p db-password=…`.
fn stored() -> JobParameters {
    serde_json::from_str(
        r#"{"db-password": {"type": "string", "value": "***", "identifying": true, "secret": true}}"#,
    )
    .unwrap()
}

#[test]
fn a_withheld_secret_is_taken_from_the_job_params_or_refused() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let registry = probe_registry(seen.clone());

    job("params:\n  db-password: from-the-job-file-1\n")
        .build(&registry, &stored())
        .unwrap();
    assert_eq!(seen.lock().unwrap()[0], "from-the-job-file-1");
    // A property made from a secret parameter is a secret.
    assert_eq!(seen.lock().unwrap()[1], r#"{"value": ***}"#);

    let Err(err) = job("").build(&registry, &stored()) else {
        panic!("a withheld secret the job file lacks is refused");
    };
    let err = err.to_string();
    assert!(
        err.contains("s.yaml:6:")
            && err.contains(
                "job parameter `db-password` is a secret given in clear at launch, and secrets are never stored: run the job again with `ikkatsu run JOB -p db-password=…`"
            ),
        "{err}"
    );
}

#[test]
fn a_secret_reference_is_read_at_each_build_and_must_be_a_string() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "first-secret-1\n").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let registry = probe_registry(seen.clone());
    let definition = job(&format!(
        "params:\n  db-password: ${{file:{}}}\n",
        file.display()
    ));
    let defaults = definition.default_parameters().unwrap();
    assert_eq!(
        defaults.get_text("db-password").unwrap(),
        format!("${{file:{}}}", file.display()),
        "kept as the reference"
    );
    definition.build(&registry, &JobParameters::new()).unwrap();
    std::fs::write(&file, "second-secret-2\n").unwrap();
    definition.build(&registry, &JobParameters::new()).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], "first-secret-1");
    assert_eq!(seen[2], "second-secret-2");

    let typed = JobDefinition::from_str(
        &format!(
            "id: t\nparams:\n  pin: {{ value: \"${{file:{}}}\", type: integer }}\nsteps:\n  - name: a\n    tasklet: {{ type: probe }}\n",
            file.display()
        ),
        "t.yaml",
    )
    .unwrap();
    let err = typed.default_parameters().unwrap_err().to_string();
    assert!(
        err.contains("t.yaml:3:")
            && err.contains("parameter `pin`: a secret")
            && err.contains("must be a string parameter"),
        "{err}"
    );
}
