//! A progress line on a terminal, fed by polling the job repository.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use ikkatsu_core::launch::current_owner;
use ikkatsu_core::repository::ExecutionQuery;
use ikkatsu_core::{BatchStatus, CancellationToken, JobRepository};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

/// Shows the running step and its counts until dropped via [`Progress::finish`].
pub struct Progress {
    done: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts polling when standard error is a terminal and progress is wanted.
    pub fn start(repository: Arc<dyn JobRepository>, job_name: String, wanted: bool) -> Self {
        let done = CancellationToken::new();
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress { done, task: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        let stop = done.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                let Ok(executions) = repository
                    .find_job_executions(&ExecutionQuery {
                        job_name: Some(job_name.clone()),
                        status: Some(BatchStatus::Started),
                        limit: Some(20),
                    })
                    .await
                else {
                    continue;
                };
                let me = current_owner().to_string();
                let Some(execution) = executions
                    .iter()
                    .find(|e| e.owner.as_deref() == Some(me.as_str()))
                else {
                    continue;
                };
                let Ok(steps) = repository.step_executions(execution.id).await else {
                    continue;
                };
                if let Some(step) = steps.last() {
                    let secs = started.elapsed().as_secs_f64().max(0.001);
                    bar.set_message(format!(
                        "execution {} step {}: read {} written {} ({:.0} items/s)",
                        execution.id,
                        step.step_name,
                        step.counts.read_count,
                        step.counts.write_count,
                        step.counts.read_count as f64 / secs
                    ));
                }
            }
            bar.finish_and_clear();
        });
        Progress {
            done,
            task: Some(task),
        }
    }

    /// Removes the progress line.
    pub async fn finish(mut self) {
        self.done.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
