//! The transfer strategy: download (unless the source is local), run the function in the
//! private work directory, upload the result over the source (a conditional write) or to
//! the target.

use std::path::Path;

use ikkatsu_core::{ErrorKind, Result};
use ikkatsu_storage::FileInfo;

use super::commit::{Commit, conflict_message};
use super::ctx::Ctx;
use super::tally::Outcome;
use super::threads::{blocking, lock};
use super::worker::Transformed;
use crate::journal::JournalEntry;
use crate::links;

impl Ctx {
    /// Downloads (or reads a local source), runs the function and uploads.
    pub(super) async fn transfer(&self, file: &FileInfo) -> Result<Transformed> {
        // A command may outlive a killed or timed-out run and still read its input: its
        // downloads are never reused.
        let reuse = self.local_source.is_none() && !self.process.is_external();
        let spare = if reuse {
            lock(&self.spare_downloads).pop()
        } else {
            None
        };
        let downloaded_to = spare.unwrap_or_else(|| self.work_file("in"));
        let output = self.work_file("out");
        let result = self
            .transform_via_work_dir(file, &downloaded_to, &output)
            .await;
        let _ = tokio::fs::remove_file(&output).await;
        if reuse {
            lock(&self.spare_downloads).push(downloaded_to);
        } else if self.local_source.is_none() {
            let _ = tokio::fs::remove_file(&downloaded_to).await;
        }
        result
    }

    async fn transform_via_work_dir(
        &self,
        file: &FileInfo,
        downloaded_to: &Path,
        output: &Path,
    ) -> Result<Transformed> {
        let path = file.path.as_str();
        if let Some(local) = self.local_target.clone() {
            let at = file.path.clone();
            if let Some(why) = blocking(move || links::target_read_only(&local, &at)).await? {
                return Ok(Transformed::Finished(Outcome::Symlink(why)));
            }
        }
        let (input, downloaded) = match &self.local_source {
            Some(local) => (local.path(path)?, file.clone()),
            None => {
                // The storage retries its requests (its `retries`): one budget per file.
                let downloaded = self
                    .source
                    .download_listed(file, downloaded_to)
                    .await
                    .map_err(|err| err.context(format!("downloading `{path}`")))?;
                // Changed since the pre-check: what decides is the file as downloaded.
                if !downloaded.same_content_as(file)
                    && self
                        .status
                        .needs_processing(vec![downloaded.clone()])
                        .await?
                        .is_empty()
                {
                    return Ok(Transformed::Finished(Outcome::Skipped));
                }
                (downloaded_to.to_path_buf(), downloaded)
            }
        };
        if let Err(err) = self.run_function(&input, output).await {
            return Ok(Transformed::Finished(Outcome::Failed(err.report())));
        }
        let before = match &self.target {
            None => Some(downloaded.clone()),
            Some(target) => match target.stat(path).await {
                Ok(info) => Some(info),
                Err(err) if err.kind() == ErrorKind::NotFound => None,
                Err(err) => return Err(err.context(format!("checking the target `{path}`"))),
            },
        };
        self.journal
            .begin(&JournalEntry {
                source: downloaded.clone(),
                before,
            })
            .await?;
        let uploaded = match &self.target {
            None => {
                self.source
                    .write_if_unchanged(path, output, &downloaded)
                    .await
            }
            Some(target) => target.upload(output, path).await,
        };
        match uploaded {
            Ok(uploaded) => {
                // What the next walk of the source will see: the uploaded file when
                // writing in place, the unchanged source when writing to another target.
                let walked = if self.target.is_some() {
                    downloaded.clone()
                } else {
                    uploaded
                };
                Ok(Transformed::Commit(Commit::Uploaded {
                    file: downloaded,
                    walked,
                }))
            }
            Err(err) => {
                self.journal.end_all([path])?;
                if err.kind() == ErrorKind::Conflict {
                    Ok(Transformed::Finished(Outcome::Conflict(conflict_message(
                        path, &err,
                    ))))
                } else {
                    Ok(Transformed::Finished(Outcome::Failed(format!(
                        "uploading `{path}`: {}",
                        err.report()
                    ))))
                }
            }
        }
    }
}
