//! A chunk commit costs at most two repository statements (the rule of
//! `docs/adr/0003-repository-schema.md`; this schema needs one): run a real chunk job
//! of 1000 items in chunks of 10 and of a single chunk, and compare the statements counted.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, with_fresh};
use ikkatsu_core::prelude::*;
use ikkatsu_repository_sql::SqlJobRepository;

const CHUNK_SIZE: usize = 10;

/// Runs a one-step chunk job over `items` items; returns the statements the run executed.
async fn statements_for_run(repository: &SqlJobRepository, job_name: &str, items: i64) -> u64 {
    let writer = VecItemWriter::new();
    let step = ChunkStep::<i64, i64>::builder("copy")
        .reader(VecItemReader::new((1..=items).collect()))
        .writer(writer.clone())
        .chunk_size(CHUNK_SIZE)
        .build()
        .unwrap();
    let job = Job::linear(job_name, vec![Arc::new(step)]).unwrap();
    // No heartbeat during the run: its statements depend on timing, not on chunks.
    let operator = JobOperator::new(repository.as_dyn()).with_settings(OperatorSettings {
        heartbeat_interval: Duration::from_secs(3600),
        stale_after: Duration::from_secs(7200),
    });
    let before = repository.statements_executed();
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    let statements = repository.statements_executed() - before;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(writer.items(), (1..=items).collect::<Vec<_>>());
    let steps = repository
        .as_dyn()
        .step_executions(execution.id)
        .await
        .unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].counts.write_count, items as u64);
    assert_eq!(
        steps[0].counts.commit_count,
        (items as u64).div_ceil(CHUNK_SIZE as u64).max(1)
    );
    statements
}

async fn at_most_two_statements_per_chunk(backend: Backend) {
    with_fresh(backend, move |repository| async move {
        // 10 items in chunks of 10: one chunk commit. It gives the fixed per-job and per-step
        // cost plus one chunk.
        let one_chunk = statements_for_run(&repository, "one-chunk", CHUNK_SIZE as i64).await;
        // 1000 items: 100 chunk commits; the final empty read commits nothing.
        let chunks = 100u64;
        let many = statements_for_run(&repository, "many-chunks", 1000).await;
        let per_chunk_total = many - one_chunk;
        println!(
            "{backend:?}: one-chunk run {one_chunk} statements, {chunks}-chunk run {many} statements, {per_chunk_total} for the {} extra chunks",
            chunks - 1
        );
        assert!(per_chunk_total <= 2 * (chunks - 1));
        // Exactly one statement per chunk: the step execution UPDATE.
        assert_eq!(per_chunk_total, chunks - 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_at_most_two_statements_per_chunk() {
    at_most_two_statements_per_chunk(Backend::Sqlite).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_at_most_two_statements_per_chunk() {
    at_most_two_statements_per_chunk(Backend::Postgres).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_at_most_two_statements_per_chunk() {
    at_most_two_statements_per_chunk(Backend::MySql).await;
}
