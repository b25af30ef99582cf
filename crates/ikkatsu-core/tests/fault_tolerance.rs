//! Fault tolerance of chunk steps: retries per phase with their listeners, skips in read,
//! process and write, the scan of a failed chunk write, no-rollback kinds, dead letters.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ikkatsu_core::prelude::*;
use ikkatsu_core::{Record, Result};
use serde_json::{Value, json};

/// Writes items one by one to a [`VecItemWriter`] and fails on the first item in `bad`
/// (after writing the items before it, as a file writer would), and on the first
/// `flaky` writes of a chunk holding `flaky_item` (a temporary error).
#[derive(Clone)]
struct PickyWriter {
    inner: VecItemWriter<i64>,
    bad: BTreeSet<i64>,
    flaky_item: i64,
    flaky: Arc<AtomicU32>,
    writes: Arc<AtomicU32>,
}

impl PickyWriter {
    fn new(bad: impl IntoIterator<Item = i64>) -> Self {
        PickyWriter {
            inner: VecItemWriter::new(),
            bad: bad.into_iter().collect(),
            flaky_item: 0,
            flaky: Arc::new(AtomicU32::new(0)),
            writes: Arc::new(AtomicU32::new(0)),
        }
    }

    fn flaky(mut self, item: i64, failures: u32) -> Self {
        self.flaky_item = item;
        self.flaky.store(failures, Ordering::SeqCst);
        self
    }
}

#[async_trait]
impl ItemStream for PickyWriter {
    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        self.inner.update(context).await
    }
}

#[async_trait]
impl ItemWriter<i64> for PickyWriter {
    async fn write(&mut self, items: &[i64]) -> Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        for item in items {
            if *item == self.flaky_item
                && self
                    .flaky
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                return Err(
                    Error::new(ErrorKind::Io, format!("connection reset at {item}"))
                        .set_temporary(true),
                );
            }
            if self.bad.contains(item) {
                return Err(Error::new(
                    ErrorKind::Parse,
                    format!("item {item} cannot be encoded"),
                ));
            }
            self.inner.write(std::slice::from_ref(item)).await?;
        }
        Ok(())
    }

    async fn rollback(&mut self, committed: &ExecutionContext) -> Result<()> {
        self.inner.rollback(committed).await
    }
}

/// Every skip and retry a step reports, as text.
#[derive(Default)]
struct Journal(Mutex<Vec<String>>);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl SkipListener<i64, i64> for Journal {
    async fn on_skip_in_read(&self, error: &Error) -> Result<()> {
        self.push(format!("read: {error}"));
        Ok(())
    }

    async fn on_skip_in_process(&self, item: &i64, error: &Error) -> Result<()> {
        self.push(format!("process {item}: {error}"));
        Ok(())
    }

    async fn on_skip_in_write(&self, item: &i64, error: &Error) -> Result<()> {
        self.push(format!("write {item}: {error}"));
        Ok(())
    }
}

#[async_trait]
impl RetryListener for Journal {
    async fn on_retry(&self, event: &RetryEvent<'_>) -> Result<()> {
        self.push(format!(
            "retry {} {}/{}: {}",
            event.phase, event.attempt, event.limit, event.error
        ));
        Ok(())
    }
}

fn quick_retries(limit: u32, kinds: Vec<ErrorKind>) -> RetryPolicy {
    RetryPolicy {
        kinds,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        ..RetryPolicy::new(limit)
    }
}

async fn run(step: ChunkStep<i64, i64>) -> (JobExecution, StepExecution) {
    let repository = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let job = Job::linear("faults", vec![Arc::new(step)]).unwrap();
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    let mut steps = repository.step_executions(execution.id).await.unwrap();
    (execution, steps.remove(0))
}

/// The dead letters as JSON, without `message` (checked apart).
fn letters(dead: &VecItemWriter<Record>) -> Vec<Value> {
    dead.items()
        .into_iter()
        .map(|letter| {
            let mut value = serde_json::to_value(&letter).unwrap();
            value.as_object_mut().unwrap().remove("message");
            value
        })
        .collect()
}

