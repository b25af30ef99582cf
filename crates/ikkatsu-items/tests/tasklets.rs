//! Shell and log tasklets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ikkatsu_core::{
    CancellationToken, ErrorKind, ExecutionContext, JobParameters, MemoryJobRepository,
    RepeatStatus, StepContext, StepExecution, Tasklet,
};
use ikkatsu_items::log::{LogTasklet, LogTaskletConfig};
use ikkatsu_items::shell::{ShellTasklet, ShellTaskletConfig};
use serde_json::json;

fn context(cancel: CancellationToken) -> StepContext {
    StepContext {
        job_execution_id: 1,
        instance_id: 1,
        job_name: "job".into(),
        parameters: JobParameters::new(),
        job_context: ExecutionContext::new(),
        repository: Arc::new(MemoryJobRepository::new()),
        cancel,
    }
}

fn shell(config: serde_json::Value) -> ShellTasklet {
    ShellTasklet::new(serde_json::from_value(config).unwrap()).unwrap()
}

async fn run(tasklet: &ShellTasklet) -> (StepExecution, ikkatsu_core::Result<RepeatStatus>) {
    let mut execution = StepExecution::new(1, "shell-step");
    let result = tasklet
        .execute(&mut execution, &context(CancellationToken::new()))
        .await;
    (execution, result)
}

#[tokio::test]
async fn exit_codes_map_to_exit_statuses() {
    let tasklet = shell(json!({
        "command": "exit $1", "shell": true, "args": ["3"],
        "exit-codes": {"0": "COMPLETED", "3": "NO_DATA", "*": "FAILED"}
    }));
    let (execution, result) = run(&tasklet).await;
    assert_eq!(result.unwrap(), RepeatStatus::Finished);
    assert_eq!(execution.exit_status.exit_code, "NO_DATA");

    let tasklet = shell(json!({"command": "true"}));
    let (execution, result) = run(&tasklet).await;
    assert_eq!(result.unwrap(), RepeatStatus::Finished);
    assert_eq!(execution.exit_status.exit_code, "COMPLETED");

    let tasklet = shell(json!({
        "command": "echo first >&2; echo 'it broke' >&2; exit 7", "shell": true
    }));
    let (_, result) = run(&tasklet).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Component);
    assert!(err.message().contains("exit code 7"), "{err}");
    assert!(
        err.message()
            .ends_with("last lines of stderr:\nfirst\nit broke"),
        "{err}"
    );

    let tasklet = shell(json!({"command": "exit 9", "shell": true, "exit-codes": {"*": "ODD"}}));
    let (execution, result) = run(&tasklet).await;
    result.unwrap();
    assert_eq!(execution.exit_status.exit_code, "ODD");
}

#[tokio::test]
async fn args_and_env_arrive_literally_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let name = "a b $HOME";
    let tasklet = shell(json!({
        "command": "touch", "args": [name], "working-dir": dir.path()
    }));
    run(&tasklet).await.1.unwrap();
    assert!(dir.path().join(name).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let out = dir.path().join("env.txt");
    let tasklet = shell(json!({
        "command": "sh",
        "args": ["-c", "printf '%s|%s' \"$GREETING\" \"$2\" > \"$1\"", "sh", out, "x  y"],
        "env": {"GREETING": "hello $HOME *"}
    }));
    run(&tasklet).await.1.unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello $HOME *|x  y");

    let tasklet = shell(json!({"command": "definitely-not-a-program-ikkatsu"}));
    let err = run(&tasklet).await.1.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().contains("definitely-not-a-program-ikkatsu"),
        "{err}"
    );
}

#[tokio::test]
async fn timeout_kills_the_command() {
    let tasklet = shell(json!({"command": "sleep", "args": ["30"], "timeout": "1s"}));
    let started = Instant::now();
    let err = run(&tasklet).await.1.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(err.kind(), ErrorKind::Component);
    assert!(err.message().contains("timed out after 1s"), "{err}");

    // The whole process group goes, also background children holding the output pipes.
    let tasklet = shell(json!({"command": "sleep 30 & sleep 30", "shell": true, "timeout": "1s"}));
    let started = Instant::now();
    let err = run(&tasklet).await.1.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(err.message().contains("timed out"), "{err}");
}

#[tokio::test]
async fn cancellation_kills_the_command() {
    let tasklet = shell(json!({"command": "sleep", "args": ["30"]}));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let mut execution = StepExecution::new(1, "shell-step");
    let started = Instant::now();
    let err = tasklet
        .execute(&mut execution, &context(cancel))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(err.kind(), ErrorKind::Cancelled);
}

#[test]
fn shell_config_rejects_bad_values() {
    let bad = [
        json!({"command": "x", "timeout": "soon"}),
        json!({"command": "x", "exit-codes": {"one": "X"}}),
        json!({"command": "x", "workingDir": "/"}),
    ];
    for config in bad {
        assert!(
            serde_json::from_value::<ShellTaskletConfig>(config.clone()).is_err(),
            "{config}"
        );
    }
    let config: ShellTaskletConfig =
        serde_json::from_value(json!({"command": "x", "timeout": "1h30m"})).unwrap();
    assert_eq!(config.timeout.unwrap().0, Duration::from_secs(5400));
    assert_eq!(
        ShellTasklet::new(ShellTaskletConfig::new("  ", Vec::<String>::new()))
            .err()
            .unwrap()
            .kind(),
        ErrorKind::Config
    );
}

#[tokio::test]
async fn log_tasklet_finishes_with_and_without_message() {
    for config in [json!({"message": "hello", "level": "warn"}), json!({})] {
        let config: LogTaskletConfig = serde_json::from_value(config).unwrap();
        let tasklet = LogTasklet::new(config).unwrap();
        let mut execution = StepExecution::new(1, "log");
        let status = tasklet
            .execute(&mut execution, &context(CancellationToken::new()))
            .await
            .unwrap();
        assert_eq!(status, RepeatStatus::Finished);
    }
}
