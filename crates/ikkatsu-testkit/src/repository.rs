//! The [`JobRepository`] conformance suite: one async function per behaviour, each taking a
//! fresh, empty repository. [`repository_behaviours!`](crate::repository_behaviours) lists
//! them so a backend's tests can generate one test per behaviour; [`run_all`] runs them all
//! in order.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ikkatsu_core::repository::{ExecutionQuery, NewJobExecution};
use ikkatsu_core::{
    BatchStatus, ErrorKind, ExecutionContext, ExitStatus, JobExecution, JobParameters,
    JobRepository, ParameterValue, Result, StepCounts, StepExecution,
};

/// Calls `$m!(name, name, …)` with the name of every behaviour of this suite.
#[macro_export]
macro_rules! repository_behaviours {
    ($m:ident) => {
        $m!(
            instance_get_or_create,
            non_identifying_parameters_not_in_key,
            refuses_while_running,
            refuses_after_completed_or_abandoned,
            restart_after_failed_or_stopped_copies_context,
            stopping_is_not_downgraded,
            heartbeat_returns_stored_status,
            job_execution_round_trip,
            step_execution_round_trip,
            step_heartbeat_touches_only_last_updated,
            last_step_execution_across_executions,
            find_job_executions_filters_and_orders,
            job_names_sorted_distinct,
            concurrent_creates_one_wins
        );
    };
}

/// Runs every behaviour, each on a fresh repository made by `factory`.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn JobRepository>>,
{
    macro_rules! run {
        ($($name:ident),*) => {
            $( $name(factory().await).await; )*
        };
    }
    repository_behaviours!(run);
}

fn string(value: &str) -> ParameterValue {
    ParameterValue::String(value.to_string())
}

fn params(identifying: &[(&str, &str)]) -> JobParameters {
    let mut params = JobParameters::new();
    for (name, value) in identifying {
        params.insert(*name, string(value), true);
    }
    params
}

async fn create(
    repo: &Arc<dyn JobRepository>,
    job_name: &str,
    parameters: &JobParameters,
) -> Result<JobExecution> {
    repo.create_job_execution(NewJobExecution {
        job_name,
        parameters,
        job_configuration_location: Some("jobs/test.yaml"),
        owner: "testhost:4242",
    })
    .await
}

async fn finish(repo: &Arc<dyn JobRepository>, execution: &mut JobExecution, status: BatchStatus) {
    execution.status = status;
    execution.exit_status = ExitStatus::for_status(status);
    execution.end_time = Some(Utc::now());
    repo.update_job_execution(execution)
        .await
        .unwrap_or_else(|err| panic!("finishing execution {} as {status}: {err}", execution.id));
}

/// Times at the microsecond precision every backend stores.
fn micros(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(|t| t.timestamp_micros())
}