#[tokio::test]
async fn a_scan_isolates_the_bad_item_of_a_chunk_of_ten() {
    let writer = PickyWriter::new([7]);
    let journal = Arc::new(Journal::default());
    let dead = VecItemWriter::<Record>::new();
    let step = ChunkStep::<i64, i64>::builder("scan")
        .reader(VecItemReader::new((1..=20).collect()))
        .writer(writer.clone())
        .chunk_size(10)
        .skip_policy(SkipPolicy::new(5, vec![ErrorKind::Parse]))
        .skip_listener(journal.clone())
        .dead_letter(Box::new(dead.clone()))
        .build()
        .unwrap();
    let (execution, step) = run(step).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    let expected: Vec<i64> = (1..=20).filter(|n| *n != 7).collect();
    // 1-6 were written before the failure; rolled back, they are written once, in the scan.
    assert_eq!(writer.inner.items(), expected);
    assert_eq!(step.counts.write_count, 19);
    assert_eq!(step.counts.write_skip_count, 1);
    assert_eq!(step.counts.read_count, 20);
    // The chunk write and item 7's own write were rolled back.
    assert_eq!(step.counts.rollback_count, 2);
    assert_eq!(step.counts.commit_count, 2);
    // The whole chunk, then its 10 items one by one, then the second chunk.
    assert_eq!(writer.writes.load(Ordering::SeqCst), 12);
    assert_eq!(
        journal.lines(),
        ["write 7: item 7 cannot be encoded".to_string()]
    );
    assert_eq!(
        letters(&dead),
        [json!({"step": "scan", "phase": "write", "item": 7, "kind": "parse", "record": 7})]
    );
    assert_eq!(
        dead.items()[0]["message"],
        json!("item 7 cannot be encoded")
    );
}

#[tokio::test]
async fn a_flaky_writer_is_rolled_back_and_retried_until_it_succeeds() {
    for ahead in [true, false] {
        let writer = PickyWriter::new([]).flaky(6, 2);
        let journal = Arc::new(Journal::default());
        let step = ChunkStep::<i64, i64>::builder("flaky")
            .reader(VecItemReader::new((1..=8).collect()))
            .writer(writer.clone())
            .chunk_size(4)
            .read_ahead(ahead)
            .retry_policy(quick_retries(3, vec![]))
            .retry_listener(journal.clone())
            .build()
            .unwrap();
        let (execution, step) = run(step).await;
        assert_eq!(execution.status, BatchStatus::Completed);
        // Items 1-4 committed; the chunk 5-8 failed twice at 6, after writing 5 (rolled
        // back each time), then went through.
        assert_eq!(writer.inner.items(), (1..=8).collect::<Vec<_>>());
        assert_eq!(step.counts.write_count, 8);
        assert_eq!(step.counts.rollback_count, 2);
        assert_eq!(
            journal.lines(),
            [
                "retry write 1/3: connection reset at 6",
                "retry write 2/3: connection reset at 6",
            ]
        );
    }
}

#[tokio::test]
async fn retries_spent_on_an_error_that_is_not_skippable_fail_the_step() {
    let writer = PickyWriter::new([]).flaky(3, 10);
    let step = ChunkStep::<i64, i64>::builder("gives-up")
        .reader(VecItemReader::new((1..=4).collect()))
        .writer(writer.clone())
        .retry_policy(quick_retries(2, vec![]))
        .build()
        .unwrap();
    let (execution, step) = run(step).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    assert_eq!(writer.writes.load(Ordering::SeqCst), 3);
    assert!(
        step.exit_status
            .description
            .contains("connection reset at 3"),
        "{}",
        step.exit_status.description
    );
}

#[tokio::test]
async fn the_skip_after_the_limit_fails_the_step_and_earlier_skips_are_dead_letters() {
    let writer = PickyWriter::new([3, 6, 9]);
    let dead = VecItemWriter::<Record>::new();
    let step = ChunkStep::<i64, i64>::builder("limited")
        .reader(VecItemReader::new((1..=10).collect()))
        .writer(writer.clone())
        .chunk_size(2)
        .skip_policy(SkipPolicy::new(2, vec![ErrorKind::Parse]))
        .dead_letter(Box::new(dead.clone()))
        .build()
        .unwrap();
    let (execution, step) = run(step).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    assert_eq!(step.status, BatchStatus::Failed);
    assert_eq!(
        step.exit_status.description,
        "skip limit 2 exceeded in write: item 9 cannot be encoded"
    );
    // Chunks 1-2, 3-4 (3 skipped), 5-6 (6 skipped), 7-8 committed; 9-10 failed.
    assert_eq!(step.counts.write_skip_count, 2);
    assert_eq!(step.counts.write_count, 6);
    let items: Vec<Value> = letters(&dead).iter().map(|l| l["item"].clone()).collect();
    assert_eq!(items, [json!(3), json!(6)]);
    assert_eq!(
        step.execution_context.get_u64("dead-letter.position"),
        Some(8)
    );
}

/// Reads 1..=n; `bad` items fail for good (the reader moves past them), and the read of
/// `flaky` fails `failures` times with a temporary error without moving.
struct ShakyReader {
    next: i64,
    n: i64,
    bad: i64,
    flaky: i64,
    failures: u32,
}

#[async_trait]
impl ItemStream for ShakyReader {}

