//! The "full example" of `docs/job-format.md` runs as written, with the built-in types only.

use std::path::PathBuf;
use std::sync::Arc;

use ikkatsu::config::{AppConfig, JobDefinition};
use ikkatsu::core::prelude::*;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The YAML block under `## A full example`.
fn full_example() -> String {
    let text = std::fs::read_to_string(workspace().join("docs/job-format.md")).unwrap();
    let section = &text[text.find("## A full example").expect("the section")..];
    let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = section[start..].find("```").expect("the end of the block");
    section[start..start + end].to_string()
}

#[tokio::test]
async fn the_full_example_runs_with_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.yaml");
    std::fs::write(&file, full_example()).unwrap();
    let output = dir.path().join("adults.csv");
    // The example's paths are relative to the workspace root; the test points them there.
    let params = JobParameters::new()
        .with(
            "input",
            ParameterValue::String(
                workspace()
                    .join("examples/data/people.csv")
                    .display()
                    .to_string(),
            ),
        )
        .with(
            "output",
            ParameterValue::String(output.display().to_string()),
        );

    let registry = ikkatsu::registry(AppConfig::default());
    let definition = JobDefinition::from_path(&file).unwrap();
    let job = definition.build(&registry, &params).unwrap();
    let repository = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let execution = operator
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    let steps = repository.step_executions(execution.id).await.unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s.step_name.as_str()).collect();
    assert_eq!(names, ["transform", "report", "done"]);
    let counts = &steps[0].counts;
    assert_eq!(counts.read_count, 1000);
    assert_eq!(counts.write_count + counts.filter_count, 1000);
    assert!(counts.filter_count > 0);
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(
        written.starts_with("id,name,age,city,email\n1,KENJI OKAFOR,55,"),
        "{written:.200}"
    );
    assert_eq!(written.lines().count() as u64, counts.write_count + 1);
}
