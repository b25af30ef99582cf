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
