//! Item listeners of chunk steps: read, process and write listeners are told of every
//! item in the order of Spring Batch's, errors included, and an error of a listener fails
//! the step.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ikkatsu_core::Result;
use ikkatsu_core::prelude::*;

/// Reads 1..=5; the read of 3 fails (a parse error, so it can be skipped).
struct Numbers {
    next: i64,
}

#[async_trait]
impl ItemStream for Numbers {}

#[async_trait]
impl ItemReader<i64> for Numbers {
    async fn read(&mut self) -> Result<Option<i64>> {
        self.next += 1;
        match self.next {
            3 => Err(Error::new(ErrorKind::Parse, "line 3 is broken")),
            n if n <= 5 => Ok(Some(n)),
            _ => Ok(None),
        }
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

/// Filters 2 out, fails on 4, multiplies the rest by 10.
struct Tens;

#[async_trait]
impl ItemProcessor<i64, i64> for Tens {
    async fn process(&self, item: i64) -> Result<Option<i64>> {
        match item {
            2 => Ok(None),
            4 => Err(Error::new(ErrorKind::Parse, "4 is not welcome")),
            n => Ok(Some(n * 10)),
        }
    }
}

/// Fails every write holding 50.
#[derive(Clone)]
struct NoFifty(VecItemWriter<i64>);

#[async_trait]
impl ItemStream for NoFifty {}

#[async_trait]
impl ItemWriter<i64> for NoFifty {
    async fn write(&mut self, items: &[i64]) -> Result<()> {
        if items.contains(&50) {
            return Err(Error::new(ErrorKind::Parse, "50 cannot be written"));
        }
        self.0.write(items).await
    }
}

/// What the listeners were told, as text; `fail_after_write` makes `after_write` fail.
#[derive(Default)]
struct Journal {
    lines: Mutex<Vec<String>>,
    fail_after_write: bool,
}

impl Journal {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

#[async_trait]
impl ItemReadListener<i64> for Journal {
    async fn before_read(&self) -> Result<()> {
        self.push("before read".into());
        Ok(())
    }

    async fn after_read(&self, item: &i64) -> Result<()> {
        self.push(format!("after read {item}"));
        Ok(())
    }

    async fn on_read_error(&self, error: &Error) -> Result<()> {
        self.push(format!("read error: {}", error.message()));
        Ok(())
    }
}

#[async_trait]
impl ItemProcessListener<i64, i64> for Journal {
    async fn before_process(&self, item: &i64) -> Result<()> {
        self.push(format!("before process {item}"));
        Ok(())
    }

    async fn after_process(&self, item: &i64, result: Option<&i64>) -> Result<()> {
        self.push(format!("after process {item} -> {result:?}"));
        Ok(())
    }

    async fn on_process_error(&self, item: &i64, error: &Error) -> Result<()> {
        self.push(format!("process error {item}: {}", error.message()));
        Ok(())
    }
}

#[async_trait]
impl ItemWriteListener<i64> for Journal {
    async fn before_write(&self, items: &[i64]) -> Result<()> {
        self.push(format!("before write {items:?}"));
        Ok(())
    }

    async fn after_write(&self, items: &[i64]) -> Result<()> {
        self.push(format!("after write {items:?}"));
        if self.fail_after_write {
            return Err(Error::new(ErrorKind::Component, "the listener broke"));
        }
        Ok(())
    }

    async fn on_write_error(&self, items: &[i64], error: &Error) -> Result<()> {
        self.push(format!("write error {items:?}: {}", error.message()));
        Ok(())
    }
}

fn step(journal: &Arc<Journal>, writer: &NoFifty) -> ChunkStep<i64, i64> {
    ChunkStep::<i64, i64>::builder("listened")
        .reader(Numbers { next: 0 })
        .processor(Tens)
        .writer(writer.clone())
        .chunk_size(2)
        .skip_policy(SkipPolicy::new(10, vec![ErrorKind::Parse]))
        .item_read_listener(journal.clone())
        .item_process_listener(journal.clone())
        .item_write_listener(journal.clone())
        .build()
        .unwrap()
}

async fn run(step: ChunkStep<i64, i64>) -> (JobExecution, StepExecution) {
    let repository = Arc::new(MemoryJobRepository::new());
    let operator = JobOperator::new(repository.clone());
    let job = Job::linear("items", vec![Arc::new(step)]).unwrap();
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    let mut steps = repository.step_executions(execution.id).await.unwrap();
    (execution, steps.remove(0))
}

#[tokio::test]
async fn item_listeners_hear_every_read_process_and_write_in_order() {
    let journal = Arc::new(Journal::default());
    let writer = NoFifty(VecItemWriter::new());
    let (execution, step) = run(step(&journal, &writer)).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(writer.0.items(), [10]);
    assert_eq!(
        (
            step.counts.read_skip_count,
            step.counts.process_skip_count,
            step.counts.write_skip_count,
            step.counts.filter_count
        ),
        (1, 1, 1, 1)
    );
    // Chunk by chunk (no read-ahead: the reads of a chunk come after the writes of the one
    // before); the failed write of [50] is reported, then its scan item by item.
    assert_eq!(
        journal.lines(),
        [
            "before read",
            "after read 1",
            "before read",
            "after read 2",
            "before process 1",
            "after process 1 -> Some(10)",
            "before process 2",
            "after process 2 -> None",
            "before write [10]",
            "after write [10]",
            "before read",
            "read error: line 3 is broken",
            "before read",
            "after read 4",
            "before read",
            "after read 5",
            "before process 4",
            "process error 4: 4 is not welcome",
            "before process 5",
            "after process 5 -> Some(50)",
            "before write [50]",
            "write error [50]: 50 cannot be written",
            "before write [50]",
            "write error [50]: 50 cannot be written",
            "before read",
        ]
    );
}

#[tokio::test]
async fn an_error_of_an_item_listener_fails_the_step() {
    let journal = Arc::new(Journal {
        fail_after_write: true,
        ..Journal::default()
    });
    let writer = NoFifty(VecItemWriter::new());
    let (execution, step) = run(step(&journal, &writer)).await;
    assert_eq!(execution.status, BatchStatus::Failed);
    assert_eq!(step.status, BatchStatus::Failed);
    // The chunk of [10] was written but not committed.
    assert_eq!(step.counts.commit_count, 0);
    assert_eq!(journal.lines().last().unwrap(), "after write [10]");
}

/// Fails the first processing of every item with a temporary error.
#[derive(Default)]
struct FlakyOnce(Mutex<Vec<i64>>);

#[async_trait]
impl ItemProcessor<i64, i64> for FlakyOnce {
    async fn process(&self, item: i64) -> Result<Option<i64>> {
        let mut seen = self.0.lock().unwrap();
        if !seen.contains(&item) {
            seen.push(item);
            return Err(Error::new(ErrorKind::Io, format!("{item} timed out")).set_temporary(true));
        }
        Ok(Some(item))
    }
}

#[tokio::test]
async fn process_listeners_hear_each_attempt_of_a_retried_item() {
    let journal = Arc::new(Journal::default());
    let writer = VecItemWriter::new();
    let step = ChunkStep::<i64, i64>::builder("retried")
        .reader(VecItemReader::new(vec![1]))
        .processor(FlakyOnce::default())
        .writer(writer.clone())
        .retry_policy(RetryPolicy {
            initial_backoff: std::time::Duration::from_millis(1),
            ..RetryPolicy::new(1)
        })
        .item_process_listener(journal.clone())
        .build()
        .unwrap();
    let (execution, _) = run(step).await;
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(writer.items(), [1]);
    assert_eq!(
        journal.lines(),
        [
            "before process 1",
            "process error 1: 1 timed out",
            "before process 1",
            "after process 1 -> Some(1)",
        ]
    );
}
