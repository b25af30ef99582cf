//! `ItemReader::read_chunk`: the default reads item by item, and the chunk step reads
//! through it with the same counts, skips and restart positions as item by item.

use std::sync::Arc;

use async_trait::async_trait;
use ikkatsu_core::prelude::*;
use ikkatsu_core::{ErrorKind, ExecutionContext};

/// Reads 1..=n; fails (once per position) on multiples of `bad`.
struct Numbers {
    next: i64,
    n: i64,
    bad: i64,
    /// What `supports_read_ahead` answers.
    ahead: bool,
}

impl Numbers {
    fn new(n: i64, bad: i64) -> Self {
        Numbers {
            next: 1,
            n,
            bad,
            ahead: false,
        }
    }
}

#[async_trait]
impl ItemStream for Numbers {
    async fn open(&mut self, context: &ExecutionContext) -> ikkatsu_core::Result<()> {
        self.next = context.get_u64("numbers.next").unwrap_or(1) as i64;
        Ok(())
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> ikkatsu_core::Result<()> {
        context.put("numbers.next", self.next as u64);
        Ok(())
    }
}

#[async_trait]
impl ItemReader<i64> for Numbers {
    async fn read(&mut self) -> ikkatsu_core::Result<Option<i64>> {
        if self.next > self.n {
            return Ok(None);
        }
        let item = self.next;
        self.next += 1;
        if item % self.bad == 0 {
            return Err(Error::new(ErrorKind::Parse, format!("bad item {item}")));
        }
        Ok(Some(item))
    }

