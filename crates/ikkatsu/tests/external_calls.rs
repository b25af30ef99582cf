//! External calls reach listeners: the storage requests of a step (on the S3 test server of
//! `scripts/test-servers`, moto) and its SQL statements (the job repository's commits, on
//! SQLite and, with the `postgres` feature, PostgreSQL), both to a Rust listener
//! (`StepExecutionListener::call_listener`) and to the `storage-calls` and `sql-calls`
//! events of the listener types.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ikkatsu::config::{AppConfig, JobDefinition};
use ikkatsu::core::call::{CallKind, ExternalCall, ExternalCallListener};
use ikkatsu::core::prelude::*;

/// Keeps every call of the steps it listens to.
#[derive(Default)]
struct Calls(Mutex<Vec<ExternalCall>>);

impl ExternalCallListener for Calls {
    fn on_call(&self, call: &ExternalCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

/// A step listener that wants the calls.
struct CallRecorder(Arc<Calls>);

#[async_trait]
impl StepExecutionListener for CallRecorder {
    fn call_listener(&self) -> Option<Arc<dyn ExternalCallListener>> {
        Some(self.0.clone())
    }
}

/// The job: JSON Lines from `input` to `output` (storage URLs), two records a chunk, with
/// the Rust listener `calls` and a `command` listener writing the `storage-calls` and
/// `sql-calls` events to `events`.
fn job(input: &str, output: &str, events: &std::path::Path) -> String {
    format!(
        r#"
id: calls
steps:
  - name: copy
    chunk:
      chunk-size: 2
      reader: {{ type: jsonl, properties: {{ storage: "{input}", path: "in/*.jsonl" }} }}
      writer: {{ type: jsonl, properties: {{ storage: "{output}", path: "out" }} }}
    listeners:
      - ref: calls
      - type: command
        properties:
          command: sh
          args: ["-c", 'echo "$IKKATSU_EVENT_JSON" >> {events}']
          events: [storage-calls, sql-calls]
"#,
        events = events.display()
    )
}

/// Runs the job on the repository `repository`; the Rust listener's calls and the events.
async fn run(
    yaml: &str,
    repository: Arc<dyn JobRepository>,
    events: &std::path::Path,
) -> (JobExecution, Vec<ExternalCall>, Vec<serde_json::Value>) {
    let calls = Arc::new(Calls::default());
    let mut registry = ikkatsu::registry(AppConfig::default());
    registry.register_step_listener("calls", Arc::new(CallRecorder(calls.clone())));
    let definition = JobDefinition::from_str(yaml, "job.yaml").unwrap();
    // A new job instance every run: a shared repository may hold an earlier, unfinished
    // execution of the job, which this run would restart (skipping its completed step).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let params = JobParameters::new().with(
        "run",
        ikkatsu::core::ParameterValue::String(format!("{}-{nanos}", std::process::id())),
    );
    let job = definition.build(&registry, &params).unwrap();
    let execution = JobOperator::new(repository)
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    let events = std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let calls = calls.0.lock().unwrap().clone();
    (execution, calls, events)
}

fn storage_calls<'a>(calls: &'a [ExternalCall], operation: &str) -> Vec<&'a ExternalCall> {
    calls
        .iter()
        .filter(|c| c.kind == CallKind::Storage && c.operation == operation)
        .collect()
}

/// The SQL statements of a run: the step's commits, as `update` of the step table, one per
/// chunk plus the step's last update, each changing one row.
fn check_sql(calls: &[ExternalCall], events: &[serde_json::Value], backend: &str) {
    let updates: Vec<_> = calls.iter().filter(|c| c.kind == CallKind::Sql).collect();
    assert!(!updates.is_empty(), "no SQL statement: {calls:#?}");
    for call in &updates {
        assert_eq!(call.backend, backend);
        assert_eq!(call.operation, "update");
        assert_eq!(call.target, "ikkatsu_step_execution");
        assert_eq!(call.rows, Some(1));
        assert!(call.succeeded());
        assert_eq!(&*call.step_name, "copy");
    }
    let sql = events
        .iter()
        .find(|e| e["event"] == "sql-calls")
        .unwrap_or_else(|| panic!("no sql-calls event: {events:#?}"));
    let group = &sql["calls"][0];
    assert_eq!(group["backend"], backend);
    assert_eq!(group["operation"], "update");
    assert_eq!(group["target"], "ikkatsu_step_execution");
    assert_eq!(group["count"], updates.len() as u64, "{sql}");
    assert_eq!(group["rows"], updates.len() as u64, "{sql}");
    assert_eq!(group["failed"], 0);
}

