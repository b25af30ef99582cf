//! Job definitions end to end: parse, build, run; and every class of error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use ikkatsu::config::{AppConfig, ComponentRegistry, ConfigErrors, JobDefinition};
use ikkatsu::core::prelude::*;
use ikkatsu::core::{ParameterValue, Record};

fn record(pairs: &[(&str, &str)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect()
}

async fn run(job: &Job, params: JobParameters) -> (JobExecution, Vec<StepExecution>) {
    let repository = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let execution = operator
        .start(job, params, CancellationToken::new())
        .await
        .unwrap();
    let steps = repository.step_executions(execution.id).await.unwrap();
    (execution, steps)
}

const FULL: &str = r#"
id: people
description: Upper-case adults, then count them.
restartable: true
incrementer: run-id
params:
  input: ${IKKATSU_TEST_UNSET_INPUT:-people.csv}
  min-age: { value: "18", type: integer, identifying: false }
listeners: [ { ref: audit } ]
flow:
  start-element: transform
  elements:
    transform:
      chunk:
        reader: { type: csv, properties: { path: "${params.dir}/${params.input}" } }
        processor:
          type: script
          properties:
            script: |
              if record.age.parse_int() < params["min-age"].parse_int() { return; }
              record.name = record.name.to_upper();
              record
        writer: { type: csv, properties: { path: "${params.dir}/out.csv" } }
        commit-interval: 2
        item-skip: { limit: 10, kinds: [parse] }
        item-retry: { limit: 2, kinds: [io], backoff: 1ms }
      listeners: [ { ref: counter } ]
      execution-context-promotion: [ nothing.here ]
      transitions:
        - { on: COMPLETED, to: report }
        - { on: "*", fail: true }
    report:
      tasklet: { type: noop }
      next: done
    done:
      tasklet: { type: log, properties: { message: "finished ${params.input}", level: debug } }
"#;

struct Audit(AtomicUsize);

#[async_trait]
impl JobExecutionListener for Audit {
    async fn after_job(&self, _execution: &JobExecution) -> ikkatsu::core::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Counter(AtomicUsize);

#[async_trait]
impl ChunkListener for Counter {
    async fn after_chunk(&self, _execution: &StepExecution) -> ikkatsu::core::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn full_example_with_builtins_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "name,age\nAiko,34\nBen,12\nChloé,58\nDai,18\n",
    )
    .unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, FULL).unwrap();

    let audit = Arc::new(Audit(AtomicUsize::new(0)));
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let mut registry = ikkatsu::registry(AppConfig::default());
    registry
        .register_job_listener("audit", audit.clone())
        .register_chunk_listener("counter", counter.clone());

    let definition = JobDefinition::from_path(&file).unwrap();
    assert_eq!(definition.id.value, "people");
    assert_eq!(definition.flow.elements.len(), 3);
    let params = JobParameters::new().with(
        "dir",
        ParameterValue::String(dir.path().display().to_string()),
    );
    definition.validate(&registry, &params).unwrap();
    assert!(
        !dir.path().join("out.csv").exists(),
        "validate opens no file"
    );

    let job = definition.build(&registry, &params).unwrap();
    assert_eq!(job.name(), "people");
    assert!(job.incrementer().is_some());
    assert_eq!(
        job.location(),
        Some(
            std::path::absolute(&file)
                .unwrap()
                .display()
                .to_string()
                .as_str()
        )
    );
    assert_eq!(
        job.default_parameters().get_text("input").unwrap(),
        "people.csv"
    );
    assert_eq!(
        job.default_parameters().get("min-age").unwrap().value,
        ParameterValue::Integer(18)
    );

    let (execution, steps) = run(&job, params).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.csv")).unwrap(),
        "name,age\nAIKO,34\nCHLOÉ,58\nDAI,18\n"
    );
    let names: Vec<&str> = steps.iter().map(|s| s.step_name.as_str()).collect();
    assert_eq!(names, ["transform", "report", "done"]);
    assert_eq!(steps[0].counts.read_count, 4);
    assert_eq!(steps[0].counts.write_count, 3);
    assert_eq!(steps[0].counts.filter_count, 1);
    assert_eq!(audit.0.load(Ordering::SeqCst), 1);
    // Two full chunks of two plus the empty end-of-input chunk.
    assert_eq!(counter.0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn steps_sugar_with_registered_components_and_transitions() {
    let yaml = r#"
id: sugar
steps:
  - name: first
    chunk:
      reader: { ref: letters }
      writer: { type: collect }
      chunk-size: 2
    transitions:
      - { on: COMPLETED, to: third }
  - name: second
    tasklet: { ref: boom }
  - name: third
    tasklet: { ref: boom }
    transitions:
      - { on: FAILED, end: true, exit-code: HANDLED }
"#;
    let sink = VecItemWriter::<Record>::new();
    let mut registry = ComponentRegistry::new();
    registry.register_reader_ref("letters", |_, _| {
        Ok(Box::new(VecItemReader::new(vec![
            record(&[("l", "a")]),
            record(&[("l", "b")]),
            record(&[("l", "c")]),
        ])))
    });
    let writer = sink.clone();
    registry.register_writer("collect", move |_, _| Ok(Box::new(writer.clone())));
    struct Boom;
    #[async_trait]
    impl Tasklet for Boom {
        async fn execute(
            &self,
            _execution: &mut StepExecution,
            _ctx: &StepContext,
        ) -> ikkatsu::core::Result<RepeatStatus> {
            Err(Error::new(ErrorKind::Component, "boom"))
        }
    }
    registry.register_tasklet_instance("boom", Arc::new(Boom));

    let definition = JobDefinition::from_str(yaml, "sugar.yaml").unwrap();
    assert_eq!(definition.flow.start.value, "first");
    assert_eq!(
        definition
            .element("second")
            .unwrap()
            .next
            .as_ref()
            .unwrap()
            .value,
        "third"
    );
    let job = definition.build(&registry, &JobParameters::new()).unwrap();
    let (execution, steps) = run(&job, JobParameters::new()).await;
    assert_eq!(sink.items().len(), 3);
    let names: Vec<&str> = steps.iter().map(|s| s.step_name.as_str()).collect();
    assert_eq!(names, ["first", "third"]);
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(execution.exit_status.exit_code, "HANDLED");
}

fn errors(yaml: &str) -> ConfigErrors {
    JobDefinition::from_str(yaml, "job.yaml").unwrap_err()
}

fn build_errors(yaml: &str, params: &JobParameters) -> ConfigErrors {
    let definition = JobDefinition::from_str(yaml, "job.yaml").unwrap();
    let registry = ikkatsu::registry(AppConfig::default());
    let validated = definition.validate(&registry, params).unwrap_err();
    let built = definition.build(&registry, params).err().unwrap();
    assert_eq!(validated, built);
    built
}

fn assert_has(errors: &ConfigErrors, needle: &str) {
    assert!(
        errors.iter().any(|e| e.to_string().contains(needle)),
        "no error contains {needle:?}:\n{errors}"
    );
}

const BASE: &str = r#"id: base
flow:
  start-element: transform
  elements:
    transform:
      chunk:
        reader: { type: csv, properties: { path: in.csv } }
        writer: { type: csv, properties: { path: out.csv } }
"#;

#[test]
fn malformed_yaml_names_file_and_line() {
    let e = errors("id: x\nflow: [a, b\nsteps: 3\n");
    assert_eq!(e.len(), 1);
    let text = e.to_string();
    assert!(text.starts_with("job.yaml:"), "{text}");
    assert!(text.contains("invalid YAML"), "{text}");
    assert!(e.errors()[0].line() >= 2, "{text}");
}

#[test]
fn unknown_keys_are_reported_with_line_and_column_all_at_once() {
    let yaml =
        BASE.replace("      chunk:\n", "      chunk-sise: 3\n      chunk:\n") + "owner: me\n";
    let e = errors(&yaml);
    assert_has(
        &e,
        "job.yaml:6:7: unknown key `chunk-sise` in element `transform` (expected one of: chunk, tasklet,",
    );
    assert_has(&e, "job.yaml:10:1: unknown key `owner` in the job");
    assert_eq!(e.len(), 2, "{e}");
    assert_eq!(e.to_string().lines().count(), 2);
}

#[test]
fn wrong_types_and_missing_keys() {
    let yaml = BASE
        .replace("id: base\n", "id: base\nrestartable: maybe\n")
        .replace(
            "        writer: { type: csv, properties: { path: out.csv } }\n",
            "        chunk-size: many\n        item-skip: { limit: 1, kinds: [parse, oops] }\n",
        );
    let e = errors(&yaml);
    assert_has(
        &e,
        "job.yaml:2:14: `restartable` in the job must be true or false",
    );
    assert_has(
        &e,
        "missing key `writer` in the chunk of element `transform`",
    );
    assert_has(
        &e,
        "job.yaml:9:21: `chunk-size` in the chunk of element `transform` must be an integer",
    );
    assert_has(&e, "unknown error kind `oops`");
    let e = errors("flow: 3\n");
    assert_has(&e, "missing key `id`");
    assert_has(
        &e,
        "job.yaml:1:7: `flow` must be a mapping, found an integer",
    );
}

#[test]
fn bad_transition_targets_and_duplicate_steps() {
    let yaml = BASE.to_string()
        + "      transitions:\n        - { on: COMPLETED, to: nowhere }\n        - { on: '*', stop: true, restart: gone }\n      next: missing\n";
    let e = errors(&yaml);
    assert_has(
        &e,
        "job.yaml:10:32: transition target of element `transform`: `nowhere` does not exist (elements: transform)",
    );
    assert_has(
        &e,
        "`restart` of element `transform`: `gone` does not exist",
    );
    assert_has(
        &e,
        "`next` of element `transform`: `missing` does not exist",
    );
    let e = errors(&BASE.replace("start-element: transform", "start-element: other"));
    assert_has(&e, "job.yaml:3:18: start element `other` does not exist");
    let e = errors(
        "id: d\nsteps:\n  - { name: a, tasklet: { type: noop } }\n  - { name: a, tasklet: { type: noop } }\n",
    );
    assert_has(&e, "job.yaml:4:13: duplicate step name `a`");
    let e = errors(&BASE.replace(
        "    transform:\n",
        "    transform:\n      transitions: [ { on: X, to: transform, end: true } ]\n",
    ));
    assert_has(&e, "has both `to` and `end`");
}

#[test]
fn a_partition_needs_a_partitioner_and_a_step() {
    let yaml = BASE.to_string() + "    spread:\n      partition: { grid-size: 2 }\n";
    let e = errors(&yaml);
    assert_has(
        &e,
        "job.yaml:10:18: missing key `partitioner` in the partition of element `spread`",
    );
    assert_has(
        &e,
        "job.yaml:10:18: missing key `step` in the partition of element `spread`",
    );
}

#[test]
fn unknown_component_types_and_refs() {
    let yaml = BASE
        .replace("reader: { type: csv", "reader: { type: avro")
        .replace("writer: { type: csv", "writer: { ref: sink");
    let e = build_errors(&yaml, &JobParameters::new());
    assert_has(
        &e,
        "job.yaml:7:25: unknown reader type `avro` in step `transform` (registered reader types: csv, json, jsonl, parquet, sequence)",
    );
    assert_has(
        &e,
        "job.yaml:8:24: unknown writer ref `sink` in step `transform` (registered writer refs: none)",
    );
}

#[test]
fn bad_properties_carry_their_position() {
    let yaml = BASE.replace("{ path: in.csv }", "{ path: in.csv, has-headr: false }");
    let e = build_errors(&yaml, &JobParameters::new());
    assert_eq!(e.len(), 1, "{e}");
    assert_has(
        &e,
        "job.yaml:7:58: invalid properties of reader `csv` in step `transform`: unknown field `has-headr`, expected one of `path`, `delimiter`, `quote`, `encoding`, `compression`, `has-header`, `header`, `columns`, `headers`, `lines-to-skip`, `trim`",
    );
    let yaml = BASE.replace("{ path: in.csv }", "{ path: in.csv, delimiter: [1] }");
    let e = build_errors(&yaml, &JobParameters::new());
    assert_has(
        &e,
        "job.yaml:7:69: invalid properties of reader `csv` in step `transform`: `delimiter`: invalid type: sequence, expected a character",
    );
}

#[test]
fn missing_parameters_and_environment_variables() {
    let yaml = BASE
        .replace("path: in.csv", "path: \"${params.input}\"")
        .replace(
            "path: out.csv",
            "path: \"${IKKATSU_TEST_SURELY_UNSET}/out.csv\"",
        );
    let e = build_errors(&yaml, &JobParameters::new());
    assert_has(
        &e,
        "job.yaml:7:50: `path` in step `transform`: job parameter `input` is not set",
    );
    assert_has(
        &e,
        "job.yaml:8:50: `path` in step `transform`: environment variable `IKKATSU_TEST_SURELY_UNSET` is not set",
    );
    assert_eq!(e.len(), 2);

    // A parameter given at launch or as a default satisfies the reference.
    let given = JobParameters::new().with("input", ParameterValue::String("a.csv".into()));
    let fixed = yaml.replace(
        "${IKKATSU_TEST_SURELY_UNSET}",
        "${IKKATSU_TEST_SURELY_UNSET:-.}",
    );
    let definition = JobDefinition::from_str(&fixed, "job.yaml").unwrap();
    let registry = ikkatsu::registry(AppConfig::default());
    definition.validate(&registry, &given).unwrap();
    let with_default = fixed.replace("id: base\n", "id: base\nparams:\n  input: b.csv\n");
    let definition = JobDefinition::from_str(&with_default, "job.yaml").unwrap();
    definition
        .validate(&registry, &JobParameters::new())
        .unwrap();
}

#[test]
fn secrets_are_read_from_files_and_masked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "t0ps3cret\n").unwrap();
    let yaml = format!(
        "id: s\nsteps:\n  - name: a\n    tasklet:\n      type: probe\n      properties: {{ api-token: \"file://{}\", other: \"x${{file:{}}}\" }}\n",
        secret.display(),
        secret.display()
    );
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut registry = ComponentRegistry::new();
    let out = seen.clone();
    registry.register_tasklet("probe", move |props, _| {
        out.lock().unwrap().push(format!("{props:?}"));
        out.lock()
            .unwrap()
            .push(props.secret("api-token").unwrap().expose().to_string());
        out.lock()
            .unwrap()
            .push(props.get_str("other").unwrap().to_string());
        struct Nothing;
        #[async_trait]
        impl Tasklet for Nothing {
            async fn execute(
                &self,
                _e: &mut StepExecution,
                _c: &StepContext,
            ) -> ikkatsu::core::Result<RepeatStatus> {
                Ok(RepeatStatus::Finished)
            }
        }
        Ok(Arc::new(Nothing))
    });
    let definition = JobDefinition::from_str(&yaml, "s.yaml").unwrap();
    definition.build(&registry, &JobParameters::new()).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], r#"{"api-token": ***, "other": ***}"#);
    assert_eq!(seen[1], "t0ps3cret");
    assert_eq!(seen[2], "xt0ps3cret");
}

