//! Remote partitioning end to end with the real binary, brokers and a shared PostgreSQL job
//! repository: a job with a decision, a split and a partitioned step runs its partitions on
//! two `ikkatsu worker` processes; one worker killed with SIGKILL mid-run, or the manager
//! killed and restarted, still gives every record exactly once.
//!
//! Brokers: `IKKATSU_TEST_RABBITMQ_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f) and
//! `IKKATSU_TEST_NATS_URL` (default nats://127.0.0.1:4222); the repository: a fresh database
//! on `IKKATSU_TEST_POSTGRES_URL` (default postgres://root@127.0.0.1:5432/test).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");
const RECORDS: i64 = 8_000;
const PARTITIONS: usize = 8;

fn rabbitmq() -> String {
    std::env::var("IKKATSU_TEST_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

fn nats() -> String {
    std::env::var("IKKATSU_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// A fresh PostgreSQL database; its URL.
fn fresh_database(name: &str) -> String {
    let server = std::env::var("IKKATSU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string());
    let name = format!("ikk_{name}_{}", std::process::id());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
        for statement in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    });
    let (base, query) = server.split_once('?').unwrap_or((&server, ""));
    format!(
        "{}/{name}{}{query}",
        &base[..base.rfind('/').unwrap()],
        if query.is_empty() { "" } else { "?" }
    )
}

fn query(url: &str, sql: &str) -> Vec<(String, String, i64)> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
            return Vec::new();
        };
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
        conn.close().await.ok();
        rows
    })
}

/// The partitions' step executions: (name, status, commits).
fn partitions(url: &str) -> Vec<(String, String, i64)> {
    query(
        url,
        "SELECT step_name, status, commit_count FROM ikkatsu_step_execution WHERE step_name LIKE 'load:%' ORDER BY id",
    )
}

