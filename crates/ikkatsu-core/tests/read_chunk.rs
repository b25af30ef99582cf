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
}

#[tokio::test]
async fn default_read_chunk_reads_up_to_max_and_keeps_items_before_an_error() {
    let mut reader = Numbers {
        next: 1,
        n: 10,
        bad: 4,
    };
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
        .reader(Numbers {
            next: 1,
            n: 20,
            bad: 7,
        })
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
