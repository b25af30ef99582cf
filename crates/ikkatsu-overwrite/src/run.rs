//! [`OverwriteRun`]: one run of the overwrite flow from its [`OverwriteConfig`]: the scan
//! (or a resume in the backlog of a stopped run), the process phase, and the outcome. The
//! `ikkatsu overwrite` command and the `overwrite` step both run it; they differ only in
//! how they show what happens.

use ikkatsu_core::{CancellationToken, Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;

use crate::config::OverwriteConfig;
use crate::flow::{DryRunSummary, OverwriteFlow, ProcessSummary, ProgressCallback, ScanSummary};

/// Where a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStart {
    /// Scan the source, then process the new backlog.
    Scan,
    /// Process the existing backlog from this entry on (the position a stopped run
    /// reported), without scanning.
    Resume(u64),
}

/// What to do once the scan is done, as decided by the caller from its result.
pub enum AfterScan {
    /// Process the backlog, reporting progress to the callback.
    Process(Option<ProgressCallback>),
    /// Stop here (a scan only); the run lease is released.
    Stop,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every file of the backlog was handled without a failure or a conflict (or the run
    /// was a scan only).
    Completed,
    /// Every file was handled, some failed or were in conflict.
    CompletedWithFailures,
    /// Stopped before the end of the backlog; a restart continues.
    Stopped,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// The scan, unless the run resumed a backlog.
    pub scan: Option<ScanSummary>,
    /// The process phase, unless the run stopped after the scan.
    pub process: Option<ProcessSummary>,
}

impl RunReport {
    /// How the run ended.
    pub fn outcome(&self) -> RunOutcome {
        match &self.process {
            Some(summary) if summary.stopped => RunOutcome::Stopped,
            Some(summary) if summary.progress.failed + summary.progress.conflicts > 0 => {
                RunOutcome::CompletedWithFailures
            }
            _ => RunOutcome::Completed,
        }
    }

    /// For a stopped run: the [`ErrorKind::Cancelled`] error saying how far it got.
    pub fn stopped_error(&self) -> Option<Error> {
        let summary = self.process.as_ref().filter(|s| s.stopped)?;
        let p = &summary.progress;
        Some(Error::new(
            ErrorKind::Cancelled,
            format!(
                "overwrite stopped after {} of {} files; restart to continue",
                p.handled(),
                p.total
            ),
        ))
    }

    /// For a run with failures: how many, and where they are all listed.
    pub fn failures_description(&self) -> Option<String> {
        let summary = self.process.as_ref()?;
        let p = &summary.progress;
        (p.failed + p.conflicts > 0).then(|| {
            format!(
                "{} failed, {} in conflict; see {}",
                p.failed,
                p.conflicts,
                summary.failures_file.display()
            )
        })
    }
}

/// One run of the overwrite flow built from an [`OverwriteConfig`].
pub struct OverwriteRun {
    config: OverwriteConfig,
    flow: OverwriteFlow,
}

impl OverwriteRun {
    /// Validates `config`, opens its storages and status store (`default_status` when it
    /// names none) and builds the flow.
    pub async fn open(config: OverwriteConfig, default_status: &str) -> Result<Self> {
        config.validate()?;
        let flow = config.build(default_status).await?;
        Ok(OverwriteRun { config, flow })
    }

    /// The settings.
    pub fn config(&self) -> &OverwriteConfig {
        &self.config
    }

    /// The flow.
    pub fn flow(&self) -> &OverwriteFlow {
        &self.flow
    }

    /// Whether the config asks for a dry run ([`OverwriteRun::dry_run`], not
    /// [`OverwriteRun::run`]).
    pub fn is_dry_run(&self) -> bool {
        self.config.dry_run
    }

    /// The dry run: gives each file a run would process to `would_process` and writes
    /// nothing (see [`OverwriteFlow::dry_run`]).
    pub async fn dry_run(
        &self,
        cancel: &CancellationToken,
        would_process: impl FnMut(&FileInfo) + Send,
    ) -> Result<DryRunSummary> {
        self.flow.dry_run(cancel, would_process).await
    }

    /// Runs the flow from `start`: the scan, whose result `after_scan` gets (`None` when
    /// the run resumes a backlog without scanning) and which says whether to go on, then
    /// the process phase. Errors are the flow's (a refusal when another run holds it, the
    /// storage or the status store failing); a stop is an outcome, not an error. A config
    /// asking for a dry run is refused: see [`OverwriteRun::dry_run`].
    pub async fn run(
        &self,
        start: RunStart,
        cancel: &CancellationToken,
        after_scan: impl FnOnce(Option<&ScanSummary>) -> AfterScan + Send,
    ) -> Result<RunReport> {
        if self.config.dry_run {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "overwrite: a dry run writes nothing and is run with `OverwriteRun::dry_run`",
            ));
        }
        let (scan, start_at) = match start {
            RunStart::Resume(position) => (None, position),
            RunStart::Scan => (Some(self.flow.scan(cancel).await?), 0),
        };
        let progress = match after_scan(scan.as_ref()) {
            AfterScan::Process(progress) => progress,
            AfterScan::Stop => {
                self.flow.release_lease().await?;
                return Ok(RunReport {
                    scan,
                    process: None,
                });
            }
        };
        let process = self.flow.process_from(start_at, cancel, progress).await?;
        Ok(RunReport {
            scan,
            process: Some(process),
        })
    }
}