#[test]
fn config_errors_convert_into_core_errors() {
    let e = errors("id: [x]\nsteps: [ { name: a, tasklet: { type: noop } } ]\n");
    let core: ikkatsu::core::Error = e.into();
    assert_eq!(core.kind(), ErrorKind::Config);
    assert!(
        core.message().starts_with("job.yaml:1:5: "),
        "{}",
        core.message()
    );
}

#[test]
fn garbage_never_panics() {
    let samples = [FULL, BASE];
    for sample in samples {
        let bytes = sample.as_bytes();
        let chars: Vec<char> = sample.chars().collect();
        let registry = ikkatsu::registry(AppConfig::default());
        let params =
            JobParameters::new().with("dir", ParameterValue::String("/nonexistent".into()));
        let check = |text: &str| {
            if let Ok(definition) = JobDefinition::from_str(text, "garbage.yaml") {
                let _ = definition.validate(&registry, &params);
            }
        };
        // Every prefix (truncation at each character boundary).
        for i in 0..chars.len() {
            check(&chars[..i].iter().collect::<String>());
        }
        // Deterministic garbling: replace, drop or duplicate characters.
        let specials = [
            ':', '{', '}', '[', ']', '-', ' ', '\n', '"', '\'', '&', '*', '!', '$', '\t', '#', '|',
            '>',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..600 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut garbled: Vec<char> = chars.clone();
            for k in 0..(1 + round % 4) {
                let at = ((seed >> (k * 8)) as usize) % garbled.len().max(1);
                let c = specials[((seed >> (k * 5 + 3)) as usize) % specials.len()];
                match (seed >> (k * 3)) % 3 {
                    0 => garbled[at] = c,
                    1 => {
                        garbled.remove(at);
                    }
                    _ => garbled.insert(at, c),
                }
            }
            check(&garbled.iter().collect::<String>());
        }
        // Raw byte slices that are still valid UTF-8.
        for i in (0..bytes.len()).step_by(7) {
            if let Ok(text) = std::str::from_utf8(&bytes[i..]) {
                check(text);
            }
        }
    }
    for text in [
        "",
        "~",
        "[]",
        "- - -",
        "a",
        "id: 1",
        "id: x\nsteps: []",
        "id: x\nflow: {}",
        "{{{{",
        "&a [*a]",
        "id: !!binary aGVsbG8=",
        "? a\n? b\n",
        "id: x\nsteps:\n  - name: a\n    tasklet: {type: noop, properties: [1]}\n",
    ] {
        if let Ok(definition) = JobDefinition::from_str(text, "x.yaml") {
            let _ = definition.validate(
                &ikkatsu::registry(AppConfig::default()),
                &JobParameters::new(),
            );
        }
    }
}

