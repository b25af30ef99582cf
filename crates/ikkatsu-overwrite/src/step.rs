//! The `overwrite` step: the overwrite flow as a tasklet of a job, so that it gets the job
//! repository's restart, listeners and scheduling. A restart scans again and processes what
//! the status store says is left; files finished before the stop are not touched again.

use async_trait::async_trait;
use ikkatsu_core::{
    Error, ErrorKind, ExitStatus, RepeatStatus, Result, StepContext, StepExecution, Tasklet,
};

use crate::config::OverwriteConfig;
use crate::run::{AfterScan, OverwriteRun, RunOutcome, RunStart};

/// Execution-context key of the backlog position a restarted step continues from.
const POSITION_KEY: &str = "overwrite.position";

/// Exit code of an overwrite step that finished with some files failed or in conflict.
pub const COMPLETED_WITH_FAILURES: &str = "COMPLETED WITH FAILURES";

/// The status store used when the step names none: an embedded store in the working
/// directory, beside the default job repository.
pub const DEFAULT_STATUS_STORE: &str = "ikkatsu-status.redb";

/// Runs an overwrite flow (scan, then process) as one tasklet iteration. The scan result
/// and the backlog position are kept in the execution context: a step stopped during the
/// process phase continues in the same backlog when restarted.
///
/// Counts: `read_count` is the files queued by the scan, `write_count` the files
/// transformed, `filter_count` the files skipped (already done, or reached through a symbolic
/// link in place), `process_skip_count` the files failed or in
/// conflict. The execution context keeps the scan and process counters under `overwrite.*`.
///
/// With `dry-run: true` the step writes nothing but its own records in the job repository:
/// each file a run would process is logged (`would process`); `read_count` is their
/// number, `filter_count` the files a run would not write because of a symbolic link,
/// `process_skip_count` the files that cannot be checked.
#[derive(Debug, Clone)]
pub struct OverwriteTasklet {
    config: OverwriteConfig,
    default_status: String,
}

impl OverwriteTasklet {
    /// A tasklet for `config`.
    pub fn new(config: OverwriteConfig) -> Result<Self> {
        config.validate()?;
        Ok(OverwriteTasklet {
            config,
            default_status: DEFAULT_STATUS_STORE.to_string(),
        })
    }

    /// The status store used when the config names none.
    pub fn with_default_status(mut self, url: impl Into<String>) -> Self {
        self.default_status = url.into();
        self
    }
}

#[async_trait]
impl Tasklet for OverwriteTasklet {
    async fn execute(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
    ) -> Result<RepeatStatus> {
        let run = OverwriteRun::open(self.config.clone(), &self.default_status).await?;
        if run.is_dry_run() {
            let summary = run
                .dry_run(&ctx.cancel, |file| {
                    tracing::info!(path = %file.path, size = file.size, "would process");
                })
                .await?;
            if summary.stopped {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    "overwrite dry run stopped",
                ));
            }
            execution.counts.read_count += summary.would_process;
            execution.counts.filter_count += summary.symlinks;
            execution.counts.process_skip_count += summary.failed;
            let context = &mut execution.execution_context;
            context.put("overwrite.matched", summary.matched);
            context.put("overwrite.would_process", summary.would_process);
            context.put("overwrite.symlinks", summary.symlinks);
            context.put("overwrite.failed", summary.failed);
            return Ok(RepeatStatus::Finished);
        }
        // A restart after a stop in the process phase continues in the same backlog.
        let start = match execution.execution_context.get_u64(POSITION_KEY) {
            Some(position) if run.flow().options().backlog_path().exists() => {
                RunStart::Resume(position)
            }
            _ => RunStart::Scan,
        };
        let counts = &mut execution.counts;
        let context = &mut execution.execution_context;
        let report = run
            .run(start, &ctx.cancel, |scan| {
                if let Some(scan) = scan {
                    context.put("overwrite.matched", scan.matched);
                    context.put("overwrite.queued", scan.queued);
                    context.put(POSITION_KEY, 0u64);
                    counts.read_count += scan.queued;
                }
                AfterScan::Process(None)
            })
            .await?;
        let Some(summary) = &report.process else {
            return Ok(RepeatStatus::Finished);
        };
        let p = &summary.progress;
        execution.counts.write_count += p.done;
        execution.counts.filter_count += p.skipped + p.symlinks;
        execution.counts.process_skip_count += p.failed + p.conflicts;
        let context = &mut execution.execution_context;
        context.put(POSITION_KEY, summary.position);
        context.put("overwrite.done", p.done);
        context.put("overwrite.skipped", p.skipped);
        context.put("overwrite.symlinks", p.symlinks);
        context.put("overwrite.failed", p.failed);
        context.put("overwrite.conflicts", p.conflicts);
        context.put("overwrite.recovered", summary.recovered);
        match report.outcome() {
            RunOutcome::Stopped => Err(report
                .stopped_error()
                .unwrap_or_else(|| Error::new(ErrorKind::Cancelled, "overwrite stopped"))),
            RunOutcome::CompletedWithFailures => {
                execution.exit_status = ExitStatus::new(COMPLETED_WITH_FAILURES)
                    .with_description(report.failures_description().unwrap_or_default());
                Ok(RepeatStatus::Finished)
            }
            RunOutcome::Completed => Ok(RepeatStatus::Finished),
        }
    }
}
