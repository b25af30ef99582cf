//! `-p key=value[,type[,identifying]]` end to end: what a bad parameter prints and exits
//! with, and how a value containing a comma is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(workspace_root())
        .env(
            "IKKATSU_REPOSITORY",
            format!("sqlite://{}", dir.join("ikkatsu.db").display()),
        )
        .env("IKKATSU_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn unknown_parameter_type_is_a_usage_error_naming_parameter_type_and_valid_types() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("adults.csv");
    let out = run(
        dir.path(),
        &[
            "run",
            "examples/quickstart.yaml",
            "-p",
            &format!("output={}", output.display()),
            "-p",
            "n=1,weird",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "job parameter `n`: unknown type `weird`: use string, integer, float, bool, date or \
             datetime; a value containing a comma is written in double quotes, e.g. n=\"1,weird\""
        ),
        "{stderr}"
    );
    assert!(!output.exists(), "the job did not run");

    let out = run(
        dir.path(),
        &[
            "validate",
            "examples/quickstart.yaml",
            "-p",
            "n=1,integer,maybe",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("job parameter `n`: the identifying flag `maybe` is not true or false"),
        "{stderr}"
    );
}

#[test]
fn a_quoted_value_keeps_its_commas() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("adults.csv");
    let out = run(
        dir.path(),
        &[
            "run",
            "examples/quickstart.yaml",
            "-p",
            &format!("output={}", output.display()),
            "-p",
            "ids=\"1,2,3\"",
            "-p",
            "note=\"a \"\"b\"\", c\",string,false",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(dir.path(), &["executions", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let params = &json[0]["parameters"];
    assert_eq!(
        params["ids"],
        serde_json::json!({ "type": "string", "value": "1,2,3", "identifying": true })
    );
    assert_eq!(
        params["note"],
        serde_json::json!({ "type": "string", "value": "a \"b\", c", "identifying": false })
    );
}

fn status_and_run_ids(dir: &Path) -> Vec<(String, i64)> {
    let out = run(dir, &["executions", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap().to_string(),
                e["parameters"]["run.id"]["value"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// `run --next` starts a new instance even when the last one failed (a plain `run` would
/// restart it); a job without an incrementer refuses it.
#[test]
fn run_next_starts_a_new_instance_and_leaves_the_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "id: flaky\nincrementer: run-id\nsteps:\n  - name: work\n    tasklet: { type: shell, properties: { command: \"${params.cmd}\" } }\n",
    )
    .unwrap();
    let job = job.to_str().unwrap();
    let out = run(dir.path(), &["run", job, "-p", "cmd=false"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(status_and_run_ids(dir.path()), [("FAILED".to_string(), 1)]);

    let out = run(dir.path(), &["run", job, "-p", "cmd=true", "--next"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Newest first: a second instance, the failed first one untouched.
    assert_eq!(
        status_and_run_ids(dir.path()),
        [("COMPLETED".to_string(), 2), ("FAILED".to_string(), 1)]
    );

    let plain = dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        "id: plain\nsteps:\n  - name: work\n    tasklet: { type: noop }\n",
    )
    .unwrap();
    let out = run(dir.path(), &["run", plain.to_str().unwrap(), "--next"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("job `plain` has no incrementer"),
        "{stderr}"
    );
}

/// A declared, required, typed parameter: missing, it stops the run before the repository
/// exists; given as text, it is recorded with its type.
#[test]
fn declared_parameters_are_checked_before_the_run_and_recorded_typed() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "id: daily\nparams:\n  day: { type: date, required: true }\nsteps:\n  - name: work\n    tasklet: { type: noop }\n",
    )
    .unwrap();
    let job = job.to_str().unwrap();
    let out = run(dir.path(), &["run", job]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("parameter `day` is required (a date): give it with `-p day=2026-01-31`"),
        "{stderr}"
    );
    assert!(!dir.path().join("ikkatsu.db").exists(), "nothing recorded");

    let out = run(dir.path(), &["run", job, "-p", "day=2026-02-03"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(dir.path(), &["executions", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let day = &json[0]["parameters"]["day"];
    assert_eq!(day["type"], "date", "{day}");
    assert_eq!(day["value"], "2026-02-03", "{day}");
}
