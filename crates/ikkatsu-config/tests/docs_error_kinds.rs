//! The error kinds a job file may list under `kinds` (item-skip, item-retry), as documented
//! in `docs/job-format.md` and `docs/job.schema.json`, are exactly `ErrorKind::ALL`.

use std::path::PathBuf;

use ikkatsu_core::ErrorKind;

fn docs(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn core_kinds() -> Vec<String> {
    ErrorKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .collect()
}

#[test]
fn the_schema_lists_every_error_kind() {
    let schema: serde_json::Value = serde_json::from_str(&docs("job.schema.json")).unwrap();
    let listed: Vec<String> = schema["$defs"]["errorKind"]["enum"]
        .as_array()
        .expect("$defs.errorKind.enum in docs/job.schema.json")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed,
        core_kinds(),
        "update $defs.errorKind in docs/job.schema.json"
    );
}

#[test]
fn the_job_format_lists_every_error_kind() {
    let text = docs("job-format.md");
    let start = text
        .find("* Error kinds:")
        .expect("a `* Error kinds:` item in docs/job-format.md");
    let rest = &text[start + "* Error kinds:".len()..];
    let end = rest.find("\n*").unwrap_or(rest.len());
    let listed: Vec<String> = rest[..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert_eq!(
        listed,
        core_kinds(),
        "update the error kinds in docs/job-format.md"
    );
}

#[test]
fn every_kind_parses_back() {
    for kind in ErrorKind::ALL {
        assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
    }
}
