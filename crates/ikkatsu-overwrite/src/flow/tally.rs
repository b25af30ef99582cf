//! The tally of the process phase: what became of each file ([`Outcome`]), the counters
//! reported to the progress callback, the failures kept for the summary and the failures
//! file listing them all.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ikkatsu_storage::FileInfo;

use super::threads::lock;

/// What the scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanSummary {
    /// Files matching the walk options.
    pub matched: u64,
    /// Of those, files the status store says need processing (written to the backlog).
    pub queued: u64,
    /// Symbolic links the walk skipped with a warning: every link to a file or directory
    /// the walk would read when links are not followed, dangling links when they are.
    pub links_skipped: u64,
}

/// Counters of the process phase, as reported to the progress callback.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Progress {
    /// Files in the backlog.
    pub total: u64,
    /// Transformed and uploaded.
    pub done: u64,
    /// Not processed: already done (by an earlier run, or found in the journal).
    pub skipped: u64,
    /// Changed between download and upload: not overwritten.
    pub conflicts: u64,
    /// Failed (after retries of temporary errors).
    pub failed: u64,
    /// Reached through a symbolic link when writing in place: read-only, not overwritten
    /// (a warning each; see `docs/adr/0012-symbolic-links.md`).
    pub symlinks: u64,
    /// Seconds since the process phase started.
    pub elapsed_seconds: f64,
}

impl Progress {
    /// Files handled so far.
    pub fn handled(&self) -> u64 {
        self.done + self.skipped + self.conflicts + self.failed + self.symlinks
    }

    /// Files handled per second.
    pub fn rate(&self) -> f64 {
        self.handled() as f64 / self.elapsed_seconds.max(0.001)
    }

    /// Estimated seconds left at the current rate.
    pub fn eta_seconds(&self) -> Option<f64> {
        let rate = self.rate();
        (rate > 0.0).then(|| self.total.saturating_sub(self.handled()) as f64 / rate)
    }
}

/// The outcome of the process phase.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProcessSummary {
    /// The final counters.
    pub progress: Progress,
    /// Journalled uploads found at start that had reached the storage (recorded as done).
    pub recovered: u64,
    /// The first failed paths with their errors (all are in `failures_file`).
    pub failures: Vec<Failure>,
    /// The file listing every failure of this run.
    pub failures_file: PathBuf,
    /// Whether the run was stopped before the end of the backlog.
    pub stopped: bool,
    /// Backlog entries, from its start, that are all handled: where a resumed process phase
    /// may start ([`OverwriteFlow::process_from`](super::OverwriteFlow::process_from)).
    pub position: u64,
}

/// One failed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// Path relative to the source.
    pub path: String,
    /// Why.
    pub error: String,
    /// Whether it was a conflict (changed during processing).
    pub conflict: bool,
}

/// How many failures a summary keeps in memory.
const FAILURES_KEPT: usize = 20;

/// Called with the counters as files finish.
pub type ProgressCallback = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What became of one file.
pub(super) enum Outcome {
    Done,
    Skipped,
    Conflict(String),
    Failed(String),
    /// Reached through a symbolic link, in place: not written (why).
    Symlink(String),
}

impl Outcome {
    /// The failure to report, for a conflict or a failure.
    fn failure(&self, path: &str) -> Option<Failure> {
        let (error, conflict) = match self {
            Outcome::Conflict(error) => (error, true),
            Outcome::Failed(error) => (error, false),
            _ => return None,
        };
        Some(Failure {
            path: path.to_string(),
            error: error.clone(),
            conflict,
        })
    }
}

/// The counters, the failures kept and the failures file of one process phase.
pub(super) struct Tally {
    counts: Mutex<Counts>,
    failures_file: Mutex<std::fs::File>,
    started: Instant,
    progress: Option<ProgressCallback>,
}

/// What the tally has counted so far.
struct Counts {
    progress: Progress,
    /// The first failures (at most [`FAILURES_KEPT`]).
    failures: Vec<Failure>,
}

impl Tally {
    /// A tally of `total` files, writing failures to `failures_file`.
    pub(super) fn new(
        total: u64,
        failures_file: std::fs::File,
        progress: Option<ProgressCallback>,
    ) -> Self {
        Tally {
            counts: Mutex::new(Counts {
                progress: Progress {
                    total,
                    ..Progress::default()
                },
                failures: Vec::new(),
            }),
            failures_file: Mutex::new(failures_file),
            started: Instant::now(),
            progress,
        }
    }

    /// The failure `outcome` stands for, if any, logged and written to the failures file.
    pub(super) fn failure(&self, file: &FileInfo, outcome: &Outcome) -> Option<Failure> {
        let path = &file.path;
        if let Outcome::Symlink(why) = outcome {
            tracing::warn!(path = %path, "{why}");
        }
        let failure = outcome.failure(path)?;
        tracing::warn!(path = %path, error = %failure.error, conflict = failure.conflict, "file not processed");
        if let Ok(line) = serde_json::to_string(&failure) {
            use std::io::Write;
            let mut out = lock(&self.failures_file);
            let _ = writeln!(out, "{line}");
        }
        Some(failure)
    }

    /// Counts a finished file (and keeps its failure), then reports progress.
    pub(super) fn count(&self, outcome: Outcome, failure: Option<Failure>) {
        let snapshot = {
            let mut counts = lock(&self.counts);
            let progress = &mut counts.progress;
            match outcome {
                Outcome::Done => progress.done += 1,
                Outcome::Skipped => progress.skipped += 1,
                Outcome::Conflict(_) => progress.conflicts += 1,
                Outcome::Failed(_) => progress.failed += 1,
                Outcome::Symlink(_) => progress.symlinks += 1,
            }
            progress.elapsed_seconds = self.started.elapsed().as_secs_f64();
            if let Some(failure) = failure
                && counts.failures.len() < FAILURES_KEPT
            {
                counts.failures.push(failure);
            }
            self.progress.is_some().then(|| counts.progress.clone())
        };
        if let (Some(progress), Some(snapshot)) = (&self.progress, snapshot) {
            progress(&snapshot);
        }
    }

    /// The counters now and the failures kept.
    pub(super) fn snapshot(&self) -> (Progress, Vec<Failure>) {
        let counts = lock(&self.counts);
        let mut progress = counts.progress.clone();
        progress.elapsed_seconds = self.started.elapsed().as_secs_f64();
        (progress, counts.failures.clone())
    }
}
