//! The `webhook` listener type against a real HTTP server on 127.0.0.1: the events posted,
//! retries after server errors, no retry after other client errors, the timeout, `fail-job`
//! both ways, and secrets (in the URL and in headers) kept out of messages and logs.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use ikkatsu_config::registry::ComponentRegistry;
use ikkatsu_config::{AppConfig, JobDefinition};
use ikkatsu_core::prelude::*;

/// What the server answers to one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Waits this long, then answers 200.
    Slow(Duration),
}

/// One request the server received.
#[derive(Debug, Clone)]
struct Received {
    headers: hyper::HeaderMap,
    body: serde_json::Value,
}

#[derive(Default)]
struct State {
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// An HTTP server on 127.0.0.1 answering with `replies` in turn, then 200.
struct Server {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    async fn start(replies: &[Reply]) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            replies: Mutex::new(replies.iter().copied().collect()),
            received: Mutex::default(),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server { addr, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let reply = state.replies.lock().unwrap().pop_front();
    state.received.lock().unwrap().push(Received {
        headers: parts.headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let status = match reply {
        Some(Reply::Status(status)) => status,
        Some(Reply::Slow(wait)) => {
            tokio::time::sleep(wait).await;
            200
        }
        None => 200,
    };
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// A job of one `noop` step with a webhook listener of `properties` on the job and on the
/// step.
async fn run(properties: &str) -> JobExecution {
    let yaml = format!(
        "id: hooked\nlisteners:\n  - type: webhook\n    properties: {properties}\nsteps:\n  - name: only\n    tasklet: {{ type: noop }}\n    listeners:\n      - type: webhook\n        properties: {properties}\n"
    );
    let definition = JobDefinition::from_str(&yaml, "job.yaml").unwrap();
    let mut registry = ComponentRegistry::new();
    ikkatsu_items::register(&mut registry, &Arc::new(AppConfig::default()));
    let job = definition.build(&registry, &JobParameters::new()).unwrap();
    JobOperator::new(Arc::new(MemoryJobRepository::new()))
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap()
}

fn names(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.body["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test]
async fn events_are_posted_as_json_with_the_headers() {
    let server = Server::start(&[]).await;
    let properties = format!(
        "{{url: '{}', headers: {{X-Team: batch}}}}",
        server.url("/hook")
    );
    let execution = run(&properties).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    let received = server.received();
    assert_eq!(
        names(&received),
        ["job-started", "step-started", "step-ended", "job-ended"]
    );
    for r in &received {
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-team"], "batch");
        assert_eq!(r.body["job_name"], "hooked");
        assert_eq!(r.body["execution_id"], execution.id);
    }
    let step_ended = &received[2].body;
    assert_eq!(step_ended["step_name"], "only");
    assert_eq!(step_ended["status"], "COMPLETED");
    assert_eq!(step_ended["counts"]["commit_count"], 1, "{step_ended}");
    assert!(step_ended["resources"]["rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(received[3].body["status"], "COMPLETED");
}

#[tokio::test]
async fn server_errors_are_retried_until_the_post_succeeds() {
    let server = Server::start(&[Reply::Status(500), Reply::Status(503), Reply::Status(429)]).await;
    let properties = format!(
        "{{url: '{}', events: [job-ended], fail-job: true}}",
        server.url("/hook")
    );
    let execution = run(&properties).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    // Three failures retried (the default `retries: 3`), the fourth attempt succeeded.
    assert_eq!(names(&server.received()), ["job-ended"; 4]);
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_fails_the_job_naming_the_url_without_secrets() {
    let server = Server::start(&[Reply::Status(404)]).await;
    let properties = format!(
        "{{url: '{}', events: [step-ended], fail-job: true}}",
        server.url("/hook?token=s3cr3t-t0ken")
    );
    let execution = run(&properties).await;
    assert_eq!(names(&server.received()), ["step-ended"]);
    assert_eq!(execution.status, BatchStatus::Failed);
    let description = &execution.exit_status.description;
    assert!(description.contains("HTTP 404 Not Found"), "{description}");
    assert!(
        description.contains(&server.url("/hook?token=***")),
        "{description}"
    );
    assert!(!description.contains("s3cr3t-t0ken"), "{description}");
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = Server::start(&[Reply::Slow(Duration::from_secs(3))]).await;
    let properties = format!(
        "{{url: '{}', events: [job-started], timeout: 200ms, retries: 0, fail-job: true}}",
        server.url("/slow")
    );
    let execution = run(&properties).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    let description = &execution.exit_status.description;
    assert!(
        description.contains("no answer within 200ms"),
        "{description}"
    );
    assert_eq!(names(&server.received()), ["job-started"]);
}

/// A `MakeWriter` keeping everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_webhook_only_warns_by_default_and_logs_no_secret() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = Server::start(&[Reply::Status(500); 8]).await;
    let properties = format!(
        "{{url: '{}', headers: {{Authorization: Bearer hdr-s3cr3t}}, events: [job-ended], retries: 1}}",
        server.url("/hook?sig=url-s3cr3t")
    );
    let execution = run(&properties).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    let received = server.received();
    assert_eq!(names(&received), ["job-ended"; 2]);
    assert_eq!(received[0].headers["authorization"], "Bearer hdr-s3cr3t");
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(
        logged.contains("posting job-ended to http://") && logged.contains("HTTP 500"),
        "{logged}"
    );
    assert!(logged.contains("sig=***"), "{logged}");
    assert!(!logged.contains("hdr-s3cr3t"), "{logged}");
    assert!(!logged.contains("url-s3cr3t"), "{logged}");
}

#[tokio::test]
async fn a_bad_url_or_header_is_a_configuration_error() {
    for (properties, expected) in [
        (
            "{url: 'ftp://example.com/x'}",
            "is not an http:// or https:// URL",
        ),
        (
            "{url: 'http://127.0.0.1:9/x', headers: {'bad name': v}}",
            "invalid header name `bad name`",
        ),
    ] {
        let yaml = format!(
            "id: j\nlisteners:\n  - type: webhook\n    properties: {properties}\nsteps:\n  - name: s\n    tasklet: {{ type: noop }}\n"
        );
        let definition = JobDefinition::from_str(&yaml, "job.yaml").unwrap();
        let mut registry = ComponentRegistry::new();
        ikkatsu_items::register(&mut registry, &Arc::new(AppConfig::default()));
        let err = definition
            .build(&registry, &JobParameters::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains(expected), "{err}");
    }
}