    fn supports_read_ahead(&self) -> bool {
        self.ahead
    }
}

#[tokio::test]
async fn default_read_chunk_reads_up_to_max_and_keeps_items_before_an_error() {
    let mut reader = Numbers::new(10, 4);
    reader.open(&ExecutionContext::new()).await.unwrap();
    let mut items = Vec::new();
    assert!(!reader.read_chunk(2, &mut items).await.unwrap());
    assert_eq!(items, [1, 2]);
    let err = reader.read_chunk(5, &mut items).await.unwrap_err();
    assert_eq!(err.message(), "bad item 4");
    assert_eq!(items, [1, 2, 3]);
    // No read-ahead: the saved position is right after the last item returned.
    let mut context = ExecutionContext::new();
    reader.update(&mut context).await.unwrap();
    assert_eq!(context.get_u64("numbers.next"), Some(5));
    assert!(!reader.read_chunk(3, &mut items).await.unwrap());
    assert_eq!(items, [1, 2, 3, 5, 6, 7]);
    assert!(reader.read_chunk(3, &mut items).await.is_err()); // 8
    assert!(reader.read_chunk(5, &mut items).await.unwrap());
    assert_eq!(items, [1, 2, 3, 5, 6, 7, 9, 10]);
    assert!(reader.read_chunk(5, &mut items).await.unwrap());
    assert_eq!(items.len(), 8);

    let mut vec = VecItemReader::new(vec!['a', 'b', 'c']);
    vec.open(&ExecutionContext::new()).await.unwrap();
    let mut items = Vec::new();
    assert!(!vec.read_chunk(3, &mut items).await.unwrap());
    assert!(vec.read_chunk(3, &mut items).await.unwrap());
    assert_eq!(items, ['a', 'b', 'c']);
}

#[tokio::test]
async fn chunk_step_skips_read_errors_inside_a_batch() {
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let writer = VecItemWriter::new();
    let step = ChunkStep::<i64, i64>::builder("numbers")
        .reader(Numbers::new(20, 7))
        .writer(writer.clone())
        .skip_policy(SkipPolicy::new(5, vec![ErrorKind::Parse]))
        .chunk_size(5)
        .build()
        .unwrap();
    let job = Job::linear("numbers", vec![Arc::new(step)]).unwrap();
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    let steps = operator
        .repository()
        .step_executions(execution.id)
        .await
        .unwrap();
    let counts = steps[0].counts;
    assert_eq!(counts.read_count, 18);
    assert_eq!(counts.read_skip_count, 2);
    assert_eq!(counts.write_count, 18);
    // Chunks of 5 read items: 1-5, 6 8-11, 12 13 15-17, 18-20 and the end.
    assert_eq!(counts.commit_count, 4);
    let expected: Vec<i64> = (1..=20).filter(|n| n % 7 != 0).collect();
    assert_eq!(writer.items(), expected);
    assert_eq!(steps[0].execution_context.get_u64("numbers.next"), Some(21));
}

/// Filters multiples of 3, fails on multiples of 7 (`Parse`) and on 50 (`Component`),
/// recording every item it is called with.
fn check(n: i64, seen: &std::sync::Mutex<Vec<i64>>) -> ikkatsu_core::Result<Option<i64>> {
    seen.lock().unwrap().push(n);
    if n == 50 {
        Err(Error::new(ErrorKind::Component, "fatal 50"))
    } else if n % 7 == 0 {
        Err(Error::new(ErrorKind::Parse, format!("bad {n}")))
    } else if n % 3 == 0 {
        Ok(None)
    } else {
        Ok(Some(n * 10))
    }
}

/// Only implements `process`, so `process_chunk` is the trait's default.
struct ItemByItem(Arc<std::sync::Mutex<Vec<i64>>>);

#[async_trait]
impl ItemProcessor<i64, i64> for ItemByItem {
    async fn process(&self, n: i64) -> ikkatsu_core::Result<Option<i64>> {
        check(n, &self.0)
    }
}

async fn run_processing(
    items: Vec<i64>,
    batched: bool,
) -> (
    BatchStatus,
    ikkatsu_core::StepCounts,
    Vec<i64>,
    Vec<i64>,
    Option<String>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = VecItemWriter::new();
    let builder = ChunkStep::<i64, i64>::builder("process")
        .reader(VecItemReader::new(items))
        .writer(writer.clone())
        .skip_policy(SkipPolicy::new(10, vec![ErrorKind::Parse]))
        .chunk_size(8);
    let builder = if batched {
        let seen = seen.clone();
        builder.processor(FnItemProcessor::new(move |n| check(n, &seen)))
    } else {
        builder.processor(ItemByItem(seen.clone()))
    };
    let job = Job::linear("process", vec![Arc::new(builder.build().unwrap())]).unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    let steps = operator
        .repository()
        .step_executions(execution.id)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let failure = Some(format!("{:?}", steps[0].exit_status));
    (
        execution.status,
        steps[0].counts,
        writer.items(),
        seen,
        failure,
    )
}

#[tokio::test]
async fn process_chunk_override_and_default_count_skip_and_filter_alike() {
    let ok = run_processing((1..=30).collect(), true).await;
    assert_eq!(ok, run_processing((1..=30).collect(), false).await);
    let (status, counts, written, seen, _) = ok;
    assert_eq!(status, BatchStatus::Completed);
    assert_eq!(seen, (1..=30).collect::<Vec<_>>());
    assert_eq!(counts.process_skip_count, 4); // 7 14 21 28
    assert_eq!(counts.filter_count, 9); // 3 6 9 12 15 18 24 27 30
    assert_eq!(counts.write_count, 17);
    assert_eq!(written.len(), 17);
    assert_eq!(written[..3], [10, 20, 40]);

    // A failure that is not skipped stops processing at the failed item and rolls back
    // its chunk (items 49..=56).
    let failed = run_processing((1..=60).collect(), true).await;
    assert_eq!(failed, run_processing((1..=60).collect(), false).await);
    let (status, counts, written, seen, failure) = failed;
    assert_eq!(status, BatchStatus::Failed);
    assert_eq!(seen.last(), Some(&50));
    assert_eq!(counts.read_count, 48);
    assert_eq!(counts.rollback_count, 1);
    assert_eq!(written.len() as u64, counts.write_count);
    assert!(failure.unwrap_or_default().contains("fatal 50"));
}

/// Everything a run of the numbers job leaves behind, to compare read-ahead with reading in
/// the step's own task.
#[derive(Debug, PartialEq)]
struct Outcome {
    status: BatchStatus,
    counts: ikkatsu_core::StepCounts,
    next: Option<u64>,
    written: Vec<i64>,
}

/// Runs (and, while it fails, restarts) a job reading 1..=n with read errors on multiples of
/// `bad` (skipped up to `skip_limit`), failing once in processing on item `fail_at`.
async fn run_numbers(ahead: bool, n: i64, bad: i64, skip_limit: u64, fail_at: i64) -> Vec<Outcome> {
    let repository = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository);
    let writer = VecItemWriter::new();
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let processor = {
        let failed_once = failed_once.clone();
        FnItemProcessor::new(move |item: i64| {
            if item == fail_at && !failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Component, format!("fatal {item}")));
            }
            Ok(Some(item))
        })
    };
    let step = ChunkStep::<i64, i64>::builder("numbers")
        .reader(Numbers {
            ahead,
            ..Numbers::new(n, bad)
        })
        .processor(processor)
        .writer(writer.clone())
        .skip_policy(SkipPolicy::new(skip_limit, vec![ErrorKind::Parse]))
        .chunk_size(4)
        .build()
        .unwrap();
    let job = Job::linear("numbers", vec![Arc::new(step)]).unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let execution = operator
            .start(&job, JobParameters::new(), CancellationToken::new())
            .await
            .unwrap();
        let steps = operator
            .repository()
            .step_executions(execution.id)
            .await
            .unwrap();
        outcomes.push(Outcome {
            status: execution.status,
            counts: steps[0].counts,
            next: steps[0].execution_context.get_u64("numbers.next"),
            written: writer.items(),
        });
        if execution.status == BatchStatus::Completed {
            break;
        }
    }
    outcomes
}

