//! A component crate of one's own: a reader type defined outside ikkatsu, added with one
//! `register` call beside the built-ins, used from YAML with `type:` and run end to end.

use std::sync::Arc;

use ikkatsu::config::{AppConfig, ComponentRegistry, JobDefinition};
use ikkatsu::core::prelude::*;

/// What a crate such as `ikkatsu-kafka` would be: it depends on `ikkatsu-config` for the
/// registry, and `ikkatsu-config` knows nothing of it.
mod countdown {
    use std::sync::Arc;

    use ikkatsu::config::{AppConfig, ComponentRegistry};
    use ikkatsu::core::Record;
    use ikkatsu::core::prelude::*;
    use serde::Deserialize;

    /// The `countdown` reader's properties.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct CountdownConfig {
        from: u64,
        label: String,
    }

    /// Registers the reader type `countdown`: records `{label, n}` from `from` down to 1.
    pub fn register(registry: &mut ComponentRegistry, _app: &Arc<AppConfig>) {
        registry.register_reader("countdown", |props, _ctx| {
            let config: CountdownConfig = props.deserialize()?;
            let items: Vec<Record> = (1..=config.from)
                .rev()
                .map(|n| {
                    Record::from_iter([
                        ("label".to_string(), serde_json::json!(config.label)),
                        ("n".to_string(), serde_json::json!(n)),
                    ])
                })
                .collect();
            Ok(Box::new(VecItemReader::new(items)))
        });
    }
}

#[tokio::test]
async fn a_reader_type_from_another_crate_runs_from_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl");
    let yaml = format!(
        r#"
id: countdown
steps:
  - name: copy
    chunk:
      reader: {{ type: countdown, properties: {{ from: 3, label: "${{params.label}}" }} }}
      writer: {{ type: jsonl, properties: {{ path: "{}" }} }}
      chunk-size: 2
"#,
        output.display()
    );
    let app = Arc::new(AppConfig::default());
    let mut registry = ikkatsu::registry(AppConfig::default());
    countdown::register(&mut registry, &app);

    let params = JobParameters::new().with("label", ParameterValue::String("go".into()));
    let definition = JobDefinition::from_str(&yaml, "countdown.yaml").unwrap();
    let job = definition.build(&registry, &params).unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "{\"label\":\"go\",\"n\":3}\n{\"label\":\"go\",\"n\":2}\n{\"label\":\"go\",\"n\":1}\n"
    );

    // Without the registration the type is unknown, and the message lists what is known.
    let Err(err) = definition.build(
        &ikkatsu::registry(AppConfig::default()),
        &JobParameters::new(),
    ) else {
        panic!("`countdown` is not a built-in type");
    };
    let err = err.to_string();
    assert!(err.contains("unknown reader type `countdown`"), "{err}");
    assert!(err.contains("csv"), "{err}");

    // A registry of its own, without the built-ins, takes the same `register`.
    let mut alone = ComponentRegistry::new();
    countdown::register(&mut alone, &app);
    assert!(alone.has_type(ikkatsu::config::ComponentKind::Reader, "countdown"));
}