/// The instance is found or created by job name and key; another key or job name makes
/// another instance; lookups by id and by key agree.
pub async fn instance_get_or_create(repo: Arc<dyn JobRepository>) {
    let p = params(&[("day", "2026-01-31")]);
    let mut first = create(&repo, "ingest", &p).await.unwrap();
    assert!(first.id > 0);
    assert_eq!(first.status, BatchStatus::Starting);
    assert_eq!(first.job_name, "ingest");
    let instance = repo.job_instance(first.instance_id).await.unwrap().unwrap();
    assert_eq!(instance.job_name, "ingest");
    assert_eq!(instance.job_key, p.job_key());
    assert_eq!(
        repo.find_job_instance("ingest", &p.job_key())
            .await
            .unwrap(),
        Some(instance.clone())
    );
    assert_eq!(
        repo.find_job_instance("ingest", "nope").await.unwrap(),
        None
    );
    assert_eq!(
        repo.find_job_instance("other", &p.job_key()).await.unwrap(),
        None
    );
    assert_eq!(repo.job_instance(instance.id + 1000).await.unwrap(), None);

    finish(&repo, &mut first, BatchStatus::Failed).await;
    let second = create(&repo, "ingest", &p).await.unwrap();
    assert_eq!(second.instance_id, instance.id);
    assert!(second.id > first.id);

    let other_key = create(&repo, "ingest", &params(&[("day", "2026-02-01")]))
        .await
        .unwrap();
    assert_ne!(other_key.instance_id, instance.id);
    let other_job = create(&repo, "Ingest", &p).await.unwrap();
    assert_ne!(other_job.instance_id, instance.id);
    assert_ne!(other_job.instance_id, other_key.instance_id);
    assert_eq!(
        repo.job_executions(instance.id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
}

/// Non-identifying parameters do not select the instance but are stored with the execution.
pub async fn non_identifying_parameters_not_in_key(repo: Arc<dyn JobRepository>) {
    let mut a = params(&[("input", "in.csv")]);
    a.insert("attempt", ParameterValue::Integer(1), false);
    let mut first = create(&repo, "load", &a).await.unwrap();
    finish(&repo, &mut first, BatchStatus::Failed).await;

    let mut b = params(&[("input", "in.csv")]);
    b.insert("attempt", ParameterValue::Integer(2), false);
    b.insert("verbose", ParameterValue::Bool(true), false);
    let second = create(&repo, "load", &b).await.unwrap();
    assert_eq!(second.instance_id, first.instance_id);
    let stored = repo.job_execution(second.id).await.unwrap().unwrap();
    assert_eq!(stored.parameters, b);
    assert!(!stored.parameters.get("attempt").unwrap().identifying);
    assert_eq!(stored.parameters.job_key(), a.job_key());
}

/// A second launch is refused while an execution is STARTING, STARTED or STOPPING; the
/// message names the running execution.
pub async fn refuses_while_running(repo: Arc<dyn JobRepository>) {
    let p = params(&[("run", "1")]);
    let mut running = create(&repo, "busy", &p).await.unwrap();
    for status in [
        BatchStatus::Starting,
        BatchStatus::Started,
        BatchStatus::Stopping,
    ] {
        running.status = status;
        repo.update_job_execution(&mut running).await.unwrap();
        let err = create(&repo, "busy", &p).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyRunning, "{status}: {err}");
        assert!(
            err.message().contains(&format!("execution {}", running.id)),
            "message does not name execution {}: {err}",
            running.id
        );
    }
    assert_eq!(
        repo.job_executions(running.instance_id)
            .await
            .unwrap()
            .len(),
        1
    );
    // Without identifying parameters the single instance is refused the same way.
    let none = JobParameters::new();
    let first = create(&repo, "busy-noparams", &none).await.unwrap();
    let err = create(&repo, "busy-noparams", &none).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyRunning);
    assert!(err.message().contains(&format!("execution {}", first.id)));
}

/// After COMPLETED (with identifying parameters) or ABANDONED, a launch is refused; a job
/// without identifying parameters may run again after COMPLETED.
pub async fn refuses_after_completed_or_abandoned(repo: Arc<dyn JobRepository>) {
    let p = params(&[("day", "1")]);
    let mut done = create(&repo, "daily", &p).await.unwrap();
    finish(&repo, &mut done, BatchStatus::Completed).await;
    let err = create(&repo, "daily", &p).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyComplete, "{err}");
    assert!(
        err.message().contains(&format!("execution {}", done.id)),
        "{err}"
    );

    let q = params(&[("day", "2")]);
    let mut abandoned = create(&repo, "daily", &q).await.unwrap();
    finish(&repo, &mut abandoned, BatchStatus::Abandoned).await;
    let err = create(&repo, "daily", &q).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyComplete, "{err}");
    assert!(
        err.message()
            .contains(&format!("execution {}", abandoned.id))
    );

    let none = JobParameters::new();
    let mut once = create(&repo, "cleanup", &none).await.unwrap();
    finish(&repo, &mut once, BatchStatus::Completed).await;
    let again = create(&repo, "cleanup", &none).await.unwrap();
    assert_eq!(again.instance_id, once.instance_id);
    assert!(again.id > once.id);
}