#[tokio::test]
async fn read_ahead_gives_the_same_counts_skips_positions_and_restarts() {
    // Skipped read errors, a processing failure, a restart, completion.
    let ahead = run_numbers(true, 40, 5, 10, 23).await;
    assert_eq!(ahead, run_numbers(false, 40, 5, 10, 23).await);
    assert_eq!(ahead.len(), 2);
    assert_eq!(ahead[0].status, BatchStatus::Failed);
    // Chunks of 4 read items: 1-4, 6-9, 11-14, 16-19 committed; 21-24 rolled back at 23.
    assert_eq!(ahead[0].next, Some(20));
    assert_eq!(ahead[0].counts.read_count, 16);
    assert_eq!(ahead[0].counts.read_skip_count, 3);
    assert_eq!(ahead[1].status, BatchStatus::Completed);
    let expected: Vec<i64> = (1..=40).filter(|n| n % 5 != 0).collect();
    assert_eq!(ahead[1].written, expected);
    // The last chunk read only the (skipped) 40; it commits all the same (as in Spring
    // Batch), saving the position after it and the skip with it.
    assert_eq!(ahead[1].next, Some(41));
    assert_eq!(ahead[1].counts.read_skip_count, 5);

    // Read errors beyond the skip limit fail the step at the same chunk, with the same
    // committed position, although the read-ahead task got further.
    let ahead = run_numbers(true, 40, 3, 4, 0).await;
    assert_eq!(ahead, run_numbers(false, 40, 3, 4, 0).await);
    assert!(ahead.iter().all(|o| o.status == BatchStatus::Failed));
    // Committed: 1 2 4 5 (3 skipped) and 7 8 10 11 (6 and 9 skipped); the third chunk
    // skips 12 and fails on 15, the fifth read error.
    assert_eq!(ahead[0].counts.read_skip_count, 3);
    assert_eq!(ahead[0].next, Some(12));
}

/// A writer that, for its first chunk, waits until the reader has read the next chunk.
struct WaitsForTheNextChunk {
    read: Arc<std::sync::atomic::AtomicI64>,
}

#[async_trait]
impl ItemStream for WaitsForTheNextChunk {}

#[async_trait]
impl ItemWriter<i64> for WaitsForTheNextChunk {
    async fn write(&mut self, items: &[i64]) -> ikkatsu_core::Result<()> {
        if items[0] == 1 {
            let waited = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while self.read.load(std::sync::atomic::Ordering::SeqCst) < 8 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
            .await;
            if waited.is_err() {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    "the second chunk was not read while the first was written",
                ));
            }
        }
        Ok(())
    }
}

/// Counts the items read.
struct Counted {
    inner: Numbers,
    read: Arc<std::sync::atomic::AtomicI64>,
}

#[async_trait]
impl ItemStream for Counted {}

#[async_trait]
impl ItemReader<i64> for Counted {
    async fn read(&mut self) -> ikkatsu_core::Result<Option<i64>> {
        let item = self.inner.read().await?;
        if let Some(n) = item {
            self.read.store(n, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(item)
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_reads_the_next_chunk_while_the_current_one_is_written() {
    let read = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let step = ChunkStep::<i64, i64>::builder("overlap")
        .reader(Counted {
            inner: Numbers::new(12, i64::MAX),
            read: read.clone(),
        })
        .writer(WaitsForTheNextChunk { read })
        .chunk_size(4)
        .build()
        .unwrap();
    let job = Job::linear("overlap", vec![Arc::new(step)]).unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );
}