#[test]
fn shipped_examples_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The named storages of the examples (their real URLs need secrets from the environment:
    // tests/storage_items.rs checks examples/ikkatsu-config.remote.yaml itself).
    let app = ikkatsu::config::AppConfig::from_str(
        "storages: { sftp-in: 'memory:', s3-out: 'memory:' }",
        "test",
    )
    .unwrap();
    let mut registry = ikkatsu::registry(app);
    registry.register_job_listener("audit", Arc::new(Audit(AtomicUsize::new(0))));

    let mut examples = 0;
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let app_config = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("ikkatsu-config"));
        if path.extension().is_some_and(|e| e == "yaml") && !app_config {
            let definition = JobDefinition::from_path(&path).unwrap();
            definition
                .validate(&registry, &JobParameters::new())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            examples += 1;
        }
    }
    assert!(examples >= 2, "examples/*.yaml are found");

    let doc = std::fs::read_to_string(root.join("docs/job-format.md")).unwrap();
    let start = doc.find("## A full example").unwrap();
    let block = &doc[start..];
    let yaml = block
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let definition = JobDefinition::from_str(yaml, "job-format.md").unwrap();
    definition
        .validate(&registry, &JobParameters::new())
        .unwrap();
}

const DECLARED: &str = r#"id: declared
params:
  day: { type: date, required: true, description: "The business day" }
  limit: { type: integer }
  mode: full
