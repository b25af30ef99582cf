//! Local partitioning over the in-memory repository: every record once, counts summed,
//! bounded parallelism, restart of only the failed partitions without partitioning again.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ikkatsu_core::partition::{
    LocalPartitionHandler, Partition, PartitionStep, PartitionTiming, Partitioner, RangePartitioner,
};
use ikkatsu_core::prelude::*;

/// Reads `partition.min..=partition.max` from its context and "processes" each number;
/// fails on the partition holding `fail_on` while `failing` is set.
#[derive(Default)]
struct SumWorker {
    seen: Mutex<Vec<i64>>,
    running: AtomicUsize,
    most: AtomicUsize,
    fail_on: Option<i64>,
    failing: AtomicBool,
}

#[async_trait]
impl Step for SumWorker {
    fn name(&self) -> &str {
        "sum-worker"
    }

    async fn execute(
        &self,
        execution: &mut StepExecution,
        _ctx: &StepContext,
    ) -> Result<(), Error> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let min: i64 = execution.execution_context.get("partition.min")?.unwrap();
        let max: i64 = execution.execution_context.get("partition.max")?.unwrap();
        if let Some(bad) = self.fail_on
            && (min..=max).contains(&bad)
            && self.failing.load(Ordering::SeqCst)
        {
            return Err(Error::new(
                ErrorKind::Component,
                format!("cannot process {bad}"),
            ));
        }
        self.seen.lock().unwrap().extend(min..=max);
        execution.counts.read_count = (max - min + 1) as u64;
        execution.counts.write_count = (max - min + 1) as u64;
        execution.counts.commit_count = 1;
        Ok(())
    }
}

/// Counts its calls.
struct Counting {
    inner: RangePartitioner,
    calls: AtomicUsize,
}

#[async_trait]
impl Partitioner for Counting {
    async fn partition(
        &self,
        grid_size: usize,
        ctx: &StepContext,
    ) -> Result<Vec<Partition>, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.partition(grid_size, ctx).await
    }
}

fn job(worker: Arc<SumWorker>, partitioner: Arc<Counting>, parallelism: usize) -> Job {
    let step = PartitionStep::new(
        "load",
        worker,
        partitioner,
        Arc::new(LocalPartitionHandler::new(parallelism)),
    )
    .with_grid_size(8)
    .with_timing(PartitionTiming {
        heartbeat: Duration::from_millis(100),
        ..PartitionTiming::default()
    });
    Job::linear("partitioned", vec![Arc::new(step)]).unwrap()
}

fn counting(min: i64, max: i64) -> Arc<Counting> {
    Arc::new(Counting {
        inner: RangePartitioner::new(min, max).unwrap(),
        calls: AtomicUsize::new(0),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_once_counts_summed_parallelism_bounded() {
    let repository: Arc<dyn JobRepository> = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let worker = Arc::new(SumWorker::default());
    let partitioner = counting(1, 1000);
    let execution = operator
        .start(
            &job(worker.clone(), partitioner.clone(), 3),
            JobParameters::new(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );
    let mut seen = worker.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, (1..=1000).collect::<Vec<_>>());
    assert_eq!(
        worker.most.load(Ordering::SeqCst),
        3,
        "parallelism 3 is used and not exceeded"
    );

    let steps = repository.step_executions(execution.id).await.unwrap();
    let names: BTreeSet<&str> = steps.iter().map(|s| s.step_name.as_str()).collect();
    let expected: BTreeSet<String> = std::iter::once("load".to_string())
        .chain((0..8).map(|i| format!("load:partition{i}")))
        .collect();
    assert_eq!(names, expected.iter().map(String::as_str).collect());
    let manager = steps.iter().find(|s| s.step_name == "load").unwrap();
    assert_eq!(manager.counts.read_count, 1000);
    assert_eq!(manager.counts.commit_count, 8);
    let p3 = steps
        .iter()
        .find(|s| s.step_name == "load:partition3")
        .unwrap();
    assert_eq!(
        p3.execution_context.get_str("partition.name"),
        Some("partition3")
    );
    assert_eq!(p3.execution_context.get_u64("partition.index"), Some(3));
    assert_eq!(p3.status, BatchStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reruns_only_failed_partitions_without_partitioning_again() {
    let repository: Arc<dyn JobRepository> = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let worker = Arc::new(SumWorker {
        fail_on: Some(700),
        failing: AtomicBool::new(true),
        ..SumWorker::default()
    });
    let partitioner = counting(1, 1000);
    let job = job(worker.clone(), partitioner.clone(), 2);
    let first = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.status, BatchStatus::Failed);
    let steps = repository.step_executions(first.id).await.unwrap();
    let manager = steps.iter().find(|s| s.step_name == "load").unwrap();
    let why = &manager.exit_status.description;
    assert!(
        why.contains("1 of 8 partitions failed: `load:partition5` (")
            && why.contains("cannot process 700"),
        "{why}"
    );
    assert_eq!(
        manager.counts.read_count, 875,
        "7 partitions of 125 completed"
    );

    worker.failing.store(false, Ordering::SeqCst);
    worker.seen.lock().unwrap().clear();
    let second = operator
        .restart(first.id, &job, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        second.status,
        BatchStatus::Completed,
        "{:?}",
        second.exit_status
    );
    assert_eq!(
        partitioner.calls.load(Ordering::SeqCst),
        1,
        "the plan is reused on restart"
    );
    assert_eq!(
        *worker.seen.lock().unwrap(),
        (626..=750).collect::<Vec<_>>()
    );
    let steps = repository.step_executions(second.id).await.unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s.step_name.as_str()).collect();
    assert_eq!(names, ["load", "load:partition5"]);
    assert_eq!(steps[0].counts.read_count, 125);
}

#[tokio::test]
async fn a_stopped_job_stops_its_partitions() {
    let repository: Arc<dyn JobRepository> = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let worker = Arc::new(SumWorker::default());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let execution = operator
        .start(
            &job(worker.clone(), counting(1, 10), 1),
            JobParameters::new(),
            cancel,
        )
        .await
        .unwrap();
    assert_eq!(
        execution.status,
        BatchStatus::Stopped,
        "{:?}",
        execution.exit_status
    );
}
