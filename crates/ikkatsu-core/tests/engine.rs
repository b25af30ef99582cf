//! Engine behaviour over the in-memory repository: restart, transitions, stop, listeners.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use ikkatsu_core::prelude::*;
use ikkatsu_core::{FlowElement, StepCounts, TransitionTarget};

fn operator() -> JobOperator {
    JobOperator::new(Arc::new(MemoryJobRepository::new()))
}

/// Fails once on the item equal to `fail_at` (the first time it is seen), then passes.
struct FailOnce {
    fail_at: i64,
    failed: AtomicBool,
}

#[async_trait]
impl ItemProcessor<i64, i64> for FailOnce {
    async fn process(&self, item: i64) -> ikkatsu_core::Result<Option<i64>> {
        if item == self.fail_at && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Component, format!("boom at {item}")));
        }
        Ok(Some(item))
    }
}

fn chunk_job(
    writer: &VecItemWriter<i64>,
    processor: Arc<dyn ItemProcessor<i64, i64>>,
    items: i64,
    chunk: usize,
) -> Job {
    let step = ChunkStep::<i64, i64>::builder("copy")
        .reader(VecItemReader::new((1..=items).collect()))
        .shared_processor(processor)
        .writer(writer.clone())
        .chunk_size(chunk)
        .build()
        .unwrap();
    Job::linear("copy-job", vec![Arc::new(step)]).unwrap()
}

#[tokio::test]
async fn restart_after_failure_resumes_from_last_committed_chunk() {
    let op = operator();
    let writer = VecItemWriter::new();
    let processor: Arc<dyn ItemProcessor<i64, i64>> = Arc::new(FailOnce {
        fail_at: 57,
        failed: AtomicBool::new(false),
    });
    let job = chunk_job(&writer, processor.clone(), 100, 10);
    let params = JobParameters::new().with("run", ParameterValue::Integer(1));

    let first = op
        .start(&job, params.clone(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.status, BatchStatus::Failed);
    assert!(
        first.exit_status.description.contains("boom at 57"),
        "{}",
        first.exit_status
    );
    let steps = op.repository().step_executions(first.id).await.unwrap();
    assert_eq!(steps[0].status, BatchStatus::Failed);
    assert_eq!(
        steps[0].counts,
        StepCounts {
            read_count: 50,
            write_count: 50,
            commit_count: 5,
            rollback_count: 1,
            ..StepCounts::default()
        }
    );
    assert_eq!(writer.items(), (1..=50).collect::<Vec<_>>());

    // The same job started again with the same parameters restarts the failed instance.
    let job = chunk_job(&writer, processor, 100, 10);
    let second = op
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);
    assert_eq!(second.instance_id, first.instance_id);
    let steps = op.repository().step_executions(second.id).await.unwrap();
    assert_eq!(steps[0].counts.read_count, 50);
    assert_eq!(steps[0].counts.write_count, 50);
    assert_eq!(writer.items(), (1..=100).collect::<Vec<_>>());
}

#[tokio::test]
async fn completed_instance_is_refused_and_completed_steps_are_not_rerun() {
    let op = operator();
    let runs = Arc::new(AtomicU64::new(0));
    struct Count(Arc<AtomicU64>, bool);
    #[async_trait]
    impl Tasklet for Count {
        async fn execute(
            &self,
            _e: &mut StepExecution,
            _c: &StepContext,
        ) -> ikkatsu_core::Result<RepeatStatus> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            if self.1 && n == 1 {
                return Err(Error::new(ErrorKind::Component, "second step fails once"));
            }
            Ok(RepeatStatus::Finished)
        }
    }
    let a = Arc::new(TaskletStep::new("a", Arc::new(Count(runs.clone(), false))));
    let b_count = Arc::new(AtomicU64::new(0));
    let b = Arc::new(TaskletStep::new(
        "b",
        Arc::new(Count(b_count.clone(), false)),
    ));
    let fails = Arc::new(AtomicU64::new(1));
    let c = Arc::new(TaskletStep::new("c", Arc::new(Count(fails.clone(), true))));
    let job = Job::linear("three", vec![a, b, c]).unwrap();
    let params = JobParameters::new().with("x", ParameterValue::Integer(1));
    let first = op
        .start(&job, params.clone(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.status, BatchStatus::Failed);
    let second = op
        .start(&job, params.clone(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "step a must not rerun");
    assert_eq!(b_count.load(Ordering::SeqCst), 1, "step b must not rerun");
    let err = op
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyComplete);
    assert!(err.to_string().contains("already completed"), "{err}");
}