/// Three records in `in/a.jsonl` of the local directory `dir`.
fn local_input(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::write(dir.join("in/a.jsonl"), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n").unwrap();
    format!("file://{}", dir.display())
}

#[tokio::test]
async fn local_storage_calls_and_sqlite_statements_reach_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let input = local_input(dir.path());
    let events = dir.path().join("events.jsonl");
    let repository = ikkatsu::repository::connect(&format!(
        "sqlite://{}",
        dir.path().join("repo.db").display()
    ))
    .await
    .unwrap();
    let (execution, calls, events) = run(&job(&input, &input, &events), repository, &events).await;
    assert_eq!(execution.status, BatchStatus::Completed);

    let reads = storage_calls(&calls, "read");
    assert_eq!(reads.len(), 1, "{calls:#?}");
    assert_eq!(
        (reads[0].backend.as_str(), reads[0].target.as_str()),
        ("fs", "in/a.jsonl")
    );
    assert_eq!(reads[0].bytes, Some(24));
    let writes = storage_calls(&calls, "write");
    assert_eq!(writes.len(), 2, "two chunks, one part each: {calls:#?}");
    assert_eq!(writes[0].target, "out/part-00000.jsonl");
    assert_eq!(writes[0].bytes, Some(16));
    assert_eq!(writes[1].bytes, Some(8));
    assert!(!storage_calls(&calls, "list").is_empty(), "{calls:#?}");

    let storage = events
        .iter()
        .find(|e| e["event"] == "storage-calls")
        .unwrap_or_else(|| panic!("no storage-calls event: {events:#?}"));
    assert_eq!(storage["step_name"], "copy");
    assert_eq!(storage["job_name"], "calls");
    let groups = storage["calls"].as_array().unwrap();
    let read = groups.iter().find(|g| g["operation"] == "read").unwrap();
    assert_eq!(read["target"], "in/a.jsonl");
    assert_eq!(
        (read["count"].as_u64(), read["bytes"].as_u64()),
        (Some(1), Some(24))
    );
    assert!(read["duration_ms"].as_f64().unwrap() >= 0.0);
    check_sql(&calls, &events, "sqlite");
}

/// Without a listener that wants them, no call is built: a `log` listener with the default
/// events gets no call events.
#[tokio::test]
async fn call_events_come_only_when_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = local_input(dir.path());
    let events = dir.path().join("events.jsonl");
    let yaml = job(&input, &input, &events)
        .replace("events: [storage-calls, sql-calls]", "events: [step-ended]");
    let (execution, _, events) = run(&yaml, Arc::new(MemoryJobRepository::new()), &events).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    let names: Vec<_> = events.iter().map(|e| e["event"].clone()).collect();
    assert_eq!(names, ["step-ended"]);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_statements_reach_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let input = local_input(dir.path());
    let events = dir.path().join("events.jsonl");
    let url = std::env::var("IKKATSU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string());
    let repository = ikkatsu::repository::connect(&url).await.unwrap();
    let (execution, calls, events) = run(&job(&input, &input, &events), repository, &events).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    check_sql(&calls, &events, "postgres");
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_requests_reach_listeners_without_credentials() {
    fn var(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: this test needs the S3 test server. Run \
                 `scripts/test-servers start` and `eval \"$(scripts/test-servers env)\"`"
            )
        })
    }
    let endpoint = var("IKKATSU_TEST_S3_ENDPOINT");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = format!("ikk-calls-{}-{nanos}", std::process::id());
    let url = format!(
        "s3://{bucket}?endpoint={endpoint}&region={}&access-key-id={}&secret-access-key={}",
        var("IKKATSU_TEST_S3_REGION"),
        var("IKKATSU_TEST_S3_ACCESS_KEY"),
        var("IKKATSU_TEST_S3_SECRET_KEY"),
    );
    create_bucket(&endpoint, &bucket).await;
    let storage = ikkatsu::storage::Storage::open(&url).unwrap();
    storage
        .write("in/a.jsonl", "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let (execution, calls, events) = run(
        &job(&url, &url, &events),
        Arc::new(MemoryJobRepository::new()),
        &events,
    )
    .await;
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );

    let lists = storage_calls(&calls, "list");
    assert!(
        lists.iter().any(|c| c.backend == "s3" && c.rows >= Some(1)),
        "{calls:#?}"
    );
    let reads = storage_calls(&calls, "read");
    assert!(
        reads
            .iter()
            .any(|c| c.target == "in/a.jsonl" && c.bytes == Some(24)),
        "{calls:#?}"
    );
    let writes = storage_calls(&calls, "write");
    assert_eq!(
        writes
            .iter()
            .map(|c| (c.target.as_str(), c.bytes))
            .collect::<Vec<_>>(),
        [
            ("out/part-00000.jsonl", Some(16)),
            ("out/part-00001.jsonl", Some(8))
        ]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.backend == "s3" || c.kind == CallKind::Sql)
    );
    let secret = var("IKKATSU_TEST_S3_SECRET_KEY");
    let text = format!("{calls:?} {events:?}");
    assert!(!text.contains(&secret), "{text}");
    let storage = events
        .iter()
        .find(|e| e["event"] == "storage-calls")
        .unwrap_or_else(|| panic!("no storage-calls event: {events:#?}"));
    let write = storage["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["operation"] == "write" && g["target"] == "out/part-00000.jsonl")
        .unwrap_or_else(|| panic!("{storage}"));
    assert_eq!(
        (write["backend"].as_str(), write["bytes"].as_u64()),
        (Some("s3"), Some(16))
    );
}

/// Creates `bucket` with an unsigned `PUT` (moto does not check signatures).
#[cfg(feature = "s3")]
async fn create_bucket(endpoint: &str, bucket: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