/// A job: a decision, then a split whose second flow is the partitioned step.
fn job(dir: &Path, broker: &str, queue: &str) -> PathBuf {
    let yaml = format!(
        r#"
id: remote-squares
flow:
  start-element: check
  elements:
    check:
      decision:
        type: script
        properties: {{ script: 'if params.mode == "go" {{ "GO" }} else {{ "SKIP" }}' }}
      transitions:
        - {{ on: GO, to: fan }}
        - {{ on: SKIP, end: true }}
    fan:
      split:
        flows:
          - steps:
              - name: side
                tasklet: {{ type: noop }}
          - steps:
              - name: load
                partition:
                  partitioner: {{ type: range, properties: {{ min: 1, max: {RECORDS} }} }}
                  grid-size: {PARTITIONS}
                  heartbeat: 200ms
                  stale-after: 2s
                  remote: {{ broker: "{broker}", queue: "{queue}", timeout: 5m, poll-interval: 100ms }}
                  step:
                    chunk:
                      reader: {{ type: sequence, properties: {{ from: "${{partition.min}}", to: "${{partition.max}}" }} }}
                      processor:
                        type: script
                        properties:
                          max-operations: 100000000
                          script: "let x = 0; for i in 0..2000 {{ x += i; }} record.sq = record.n * record.n; record"
                      writer: {{ type: jsonl, properties: {{ path: "{out}/${{partition.name}}.jsonl" }} }}
                      chunk-size: 50
params:
  mode: go
"#,
        out = dir.join("out").display()
    );
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let path = dir.join("remote.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Child processes killed when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

fn worker(dir: &Path, repository: &str, broker: &str, queue: &str, n: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("worker{n}.log"))).unwrap();
    Command::new(BIN)
        .current_dir(dir)
        .args([
            "worker",
            "--broker",
            broker,
            "--queue",
            queue,
            "--repository",
            repository,
        ])
        .args([
            "--partition-heartbeat",
            "200ms",
            "--partition-stale-after",
            "2s",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn manager(dir: &Path, repository: &str, args: &[&str]) -> Child {
    let log = std::fs::File::create(dir.join("manager.log")).unwrap();
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .args(["--repository", repository, "--no-progress"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Waits until `reached`, at most 120 s.
fn wait_for(what: &str, mut reached: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !reached() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every record written once, in the partitions' files.
fn assert_exactly_once(dir: &Path) {
    let mut seen = Vec::new();
    for i in 0..PARTITIONS {
        let text = std::fs::read_to_string(dir.join(format!("out/partition{i}.jsonl"))).unwrap();
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let n = row["n"].as_i64().unwrap();
            assert_eq!(row["sq"].as_i64(), Some(n * n));
            seen.push(n);
        }
    }
    let count = seen.len();
    let distinct: BTreeSet<i64> = seen.into_iter().collect();
    assert_eq!(count as i64, RECORDS, "every record once, none twice");
    assert_eq!(distinct, (1..=RECORDS).collect());
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the manager did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn a_killed_worker_is_taken_over(broker: &str, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let repository = fresh_database(&format!("wk_{tag}"));
    let queue = format!("ikkatsu.test.{tag}.{}", std::process::id());
    let job = job(dir.path(), broker, &queue);
    let migrate = Command::new(BIN)
        .args(["migrate", "--repository", &repository])
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let mut procs = Procs(vec![
        worker(dir.path(), &repository, broker, &queue, 1),
        worker(dir.path(), &repository, broker, &queue, 2),
    ]);
    let mut run = manager(dir.path(), &repository, &["run", job.to_str().unwrap()]);
    wait_for("both workers running a partition", || {
        partitions(&repository)
            .iter()
            .filter(|(_, status, commits)| status == "STARTED" && *commits >= 3)
            .count()
            >= 2
    });
    procs.0[0].kill().unwrap();
    procs.0[0].wait().unwrap();
    let code = wait_exit(&mut run);
    assert_eq!(
        code,
        0,
        "manager:\n{}\nworker 2:\n{}",
        log(dir.path(), "manager.log"),
        log(dir.path(), "worker2.log")
    );
    let parts = partitions(&repository);
    assert_eq!(parts.len(), PARTITIONS, "{parts:?}");
    assert!(
        parts.iter().all(|(_, status, _)| status == "COMPLETED"),
        "{parts:?}"
    );
    assert!(
        log(dir.path(), "worker2.log")
            .contains("taking over a partition whose worker stopped beating"),
        "{}",
        log(dir.path(), "worker2.log")
    );
    assert_exactly_once(dir.path());
}

#[test]
fn rabbitmq_a_worker_killed_mid_partition_is_taken_over() {
    a_killed_worker_is_taken_over(&rabbitmq(), "rmq");
}

#[test]
fn nats_a_worker_killed_mid_partition_is_taken_over() {
    a_killed_worker_is_taken_over(&format!("{}?ack-wait=3s", nats()), "nats");
}

#[test]
fn a_killed_manager_restarts_without_partitioning_again() {
    let broker = rabbitmq();
    let dir = tempfile::tempdir().unwrap();
    let repository = fresh_database("mgr");
    let queue = format!("ikkatsu.test.mgr.{}", std::process::id());
    let job = job(dir.path(), &broker, &queue);
    let migrate = Command::new(BIN)
        .args(["migrate", "--repository", &repository])
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let _procs = Procs(vec![
        worker(dir.path(), &repository, &broker, &queue, 1),
        worker(dir.path(), &repository, &broker, &queue, 2),
    ]);
    let mut run = manager(dir.path(), &repository, &["run", job.to_str().unwrap()]);
    wait_for("partitions under way", || {
        partitions(&repository)
            .iter()
            .filter(|(_, _, commits)| *commits >= 2)
            .count()
            >= 2
    });
    run.kill().unwrap();
    run.wait().unwrap();
    let first = partitions(&repository);
    assert_eq!(first.len(), PARTITIONS);

    let mut restart = manager(dir.path(), &repository, &["restart", "1"]);
    let code = wait_exit(&mut restart);
    let manager_log = log(dir.path(), "manager.log");
    assert_eq!(code, 0, "{manager_log}");
    assert!(
        manager_log.contains("the partitioner is not called again"),
        "{manager_log}"
    );
    let names: BTreeSet<String> = partitions(&repository)
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    let expected: BTreeSet<String> = (0..PARTITIONS)
        .map(|i| format!("load:partition{i}"))
        .collect();
    assert_eq!(names, expected, "the same partitions, none new");
    let done = query(
        &repository,
        "SELECT e.status, e.exit_code, 0::bigint FROM ikkatsu_job_execution e ORDER BY e.id DESC LIMIT 1",
    );
    assert_eq!(done[0].0, "COMPLETED");
    assert_exactly_once(dir.path());
}