struct ExitWith(&'static str);

#[async_trait]
impl Tasklet for ExitWith {
    async fn execute(
        &self,
        execution: &mut StepExecution,
        _ctx: &StepContext,
    ) -> ikkatsu_core::Result<RepeatStatus> {
        execution.exit_status = ExitStatus::new(self.0);
        Ok(RepeatStatus::Finished)
    }
}

fn element(step: Arc<dyn Step>, transitions: Vec<Transition>) -> FlowElement {
    FlowElement::step(step).with_transitions(transitions)
}

#[tokio::test]
async fn transitions_route_on_exit_codes() {
    let op = operator();
    let mut elements = std::collections::HashMap::new();
    elements.insert(
        "check".to_string(),
        element(
            Arc::new(TaskletStep::new("check", Arc::new(ExitWith("EMPTY")))),
            vec![
                Transition::to("COMPLETED", "load"),
                Transition::to("EMP*", "skip-load"),
                Transition::fail("*"),
            ],
        ),
    );
    elements.insert(
        "load".to_string(),
        element(
            Arc::new(TaskletStep::new("load", Arc::new(ExitWith("COMPLETED")))),
            vec![],
        ),
    );
    elements.insert(
        "skip-load".to_string(),
        element(
            Arc::new(TaskletStep::new(
                "skip-load",
                Arc::new(ExitWith("COMPLETED")),
            )),
            vec![Transition {
                on: "*".into(),
                target: TransitionTarget::End {
                    exit_code: Some("NOTHING-TO-DO".into()),
                },
            }],
        ),
    );
    let job = Job::new("routed", Flow::new("check", elements)).unwrap();
    let execution = op
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    assert_eq!(execution.exit_status.exit_code, "NOTHING-TO-DO");
    let names: Vec<String> = op
        .repository()
        .step_executions(execution.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_name)
        .collect();
    assert_eq!(names, vec!["check", "skip-load"]);
}

#[tokio::test]
async fn stop_transition_restarts_at_the_named_element() {
    let op = operator();
    let mut elements = std::collections::HashMap::new();
    elements.insert(
        "first".to_string(),
        element(
            Arc::new(TaskletStep::new("first", Arc::new(ExitWith("PAUSE")))),
            vec![Transition::stop("PAUSE", Some("second".into()))],
        ),
    );
    elements.insert(
        "second".to_string(),
        element(
            Arc::new(TaskletStep::new("second", Arc::new(ExitWith("COMPLETED")))),
            vec![],
        ),
    );
    let job = Job::new("pausing", Flow::new("first", elements)).unwrap();
    let params = JobParameters::new().with("p", ParameterValue::Bool(true));
    let first = op
        .start(&job, params.clone(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.status, BatchStatus::Stopped);
    let second = op
        .restart(first.id, &job, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);
    let names: Vec<String> = op
        .repository()
        .step_executions(second.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_name)
        .collect();
    assert_eq!(names, vec!["second"]);
}

#[test]
fn bad_transition_target_is_a_config_error() {
    let mut elements = std::collections::HashMap::new();
    elements.insert(
        "a".to_string(),
        element(
            Arc::new(TaskletStep::new("a", Arc::new(ExitWith("X")))),
            vec![Transition::to("*", "nowhere")],
        ),
    );
    let err = Job::new("bad", Flow::new("a", elements)).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("`nowhere`"), "{err}");
}

/// A reader that cancels the token after `after` items, to test a graceful stop.
struct CancelAfter {
    inner: VecItemReader<i64>,
    after: u64,
    seen: u64,
    cancel: CancellationToken,
}

#[async_trait]
impl ItemStream for CancelAfter {
    async fn open(&mut self, ctx: &ExecutionContext) -> ikkatsu_core::Result<()> {
        self.inner.open(ctx).await
    }
    async fn update(&mut self, ctx: &mut ExecutionContext) -> ikkatsu_core::Result<()> {
        self.inner.update(ctx).await
    }
}

#[async_trait]
impl ItemReader<i64> for CancelAfter {
    async fn read(&mut self) -> ikkatsu_core::Result<Option<i64>> {
        self.seen += 1;
        if self.seen == self.after {
            self.cancel.cancel();
        }
        self.inner.read().await
    }
}

#[tokio::test]
async fn graceful_stop_at_chunk_boundary_then_restart() {
    let op = operator();
    let writer = VecItemWriter::new();
    let cancel = CancellationToken::new();
    let step = ChunkStep::<i64, i64>::builder("copy")
        .reader(CancelAfter {
            inner: VecItemReader::new((1..=40).collect()),
            after: 15,
            seen: 0,
            cancel: cancel.clone(),
        })
        .writer(writer.clone())
        .chunk_size(10)
        .build()
        .unwrap();
    let job = Job::linear("stoppable", vec![Arc::new(step)]).unwrap();
    let first = op.start(&job, JobParameters::new(), cancel).await.unwrap();
    assert_eq!(first.status, BatchStatus::Stopped);
    assert_eq!(writer.items(), (1..=20).collect::<Vec<_>>());

    let step = ChunkStep::<i64, i64>::builder("copy")
        .reader(VecItemReader::new((1..=40).collect()))
        .writer(writer.clone())
        .chunk_size(10)
        .build()
        .unwrap();
    let job = Job::linear("stoppable", vec![Arc::new(step)]).unwrap();
    let second = op
        .restart(first.id, &job, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);
    assert_eq!(writer.items(), (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn skip_policy_skips_bad_items_up_to_the_limit() {
    let op = operator();
    let writer = VecItemWriter::new();
    let step = ChunkStep::<i64, i64>::builder("skipper")
        .reader(VecItemReader::new((1..=20).collect()))
        .processor(FnItemProcessor::new(|n: i64| {
            if n % 7 == 0 {
                Err(Error::new(ErrorKind::Parse, format!("bad item {n}")))
            } else {
                Ok(Some(n))
            }
        }))
        .writer(writer.clone())
        .skip_policy(SkipPolicy::new(5, vec![ErrorKind::Parse]))
        .chunk_size(4)
        .build()
        .unwrap();
    let job = Job::linear("skipping", vec![Arc::new(step)]).unwrap();
    let execution = op
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);
    let steps = op.repository().step_executions(execution.id).await.unwrap();
    assert_eq!(steps[0].counts.process_skip_count, 2);
    assert_eq!(steps[0].counts.write_count, 18);
    assert_eq!(writer.items().len(), 18);
}

#[tokio::test]
async fn stop_request_from_repository_reaches_running_job() {
    let repo = Arc::new(MemoryJobRepository::new());
    let op = JobOperator::new(repo.clone()).with_settings(OperatorSettings {
        heartbeat_interval: std::time::Duration::from_millis(20),
        stale_after: std::time::Duration::from_secs(60),
    });
    struct Slow;
    #[async_trait]
    impl Tasklet for Slow {
        async fn execute(
            &self,
            _e: &mut StepExecution,
            _c: &StepContext,
        ) -> ikkatsu_core::Result<RepeatStatus> {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            Ok(RepeatStatus::Continuable)
        }
    }
    let job = Job::linear(
        "forever",
        vec![Arc::new(TaskletStep::new("loop", Arc::new(Slow)))],
    )
    .unwrap();
    let op2 = op.clone();
    let handle = tokio::spawn(async move {
        op2.start(&job, JobParameters::new(), CancellationToken::new())
            .await
    });
    let id = loop {
        let running = repo.find_job_executions(&Default::default()).await.unwrap();
        if let Some(e) = running.first()
            && e.status == BatchStatus::Started
        {
            break e.id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let stopping = op.stop(id).await.unwrap();
    assert_eq!(stopping.status, BatchStatus::Stopping);
    let ended = handle.await.unwrap().unwrap();
    assert_eq!(ended.status, BatchStatus::Stopped);
    let steps = repo.step_executions(id).await.unwrap();
    assert_eq!(steps[0].status, BatchStatus::Stopped);
    assert!(steps[0].counts.commit_count >= 1);
}
