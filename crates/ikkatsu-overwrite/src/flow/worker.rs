//! A worker task: one file through the transform strategy chosen for the run, up to its
//! commit (handed to the committer) or its outcome.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::FutureExt;
use ikkatsu_core::Result;
use ikkatsu_storage::FileInfo;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::commit::{Commit, Pending};
use super::ctx::Ctx;
use super::strategy::Strategy;
use super::tally::Outcome;
use super::threads::blocking;

/// What a transformed file comes to. Unboxed: each is moved once, into the commit queue.
#[allow(clippy::large_enum_variant)]
pub(super) enum Transformed {
    /// Its new content waits for the committer.
    Commit(Commit),
    /// Finished without a commit (skipped, failed, in conflict, behind a link).
    Finished(Outcome),
}

impl Ctx {
    /// Runs one file up to its commit (handed to the committer) or its outcome.
    pub(super) async fn run_file(
        self: Arc<Self>,
        file: FileInfo,
        worker: OwnedSemaphorePermit,
        slot: OwnedSemaphorePermit,
        commits: mpsc::Sender<Pending>,
    ) {
        let run = std::panic::AssertUnwindSafe(self.transform(&file)).catch_unwind();
        let finished = run.await;
        // The worker's turn ends with its function: the commit waits without it.
        drop(worker);
        let outcome = match finished {
            Ok(Ok(Transformed::Commit(commit))) => {
                let pending = Pending { commit, slot };
                match commits.send(pending).await {
                    Ok(()) => return,
                    // The committer stopped on an error (the run fails with it): leave the
                    // journal as it is for the next run, and the new content to its cleanup.
                    Err(mpsc::error::SendError(pending)) => {
                        if let Commit::Replace { new, .. } = &pending.commit {
                            let _ = tokio::fs::remove_file(new).await;
                        }
                        Outcome::Failed("not recorded: the status store failed".to_string())
                    }
                }
            }
            Ok(Ok(Transformed::Finished(outcome))) => outcome,
            Ok(Err(err)) => Outcome::Failed(err.report()),
            Err(_) => {
                if let Strategy::InPlace(local) = &self.strategy {
                    // The function panicked before its result could be committed.
                    let (local, path) = (local.clone(), file.path.clone());
                    let _ = blocking(move || local.clean_interrupted_writes([path.as_str()])).await;
                    let _ = self.journal.end_all([file.path.as_str()]);
                }
                Outcome::Failed(format!("processing `{}` panicked (see the log)", file.path))
            }
        };
        self.finish(&file, outcome).await;
    }

    /// Transforms `file` with the run's strategy.
    async fn transform(&self, file: &FileInfo) -> Result<Transformed> {
        match &self.strategy {
            Strategy::InPlace(local) => self.transform_in_place(local, file).await,
            Strategy::Transfer => self.transfer(file).await,
        }
    }

    /// A fresh name in the work directory. The process id keeps it apart from the names of
    /// a killed run whose commands may still be writing.
    pub(super) fn work_file(&self, kind: &str) -> PathBuf {
        let n = self.work_counter.fetch_add(1, Ordering::Relaxed);
        self.work_dir
            .join(format!("{}-{n}.{kind}", std::process::id()))
    }

    /// Runs the user function, retrying temporary errors (a half-written output of a
    /// failed attempt is removed first).
    pub(super) async fn run_function(&self, input: &Path, output: &Path) -> Result<()> {
        let mut attempt = 0u32;
        self.retry
            .run(&self.cancel, || {
                attempt += 1;
                let again = attempt > 1;
                async move {
                    if again {
                        let _ = tokio::fs::remove_file(output).await;
                    }
                    self.process.process(input, output).await
                }
            })
            .await
    }
}
