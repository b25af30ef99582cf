//! The in-place strategy on the local file system: the function reads the original file
//! and writes its result beside it under a hidden name; nothing is copied, and the
//! committer replaces the file with the result if it is still unchanged.

use std::path::Path;

use ikkatsu_core::{Error, Result};
use ikkatsu_storage::{FileInfo, LocalFiles};

use super::commit::Commit;
use super::ctx::Ctx;
use super::tally::Outcome;
use super::threads::blocking;
use super::worker::Transformed;
use crate::journal::JournalEntry;

impl Ctx {
    /// Runs the function on `file` in place; its result waits beside it for the committer.
    pub(super) async fn transform_in_place(
        &self,
        local: &LocalFiles,
        file: &FileInfo,
    ) -> Result<Transformed> {
        let path = file.path.as_str();
        let input = local.path(path)?;
        let output = local.temp_sibling(path)?;
        self.journal.record(&JournalEntry {
            source: file.clone(),
            before: Some(file.clone()),
        })?;
        let result = if self.process.is_external() {
            // A command may outlive a killed run and write its output later: it writes
            // in the private work directory, never beside the user's files.
            let written = self.work_file("out");
            let result = match self.run_function(&input, &written).await {
                Ok(()) => move_file(&written, &output).await,
                Err(err) => Err(err),
            };
            let _ = tokio::fs::remove_file(&written).await;
            result
        } else {
            self.run_function(&input, &output).await
        };
        match result {
            Ok(()) => Ok(Transformed::Commit(Commit::Replace {
                file: file.clone(),
                new: output,
            })),
            Err(err) => {
                let _ = tokio::fs::remove_file(&output).await;
                self.journal.end_all([path])?;
                Ok(Transformed::Finished(Outcome::Failed(err.report())))
            }
        }
    }
}

/// Moves `from` to `to` (a rename, or a copy when they are on different file systems).
async fn move_file(from: &Path, to: &Path) -> Result<()> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    blocking(move || {
        let failed = |err| {
            Error::io(
                format_args!("moving `{}` to `{}`", from.display(), to.display()),
                err,
            )
        };
        match std::fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::CrossesDevices => {
                std::fs::copy(&from, &to).map_err(failed)?;
                std::fs::remove_file(&from).map_err(failed)
            }
            Err(err) => Err(failed(err)),
        }
    })
    .await
}