#[async_trait]
impl ItemReader<i64> for ShakyReader {
    async fn read(&mut self) -> Result<Option<i64>> {
        if self.next > self.n {
            return Ok(None);
        }
        if self.next == self.flaky && self.failures > 0 {
            self.failures -= 1;
            return Err(Error::new(ErrorKind::Io, "read timed out").set_temporary(true));
        }
        let item = self.next;
        self.next += 1;
        if item == self.bad {
            return Err(Error::new(ErrorKind::Parse, format!("line {item}: bad")));
        }
        Ok(Some(item))
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

/// Fails on `bad` with a conflict, on `flaky` twice with a component error.
struct Processor {
    bad: i64,
    flaky: i64,
    calls: Arc<Mutex<Vec<i64>>>,
}

#[async_trait]
impl ItemProcessor<i64, i64> for Processor {
    async fn process(&self, item: i64) -> Result<Option<i64>> {
        let calls = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(item);
            calls.iter().filter(|n| **n == item).count()
        };
        if item == self.bad {
            return Err(Error::new(ErrorKind::Conflict, format!("{item} changed")));
        }
        if item == self.flaky && calls <= 2 {
            return Err(Error::new(ErrorKind::Component, format!("{item} busy")));
        }
        Ok(Some(item * 10))
    }
}

#[tokio::test]
async fn reads_retry_temporary_errors_and_no_rollback_kinds_skip_at_once() {
    for ahead in [true, false] {
        let journal = Arc::new(Journal::default());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let dead = VecItemWriter::<Record>::new();
        let writer = VecItemWriter::new();
        let step = ChunkStep::<i64, i64>::builder("shaky")
            .reader(ShakyReader {
                next: 1,
                n: 9,
                bad: 2,
                flaky: 5,
                failures: 2,
            })
            .processor(Processor {
                bad: 4,
                flaky: 7,
                calls: calls.clone(),
            })
            .writer(writer.clone())
            .chunk_size(3)
            .read_ahead(ahead)
            .retry_policy(quick_retries(
                3,
                vec![ErrorKind::Component, ErrorKind::Conflict, ErrorKind::Parse],
            ))
            .skip_policy(SkipPolicy::new(
                5,
                vec![ErrorKind::Parse, ErrorKind::Conflict],
            ))
            .no_rollback(vec![ErrorKind::Conflict])
            .skip_listener(journal.clone())
            .retry_listener(journal.clone())
            .dead_letter(Box::new(dead.clone()))
            .build()
            .unwrap();
        let (execution, step) = run(step).await;
        assert_eq!(execution.status, BatchStatus::Completed, "ahead: {ahead}");
        assert_eq!(writer.items(), [10, 30, 50, 60, 70, 80, 90]);
        assert_eq!(step.counts.read_skip_count, 1);
        assert_eq!(step.counts.process_skip_count, 1);
        // 4 (no rollback) was processed once; 7 three times.
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.iter().filter(|n| **n == 4).count(), 1);
        assert_eq!(calls.iter().filter(|n| **n == 7).count(), 3);
        let mut lines = journal.lines();
        // Read retries may come from the read-ahead task before the first chunk's skips.
        lines.sort();
        assert_eq!(
            lines,
            [
                "process 4: 4 changed",
                // The permanent read error of 2 is not retried, although `parse` is listed.
                "read: line 2: bad",
                "retry process 1/3: 7 busy",
                "retry process 2/3: 7 busy",
                "retry read 1/3: read timed out",
                "retry read 2/3: read timed out",
            ],
            "ahead: {ahead}"
        );
        assert_eq!(
            letters(&dead),
            [
                json!({"step": "shaky", "phase": "read", "item": 2, "kind": "parse"}),
                json!({"step": "shaky", "phase": "process", "item": 4, "kind": "conflict", "record": 4}),
            ]
        );
    }
}

#[tokio::test]
async fn a_stop_while_waiting_to_retry_stops_the_step() {
    let writer = PickyWriter::new([]).flaky(1, 100);
    let step = ChunkStep::<i64, i64>::builder("patient")
        .reader(VecItemReader::new(vec![1, 2]))
        .writer(writer.clone())
        .retry_policy(RetryPolicy {
            initial_backoff: Duration::from_secs(3600),
            ..RetryPolicy::new(5)
        })
        .build()
        .unwrap();
    let repository = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let job = Job::linear("stops", vec![Arc::new(step)]).unwrap();
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        let writes = writer.writes.clone();
        tokio::spawn(async move {
            while writes.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cancel.cancel();
        })
    };
    let execution = tokio::time::timeout(
        Duration::from_secs(30),
        operator.start(&job, JobParameters::new(), cancel),
    )
    .await
    .expect("the stop ends the wait")
    .unwrap();
    stopper.await.unwrap();
    assert_eq!(execution.status, BatchStatus::Stopped);
    assert_eq!(writer.writes.load(Ordering::SeqCst), 1);
}
