//! Flows over the in-memory repository: transitions chosen by specificity, decisions,
//! splits running their flows in parallel, and restarts inside splits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ikkatsu_core::prelude::*;
use ikkatsu_core::{FlowElement, TransitionTarget};

fn operator() -> JobOperator {
    JobOperator::new(Arc::new(MemoryJobRepository::new()))
}

/// Ends with an exit code, after waiting on `barrier` when given, failing the first time
/// when `fail_once` is set.
struct Task {
    exit: &'static str,
    barrier: Option<Arc<tokio::sync::Barrier>>,
    fail_once: Option<Arc<AtomicBool>>,
    promote: Option<(&'static str, &'static str)>,
}

impl Task {
    fn exit(exit: &'static str) -> Self {
        Task {
            exit,
            barrier: None,
            fail_once: None,
            promote: None,
        }
    }
}

#[async_trait]
impl Tasklet for Task {
    async fn execute(
        &self,
        execution: &mut StepExecution,
        _ctx: &StepContext,
    ) -> ikkatsu_core::Result<RepeatStatus> {
        if let Some(barrier) = &self.barrier {
            // Both flows of the split must be here at once: run one after the other, they
            // would wait for ever (the timeout fails the test instead).
            tokio::time::timeout(Duration::from_secs(10), barrier.wait())
                .await
                .map_err(|_| Error::new(ErrorKind::Component, "the split is not parallel"))?;
        }
        if let Some(fail) = &self.fail_once
            && fail.swap(false, Ordering::SeqCst)
        {
            return Err(Error::new(ErrorKind::Component, "boom"));
        }
        if let Some((key, value)) = self.promote {
            execution.execution_context.put(key, value);
        }
        execution.exit_status = ExitStatus::new(self.exit);
        Ok(RepeatStatus::Finished)
    }
}

fn step(name: &str, task: Task) -> FlowElement {
    FlowElement::step(Arc::new(TaskletStep::new(name, Arc::new(task))))
}

fn flow(start: &str, elements: Vec<(&str, FlowElement)>) -> Flow {
    let elements: HashMap<String, FlowElement> = elements
        .into_iter()
        .map(|(name, element)| (name.to_string(), element))
        .collect();
    Flow::new(start, elements)
}

async fn steps_run(op: &JobOperator, execution: &JobExecution) -> Vec<(String, BatchStatus)> {
    let mut steps: Vec<(String, BatchStatus)> = op
        .repository()
        .step_executions(execution.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.step_name, s.status))
        .collect();
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    steps
}

/// The most specific pattern wins, whatever the order the transitions are written in.
#[tokio::test]
async fn the_most_specific_transition_wins() {
    for (exit, expected) in [
        ("COMPLETED WITH SKIPS", "skips"),
        ("COMPLETED", "plain"),
        ("COMPLETED LATE", "completed-any"),
        ("NOOP", "any"),
    ] {
        let op = operator();
        let job = Job::new(
            "precedence",
            flow(
                "first",
                vec![(
                    "first",
                    step("first", Task::exit(exit)).with_transitions(vec![
                        Transition {
                            on: "*".into(),
                            target: TransitionTarget::End {
                                exit_code: Some("any".into()),
                            },
                        },
                        Transition {
                            on: "COMPLETED*".into(),
                            target: TransitionTarget::End {
                                exit_code: Some("completed-any".into()),
                            },
                        },
                        Transition {
                            on: "COMPLETED".into(),
                            target: TransitionTarget::End {
                                exit_code: Some("plain".into()),
                            },
                        },
                        Transition {
                            on: "COMPLETED WITH SKIPS".into(),
                            target: TransitionTarget::End {
                                exit_code: Some("skips".into()),
                            },
                        },
                    ]),
                )],
            ),
        )
        .unwrap();
        let execution = op
            .start(&job, JobParameters::new(), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            execution.exit_status.exit_code, expected,
            "exit code {exit}"
        );
    }
}