/// After FAILED or STOPPED a new execution of the instance is allowed and starts with the
/// job-level execution context of the last one.
pub async fn restart_after_failed_or_stopped_copies_context(repo: Arc<dyn JobRepository>) {
    let p = params(&[("file", "a.csv")]);
    let mut first = create(&repo, "restartable", &p).await.unwrap();
    assert!(first.execution_context.is_empty());
    first.execution_context.put("offset", 120u64);
    first.execution_context.put("name", "part-1");
    finish(&repo, &mut first, BatchStatus::Failed).await;

    let mut second = create(&repo, "restartable", &p).await.unwrap();
    assert_eq!(second.instance_id, first.instance_id);
    assert_eq!(second.status, BatchStatus::Starting);
    assert_eq!(second.execution_context, first.execution_context);
    assert_eq!(
        repo.job_execution(second.id)
            .await
            .unwrap()
            .unwrap()
            .execution_context
            .get_u64("offset"),
        Some(120)
    );
    second.execution_context.put("offset", 240u64);
    finish(&repo, &mut second, BatchStatus::Stopped).await;

    let third = create(&repo, "restartable", &p).await.unwrap();
    assert_eq!(third.execution_context.get_u64("offset"), Some(240));
    assert_eq!(third.execution_context.get_str("name"), Some("part-1"));
}