steps:
  - name: only
    tasklet: { type: log, properties: { message: "${params.day} ${params.mode}" } }
"#;

#[test]
fn declared_parameters_are_required_and_typed_before_anything_runs() {
    let definition = JobDefinition::from_str(DECLARED, "job.yaml").unwrap();
    let registry = ikkatsu::registry(AppConfig::default());

    let e = definition
        .validate(&registry, &JobParameters::new())
        .unwrap_err();
    assert_has(
        &e,
        "job.yaml:3:3: parameter `day` is required (a date): give it with `-p day=2026-01-31`",
    );

    let given = JobParameters::new()
        .with("day", ParameterValue::String("2026-01-31".into()))
        .with("limit", ParameterValue::String("7".into()));
    let typed = definition.typed_parameters(&given).unwrap();
    assert_eq!(typed.get("day").unwrap().value.type_name(), "date");
    assert_eq!(
        typed.get("limit").unwrap().value,
        ParameterValue::Integer(7)
    );
    definition.validate(&registry, &given).unwrap();

    let bad = JobParameters::new().with("day", ParameterValue::String("31/01/2026".into()));
    let e = definition.typed_parameters(&bad).unwrap_err();
    assert_has(
        &e,
        "parameter `day` is declared `date`: job parameter value `31/01/2026` is not a valid date",
    );
    let other = JobParameters::new().with("day", ParameterValue::Integer(5));
    let e = definition.validate(&registry, &other).unwrap_err();
    assert_has(
        &e,
        "parameter `day` is declared `date` but was given as a integer",
    );
}

#[test]
fn bad_parameter_declarations_are_errors_in_the_file() {
    let e = errors(&DECLARED.replace(
        "{ type: date, required: true, description: \"The business day\" }",
        "{ value: \"2026-01-01\", required: true }",
    ));
    assert_has(
        &e,
        "a required parameter has no default; remove `value` or `required`",
    );
    let e = errors(&DECLARED.replace("{ type: integer }", "{ identifying: false }"));
    assert_has(&e, "give a default (`value`), `required: true` or a `type`");
}