/// A decider sees the job context and the last step; its status picks the transition.
#[tokio::test]
async fn a_decision_routes_on_the_decided_status() {
    for (mode, expected) in [("full", "load-all"), ("delta", "load-changes")] {
        let op = operator();
        let decider = FnDecider(|execution: &JobExecution, last: Option<&StepExecution>| {
            assert_eq!(last.map(|s| s.step_name.as_str()), Some("prepare"));
            let mode = execution.execution_context.get_str("mode").unwrap_or("?");
            Ok(if mode == "full" { "FULL" } else { "DELTA" }.to_string())
        });
        let mut prepare = Task::exit("COMPLETED");
        prepare.promote = Some(("mode", mode));
        let job = Job::new(
            "decided",
            flow(
                "prepare",
                vec![
                    (
                        "prepare",
                        step("prepare", prepare)
                            .with_promote_keys(vec!["mode".into()])
                            .with_next(Some("choose".into())),
                    ),
                    (
                        "choose",
                        FlowElement::decision(Arc::new(decider)).with_transitions(vec![
                            Transition::to("DELTA", "load-changes"),
                            Transition::to("FULL", "load-all"),
                        ]),
                    ),
                    ("load-all", step("load-all", Task::exit("COMPLETED"))),
                    (
                        "load-changes",
                        step("load-changes", Task::exit("COMPLETED")),
                    ),
                ],
            ),
        )
        .unwrap();
        let execution = op
            .start(&job, JobParameters::new(), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(execution.status, BatchStatus::Completed);
        let names: Vec<String> = steps_run(&op, &execution)
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, [expected, "prepare"], "{mode}");
    }
}

#[tokio::test]
async fn a_decision_without_a_matching_transition_fails_the_job() {
    let op = operator();
    let decider = FnDecider(|_: &JobExecution, _: Option<&StepExecution>| Ok("ODD".to_string()));
    let job = Job::new(
        "unmatched",
        flow(
            "choose",
            vec![
                (
                    "choose",
                    FlowElement::decision(Arc::new(decider))
                        .with_transitions(vec![Transition::to("EVEN", "even")]),
                ),
                ("even", step("even", Task::exit("COMPLETED"))),
            ],
        ),
    )
    .unwrap();
    let execution = op
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Failed);
    assert!(
        execution
            .exit_status
            .description
            .contains("no transition of `choose` matches its exit code `ODD`"),
        "{}",
        execution.exit_status.description
    );
}

/// Two flows of a split run at the same time (each waits for the other at a barrier), the
/// next element runs after both, and what their steps promote reaches the job context.
#[tokio::test]
async fn a_split_runs_its_flows_in_parallel_then_joins() {
    let op = operator();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let branch = |name: &'static str, key: &'static str| {
        let mut task = Task::exit("COMPLETED");
        task.barrier = Some(barrier.clone());
        task.promote = Some((key, name));
        flow(
            name,
            vec![(
                name,
                step(name, task).with_promote_keys(vec![key.to_string()]),
            )],
        )
    };
    let job = Job::new(
        "parallel",
        flow(
            "both",
            vec![
                (
                    "both",
                    FlowElement::split(vec![branch("left", "l"), branch("right", "r")])
                        .with_next(Some("after".into())),
                ),
                ("after", step("after", Task::exit("COMPLETED"))),
            ],
        ),
    )
    .unwrap();
    let execution = op
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        execution.status,
        BatchStatus::Completed,
        "{:?}",
        execution.exit_status
    );
    assert_eq!(
        steps_run(&op, &execution).await,
        [
            ("after".to_string(), BatchStatus::Completed),
            ("left".to_string(), BatchStatus::Completed),
            ("right".to_string(), BatchStatus::Completed),
        ]
    );
    assert_eq!(execution.execution_context.get_str("l"), Some("left"));
    assert_eq!(execution.execution_context.get_str("r"), Some("right"));
}