/// A stored STOPPING is not replaced by STARTING/STARTED; the caller's status is set to the
/// stored one; a finished status replaces it; versions increase by one per update.
pub async fn stopping_is_not_downgraded(repo: Arc<dyn JobRepository>) {
    let mut runner = create(&repo, "stoppable", &params(&[("k", "v")]))
        .await
        .unwrap();
    assert_eq!(runner.version, 0);
    runner.status = BatchStatus::Started;
    runner.start_time = Some(Utc::now());
    repo.update_job_execution(&mut runner).await.unwrap();
    assert_eq!(runner.status, BatchStatus::Started);
    assert_eq!(runner.version, 1);

    // Another process requests a stop.
    let mut operator = repo.job_execution(runner.id).await.unwrap().unwrap();
    operator.status = BatchStatus::Stopping;
    repo.update_job_execution(&mut operator).await.unwrap();
    assert_eq!(operator.version, 2);

    // The runner saves its progress with its stale STARTED.
    runner.execution_context.put("progress", 3u64);
    repo.update_job_execution(&mut runner).await.unwrap();
    assert_eq!(runner.status, BatchStatus::Stopping);
    assert_eq!(runner.version, 3);
    let stored = repo.job_execution(runner.id).await.unwrap().unwrap();
    assert_eq!(stored.status, BatchStatus::Stopping);
    assert_eq!(stored.execution_context.get_u64("progress"), Some(3));

    runner.status = BatchStatus::Starting;
    repo.update_job_execution(&mut runner).await.unwrap();
    assert_eq!(runner.status, BatchStatus::Stopping);

    finish(&repo, &mut runner, BatchStatus::Stopped).await;
    assert_eq!(runner.status, BatchStatus::Stopped);
    let stored = repo.job_execution(runner.id).await.unwrap().unwrap();
    assert_eq!(stored.status, BatchStatus::Stopped);
    assert_eq!(stored.version, 5);

    let mut ghost = runner.clone();
    ghost.id = runner.id + 1000;
    let err = repo.update_job_execution(&mut ghost).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// A heartbeat refreshes `last_updated` and returns the stored status.
pub async fn heartbeat_returns_stored_status(repo: Arc<dyn JobRepository>) {
    let mut execution = create(&repo, "beating", &params(&[("a", "b")]))
        .await
        .unwrap();
    assert_eq!(
        repo.heartbeat(execution.id).await.unwrap(),
        BatchStatus::Starting
    );
    execution.status = BatchStatus::Started;
    repo.update_job_execution(&mut execution).await.unwrap();
    let before = repo
        .job_execution(execution.id)
        .await
        .unwrap()
        .unwrap()
        .last_updated;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        repo.heartbeat(execution.id).await.unwrap(),
        BatchStatus::Started
    );
    let after = repo.job_execution(execution.id).await.unwrap().unwrap();
    assert!(
        after.last_updated > before,
        "{} <= {before}",
        after.last_updated
    );
    assert_eq!(
        after.version, execution.version,
        "a heartbeat is not an update"
    );

    let mut stopper = after.clone();
    stopper.status = BatchStatus::Stopping;
    repo.update_job_execution(&mut stopper).await.unwrap();
    assert_eq!(
        repo.heartbeat(execution.id).await.unwrap(),
        BatchStatus::Stopping
    );
    let err = repo.heartbeat(execution.id + 1000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Every field of a job execution is stored and read back.
pub async fn job_execution_round_trip(repo: Arc<dyn JobRepository>) {
    let mut p = JobParameters::new();
    p.insert("name", string("Zoë, \"quoted\""), true);
    p.insert("count", ParameterValue::Integer(-42), true);
    p.insert("rate", ParameterValue::Float(0.25), false);
    p.insert("flag", ParameterValue::Bool(true), false);
    p.insert(
        "day",
        ParameterValue::Date(chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()),
        true,
    );
    p.insert(
        "at",
        ParameterValue::DateTime(DateTime::from_timestamp(1_767_225_600, 0).unwrap()),
        false,
    );
    let created = create(&repo, "roundtrip", &p).await.unwrap();
    let stored = repo.job_execution(created.id).await.unwrap().unwrap();
    assert_eq!(stored.parameters, p);
    assert_eq!(stored.owner.as_deref(), Some("testhost:4242"));
    assert_eq!(
        stored.job_configuration_location.as_deref(),
        Some("jobs/test.yaml")
    );
    assert_eq!(stored.status, BatchStatus::Starting);
    assert_eq!(stored.exit_status, ExitStatus::unknown());
    assert_eq!(
        micros(Some(stored.create_time)),
        micros(Some(created.create_time))
    );
    assert_eq!(stored.start_time, None);
    assert_eq!(stored.end_time, None);

    let mut execution = stored;
    let start = Utc::now() - Duration::seconds(30);
    execution.status = BatchStatus::Failed;
    execution.exit_status = ExitStatus::failed().with_description("step `x` failed: boom\nline 2");
    execution.start_time = Some(start);
    execution.end_time = Some(start + Duration::milliseconds(1500));
    execution.owner = Some("otherhost:7".into());
    let mut ctx = ExecutionContext::new();
    ctx.put("nested", serde_json_value());
    ctx.put("unicode", "日本語 ✓");
    execution.execution_context = ctx.clone();
    repo.update_job_execution(&mut execution).await.unwrap();

    let back = repo.job_execution(execution.id).await.unwrap().unwrap();
    assert_eq!(back.id, execution.id);
    assert_eq!(back.instance_id, execution.instance_id);
    assert_eq!(back.job_name, "roundtrip");
    assert_eq!(back.status, BatchStatus::Failed);
    assert_eq!(back.exit_status, execution.exit_status);
    assert_eq!(micros(back.start_time), micros(Some(start)));
    assert_eq!(
        micros(back.end_time),
        micros(Some(start + Duration::milliseconds(1500)))
    );
    assert_eq!(
        micros(Some(back.last_updated)),
        micros(Some(execution.last_updated))
    );
    assert_eq!(back.owner.as_deref(), Some("otherhost:7"));
    assert_eq!(back.execution_context, ctx);
    assert_eq!(back.version, 1);
    assert_eq!(back.parameters, p);
    assert_eq!(repo.job_execution(execution.id + 1000).await.unwrap(), None);
}

fn serde_json_value() -> std::collections::BTreeMap<String, Vec<i64>> {
    let mut map = std::collections::BTreeMap::new();
    map.insert("files".to_string(), vec![1, 2, 3]);
    map.insert("empty".to_string(), Vec::new());
    map
}

/// A step execution gets an id when added; updates store counts, status, exit status, times
/// and context and bump the version; steps are listed in creation order.
pub async fn step_execution_round_trip(repo: Arc<dyn JobRepository>) {
    let job = create(&repo, "stepped", &params(&[("x", "1")]))
        .await
        .unwrap();
    let mut first = StepExecution::new(job.id, "read-file");
    repo.add_step_execution(&mut first).await.unwrap();
    assert!(first.id > 0);
    let mut second = StepExecution::new(job.id, "write-db");
    repo.add_step_execution(&mut second).await.unwrap();
    assert!(second.id > first.id);

    let listed = repo.step_executions(job.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert_eq!(listed[0].status, BatchStatus::Starting);
    assert_eq!(listed[0].exit_status, ExitStatus::executing());
    assert_eq!(listed[0].counts, StepCounts::default());
    assert_eq!(micros(listed[0].start_time), micros(first.start_time));
    assert_eq!(listed[0].version, 0);

    first.status = BatchStatus::Started;
    first.counts = StepCounts {
        read_count: 1_000_000_007,
        write_count: 2,
        filter_count: 3,
        read_skip_count: 4,
        process_skip_count: 5,
        write_skip_count: 6,
        commit_count: 7,
        rollback_count: 8,
    };
    first.execution_context.put("reader.offset", 4096u64);
    first
        .execution_context
        .put("writer.file", "out/part-0001.jsonl");
    repo.update_step_execution(&mut first).await.unwrap();
    assert_eq!(first.version, 1);
    first.status = BatchStatus::Completed;
    first.exit_status = ExitStatus::new("DONE-CUSTOM").with_description("all good");
    first.end_time = Some(Utc::now());
    repo.update_step_execution(&mut first).await.unwrap();
    assert_eq!(first.version, 2);

    let back = repo.step_executions(job.id).await.unwrap().remove(0);
    assert_eq!(back.id, first.id);
    assert_eq!(back.job_execution_id, job.id);
    assert_eq!(back.step_name, "read-file");
    assert_eq!(back.status, BatchStatus::Completed);
    assert_eq!(back.exit_status, first.exit_status);
    assert_eq!(back.counts, first.counts);
    assert_eq!(back.counts.skip_count(), 15);
    assert_eq!(back.execution_context, first.execution_context);
    assert_eq!(micros(back.end_time), micros(first.end_time));
    assert_eq!(
        micros(Some(back.last_updated)),
        micros(Some(first.last_updated))
    );
    assert_eq!(back.version, 2);
    assert!(
        repo.step_executions(job.id + 1000)
            .await
            .unwrap()
            .is_empty()
    );

    let mut ghost = first.clone();
    ghost.id = second.id + 1000;
    let err = repo.update_step_execution(&mut ghost).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// A step execution's heartbeat moves `last_updated` and nothing else; an unknown id is
/// NotFound on the memory backend and ignored by SQL ones (no row to touch), never an error
/// of another kind.
pub async fn step_heartbeat_touches_only_last_updated(repo: Arc<dyn JobRepository>) {
    let job = create(&repo, "beating", &params(&[])).await.unwrap();
    let mut step = StepExecution::new(job.id, "partitioned:partition0");
    step.status = BatchStatus::Started;
    step.execution_context.put("partition.min", 1u64);
    repo.add_step_execution(&mut step).await.unwrap();
    let before = repo.step_executions(job.id).await.unwrap().remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    repo.heartbeat_step_execution(step.id).await.unwrap();
    let after = repo.step_executions(job.id).await.unwrap().remove(0);
    assert!(after.last_updated > before.last_updated, "{after:?}");
    assert_eq!(
        (after.status, after.version),
        (before.status, before.version)
    );
    assert_eq!(after.execution_context, before.execution_context);
    if let Err(err) = repo.heartbeat_step_execution(step.id + 1000).await {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
}

/// The last step execution of a name is found across all executions of an instance, and
/// only of that instance; the start count covers all executions.
pub async fn last_step_execution_across_executions(repo: Arc<dyn JobRepository>) {
    let p = params(&[("batch", "7")]);
    let mut first = create(&repo, "multi", &p).await.unwrap();
    let mut s1 = StepExecution::new(first.id, "load");
    repo.add_step_execution(&mut s1).await.unwrap();
    s1.status = BatchStatus::Failed;
    s1.execution_context.put("offset", 10u64);
    repo.update_step_execution(&mut s1).await.unwrap();
    let mut other_step = StepExecution::new(first.id, "report");
    repo.add_step_execution(&mut other_step).await.unwrap();
    finish(&repo, &mut first, BatchStatus::Failed).await;

    let second = create(&repo, "multi", &p).await.unwrap();
    let last = repo
        .last_step_execution(second.instance_id, "load")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.id, s1.id);
    assert_eq!(last.execution_context.get_u64("offset"), Some(10));
    assert_eq!(last.status, BatchStatus::Failed);

    let mut s2 = StepExecution::new(second.id, "load");
    repo.add_step_execution(&mut s2).await.unwrap();
    // Another instance's step of the same name is not counted.
    let other = create(&repo, "multi", &params(&[("batch", "8")]))
        .await
        .unwrap();
    let mut foreign = StepExecution::new(other.id, "load");
    repo.add_step_execution(&mut foreign).await.unwrap();

    let last = repo
        .last_step_execution(second.instance_id, "load")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.id, s2.id);
    assert_eq!(last.job_execution_id, second.id);
    assert_eq!(
        repo.step_execution_count(second.instance_id, "load")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        repo.step_execution_count(second.instance_id, "report")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        repo.step_execution_count(other.instance_id, "load")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        repo.step_execution_count(second.instance_id, "missing")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        repo.last_step_execution(second.instance_id, "missing")
            .await
            .unwrap(),
        None
    );
}

/// `find_job_executions` filters by job name and status, orders newest first and limits.
pub async fn find_job_executions_filters_and_orders(repo: Arc<dyn JobRepository>) {
    let mut ids = Vec::new();
    for (job, n, status) in [
        ("alpha", "1", BatchStatus::Completed),
        ("beta", "1", BatchStatus::Failed),
        ("alpha", "2", BatchStatus::Failed),
        ("alpha", "3", BatchStatus::Completed),
        ("beta", "2", BatchStatus::Completed),
    ] {
        let mut execution = create(&repo, job, &params(&[("n", n)])).await.unwrap();
        finish(&repo, &mut execution, status).await;
        ids.push(execution.id);
    }
    let running = create(&repo, "alpha", &params(&[("n", "4")]))
        .await
        .unwrap();
    ids.push(running.id);

    let find = |job_name: Option<&str>, status: Option<BatchStatus>, limit: Option<u64>| {
        let repo = repo.clone();
        let query = ExecutionQuery {
            job_name: job_name.map(str::to_string),
            status,
            limit,
        };
        async move {
            repo.find_job_executions(&query)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        find(None, None, None).await,
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(
        find(Some("alpha"), None, None).await,
        vec![ids[5], ids[3], ids[2], ids[0]]
    );
    assert_eq!(
        find(None, Some(BatchStatus::Completed), None).await,
        vec![ids[4], ids[3], ids[0]]
    );
    assert_eq!(
        find(Some("alpha"), Some(BatchStatus::Completed), None).await,
        vec![ids[3], ids[0]]
    );
    assert_eq!(
        find(Some("alpha"), None, Some(2)).await,
        vec![ids[5], ids[3]]
    );
    assert_eq!(
        find(None, Some(BatchStatus::Starting), Some(10)).await,
        vec![ids[5]]
    );
    assert_eq!(find(None, None, Some(0)).await, Vec::<i64>::new());
    assert_eq!(find(Some("gamma"), None, None).await, Vec::<i64>::new());
    assert_eq!(find(Some("ALPHA"), None, None).await, Vec::<i64>::new());
}

/// Job names are listed once each, sorted.
pub async fn job_names_sorted_distinct(repo: Arc<dyn JobRepository>) {
    assert!(repo.job_names().await.unwrap().is_empty());
    for (job, n) in [("zeta", "1"), ("alpha", "1"), ("Beta", "1"), ("zeta", "2")] {
        create(&repo, job, &params(&[("n", n)])).await.unwrap();
    }
    assert_eq!(
        repo.job_names().await.unwrap(),
        vec!["Beta".to_string(), "alpha".to_string(), "zeta".to_string()]
    );
}

/// Concurrent launches of one instance: exactly one succeeds, the others are refused as
/// already running; the same holds for a brand-new instance and after a failed run.
pub async fn concurrent_creates_one_wins(repo: Arc<dyn JobRepository>) {
    const LAUNCHES: usize = 8;
    let p = params(&[("race", "1")]);
    for round in 0..2 {
        let tasks: Vec<_> = (0..LAUNCHES)
            .map(|_| {
                let repo = repo.clone();
                let p = p.clone();
                tokio::spawn(async move { create(&repo, "racy", &p).await })
            })
            .collect();
        let mut winners = Vec::new();
        let mut refused = 0;
        for task in futures::future::join_all(tasks).await {
            match task.expect("launch task panicked") {
                Ok(execution) => winners.push(execution),
                Err(err) => {
                    assert_eq!(
                        err.kind(),
                        ErrorKind::AlreadyRunning,
                        "round {round}: {err}"
                    );
                    refused += 1;
                }
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(refused, LAUNCHES - 1);
        let mut winner = winners.remove(0);
        let instance = repo
            .find_job_instance("racy", &p.job_key())
            .await
            .unwrap()
            .unwrap();
        let executions = repo.job_executions(instance.id).await.unwrap();
        assert_eq!(executions.len(), round + 1);
        assert_eq!(executions[0].id, winner.id);
        finish(&repo, &mut winner, BatchStatus::Failed).await;
    }
}