/// A failing flow fails the split and the job; the restart runs only what did not
/// complete, inside the split, then goes on.
#[tokio::test]
async fn a_failed_flow_fails_the_split_and_the_restart_reruns_only_it() {
    let op = operator();
    let fail_once = Arc::new(AtomicBool::new(true));
    let build = || {
        let mut bad = Task::exit("COMPLETED");
        bad.fail_once = Some(fail_once.clone());
        Job::new(
            "split-restart",
            flow(
                "both",
                vec![
                    (
                        "both",
                        FlowElement::split(vec![
                            flow(
                                "good",
                                vec![("good", step("good", Task::exit("COMPLETED")))],
                            ),
                            flow("bad", vec![("bad", step("bad", bad))]),
                        ])
                        .with_next(Some("after".into())),
                    ),
                    ("after", step("after", Task::exit("COMPLETED"))),
                ],
            ),
        )
        .unwrap()
    };
    let params = JobParameters::new().with("run", ParameterValue::Integer(1));
    let first = op
        .start(&build(), params.clone(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.status, BatchStatus::Failed);
    assert!(
        first
            .exit_status
            .description
            .contains("a flow of split `both` failed"),
        "{}",
        first.exit_status.description
    );
    assert_eq!(
        steps_run(&op, &first).await,
        [
            ("bad".to_string(), BatchStatus::Failed),
            ("good".to_string(), BatchStatus::Completed),
        ]
    );
    let second = op
        .restart(first.id, &build(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);
    // `good` completed in the first execution: not run again.
    assert_eq!(
        steps_run(&op, &second).await,
        [
            ("after".to_string(), BatchStatus::Completed),
            ("bad".to_string(), BatchStatus::Completed),
        ]
    );
}

/// A flow stopped by a transition stops the split and the job; a restart runs the split
/// again (its completed steps are not run again, its decisions are) and goes on.
#[tokio::test]
async fn a_stopped_flow_stops_the_job_and_the_restart_resumes_at_the_split() {
    let op = operator();
    let pause = Arc::new(AtomicBool::new(true));
    let decider = {
        let pause = pause.clone();
        FnDecider(move |_: &JobExecution, _: Option<&StepExecution>| {
            Ok(if pause.load(Ordering::SeqCst) {
                "PAUSE"
            } else {
                "GO"
            }
            .to_string())
        })
    };
    let job = Job::new(
        "split-stop",
        flow(
            "both",
            vec![
                (
                    "both",
                    FlowElement::split(vec![
                        flow("one", vec![("one", step("one", Task::exit("COMPLETED")))]),
                        flow(
                            "two",
                            vec![
                                (
                                    "two",
                                    step("two", Task::exit("COMPLETED"))
                                        .with_next(Some("gate".into())),
                                ),
                                (
                                    "gate",
                                    FlowElement::decision(Arc::new(decider)).with_transitions(
                                        vec![Transition::stop("PAUSE", None), Transition::end("*")],
                                    ),
                                ),
                            ],
                        ),
                    ])
                    .with_next(Some("after".into())),
                ),
                ("after", step("after", Task::exit("COMPLETED"))),
            ],
        ),
    )
    .unwrap();
    let params = JobParameters::new().with("run", ParameterValue::Integer(2));
    let first = op
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.status, BatchStatus::Stopped);
    let names: Vec<String> = steps_run(&op, &first)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["one", "two"], "`after` waits for the split");
    pause.store(false, Ordering::SeqCst);
    let second = op
        .restart(first.id, &job, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.status, BatchStatus::Completed);
    let names: Vec<String> = steps_run(&op, &second)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["after"]);
}

#[test]
fn two_steps_of_one_name_across_splits_are_refused() {
    let job = Job::new(
        "dup",
        flow(
            "both",
            vec![(
                "both",
                FlowElement::split(vec![
                    flow("x", vec![("x", step("same", Task::exit("COMPLETED")))]),
                    flow("y", vec![("y", step("same", Task::exit("COMPLETED")))]),
                ]),
            )],
        ),
    );
    let err = job.err().expect("refused").to_string();
    assert!(err.contains("two steps are named `same`"), "{err}");
}
